"""Arguments and options that several commands share, defined once so that they read and
behave the same everywhere."""

from __future__ import annotations

from pathlib import Path

import click

repository_argument = click.argument(
    "path", type=click.Path(file_okay=False, path_type=Path), default=".")

live_option = click.option(
    "--live", "live_source", metavar="SOURCE",
    help="Where live state comes from, for every customer: exchange, sandbox[:DIR] or "
         "snapshot:DIR. Default: each customer's tenant.connection.")
