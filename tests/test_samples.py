"""The rendered plan samples in docs/samples/ are what `reconciler plan` prints today for the
example repository against its freshly reset sandbox. Refresh them with
`.venv/bin/python -m tests.test_samples`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli

ROOT = Path(__file__).parents[1]
SAMPLES = ROOT / "docs" / "samples"
# Run as a newcomer runs it on a laptop: no colour, not under GitHub Actions.
ENV = {"NO_COLOR": "1", "FORCE_COLOR": None, "GITHUB_ACTIONS": None}


def render_samples() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "desired-state"
        shutil.copytree(ROOT / "examples" / "desired-state", repo,
                        ignore=shutil.ignore_patterns(".reconciler"))
        runner = CliRunner(env=ENV)
        assert runner.invoke(cli, ["sandbox", "reset", str(repo)]).exit_code == 0
        out = {}
        for name, fmt in (("plan.txt", "text"), ("plan.md", "markdown")):
            result = runner.invoke(cli, ["plan", str(repo), "--format", fmt])
            assert result.exit_code == 0, result.output
            out[name] = result.stdout
        return out


def test_the_rendered_samples_in_docs_are_current() -> None:
    for name, text in render_samples().items():
        assert (SAMPLES / name).read_text(encoding="utf-8") == text, (
            f"docs/samples/{name} is out of date: run .venv/bin/python -m tests.test_samples")


if __name__ == "__main__":
    for name, text in render_samples().items():
        (SAMPLES / name).write_text(text, encoding="utf-8")
        print(f"wrote docs/samples/{name}")
