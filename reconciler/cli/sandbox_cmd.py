"""``reconciler sandbox``: the embedded simulated tenants a repository plans and applies against.

A repository's seed snapshots live in ``<PATH>/sandbox/<customer>.json``; the working sandbox
is ``<PATH>/.reconciler/sandbox/`` (keep it out of git). ``init`` creates it, ``reset`` puts the
seeds back, ``show`` summarises what a sandbox tenant holds. Further subcommands (``serve``, the
fake Exchange Online service) are loaded from their own modules when present.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.options import repository_argument
from reconciler.cli.output import echo
from reconciler.errors import ReconcilerError, did_you_mean
from reconciler.live.reader import has_archive

if TYPE_CHECKING:
    from reconciler.emulator.tenant import Emulator

# subcommand -> module exposing ``command``; imported only when that subcommand runs
EXTRA_SUBCOMMANDS: dict[str, str] = {"serve": "reconciler.cli.sandbox_serve_cmd",
                                     "from-trace": "reconciler.cli.sandbox_trace_cmd",
                                     "redact": "reconciler.cli.sandbox_redact_cmd"}

_SYSTEM_USERS = ("NT AUTHORITY\\SELF",)
_BUILTIN_DEFAULTS = {"Default": ["AvailabilityOnly"], "Anonymous": ["None"]}
_TYPE_ORDER = ("UserMailbox", "SharedMailbox", "RoomMailbox", "EquipmentMailbox")


class _SandboxGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        names += [n for n in EXTRA_SUBCOMMANDS if n not in names and self._extra(n)]
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._extra(cmd_name)

    @staticmethod
    def _extra(name: str) -> click.Command | None:
        module_name = EXTRA_SUBCOMMANDS.get(name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                return None
            raise
        found: click.Command | None = getattr(module, "command", None)
        return found


@click.group("sandbox", cls=_SandboxGroup)
def command() -> None:
    """Manage the embedded simulated tenant (seeded from PATH/sandbox/)."""


_PATH = repository_argument


def _report(results: list[tuple[str, str]], target: Path) -> None:
    if not results:
        echo("No seed snapshots found: nothing to do.")
    for customer, what in results:
        verb = {"created": "created", "reset": "reset to its seed",
                "kept": "kept (already present; `reconciler sandbox reset` restores the seed)"}
        echo(f"{customer}: {verb[what]} -> {target / (customer + '.json')}")


@command.command("init")
@_PATH
def init(path: Path) -> None:
    """Create PATH/.reconciler/sandbox/ from the seeds in PATH/sandbox/ (existing tenants are
    kept)."""
    from reconciler.emulator.sandbox_backend import sandbox_directory, seed_sandbox

    _report(seed_sandbox(path), sandbox_directory(path))


@command.command("reset")
@_PATH
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Reset only this customer (repeatable).")
def reset(path: Path, customers: tuple[str, ...]) -> None:
    """Overwrite the sandbox tenants with their seeds, discarding every change applied.

    What apply remembered about those tenants (applied locations, writes not yet visible) is
    forgotten too: it described the tenant that was just discarded."""
    from reconciler.emulator.sandbox_backend import sandbox_directory, seed_sandbox
    from reconciler.live.applied import state_path

    results = seed_sandbox(path, reset=True, customers=list(customers) or None)
    for customer, _ in results:
        state_path(path, customer).unlink(missing_ok=True)
    _report(results, sandbox_directory(path))


@command.command("show")
@_PATH
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Show only this customer (repeatable).")
def show(path: Path, customers: tuple[str, ...]) -> None:
    """Summarise each sandbox tenant: counts per type, mailboxes and their grants."""
    from reconciler.emulator.sandbox_backend import sandbox_directory

    directory = sandbox_directory(path)
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if customers:
        wanted = set(customers)
        have = sorted(f.stem for f in files)
        missing = sorted(wanted - set(have))
        if missing:
            raise ReconcilerError("; ".join(
                f"no sandbox tenant for customer {c!r}{did_you_mean(c, have)} in {directory}"
                for c in missing) + f" (tenants there: {', '.join(have) or 'none'}; `reconciler "
                f"sandbox init {path}` creates the missing ones from their seeds)")
        files = [f for f in files if f.stem in wanted]
    if not files:
        raise ReconcilerError(f"no sandbox tenants in {directory}: run `reconciler sandbox init "
                              f"{path}` first")
    for i, file in enumerate(files):
        if i:
            echo()
        echo("\n".join(summarise(file)))


def summarise(file: Path) -> list[str]:
    """The lines ``sandbox show`` prints for one tenant file."""
    from reconciler.emulator.snapshot_backend import SnapshotBackend

    em = SnapshotBackend(file.parent, file.stem).emulator
    who = _namer(_rows(em, "Get-Recipient", {"ResultSize": "Unlimited"}))
    mailboxes = _rows(em, "Get-Mailbox", {"ResultSize": "Unlimited"})
    groups = _rows(em, "Get-DistributionGroup", {"ResultSize": "Unlimited"})
    soft = _rows(em, "Get-Mailbox", {"SoftDeletedMailbox": True, "ResultSize": "Unlimited"})
    counts = Counter(m["RecipientTypeDetails"] for m in mailboxes)
    kinds = sorted(counts, key=lambda t: (_TYPE_ORDER.index(t) if t in _TYPE_ORDER else 9, t))
    summary = ", ".join(f"{counts[k]} {k}" for k in kinds)
    lines = [f"{file.stem}  (tenant {em.tenant_id}, {file})",
             f"  {summary}, {len(groups)} distribution groups"
             + (f", {len(soft)} soft-deleted" if soft else "")]
    lines.append("  mailboxes:")
    for m in sorted(mailboxes, key=lambda m: (m["RecipientTypeDetails"] != "UserMailbox",
                                               str(m["PrimarySmtpAddress"]).lower())):
        lines.append(_mailbox_line(m, who))
        lines += [f"      {grant}" for grant in _grants(em, m, who)]
    if groups:
        lines.append("  distribution groups:")
        lines += _group_lines(em, groups, who)
    if soft:
        lines.append("  soft-deleted (recoverable with Undo-SoftDeletedMailbox):")
        for m in soft:
            lines.append(f"    {m['PrimarySmtpAddress']}  since {m.get('WhenSoftDeleted')}")
    return lines


def _rows(em: Emulator, cmdlet: str, params: dict[str, Any] | None = None
          ) -> list[dict[str, Any]]:
    return em.invoke(cmdlet, params).value


def _namer(recipients: list[dict[str, Any]]) -> Callable[[Any], str]:
    """A principal as its recipient's primary address, whichever of its names Exchange used."""
    address_of: dict[str, str] = {}
    for r in recipients:
        for key in ("Name", "Guid", "ExternalDirectoryObjectId", "PrimarySmtpAddress",
                    "DisplayName", "Alias"):
            if r.get(key):
                address_of.setdefault(str(r[key]).lower(), str(r["PrimarySmtpAddress"]))

    def who(principal: Any) -> str:
        return address_of.get(str(principal).lower(), str(principal))
    return who


