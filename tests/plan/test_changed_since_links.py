"""--changed-since plans what a full plan would for what the change touches: files read under a
link's name when git names only the file the link leads to, and resources naming one it removes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.hostile.harness import example_repo, run

LINKED = "shared_mailboxes:\n  - name: Linked Box\n"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                    "-c", "init.defaultBranch=main", *args], cwd=repo, check=True,
                   capture_output=True, timeout=60)


def _changes(repo: Path, *args: str) -> dict[str, dict[str, object]]:
    result = run(["plan", str(repo), "--format", "json", "--no-cache", *args])
    assert result.exit_code == 0, result.output
    return {c["address"]: c for c in json.loads(result.stdout)["changes"]}


def test_a_file_read_through_a_link_is_in_scope_when_its_target_changes(
        tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {"shared/extra.yaml": LINKED,
                                   "shared/sites/extra.yaml": LINKED.replace("Linked", "Site")})
    os.symlink("../../shared/extra.yaml", repo / "customers/contoso/extra.yaml")
    os.symlink("../../../../shared/sites", repo / "customers/contoso/sites/paris/more")
    os.symlink("more/extra.yaml", repo / "customers/contoso/sites/paris/site-extra.yaml")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    (repo / "shared/extra.yaml").write_text(LINKED + "  - name: Second Linked\n")
    (repo / "shared/sites/extra.yaml").write_text(
        LINKED.replace("Linked", "Site") + "    archive: true\n")
    full = _changes(repo)
    scoped = _changes(repo, "--changed-since", "HEAD")
    touched = {"contoso/-/shared_mailbox/second-linked@contoso.com",
               "contoso/paris/shared_mailbox/site-box@contoso.com"}
    assert touched <= set(full)
    assert {a: c for a, c in scoped.items() if a in touched} == \
        {a: c for a, c in full.items() if a in touched}


def test_a_resource_naming_one_the_change_removes_is_checked_as_in_a_full_plan(
        tmp_path: Path) -> None:
    """Box A (unchanged) grants to Box B; the pull request removes Box B, which is not live:
    the full plan fails on Box A's grant, and so must the pull request's plan."""
    repo = example_repo(tmp_path, {
        "customers/contoso/a.yaml": "shared_mailboxes:\n  - name: Box A\n    permissions:\n"
                                    "      - {user: box-b@contoso.com, access: [FullAccess]}\n",
        "customers/contoso/b.yaml": "shared_mailboxes:\n  - name: Box B\n"})
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    (repo / "customers/contoso/b.yaml").unlink()
    outputs = []
    for extra in ([], ["--changed-since", "HEAD"]):
        result = run(["plan", str(repo), "--no-cache", *extra])
        assert result.exit_code == 1, result.output
        outputs.append([line for line in result.output.splitlines() if "box-b@" in line])
    assert any("a.yaml:4:9:" in line for line in outputs[0])
    assert outputs[1] == outputs[0]
