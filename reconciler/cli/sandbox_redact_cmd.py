"""``reconciler sandbox redact``: a desired-state repository under a trace's pseudonyms."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.options import repository_argument
from reconciler.errors import ReconcilerError


@click.command("redact")
@repository_argument
@click.option("--trace", "trace_dir", metavar="DIR", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A redacted trace (--trace DIR); its pseudonyms are in DIR.pseudonyms.json.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The directory to write the redacted repository to.")
def command(path: Path, trace_dir: Path, out: Path) -> None:
    """Write PATH's YAML with the pseudonyms of a redacted trace, to share beside the trace:
    planned against `sandbox serve --replay DIR`, it gives the reporter's plan under
    pseudonyms. Comments are not kept; the pseudonyms file gains the names only the YAML has
    (keep it, never share it)."""
    from reconciler.live.exchange.redact import Pseudonyms, redact_tree
    from reconciler.live.exchange.trace import pseudonyms_path

    mapping = pseudonyms_path(trace_dir)
    if not mapping.is_file():
        raise ReconcilerError(f"{mapping} not found: redact needs the pseudonyms of a redacted "
                              "trace, kept beside its directory by --trace DIR")
    if out.resolve() == path.resolve() or out.resolve().is_relative_to(trace_dir.resolve()):
        raise ReconcilerError("--out must be a new directory, not PATH or inside the trace")
    pseudonyms = Pseudonyms.load(mapping)
    try:
        written = redact_tree(path, out, pseudonyms)
        pseudonyms.save(mapping)
    except OSError as e:
        raise ReconcilerError(f"cannot write {out}: {e.strerror or e}") from e
    if not written:
        raise ReconcilerError(f"{path} holds no reconciler.yaml or customers/*.yaml")
    click.echo(f"Wrote {len(written)} redacted file(s) to {out}.", err=True)