def _mailbox_line(m: dict[str, Any], who: Callable[[Any], str]) -> str:
    details = [m["RecipientTypeDetails"]]
    if m.get("Office"):
        details.append(f"office {m['Office']!r}")
    if m.get("ResourceCapacity") is not None:
        details.append(f"capacity {m['ResourceCapacity']}")
    if has_archive(m):
        details.append("archive")
    forwarding = m.get("ForwardingAddress") or m.get("ForwardingSmtpAddress")
    if forwarding:
        details.append(f"forwards to {who(forwarding)}")
    return (f"    {m['PrimarySmtpAddress']}  {m.get('DisplayName', '')!r}  "
            + ", ".join(details))


def _grants(em: Emulator, m: dict[str, Any], who: Callable[[Any], str]) -> list[str]:
    """Who may reach mailbox ``m``: FullAccess, SendAs, SendOnBehalf and calendar entries
    other than the ones every mailbox has."""
    identity = m["Identity"]
    grants: list[str] = []
    for p in _rows(em, "Get-MailboxPermission", {"Identity": identity}):
        if p.get("IsInherited") or p.get("Deny") or p["User"] in _SYSTEM_USERS:
            continue
        grants.append(f"{'+'.join(p['AccessRights'])} {who(p['User'])}")
    for p in _rows(em, "Get-RecipientPermission", {"Identity": identity}):
        if p.get("IsInherited") or p["Trustee"] in _SYSTEM_USERS:
            continue
        grants.append(f"SendAs {who(p['Trustee'])}")
    grants += [f"SendOnBehalf {who(u)}" for u in m.get("GrantSendOnBehalfTo") or []]
    for p in _rows(em, "Get-MailboxFolderPermission",
                   {"Identity": em.calendar_identity(identity)}):
        if _BUILTIN_DEFAULTS.get(p["User"]) == p["AccessRights"]:
            continue  # present on every calendar: only a change from it is news
        flags = p.get("SharingPermissionFlags")
        extra = f" ({flags})" if flags and flags != "None" else ""
        user = p["User"] if p["User"] in ("Default", "Anonymous") else who(p["User"])
        grants.append(f"calendar {user} {'+'.join(p['AccessRights'])}{extra}")
    return grants


def _group_lines(em: Emulator, groups: list[dict[str, Any]],
                 who: Callable[[Any], str]) -> list[str]:
    lines = []
    for g in sorted(groups, key=lambda g: str(g["PrimarySmtpAddress"]).lower()):
        members = _rows(em, "Get-DistributionGroupMember",
                        {"Identity": g["Identity"], "ResultSize": "Unlimited"})
        lines.append(f"    {g['PrimarySmtpAddress']}  {g.get('DisplayName', '')!r}")
        lines.append(f"      owners: {', '.join(who(o) for o in g.get('ManagedBy') or [])}")
        lines.append("      members: " + ", ".join(
            str(m.get("PrimarySmtpAddress") or m.get("Name")) for m in members))
    return lines
