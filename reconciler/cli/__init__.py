"""The ``reconciler`` command. Thin: each subcommand parses options, calls the library, prints.

Subcommands live one per module in this package and are imported only when run, so that
``reconciler validate`` does not pay for httpx and msal.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys

import click

from reconciler import __version__, collector
from reconciler.cli.output import echo
from reconciler.errors import InputError, ReconcilerError
from reconciler.safe import LogFormatter, message, message_lines

# name -> one-line summary (shown by --help without importing every module)
COMMANDS: dict[str, str] = {
    "init": "Create a provider repository that works at once, on the sandbox tenant.",
    "validate": "Check the desired-state YAML: schema and meaning, every error at once.",
    "plan": "Show what apply would change, as text, Markdown or JSON.",
    "apply": "Carry out a saved plan, or plan and apply in one go.",
    "drift": "Report what differs live from the desired state, and why.",
    "import": "Adopt live mailboxes of a tenant into YAML.",
    "export": "Write a tenant snapshot (JSON), or a flat CSV/YAML table for auditors.",
    "access": "Who can reach a mailbox, or what a user can reach (desired or live).",
    "customers": "List the customers of a repository (for CI fan-out).",
    "sandbox": "Manage the embedded simulated tenant.",
    "codeowners": "Write CODEOWNERS from the owners of customers and sites.",
    "schemas": "Write the JSON Schemas editors check the YAML with into a repository.",
}

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


_VERBOSE = re.compile(r"^(-v+|--verbose)$")


class _LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """-v, -vv and --verbose are accepted anywhere before a ``--``, also after the
        subcommand: they are moved to the front, where this group reads them."""
        end = args.index("--") if "--" in args else len(args)
        verbose = [a for a in args[:end] if _VERBOSE.match(a)]
        rest = [a for a in args[:end] if not _VERBOSE.match(a)] + args[end:]
        return super().parse_args(ctx, verbose + rest)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        """Errors a user can act on are printed plainly and exit 1; no traceback."""
        try:
            with collector.whole_run():
                return super().invoke(ctx)
        except InputError as e:
            report_problems(e)
        except ReconcilerError as e:
            echo(f"error: {message_lines(str(e))}", err=True)
        except KeyboardInterrupt:
            echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except click.ClickException as e:
            e.message = message(e.message)  # it may quote an argument: shown, not obeyed
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: say so plainly; the traceback is for -vv
            logging.getLogger("reconciler").debug("unexpected error", exc_info=True)
            echo(f"error: unexpected {type(e).__name__}: {message(str(e))} (this is a bug; run "
                 f"with -vv for the traceback and report it)", err=True)
        ctx.exit(EXIT_ERROR)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        try:
            module = importlib.import_module(f"reconciler.cli.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name == f"reconciler.cli.{name}_cmd":
                return None
            raise
        return module.command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Declarative, GitOps reconciler for Exchange Online mailboxes.

    YAML files in a git repository declare customers, their sites and the mailboxes at each;
    `plan` compares them with live Exchange and shows the changes, `apply` carries them out.

    Exit codes: 0 success and nothing to change; 1 error; 2 success with changes or drift
    (with --detailed-exitcode, and always for drift).
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    # Log records quote data (names, Exchange's answers): shown, cut, never obeyed.
    handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def report_problems(error: InputError) -> None:
    """Every problem as ``file:line:col: message`` on stderr, paths relative to the current
    directory; under GitHub Actions also as annotations on the pull request's diff."""
    from reconciler.cli.output import github_annotation, in_github_actions, relative

    for problem in error.problems:
        where = problem.source
        prefix = f"{relative(where.file)}:{where.line}:{where.column}: " if where else ""
        echo(message(f"{prefix}error: {problem.message}"), err=True)
        if in_github_actions():  # already escaped for the runner: written as it is
            click.echo(github_annotation(
                "error", problem.message, relative(where.file) if where else None,
                where.line if where else None, where.column if where else None))
    count = len(error.problems)
    echo(f"{count} error{'s' if count != 1 else ''}; nothing was changed.", err=True)


def main() -> None:
    # Not click's standalone mode: it exits 2 on a usage error, and 2 means "changes" here.
    try:
        code = cli.main(prog_name="reconciler", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        echo("Aborted.", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
