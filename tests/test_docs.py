"""Every document the product cites (in code, docs, schemas, help text and error messages) is a
file of this repository, and every Markdown link and anchor in the docs leads somewhere."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".git", "node_modules", ".reconciler", "__pycache__", ".pytest_cache",
             "exchange_reconciler.egg-info", "data"}
TEXT_SUFFIXES = {".py", ".md", ".json", ".yaml", ".yml", ".toml", ".cjs", ".html"}
# A document named the way project documents are: an upper-case name (README.md, FORMAT.md) or
# a path into docs/ (docs/format.md).
CITED = re.compile(r"(?<![\w/.-])((?:\.\./)*(?:docs/[\w.-]+|[A-Z][A-Z0-9_-]+)\.md)\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _text_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(folder, f) for f in files if Path(f).suffix in TEXT_SUFFIXES]
    return found


def _exists(cited: str, where: Path) -> bool:
    return any((base / cited).is_file() for base in (where.parent, ROOT, ROOT / "docs"))


def _slugs(markdown: Path) -> set[str]:
    """The anchors GitHub gives a file's headings."""
    slugs = set()
    for line in markdown.read_text().splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            title = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", line.lstrip("#").strip())
            slugs.add(re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"))
    return slugs


def _missing_citations(text: str, where: Path) -> list[str]:
    return [m.group(1) for m in CITED.finditer(text) if not _exists(m.group(1), where)]


def test_every_cited_document_exists_in_the_repository() -> None:
    missing = [f"{path.relative_to(ROOT)}: {name}" for path in _text_files()
               if path != Path(__file__)
               for name in _missing_citations(path.read_text(errors="replace"), path)]
    assert missing == []


def test_the_check_catches_a_document_that_is_not_here(tmp_path: Path) -> None:
    where = tmp_path / "module.py"
    assert _missing_citations('"""See FORMAT.md §4 and docs/nosuch.md."""', where) == [
        "FORMAT.md", "docs/nosuch.md"]
    assert _missing_citations("see docs/format.md §4 and README.md", ROOT / "x.py") == []


def test_every_markdown_link_and_anchor_leads_somewhere() -> None:
    broken = []
    for path in _text_files():
        if path.suffix != ".md":
            continue
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _slugs(dest):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def _help_texts() -> list[tuple[str, str]]:
    runner = CliRunner()
    names = [[]] + [[name] for name in COMMANDS]
    names += [["sandbox", sub] for sub in ("init", "show", "reset", "serve")]
    texts = []
    for args in names:
        result = runner.invoke(cli, [*args, "--help"])
        if result.exit_code == 0:
            texts.append((" ".join(args) or "reconciler", result.output))
    return texts


@pytest.mark.parametrize(("command", "text"), _help_texts(), ids=lambda v: v[:30])
def test_help_texts_cite_only_documents_that_exist(command: str, text: str) -> None:
    assert _missing_citations(text, ROOT / "README.md") == []
