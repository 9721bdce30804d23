"""Running hostile input through every command, and holding each output to one rule: what a
reviewer sees is what runs. No traceback, no control character, no line a CI runner would take
as a workflow command, nothing written when the input is refused."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "desired-state"
GITHUB = {"GITHUB_ACTIONS": "true", "NO_COLOR": "1"}
# Any character a terminal may obey; tab and newline are layout.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\u2028\u2029]")
# A workflow command this program writes itself: an error annotation whose properties hold no
# raw ',' or ':' (they end a property or the property list).
ANNOTATION = re.compile(r"::error (?:file=[^,:]*)?(?:,?line=\d+)?(?:,col=\d+)?::\S")


@dataclass
class Run:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def write(root: Path, files: Mapping[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def example_repo(tmp_path: Path, files: Mapping[str, str | bytes] = {}) -> Path:
    """A copy of the example repository, its sandbox reset, with ``files`` added."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    assert run(["sandbox", "reset", str(repo)]).exit_code == 0
    write(repo, files)
    return repo


def run(args: list[str], env: Mapping[str, str] | None = None, stdin: str | None = None) -> Run:
    # color=True: click passes escape sequences through, as it does to a terminal (to a pipe it
    # strips them, which would hide what a terminal would obey).
    result = CliRunner().invoke(cli, args, env={**GITHUB, **(env or {})}, input=stdin,
                                color=True)
    return Run(args, result.exit_code, result.stdout, result.stderr)


def every_command(repo: Path, out: Path, env: Mapping[str, str] | None = None) -> list[Run]:
    """validate, plan in each format (and saving it), apply up to its confirmation, drift in
    each format: each under GitHub Actions, so that annotations are written too."""
    r = str(repo)
    runs = [run(["validate", r], env), run(["validate", r, "--format", "json"], env)]
    runs += [run(["plan", r, "--format", f], env) for f in ("text", "markdown", "json")]
    runs.append(run(["plan", r, "--out", str(out)], env))
    runs.append(run(["apply", r], env))  # no terminal: it shows the plan, then refuses
    runs += [run(["drift", r, "--format", f], env) for f in ("text", "markdown", "json", "html")]
    return runs


def assert_clean(result: Run) -> None:
    """No traceback, no control character, no workflow command but a well-formed annotation."""
    where = " ".join(result.args[:1] + result.args[2:])
    assert "Traceback" not in result.output, where
    assert "this is a bug" not in result.output, (where, result.output[-2000:])
    for stream in (result.stdout, result.stderr):
        found = CONTROL.search(stream)
        assert found is None, (where, repr(stream[max(0, found.start() - 80):found.end() + 20]))
        for line in stream.splitlines():
            if line.lstrip().startswith("::"):
                assert ANNOTATION.match(line), (where, line[:300])


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its content's digest (links and specials by name)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink() or not path.is_file():
            out[rel] = "special" if not path.is_dir() else "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
