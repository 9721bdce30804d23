"""``reconciler codeowners``: write CODEOWNERS from the owners of customers and sites."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from reconciler.cli import EXIT_ERROR
from reconciler.cli.options import repository_argument
from reconciler.cli.output import echo
from reconciler.errors import ReconcilerError


@click.command("codeowners")
@repository_argument
@click.option("--out", metavar="FILE",
              help="Where to write it; '-' for stdout. Default: PATH/.github/CODEOWNERS.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when the file differs from what would be written.")
@click.option("--default-owner", "default_owners", multiple=True, metavar="OWNER",
              help="The provider's owner (@org/team, @user or email; repeatable): owns "
                   "reconciler.yaml, .github/ and everything no customer or site claims. "
                   "Replaces the owners declared in reconciler.yaml.")
def command(path: Path, out: str | None, check: bool, default_owners: tuple[str, ...]) -> None:
    """Write CODEOWNERS for the desired-state repository at PATH.

    Each customer folder is owned by the customer's `owners`, each site folder by the site's
    `owners` plus the customer's (so customer admins can approve site changes), and everything
    else by the provider's `owners` in reconciler.yaml. A level without owners falls back to
    the level above.

    --default-owner, when given, replaces reconciler.yaml's owners for this run (it is not
    added to them).

    PATH is the repository's root: patterns are anchored there.

    \b
    Examples:
      reconciler codeowners                                # owners from the YAML
      reconciler codeowners --check                        # in CI
      reconciler codeowners --default-owner @msp/platform  # override reconciler.yaml's
    """
    from reconciler.desired import load
    from reconciler.desired.codeowners import (
        DEFAULT_LOCATION,
        is_current,
        is_owner,
        render_codeowners,
    )

    bad = [o for o in default_owners if not is_owner(o)]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: an owner is @org/team, @user or an "
                                 f"email address", param_hint="--default-owner")
    text = render_codeowners(load(path), default_owners)
    if out == "-":
        if check:
            raise click.UsageError("--check compares with a file; give --out FILE, not '-'")
        echo(text, nl=False)
        return
    target = Path(out) if out else path / DEFAULT_LOCATION
    if check:
        if is_current(target, text):
            echo(f"{target} is up to date.", err=True)
            return
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        diff = difflib.unified_diff(current.splitlines(keepends=True),
                                    text.splitlines(keepends=True),
                                    fromfile=str(target), tofile="expected")
        sys.stderr.writelines(diff)
        echo(f"{target} is out of date: run `reconciler codeowners` and commit it.",
                   err=True)
        sys.exit(EXIT_ERROR)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ReconcilerError(f"cannot write {target}: {e.strerror}") from e
    echo(f"Wrote {target}.", err=True)
