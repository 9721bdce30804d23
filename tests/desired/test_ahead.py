"""Parsing ahead on other cores (reconciler.desired.ahead) changes nothing but time: the same
model, the same problems in the same order, and never a worker's answer for bytes the loader
did not read itself."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from reconciler.desired import ahead, load
from reconciler.errors import InputError

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(BENCH))
    try:
        from gen_repo import generate
    finally:
        sys.path.remove(str(BENCH))
    root = tmp_path_factory.mktemp("ahead") / "repo"
    generate(root, 300, 3000, 12, users_per_site=5)
    return root


@pytest.fixture
def copy(repository: Path, tmp_path: Path) -> Path:
    shutil.copytree(repository, tmp_path / "repo")
    return tmp_path / "repo"


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files whose worker answer the loader used."""
    used: list[str] = []
    original = ahead.Ahead.take

    def spy(self: ahead.Ahead, path: Path, raw: bytes) -> ahead.Parsed | None:
        answer = original(self, path, raw)
        if answer is not None:
            used.append(Path(path).name)
        return answer

    monkeypatch.setattr(ahead.Ahead, "take", spy)
    return used


def load_with(root: Path, jobs: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv(ahead.VARIABLE, jobs)
    try:
        return load(root)
    except InputError as e:
        return ("problems", [(p.message, p.source) for p in e.problems])


def test_parsed_ahead_the_model_is_the_same(copy: Path, taken: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    serial = load_with(copy, "1", monkeypatch)
    assert taken == []
    parallel = load_with(copy, "2", monkeypatch)
    assert len(taken) == 12  # every resource file came from a worker
    assert parallel == serial
    assert len(parallel.customers["customer-0"].resources) == 300


def test_parsed_ahead_the_problems_are_the_same_and_in_order(
        copy: Path, taken: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(copy.rglob("mailboxes-*.yaml"))
    files[2].write_text(files[2].read_text() + "  - [unclosed\n")  # not YAML
    files[5].write_text(files[5].read_text().replace("    alias: mbx-", "    aliass: mbx-", 1))
    files[7].write_text("")  # empty
    serial = load_with(copy, "1", monkeypatch)
    parallel = load_with(copy, "2", monkeypatch)
    assert parallel == serial
    assert serial[0] == "problems" and len(serial[1]) >= 3
    assert {files[2].name, files[5].name, files[7].name} <= set(taken)


def test_an_answer_for_other_bytes_is_not_taken(copy: Path) -> None:
    path = sorted(copy.rglob("mailboxes-*.yaml"))[0]
    before = path.read_bytes()
    parse_ahead = ahead.Ahead(2)
    try:
        parse_ahead.queue([ahead.Job(str(path), str(path), "resources")])
        parse_ahead._receive()  # the worker has read the file as it was
        path.write_bytes(before.replace(b"alias: mbx-0\n", b"alias: mbx-0\n    archive: true\n"))
        assert parse_ahead.take(path, path.read_bytes()) is None
    finally:
        parse_ahead.close()
    again = ahead.Ahead(2)
    try:
        again.queue([ahead.Job(str(path), str(path), "resources")])
        answer = again.take(path, path.read_bytes())
        assert answer is not None and answer.document(str(path)) is not None
        assert again.take(path, path.read_bytes()) is None  # an answer is taken once
    finally:
        again.close()


def test_a_worker_that_dies_costs_only_time(copy: Path, taken: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    serial = load_with(copy, "1", monkeypatch)

    def die(*_: object) -> None:
        os._exit(3)

    monkeypatch.setattr(ahead, "parse_file", die)  # inherited by the forked workers
    assert load_with(copy, "2", monkeypatch) == serial
    assert taken == []


def test_files_outside_the_repository_are_never_handed_to_a_worker(
        copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside.yaml"
    shutil.copy(sorted(copy.rglob("mailboxes-*.yaml"))[0], outside)
    site = sorted(copy.rglob("site.yaml"))[0].parent
    (site / "linked.yaml").symlink_to(outside)
    queued: list[str] = []
    original = ahead.Ahead.queue

    def spy(self: ahead.Ahead, jobs: list[ahead.Job]) -> None:
        queued.extend(Path(job.path).name for job in jobs)
        original(self, jobs)

    monkeypatch.setattr(ahead.Ahead, "queue", spy)
    result = load_with(copy, "2", monkeypatch)
    assert result[0] == "problems"
    assert any("outside the repository" in message for message, _ in result[1])
    assert "linked.yaml" not in queued and len(queued) == 12


def test_how_many_workers(monkeypatch: pytest.MonkeyPatch,
                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(ahead.VARIABLE, raising=False)
    monkeypatch.setattr(ahead, "_cores", lambda: 4)
    monkeypatch.setattr(ahead, "_idle_cores", lambda: 3.9)
    assert ahead.workers_for(ahead.MIN_BYTES - 1) == 0  # small: not worth the processes
    assert ahead.workers_for(ahead.MIN_BYTES) == 4
    monkeypatch.setattr(ahead, "_idle_cores", lambda: 1.8)  # others use two cores
    assert ahead.workers_for(ahead.MIN_BYTES) == 2
    monkeypatch.setattr(ahead, "_idle_cores", lambda: 0.6)  # busy: workers would take turns
    assert ahead.workers_for(ahead.MIN_BYTES) == 0
    monkeypatch.setattr(ahead, "_idle_cores", lambda: 3.9)
    monkeypatch.setattr(ahead, "_cores", lambda: 1)
    assert ahead.workers_for(10 * ahead.MIN_BYTES) == 0
    monkeypatch.setenv(ahead.VARIABLE, "1")
    assert ahead.workers_for(10 * ahead.MIN_BYTES) == 0
    monkeypatch.setenv(ahead.VARIABLE, "3")
    assert ahead.workers_for(0) == 3
    monkeypatch.setenv(ahead.VARIABLE, "100000")
    assert ahead.workers_for(0) == ahead.MAX_WORKERS
    monkeypatch.setenv(ahead.VARIABLE, "two")
    assert ahead.workers_for(10 * ahead.MIN_BYTES) == 0
    assert "RECONCILER_JOBS='two' is not a number" in caplog.text
    monkeypatch.setenv(ahead.VARIABLE, "3")  # asked for, yet:
    monkeypatch.setattr(ahead.threading, "active_count", lambda: 2)
    assert ahead.workers_for(10 * ahead.MIN_BYTES) == 0  # forking beside threads is unsafe


def test_the_loader_asks_only_for_what_it_queued(copy: Path) -> None:
    parse_ahead = ahead.Ahead(2)
    try:
        path = sorted(copy.rglob("customer.yaml"))[0]
        assert parse_ahead.take(path, path.read_bytes()) is None  # never queued: no waiting
        assert parse_ahead._pool is None
    finally:
        parse_ahead.close()


def test_parsed_ahead_the_parse_cache_gets_the_same_entries(
        copy: Path, tmp_path: Path, taken: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired.cache import ParseCache

    stored = {}
    for jobs in ("1", "2"):
        monkeypatch.setenv(ahead.VARIABLE, jobs)
        cache = ParseCache(tmp_path / f"cache-{jobs}")
        model = load(copy, cache=cache)
        stored[jobs] = {p.name: p.read_bytes() for p in cache.directory.glob("*.json")}
        assert load(copy, cache=ParseCache(cache.directory)) == model  # served from it
    assert len(taken) == 12
    assert len(stored["2"]) == 2 + 10 + 12 and stored["2"] == stored["1"]


def test_idle_cores_are_read_from_the_machine() -> None:
    idle = ahead._idle_cores(0.05)
    assert 0.0 <= idle <= (os.cpu_count() or 1) + 0.01


def _sigint_handler(_: object) -> list[str]:
    import signal

    return [str(signal.getsignal(signal.SIGINT))]


def test_a_worker_leaves_ctrl_c_to_the_command(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    import signal

    path = tmp_path / "x.yaml"
    path.write_text("mailboxes: []\n")
    monkeypatch.setattr(ahead, "_parse_chunk", _sigint_handler)  # report, in the worker
    parse_ahead = ahead.Ahead(1)
    try:
        parse_ahead.queue([ahead.Job(str(path), str(path), "resources")])
        _, future = parse_ahead._sent[0]
        assert future.result() == [str(signal.SIG_IGN)]
    finally:
        parse_ahead.close()
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # not in the command itself


def test_a_repository_too_small_to_parse_ahead_is_not_read_twice_to_ask_the_cache(
        copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.desired.cache import ParseCache

    asked: list[str] = []
    original = ParseCache.holds

    def spy(self: ParseCache, path: Path, kind: str) -> bool:
        asked.append(Path(path).name)
        return original(self, path, kind)

    monkeypatch.setattr(ParseCache, "holds", spy)
    monkeypatch.delenv(ahead.VARIABLE, raising=False)
    assert sum(p.stat().st_size for p in copy.rglob("*.yaml")) < ahead.MIN_BYTES
    load(copy, cache=ParseCache(tmp_path / "cache"))
    assert asked == []  # never parsed ahead: each file is read once, by the loader
    monkeypatch.setenv(ahead.VARIABLE, "2")
    load(copy, cache=ParseCache(tmp_path / "cache"))
    assert len(asked) == 12  # parsed ahead: the cache is asked which files it holds
