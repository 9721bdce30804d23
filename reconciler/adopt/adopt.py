"""Adopt a live tenant into YAML (the overbuild): ``reconciler import``.

Every shared mailbox, room and group, and every user mailbox with non-default settings, that no
file declares yet, is written to ``imported.yaml`` at the location its placement rules give
(the customer level when none or several match). Re-running adds only what is still missing;
files already there keep every byte outside the added entries. The repository is loaded again
after writing; if it does not load, every file is put back as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.adopt.entries import Entries
from reconciler.adopt.inventory import Inventory, has_non_default_settings, read_inventory
from reconciler.adopt.yamlout import append_entries, new_file
from reconciler.errors import InputError, Problem, ReconcilerError
from reconciler.live.backend import Backend
from reconciler.live.directory import placement_location
from reconciler.model import (
    CALENDAR_BUILTIN_USERS,
    CustomerState,
    DesiredState,
    DistributionGroup,
    Location,
    Mailbox,
    Resource,
    ResourceType,
    UserMailbox,
)

IMPORT_FILE = "imported.yaml"
ProgressCallback = Callable[[str, int, int], None]
HEADER = ("# Adopted from the live tenant by `reconciler import`. Edit freely: running import\n"
          "# again adds only what is still missing and leaves what is here untouched.\n")
_ORDER = tuple(t for t in ResourceType)


@dataclass
class ImportResult:
    customer: str
    added: dict[str, list[str]] = field(default_factory=dict)  # file -> ids, in order
    already_declared: int = 0
    created_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.added.values())


def location_dir(root: Path, location: Location) -> Path:
    base = Path(root) / "customers" / location.customer
    return base if location.at_customer_level else base / "sites" / location.site


def plan_import(state: CustomerState, inventory: Inventory,
                ) -> tuple[dict[Location, dict[str, list[dict[str, Any]]]], ImportResult]:
    """What import would add: per location, per YAML list, the new entries."""
    customer = state.customer
    result = ImportResult(customer.id, warnings=list(inventory.warnings))
    declared = set(state.resources)
    entries = Entries(inventory)
    chosen: dict[str, Resource] = {}
    for rid in sorted(inventory.resources):
        resource = inventory.resources[rid]
        if rid in declared or inventory.addresses.get(rid) in declared:
            result.already_declared += 1
            continue
        if isinstance(resource, UserMailbox) and not has_non_default_settings(resource,
                                                                             inventory):
            continue
        reason = _undeclarable(resource, inventory, state)
        if reason:
            result.warnings.append(f"{rid} not imported: {reason}")
            continue
        chosen[rid] = _at_enabled_site(resource, state, result)
    _keep_same_site(state, inventory, chosen, result)
    plans: dict[Location, dict[str, list[dict[str, Any]]]] = {}
    for _rid, resource in sorted(chosen.items(), key=lambda kv: (
            _ORDER.index(kv[1].type), kv[0])):
        lists = plans.setdefault(resource.located_at, {})
        lists.setdefault(resource.type.yaml_key, []).append(entries.entry(resource))
    result.warnings.extend(entries.warnings)
    return plans, result


def _undeclarable(resource: Resource, inventory: Inventory, state: CustomerState) -> str | None:
    """Why ``resource`` cannot be declared as it is live (the loader would refuse it)."""
    if isinstance(resource, UserMailbox):
        return None
    if resource.id in inventory.foreign_groups:
        return (f"it is a {inventory.foreign_groups[resource.id]}, not a distribution group "
                f"this product manages")
    domain = inventory.addresses.get(resource.id, resource.id).rpartition("@")[2]
    if domain not in state.customer.mail_domains:
        return (f"its address is at {domain}, which is not one of the customer's mail_domains "
                f"({', '.join(state.customer.mail_domains)}); add it there and run import "
                f"again")
    return None


def _at_enabled_site(resource: Resource, state: CustomerState,
                     result: ImportResult) -> Resource:
    site = state.customer.sites.get(resource.located_at.site)
    if site is None or site.exchange:
        return resource
    result.warnings.append(f"{resource.id}: placed at site {site.id}, where exchange is "
                           f"disabled; imported at customer level instead")
    return dataclasses.replace(resource, located_at=Location(state.customer.id))


def _principals(resource: Resource) -> list[str]:
    out = [g.user for g in resource.permissions or ()]
    if isinstance(resource, Mailbox):
        out += [g.user for g in resource.calendar_permissions or ()
                if g.user not in CALENDAR_BUILTIN_USERS]
        if resource.forwarding is not None and resource.forwarding.internal:
            out.append(resource.forwarding.internal)
    if isinstance(resource, DistributionGroup):
        out += list(resource.owners or ()) + list(resource.members or ())
    return out


def _cross_site(state: CustomerState, inventory: Inventory,
                chosen: dict[str, Resource]) -> dict[str, list[tuple[str, str]]]:
    """Imported resources whose principals are located at another site (the planner's
    same-site rule, docs/format.md §4): rid -> [(principal, its site)]."""
    customer = state.customer
    if customer.policy.cross_site_permissions == "allow":
        return {}

    def where(principal: str) -> Location:
        recipient = inventory.directory.resolve(principal)
        keys = [principal.lower()] + ([recipient.key, recipient.upn] if recipient else [])
        for key in keys:
            for table in (state.resources, chosen):
                if key in table:
                    return table[key].located_at
        if recipient is None:
            return Location(customer.id)
        return placement_location(customer, recipient.attributes)

    out: dict[str, list[tuple[str, str]]] = {}
    for rid, resource in sorted(chosen.items()):
        site = resource.located_at
        if site.at_customer_level:
            continue
        for principal in sorted(set(_principals(resource))):
            other = where(principal)
            if not other.at_customer_level and other.site != site.site:
                out.setdefault(rid, []).append((principal, other.site))
    return out


def _keep_same_site(state: CustomerState, inventory: Inventory, chosen: dict[str, Resource],
                    result: ImportResult) -> None:
    """Resolve what the same-site rule would refuse, so that plan accepts the import: a user
    mailbox is located where its entry is declared, so it goes to the customer level (shared by
    all sites); a shared mailbox, room or group is where its placement puts it, so it is left
    out, reported, and stays unmanaged until someone decides."""
    for rid, crossing in _cross_site(state, inventory, chosen).items():
        resource = chosen[rid]
        if isinstance(resource, UserMailbox):
            chosen[rid] = dataclasses.replace(resource, located_at=Location(state.customer.id))
            result.warnings.append(
                f"{rid}: imported at customer level, not at site {resource.located_at.site}: "
                f"it grants {_crossing(crossing)} (same-site rule)")
    for rid, crossing in _cross_site(state, inventory, chosen).items():
        resource = chosen.pop(rid)
        result.warnings.append(
            f"{rid} not imported: placed at site {resource.located_at.site}, it grants "
            f"{_crossing(crossing)}, which the same-site rule refuses. Set policy "
            f"cross_site_permissions: allow, or change the grant, and run import again; until "
            f"then plan reports it as unmanaged")


def _crossing(crossing: list[tuple[str, str]]) -> str:
    return ", ".join(f"{principal} (at {site})" for principal, site in crossing)


def write_import(root: Path, plans: dict[Location, dict[str, list[dict[str, Any]]]],
                 result: ImportResult, *, reload: Callable[[], object] | None = None) -> None:
    """Write the planned entries; on a repository that no longer loads, undo every write."""
    originals: dict[Path, str | None] = {}
    try:
        for location in sorted(plans):
            directory = location_dir(root, location)
            path = directory / IMPORT_FILE
            relative = path.relative_to(root).as_posix()
            lists = plans[location]
            if path.exists():
                text = path.read_text(encoding="utf-8")
                originals[path] = text
                updated = append_entries(text, lists, relative)
            else:
                originals[path] = None
                document: dict[str, Any] = {}
                if not location.at_customer_level:
                    document["site"] = location.site
                document.update(lists)
                updated = new_file(HEADER, document)
                result.created_files.append(relative)
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(updated, encoding="utf-8")
            result.added[relative] = [_identity(e) for entries in lists.values()
                                      for e in entries]
        if reload is not None:
            reload()
    except (InputError, ReconcilerError, OSError):
        for path, text in originals.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text, encoding="utf-8")
        result.added.clear()
        result.created_files.clear()
        raise


def _identity(entry: dict[str, Any]) -> str:
    return str(entry.get("user") or entry.get("alias") or entry.get("name"))


def customer_state(desired: DesiredState, customer_id: str) -> CustomerState:
    state = desired.customers.get(customer_id)
    if state is None:
        known = ", ".join(sorted(desired.customers)) or "none"
        raise InputError([Problem(
            f"unknown customer {customer_id!r} (customers here: {known}); create "
            f"customers/{customer_id}/customer.yaml with its tenant first")])
    return state


def adopt(root: Path, state: CustomerState, backend: Backend, *, dry_run: bool = False,
          progress: ProgressCallback | None = None) -> ImportResult:
    """Import the live tenant of ``state``'s customer, read through ``backend``."""
    from reconciler.desired import load

    root = Path(root)
    inventory = read_inventory(state.customer, backend,
                               workers=state.customer.tenant.concurrency or 4, progress=progress)
    plans, result = plan_import(state, inventory)
    if not dry_run:
        write_import(root, plans, result, reload=lambda: load(root))
    else:
        for location, lists in plans.items():
            path = (location_dir(root, location) / IMPORT_FILE).relative_to(root).as_posix()
            result.added[path] = [_identity(e) for entries in lists.values() for e in entries]
    return result


def import_customer(root: str | Path, customer_id: str, *, live_source: str | None = None,
                    dry_run: bool = False,
                    progress: ProgressCallback | None = None) -> ImportResult:
    """Load the repository at ``root`` and import ``customer_id``'s tenant into it."""
    from reconciler.desired import load
    from reconciler.sources.backends import open_backend

    root = Path(root)
    state = customer_state(load(root), customer_id)
    backend = open_backend(live_source, state.customer, root)
    try:
        return adopt(root, state, backend, dry_run=dry_run, progress=progress)
    finally:
        backend.close()
