"""Model values as JSON in the YAML vocabulary, for a change's ``before`` and ``after``.

The same keys the user writes (``permissions``, ``calendar_permissions``, ``forwarding``...)
so that a reviewer reads the plan in the words of the pull request.
"""

from __future__ import annotations

from typing import Any

from reconciler.model import AccessGrant, AutoReply, Booking, CalendarGrant, Forwarding, Resource

# Name of the setting in the plan, where it differs from the model field.
_FIELD_NAMES = {"located_at": "location"}


def value_json(value: Any) -> Any:
    """One setting's value as JSON; sets become sorted lists so output is deterministic."""
    if isinstance(value, tuple) and value and isinstance(value[0], AccessGrant):
        return [grant_json(g) for g in sorted(value, key=lambda g: g.user)]
    if isinstance(value, tuple) and value and isinstance(value[0], CalendarGrant):
        return [calendar_json(g) for g in sorted(value, key=lambda g: g.user)]
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return {str(n): v for n, v in value}  # custom attributes
    if isinstance(value, Forwarding):
        if value.is_none:
            return "none"
        out: dict[str, Any] = ({"internal": value.internal} if value.internal is not None
                               else {"external": value.external})
        out["deliver_to_mailbox"] = value.deliver_to_mailbox
        return out
    if isinstance(value, Booking):
        return {k: value_json(getattr(value, k)) for k in (
            "automate", "delegates", "all_book_in_policy", "delegates_receive_requests")
            if getattr(value, k) is not None}
    if isinstance(value, AutoReply):
        return {k: getattr(value, k) for k in ("state", "start", "end", "internal_message",
                                                "external_audience", "external_message")
                if getattr(value, k) is not None}
    if isinstance(value, tuple | list | frozenset | set):
        return sorted(value_json(v) for v in value)
    return value


def grant_json(grant: AccessGrant) -> dict[str, Any]:
    out: dict[str, Any] = {"user": grant.user, "access": sorted(grant.access)}
    if grant.automapping is not None:
        out["automapping"] = grant.automapping
    return out


def calendar_json(grant: CalendarGrant) -> dict[str, Any]:
    out: dict[str, Any] = {"user": grant.user}
    if grant.role is not None:
        out["role"] = grant.role
    else:
        out["rights"] = sorted(grant.rights or ())
    if grant.delegate:
        out["delegate"] = True
    if grant.private_items:
        out["private_items"] = True
    return out


def settings_json(resource: Resource, keys: list[str] | None = None) -> dict[str, Any]:
    """The managed settings of ``resource`` (or just ``keys``), as JSON."""
    settings = dict(resource.managed_settings())
    if keys is not None:
        settings = {k: settings.get(k) for k in keys}
    return {_FIELD_NAMES.get(k, k): value_json(v) for k, v in sorted(settings.items())}
