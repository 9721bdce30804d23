"""Security findings: mailboxes forwarding mail outside the customer (docs/format.md §7).

Every mailbox of the tenant is looked at, declared or not and whether or not its YAML manages
forwarding: an external forward set in the portal is the drift a provider most needs to see.
A target is inside when its domain is one of the customer's ``mail_domains``, its tenant's
initial domain, or the policy's ``allowed_forwarding_domains``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.live.backend import Backend
from reconciler.live.directory import Directory, strip_smtp
from reconciler.model import CUSTOMER_LEVEL, CustomerState, ResourceType
from reconciler.plan.plan import Change

PROPERTIES = ("PrimarySmtpAddress", "RecipientTypeDetails", "ForwardingAddress",
              "ForwardingSmtpAddress", "DeliverToMailboxAndForward")
TYPES = {"UserMailbox": ResourceType.USER_MAILBOX, "SharedMailbox": ResourceType.SHARED_MAILBOX,
         "RoomMailbox": ResourceType.ROOM_MAILBOX}
ADVICE = ("if nobody meant this, remove the forwarding in Exchange (or declare forwarding: none "
          "for the mailbox); if it is meant, add the domain to the customer's policy "
          "allowed_forwarding_domains")


def allowed_domains(state: CustomerState) -> frozenset[str]:
    customer = state.customer
    return frozenset(d.lower() for d in (*customer.mail_domains, customer.tenant.initial_domain,
                                         *customer.policy.allowed_forwarding_domains))


def forwarding_findings(state: CustomerState, backend: Backend, directory: Directory,
                        root: str | None = None) -> list[Change]:
    """One finding per mailbox that forwards outside, read with one tenant-wide call."""
    rows = backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}, list(PROPERTIES)).value
    allowed = allowed_domains(state)
    findings = []
    for row in rows:
        rtype = TYPES.get(str(row.get("RecipientTypeDetails")))
        address = strip_smtp(str(row.get("PrimarySmtpAddress") or "")).lower()
        if rtype is None or not address:
            continue
        for target in _targets(row, directory):
            domain = target.rpartition("@")[2]
            if domain and domain not in allowed:
                findings.append(_finding(state, rtype, address, target, row, root))
                break
    return findings


def _targets(row: dict[str, Any], directory: Directory) -> Iterator[str]:
    """The addresses a mailbox forwards to: ForwardingSmtpAddress, and ForwardingAddress
    resolved to the recipient it names (a mail contact's address may be anywhere)."""
    if row.get("ForwardingSmtpAddress"):
        yield strip_smtp(str(row["ForwardingSmtpAddress"])).lower()
    principal = row.get("ForwardingAddress")
    if principal:
        recipient = directory.resolve(str(principal))
        external = recipient.attributes.get("ExternalEmailAddress") if recipient else None
        if external:
            yield strip_smtp(str(external)).lower()
        elif recipient is not None:
            yield recipient.key
        elif "@" in str(principal):
            yield strip_smtp(str(principal)).lower()


def _finding(state: CustomerState, rtype: ResourceType, address: str, target: str,
             row: dict[str, Any], root: str | None) -> Change:
    declared = state.resources.get(address)
    site = declared.located_at.site if declared is not None else CUSTOMER_LEVEL
    forwarding = {"to": target, "deliver_to_mailbox": bool(row.get("DeliverToMailboxAndForward"))}
    note = (f"forwards mail to {target}, outside {', '.join(sorted(allowed_domains(state)))}; "
            f"{ADVICE}")
    return Change(customer=state.customer.id, site=site, type=rtype.value, id=address,
                  action="update", before={"forwarding": forwarding},
                  after={"forwarding": forwarding}, notes=(note,),
                  source=declared.source.in_repository(root) if declared and declared.source
                  else None)
