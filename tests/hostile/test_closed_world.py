"""The repository is a closed world: nothing outside it is read, nothing unusual inside it is
skipped in silence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.desired.cache import entry_body
from tests.hostile.harness import assert_clean, every_command, example_repo, run, tree_digest

CONTOSO = "customers/contoso"


def _refused(repo: Path, *needles: str) -> str:
    """Every command exits 1 naming ``needles``, writing nothing; their output."""
    before = tree_digest(repo)
    outputs = []
    plan_file = repo.parent / "plan.json"
    for result in every_command(repo, plan_file):
        assert result.exit_code == 1, (result.args[0], result.output)
        assert_clean(result)
        if result.args[-2:] != ["--format", "json"]:
            for needle in needles:
                assert needle in result.output, (result.args, needle, result.output)
        outputs.append(result.output)
    assert tree_digest(repo) == before and not plan_file.exists()
    return "".join(outputs)


@pytest.mark.parametrize("target", ["/etc/passwd", "/etc/hostname"])
def test_a_yaml_file_linked_outside_is_named_not_read(tmp_path: Path, target: str) -> None:
    repo = example_repo(tmp_path)
    os.symlink(target, repo / CONTOSO / "stolen.yaml")
    output = _refused(repo, "stolen.yaml:1:1:", "outside the repository")
    assert "root:" not in output and Path(target).read_text()[:20] not in output


def test_a_customer_folder_linked_outside_is_not_a_customer(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    elsewhere = example_repo(tmp_path / "other")
    os.symlink(elsewhere / CONTOSO, repo / "customers" / "intruder")
    _refused(repo, "intruder", "outside the repository")


def test_a_link_inside_the_repository_is_read(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {"shared/extra.yaml": "shared_mailboxes:\n  - name: Linked\n"})
    os.symlink(repo / "shared" / "extra.yaml", repo / CONTOSO / "extra.yaml")
    assert run(["validate", str(repo)]).exit_code == 0


def test_a_fifo_where_yaml_is_expected_is_an_error(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    os.mkfifo(repo / CONTOSO / "pipe.yaml")
    _refused(repo, "pipe.yaml:1:1:", "a FIFO")


def test_a_link_to_a_device_is_an_error(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    os.symlink("/dev/zero", repo / CONTOSO / "zero.yaml")
    _refused(repo, "zero.yaml:1:1:")


def test_a_folder_named_like_a_yaml_file_is_an_error(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    (repo / CONTOSO / "x.yaml").mkdir()
    _refused(repo, "x.yaml:1:1:", "a folder")


def test_a_reconciler_yaml_that_is_not_a_file_is_an_error(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    (repo / "reconciler.yaml").unlink()
    (repo / "reconciler.yaml").mkdir()
    _refused(repo, "reconciler.yaml:1:1:", "a folder")


def test_a_text_file_is_never_quoted(tmp_path: Path) -> None:
    repo = example_repo(tmp_path, {f"{CONTOSO}/notes.yaml": "PRIVATE notes, not YAML at all\n"})
    output = _refused(repo, "notes.yaml:1:1:")
    assert "PRIVATE" not in output


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                    "-c", "init.defaultBranch=main", *args], cwd=repo, check=True,
                   capture_output=True, timeout=60)


def test_a_committed_parse_cache_entry_is_never_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A pull request that commits a cache entry (git add -f) for a file's bytes, holding
    other data, must not make the plan differ from the YAML its reviewer reads."""
    repo = example_repo(tmp_path)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "start")
    assert run(["plan", str(repo), "--format", "json"]).exit_code == 0  # writes the cache
    entries = list((repo / ".reconciler" / "cache").glob("*.json"))
    poisoned = [e for e in entries if "Sales London" in e.read_text()]
    assert poisoned
    for entry in poisoned:
        entry.write_bytes(_forged(entry.read_bytes()))
    result = run(["plan", str(repo), "--format", "json"])
    assert "Poisoned" in result.stdout  # an entry is served in place of its file...
    _git(repo, "add", "-f", ".reconciler/cache")
    _git(repo, "commit", "-qm", "a cache entry")
    result = run(["plan", str(repo), "--format", "json"])
    assert result.exit_code == 0
    assert "Poisoned" not in result.stdout and "Sales London" in result.stdout  # ...unless
    assert "parse cache is not used" in caplog.text  # it came through git


