"""How every output words counts, so that one voice speaks everywhere ("1 Exchange call",
"2 deletes")."""

from __future__ import annotations

IRREGULAR = {"was": "were", "is": "are", "entry": "entries", "policy": "policies"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``count`` and ``noun``, the noun in the plural unless ``count`` is 1."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or IRREGULAR.get(noun) or noun + 's'}"
