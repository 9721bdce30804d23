"""The official cmdlet reference as a call checker.

``reconciler/data/exchange-cmdlets.json`` is a machine-readable extract of Microsoft's cmdlet
documentation: every cmdlet the tool calls, its parameter sets (with what each requires), the
parameter types and the documented value lists. :func:`check_call` rejects whatever that
reference says Exchange Online would reject, with Exchange's own wording, so that a call the
planner emits and the emulator accepts is one the real service accepts too.

Only what the reference states is enforced: a value list is checked only where the documentation
gives one, and a parameter documented for on-premises Exchange only is unknown here, as it is in
Exchange Online.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from reconciler.live.backend import BadParameter, Forbidden

HASHTABLE_ODATA_TYPE = "#Exchange.GenericHashTable"

# PowerShell's common parameters: every advanced cmdlet binds them; the reference leaves them out.
COMMON_PARAMETERS = frozenset(
    name.lower()
    for name in (
        "Confirm", "WhatIf", "Verbose", "Debug", "ErrorAction", "ErrorVariable",
        "WarningAction", "WarningVariable", "InformationAction", "InformationVariable",
        "OutVariable", "OutBuffer", "PipelineVariable", "ProgressAction",
    )
)

_BOOLEAN_WORDS = {"$true": True, "$false": False, "true": True, "false": False}


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    aliases: tuple[str, ...]
    # lower-cased value -> canonical spelling; None when the reference documents no value list
    values: Mapping[str, str] | None

    @property
    def multi_valued(self) -> bool:
        return self.type.endswith("[]") or self.type in {
            "MultiValuedProperty",
            "ProxyAddressCollection",
        }

    @property
    def is_switch(self) -> bool:
        return self.type == "SwitchParameter"

    @property
    def is_boolean(self) -> bool:
        return self.type == "Boolean"


@dataclass(frozen=True, slots=True)
class ParameterSet:
    name: str
    required: frozenset[str]  # lower-cased names
    allowed: frozenset[str]  # lower-cased names, required ones included
    common_parameters: bool


@dataclass(frozen=True, slots=True)
class Cmdlet:
    name: str
    parameters: Mapping[str, Parameter]  # lower-cased name or alias -> parameter
    parameter_sets: tuple[ParameterSet, ...] = field(default=())


def _documented_values(cmdlet: str, name: str, spec: Mapping[str, Any]) -> dict[str, str] | None:
    if spec["type"] == "Boolean":
        return None  # "$true/$false" lists describe the type, checked as such
    lists = spec.get("documented_values") or []
    values: dict[str, str] = {}
    for entry in lists:
        not_exo = set(entry.get("not_exchange_online") or ())
        for value in entry["values"]:
            if value not in not_exo:
                values[value.lower()] = value
    return values or None


def _build(data: Mapping[str, Any]) -> dict[str, Cmdlet]:
    cmdlets: dict[str, Cmdlet] = {}
    for cname, cspec in data["cmdlets"].items():
        params: dict[str, Parameter] = {}
        for pname, pspec in cspec["parameters"].items():
            p = Parameter(
                name=pname,
                type=pspec["type"],
                aliases=tuple(pspec.get("aliases") or ()),
                values=_documented_values(cname, pname, pspec),
            )
            params[pname.lower()] = p
            for alias in p.aliases:
                params.setdefault(alias.lower(), p)
        sets = tuple(
            ParameterSet(
                name=sname,
                required=frozenset(n.lower() for n in sspec["required"]),
                allowed=frozenset(n.lower() for n in (*sspec["required"], *sspec["optional"])),
                common_parameters=bool(sspec.get("common_parameters", True)),
            )
            for sname, sspec in cspec["parameter_sets"].items()
            if sspec.get("exchange_online_usable", True)
        )
        cmdlets[cname.lower()] = Cmdlet(name=cname, parameters=params, parameter_sets=sets)
    return cmdlets


@cache
def load_reference() -> dict[str, Cmdlet]:
    """The reference, parsed once per process: lower-cased cmdlet name -> :class:`Cmdlet`."""
    path = Path(__file__).resolve().parent.parent / "data" / "exchange-cmdlets.json"
    return _build(json.loads(path.read_text("utf-8")))


def cmdlet_names() -> list[str]:
    """Every cmdlet the reference documents, in its own spelling."""
    return sorted(c.name for c in load_reference().values())


def lookup(cmdlet: str) -> Cmdlet:
    """The reference entry for ``cmdlet``; :class:`Forbidden` (Exchange answers 403) if none."""
    found = load_reference().get(cmdlet.lower())
    if found is None:
        raise Forbidden(
            f"The term '{cmdlet}' is not recognized as a name of a cmdlet.",
            cmdlet=cmdlet,
            exception_type="CommandNotFoundException",
            status=403,
        )
    return found


def is_hashtable(value: Any) -> bool:
    """An add/remove update of a multi-valued property, as the REST gateway encodes it."""
    return isinstance(value, Mapping) and value.get("@odata.type") == HASHTABLE_ODATA_TYPE


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def split_values(value: Any) -> list[Any]:
    """The elements of a possibly multi-valued argument: a list, or a comma-separated string
    (PowerShell binds ``"Delegate,CanViewPrivateItems"`` to a flags enum that way)."""
    if value is None:
        return []
    items: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.extend(part.strip() for part in item.split(",") if part.strip())
        else:
            out.append(item)
    return out


def _bad(cmdlet: str, message: str,
         exception_type: str = "ParameterBindingException") -> BadParameter:
    return BadParameter(message, cmdlet=cmdlet, exception_type=exception_type, status=400)


_BYTE_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB)\b", re.IGNORECASE)


def _is_byte_size(name: str, value: str) -> bool:
    # The reference types quotas and size limits as "Unlimited" like ResultSize, but they
    # take byte quantities ("35MB", "49.5 GB (53,150,220,288 bytes)").
    return name != "ResultSize" and name.endswith(("Size", "Quota")) and bool(
        _BYTE_SIZE.match(value))


def _check_value(cmdlet: Cmdlet, param: Parameter, value: Any) -> None:
    name = param.name
    if is_hashtable(value):
        if not param.multi_valued:
            raise _bad(
                cmdlet.name,
                f"Cannot bind parameter '{name}'. Cannot convert the \"System.Collections."
                f"Hashtable\" value of type \"System.Collections.Hashtable\" to type "
                f"\"{param.type}\".",
            )
        unknown = sorted(k for k in value if k not in ("@odata.type", "add", "remove", "Add",
                                                        "Remove"))
        if unknown:
            raise _bad(cmdlet.name, f"Cannot bind parameter '{name}': unknown hashtable key "
                                    f"'{unknown[0]}' (only add and remove are accepted).")
        for key in ("add", "remove", "Add", "Remove"):
            for element in split_values(value.get(key)):
                _check_scalar(cmdlet, param, element)
        return
    if param.is_switch:
        if not isinstance(value, bool):
            raise _bad(cmdlet.name, f"Cannot bind parameter '{name}': a switch takes true or "
                                    f"false, not {value!r}.")
        return
    if value is None:
        return  # $null: clears a property; binding of mandatory ones is checked by the caller
    if isinstance(value, list | tuple) and not param.multi_valued:
        raise _bad(cmdlet.name, f"Cannot convert 'System.Object[]' to the type '{param.type}' "
                                f"required by parameter '{name}'. Specified method is not "
                                f"supported.")
    elements = split_values(value) if param.values is not None else (
        list(value) if isinstance(value, list | tuple) else [value])
    for element in elements:
        _check_scalar(cmdlet, param, element)


def _check_scalar(cmdlet: Cmdlet, param: Parameter, value: Any) -> None:
    name = param.name
    kind = param.type.removeprefix("System.")
    if param.is_boolean:
        if isinstance(value, bool) or (isinstance(value, str) and value.lower() in _BOOLEAN_WORDS):
            return
        raise _bad(cmdlet.name, f"Cannot process argument transformation on parameter '{name}'."
                                f" Cannot convert value \"{value}\" to type \"System.Boolean\".")
    if kind in ("Int32", "Unlimited"):
        if isinstance(value, bool):
            ok = False
        elif isinstance(value, int):
            ok = value >= 0 or kind == "Int32"
        elif isinstance(value, str):
            ok = value.strip().isdigit() or (kind == "Unlimited" and (
                value.lower() == "unlimited" or _is_byte_size(name, value)))
        else:
            ok = False
        if not ok:
            raise _bad(cmdlet.name, f"Cannot process argument transformation on parameter "
                                    f"'{name}'. Cannot convert value \"{value}\" to type "
                                    f"\"{param.type}\".")
        return
    if kind == "DateTime":
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return
            except ValueError:
                pass
        raise _bad(cmdlet.name, f"Cannot process argument transformation on parameter '{name}'. "
                                f"Cannot convert value \"{value}\" to type \"System.DateTime\".")
    if param.values is not None:
        if not isinstance(value, str) or value.lower() not in param.values:
            valid = ", ".join(sorted(set(param.values.values())))
            raise _bad(cmdlet.name, f"Cannot process argument transformation on parameter "
                                    f"'{name}'. Cannot convert value \"{value}\" to type "
                                    f"\"{param.type}\". Error: \"Unable to match the identifier "
                                    f"name {value} to a valid enumerator name. Specify one of "
                                    f"the following enumerator names and try again: {valid}\"")
        return
    if isinstance(value, Mapping):
        raise _bad(cmdlet.name, f"Cannot bind parameter '{name}': an object is not a valid "
                                f"{param.type}.")


def canonical_parameters(cmdlet: str, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check the call (see :func:`check_call`) and return its parameters keyed by the reference's
    own spelling (PowerShell binds names case-insensitively; aliases resolved). Common
    parameters keep the caller's spelling."""
    entry = lookup(cmdlet)
    given: dict[str, Any] = {}
    bound: dict[str, Parameter] = {}
    for raw_name, value in (parameters or {}).items():
        key = raw_name.lower()
        param = entry.parameters.get(key)
        if param is None:
            if key in COMMON_PARAMETERS:
                given[raw_name] = value
                continue
            raise _bad(entry.name,
                       f"A parameter cannot be found that matches parameter name '{raw_name}'.")
        if param.name in given:
            raise _bad(entry.name, f"Cannot bind parameter because parameter '{param.name}' is "
                                   f"specified more than once.")
        given[param.name] = value
        bound[param.name.lower()] = param

    names = frozenset(bound)
    common = frozenset(k.lower() for k in given if k.lower() in COMMON_PARAMETERS
                       and k.lower() not in bound)
    candidates = [s for s in entry.parameter_sets
                  if names <= s.allowed and (s.common_parameters or not common)]
    if not candidates:
        # Name the parameters no set accepts together, as PowerShell's binder does.
        raise _bad(entry.name, "Parameter set cannot be resolved using the specified named "
                               f"parameters: {', '.join(sorted(p.name for p in bound.values()))}.",
                   "ParameterBindingException")
    complete = [s for s in candidates if s.required <= names]
    if not complete:
        missing = min((s.required - names for s in candidates), key=len)
        spelled = ", ".join(sorted(entry.parameters[m].name for m in missing))
        raise _bad(entry.name, "Cannot process command because of one or more missing mandatory "
                               f"parameters: {spelled}.")
    # mandatory in every set that fits: only then is a null or empty value a binding error
    required = frozenset.intersection(*(s.required for s in complete))
    for key, param in bound.items():
        value = given[param.name]
        if key in required and is_empty(value):
            what = "null" if value is None else "an empty string"
            raise _bad(entry.name, f"Cannot bind argument to parameter '{param.name}' because "
                                   f"it is {what}.")
        _check_value(entry, param, value)
    return given


def check_call(cmdlet: str, parameters: Mapping[str, Any] | None = None) -> None:
    """Raise as Exchange Online would for a call the official reference does not admit.

    - unknown cmdlet: :class:`Forbidden` (the REST gateway answers 403);
    - unknown parameter (aliases and PowerShell's common parameters are known):
      :class:`BadParameter` "A parameter cannot be found that matches parameter name 'Foo'.";
    - no parameter set admitting this combination, or a mandatory parameter missing, null or
      empty: :class:`BadParameter` naming the parameters;
    - a value outside the documented values (each element of an array; comma-separated flags
      split), a non-boolean for a Boolean or switch, a non-number for a count, an unparseable
      date: :class:`BadParameter` naming the parameter and the value;
    - an add/remove hashtable (``{"@odata.type": "#Exchange.GenericHashTable", "add": [...],
      "remove": [...]}``) on a single-valued parameter.
    """
    canonical_parameters(cmdlet, parameters)
