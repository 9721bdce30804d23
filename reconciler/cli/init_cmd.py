"""``reconciler init DIR``: a new provider repository that validates, plans and applies at once."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def command(directory: Path) -> None:
    """Create a provider repository in DIRECTORY (new or empty).

    It holds reconciler.yaml, one customer on the embedded sandbox tenant with one site, a
    shared mailbox and a few commented entries to copy, the sandbox's seed, .gitignore (the
    sandbox, the journal and saved plans), the plan, apply and drift workflows, CODEOWNERS,
    .pre-commit-config.yaml, and the JSON Schemas in schemas/ where the YAML's first-line
    comments and .vscode/settings.json point.

    \b
    Then, in DIRECTORY:
      reconciler validate
      reconciler sandbox reset
      reconciler plan
    """
    from reconciler.scaffold import init_repository

    written = init_repository(directory)
    click.echo(f"Created a provider repository in {directory} ({len(written)} files).")
    click.echo("Next, in that folder: reconciler validate && reconciler sandbox reset && "
               "reconciler plan")
