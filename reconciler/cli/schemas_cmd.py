"""``reconciler schemas``: the JSON Schemas editors check the YAML with."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("schemas")
@click.option("--write", "repository", metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Write (or refresh) the schemas into DIR/schemas/, where the YAML's "
                   "first-line comments and the editor settings `reconciler init` writes point.")
def command(repository: Path | None) -> None:
    """Print the folder of the installed JSON Schemas, or write them into a repository.

    Run `reconciler schemas --write .` after upgrading the reconciler, so that the editor
    checks the YAML with the schemas of the version that validates it in CI.
    """
    from reconciler.desired import SCHEMA_DIR
    from reconciler.scaffold import write_schemas

    if repository is None:
        click.echo(str(SCHEMA_DIR))
        return
    for path in write_schemas(repository):
        click.echo(f"wrote {path}")
