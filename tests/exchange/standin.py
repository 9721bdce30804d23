"""A tiny dict-backed tenant with the emulator's ``invoke`` signature, for protocol tests that
need exact control over what the cmdlets return."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.live.backend import AlreadyExists, BadParameter, CmdletResult, NotFound


def mailbox(n: int) -> dict[str, Any]:
    name = f"user{n:05d}"
    return {"Identity": name, "Name": name, "Alias": name,
            "PrimarySmtpAddress": f"{name}@contoso.com", "DisplayName": f"User {n}",
            "RecipientTypeDetails": "UserMailbox", "GrantSendOnBehalfTo": []}


class StandIn:
    def __init__(self, mailboxes: int = 3) -> None:
        self.mailboxes = {m["Identity"]: m for m in map(mailbox, range(mailboxes))}
        self.permissions: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None = None,
               select: Sequence[str] | None = None) -> CmdletResult:
        params = dict(parameters or {})
        with self._lock:
            self.calls[cmdlet] += 1
        if cmdlet == "Get-Mailbox":
            if "Identity" in params:
                found = self.mailboxes.get(params["Identity"])
                if found is None:
                    raise NotFound(f"The operation couldn't be performed because object "
                                   f"'{params['Identity']}' couldn't be found.",
                                   exception_type="ManagementObjectNotFoundException")
                rows = [found]
            else:
                rows = list(self.mailboxes.values())
            return CmdletResult([_trim(r, select) for r in rows])
        if cmdlet == "Get-MailboxPermission":
            identity = params.get("Identity")
            if identity not in self.mailboxes:
                raise NotFound(f"The operation couldn't be performed because object "
                               f"'{identity}' couldn't be found.",
                               exception_type="ManagementObjectNotFoundException")
            rows = [{"Identity": identity, "User": "NT AUTHORITY\\SELF",
                     "AccessRights": ["FullAccess, ReadPermission"], "IsInherited": False,
                     "Deny": False}]
            rows += [p for p in self.permissions if p["Identity"] == identity]
            return CmdletResult([_trim(r, select) for r in rows])
        if cmdlet == "Add-MailboxPermission":
            if "Bogus" in params:
                raise BadParameter("A parameter cannot be found that matches parameter name "
                                   "'Bogus'.", exception_type="ParameterBindingException")
            entry = {"Identity": params["Identity"], "User": params["User"],
                     "AccessRights": ["FullAccess"], "IsInherited": False, "Deny": False}
            with self._lock:
                if entry in self.permissions:
                    return CmdletResult([], ["The appropriate access control entry is already "
                                             "present on the object."])
                self.permissions.append(entry)
            return CmdletResult([entry])
        if cmdlet == "New-Mailbox":
            name = params["Name"]
            with self._lock:
                if name in self.mailboxes:
                    raise AlreadyExists(f"The name '{name}' is already being used.",
                                        exception_type="ADObjectAlreadyExistsException")
                self.mailboxes[name] = mailbox(0) | {"Identity": name, "Name": name}
            return CmdletResult([self.mailboxes[name]])
        raise NotImplementedError(cmdlet)


def _trim(row: dict[str, Any], select: Sequence[str] | None) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not select or k in select}