def test_a_parse_cache_linked_outside_is_not_used(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    repo = example_repo(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, repo / ".reconciler" / "cache")
    result = run(["plan", str(repo), "--format", "json"])
    assert result.exit_code == 0 and "leads outside the repository" in caplog.text
    assert not any(outside.iterdir())


def _forged(entry: bytes) -> bytes:
    """The entry with 'Sales London' made 'Poisoned', signed as this program would sign it."""
    header, payload = entry.split(b"\n")
    data, marks = json.loads(payload.decode().replace("Sales London", "Poisoned"))
    return entry_body(json.loads(header)["key"], data, marks)


def _poisoned_cache(repo: Path, folder: Path) -> None:
    """The entries a plan writes, forged ('Sales London' made 'Poisoned') and shown to be
    served while nothing else is wrong, then moved to ``folder``."""
    assert run(["plan", str(repo), "--format", "json"]).exit_code == 0
    written = repo / ".reconciler" / "cache"
    for entry in written.glob("*.json"):
        entry.write_bytes(_forged(entry.read_bytes()))
    assert "Poisoned" in run(["plan", str(repo), "--format", "json"]).stdout
    if folder != written:
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, folder)


def test_a_parse_cache_behind_a_link_to_committed_entries_is_not_used(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A pull request that commits .reconciler as a link to a folder of its own, holding
    entries, must not have them served: git lists nothing under .reconciler/cache then."""
    repo = example_repo(tmp_path)
    _poisoned_cache(repo, repo / "docs" / "cache")
    shutil.rmtree(repo / ".reconciler")
    os.symlink("docs", repo / ".reconciler")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "add", "-f", "docs")
    _git(repo, "commit", "-qm", "a cache behind a link")
    result = run(["plan", str(repo), "--format", "json"])
    assert result.exit_code == 0
    assert "Poisoned" not in result.stdout and "Sales London" in result.stdout
    assert "parse cache is not used" in caplog.text


def test_a_parse_cache_git_cannot_vouch_for_is_not_used(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """In a git work tree whose git refuses to answer (a checkout owned by another user, a
    broken .git), whether entries are committed is unknown: the cache is not used."""
    repo = example_repo(tmp_path)
    _poisoned_cache(repo, repo / ".reconciler" / "cache")
    (repo / ".git").write_text(f"gitdir: {tmp_path / 'nowhere'}\n")
    result = run(["plan", str(repo), "--format", "json"])
    assert result.exit_code == 0
    assert "Poisoned" not in result.stdout and "Sales London" in result.stdout
    assert "parse cache is not used" in caplog.text


def test_a_file_swapped_for_a_link_out_after_its_check_is_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check that a file stays inside the repository and the read are two steps: a file
    made a link out between them (or while a worker parses ahead) is still not read, since
    what was opened is checked, not the name."""
    from reconciler.desired import ahead, loader

    repo = example_repo(tmp_path)
    secret = tmp_path / "secret.yaml"
    secret.write_text("shared_mailboxes:\n  - name: SECRET words\n")
    link = repo / CONTOSO / "swapped.yaml"
    os.symlink(secret, link)
    assert ahead.parse_file(ahead.Job(str(link), str(link), "resources",
                                      root=os.path.realpath(repo))) is None
    monkeypatch.setattr(loader._Loader, "inside", lambda self, path: True)  # checked before
    result = run(["validate", str(repo)])
    assert result.exit_code == 1 and "swapped.yaml:1:1:" in result.output
    assert "outside the repository" in result.output and "SECRET" not in result.output


def test_no_cache_neither_reads_nor_writes_the_parse_cache(tmp_path: Path) -> None:
    repo = example_repo(tmp_path)
    cache = repo / ".reconciler" / "cache"
    _poisoned_cache(repo, cache)  # served by a plan that uses the cache
    stored = {entry.name: entry.read_bytes() for entry in cache.iterdir()}
    for command in (["plan", str(repo), "--format", "json"], ["drift", str(repo)]):
        result = run([*command, "--no-cache"])
        assert result.exit_code in (0, 2), result.output
        assert "Poisoned" not in result.stdout
    assert {entry.name: entry.read_bytes() for entry in cache.iterdir()} == stored
    shutil.rmtree(cache)
    run(["plan", str(repo), "--no-cache"])
    run(["drift", str(repo), "--no-cache"])
    assert not cache.exists()
