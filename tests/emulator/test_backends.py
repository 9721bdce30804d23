"""The sandbox and snapshot backends, and choosing a backend from --live / the connection."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path

import pytest

import reconciler.emulator.sandbox_backend as sandbox_module
from reconciler.emulator.sandbox_backend import SandboxBackend, seed_sandbox
from reconciler.emulator.snapshot_backend import SnapshotBackend
from reconciler.errors import ReconcilerError
from reconciler.live.backend import Backend, ReadOnlyBackend
from reconciler.model import Customer, Tenant
from reconciler.sources.backends import open_backend, parse_source
from tests.emulator.conftest import SEEDS


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(SEEDS, tmp_path / "sandbox")
    return tmp_path


@pytest.fixture
def tenant_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tenants"
    directory.mkdir()
    shutil.copy(SEEDS / "contoso.json", directory / "contoso.json")
    return directory


def customer(connection: str = "exchange", cid: str = "contoso") -> Customer:
    return Customer(id=cid, name="Contoso", mail_domains=("contoso.com",),
                    tenant=Tenant(id="6f1c1f2e-0000-4000-8000-000000000001",
                                  initial_domain="contoso.onmicrosoft.com",
                                  connection=connection))


def test_sandbox_persists_each_write(tenant_dir: Path) -> None:
    backend = SandboxBackend(tenant_dir, "contoso")
    assert isinstance(backend, Backend) and not backend.read_only
    backend.invoke("Add-MailboxPermission", {"Identity": "finance", "User": "bob",
                                             "AccessRights": "FullAccess"})
    reopened = SandboxBackend(tenant_dir, "contoso")
    users = [p["User"] for p in reopened.invoke("Get-MailboxPermission",
                                                {"Identity": "finance"}).value]
    assert "bob" in users


def test_sandbox_lag_can_be_set_after_loading(tenant_dir: Path) -> None:
    backend = SandboxBackend(tenant_dir, "contoso")
    backend.invoke("Get-Mailbox", {"Identity": "alice"})
    backend.lag_seconds = 60
    assert backend.emulator.lag_seconds == 60
    backend.invoke("New-Mailbox", {"Shared": True, "Name": "Late", "Alias": "late"})
    with pytest.raises(ReconcilerError, match="couldn't be found"):
        backend.invoke("Get-Mailbox", {"Identity": "late@contoso.com"})


def test_sandbox_reads_do_not_rewrite_the_file(tenant_dir: Path) -> None:
    path = tenant_dir / "contoso.json"
    before = path.stat().st_mtime_ns, path.read_bytes()
    SandboxBackend(tenant_dir, "contoso").invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_sandbox_write_goes_through_a_temporary_file_and_os_replace(
        tenant_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        calls.append((str(src), str(dst)))
        assert Path(src).parent == tenant_dir  # same directory: the rename is atomic
        real_replace(src, dst)

    monkeypatch.setattr(sandbox_module.os, "replace", spy)
    SandboxBackend(tenant_dir, "contoso").invoke("Set-Mailbox", {"Identity": "alice",
                                                                 "Office": "Leeds"})
    assert [Path(d).name for _, d in calls] == ["contoso.json"]
    assert sorted(p.name for p in tenant_dir.iterdir()) == ["contoso.json"]


def test_a_rewritten_tenant_keeps_its_file_mode(tenant_dir: Path) -> None:
    path = tenant_dir / "contoso.json"
    path.chmod(0o640)
    SandboxBackend(tenant_dir, "contoso").invoke("Set-Mailbox", {"Identity": "alice",
                                                                 "Office": "Leeds"})
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_failing_write_leaves_the_old_tenant_intact(
        tenant_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tenant_dir / "contoso.json"
    before = path.read_bytes()

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sandbox_module.os, "fsync", crash)
    backend = SandboxBackend(tenant_dir, "contoso")
    with pytest.raises(OSError, match="No space"):
        backend.invoke("Set-Mailbox", {"Identity": "alice", "Office": "Leeds"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tenant_dir.iterdir()) == ["contoso.json"]
    # The change that could not be saved is not served either.
    monkeypatch.undo()
    office = backend.invoke("Get-Mailbox", {"Identity": "alice"}).value[0]["Office"]
    assert office == "London"


def test_two_backends_on_one_sandbox_see_each_others_writes(tenant_dir: Path) -> None:
    first, second = SandboxBackend(tenant_dir, "contoso"), SandboxBackend(tenant_dir, "contoso")
    assert second.invoke("Get-Mailbox", {"Identity": "alice"}).value
    first.invoke("Set-Mailbox", {"Identity": "alice", "Office": "Leeds"})
    second.invoke("Set-Mailbox", {"Identity": "bob", "Office": "York"})
    third = SandboxBackend(tenant_dir, "contoso")
    offices = {m["Alias"]: m["Office"] for m in third.invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}).value}
    assert (offices["alice"], offices["bob"]) == ("Leeds", "York")
    assert first.invoke("Get-Mailbox", {"Identity": "bob"}).value[0]["Office"] == "York"


def test_refused_write_is_not_persisted(tenant_dir: Path) -> None:
    path = tenant_dir / "contoso.json"
    before = path.read_bytes()
    with pytest.raises(ReconcilerError):
        SandboxBackend(tenant_dir, "contoso").invoke("Set-Mailbox", {"Identity": "nobody",
                                                                     "Office": "x"})
    assert path.read_bytes() == before


def test_missing_sandbox_tenant_names_the_file_and_the_fix(tmp_path: Path) -> None:
    backend = SandboxBackend(tmp_path, "nobody")  # opening is lazy: no error yet
    with pytest.raises(ReconcilerError) as e:
        backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    assert str(tmp_path / "nobody.json") in str(e.value)
    assert "reconciler sandbox init" in str(e.value)


def test_snapshot_backend_reads_but_refuses_writes(tenant_dir: Path) -> None:
    path = tenant_dir / "contoso.json"
    before = path.read_bytes()
    backend = SnapshotBackend(tenant_dir, "contoso")
    assert isinstance(backend, Backend) and backend.read_only
    assert backend.invoke("Get-Mailbox", {"Identity": "alice"}).value
    for cmdlet, params in [("Set-Mailbox", {"Identity": "alice", "Office": "x"}),
                           ("New-Mailbox", {"Shared": True, "Name": "x"}),
                           ("Remove-Mailbox", {"Identity": "alice"})]:
        with pytest.raises(ReadOnlyBackend, match="read-only"):
            backend.invoke(cmdlet, params)
    assert path.read_bytes() == before
    with pytest.raises(ReconcilerError, match="no tenant snapshot"):
        SnapshotBackend(tenant_dir, "fabrikam").invoke("Get-Mailbox")


def test_seed_sandbox_creates_keeps_and_resets(repo: Path) -> None:
    assert seed_sandbox(repo) == [("contoso", "created"), ("fabrikam", "created")]
    target = repo / ".reconciler" / "sandbox" / "contoso.json"
    SandboxBackend(target.parent, "contoso").invoke("Remove-Mailbox", {"Identity": "finance"})
    changed = target.read_bytes()
    assert seed_sandbox(repo) == [("contoso", "kept"), ("fabrikam", "kept")]
    assert target.read_bytes() == changed
    assert seed_sandbox(repo, reset=True, customers=["contoso"]) == [("contoso", "reset")]
    assert json.loads(target.read_text()) == json.loads((SEEDS / "contoso.json").read_text())


def test_parse_source() -> None:
    assert parse_source("exchange") == ("exchange", None)
    assert parse_source("sandbox") == ("sandbox", None)
    assert parse_source("sandbox:/tmp/x") == ("sandbox", Path("/tmp/x"))
    assert parse_source("snapshot:exports") == ("snapshot", Path("exports"))
    for bad in ("snapshot", "sandbox:", "graph", "exchange:x", ""):
        with pytest.raises(ReconcilerError):
            parse_source(bad)


def test_open_backend_default_sandbox_seeds_itself(repo: Path) -> None:
    backend = open_backend("sandbox", customer(), repo)
    assert isinstance(backend, SandboxBackend)
    assert backend.path == repo / ".reconciler" / "sandbox" / "contoso.json"
    assert backend.path.exists()
    assert backend.invoke("Get-Mailbox", {"Identity": "alice"}).value


def test_open_backend_uses_the_customer_connection_without_a_source(repo: Path,
                                                                    tenant_dir: Path) -> None:
    assert isinstance(open_backend(None, customer("sandbox"), repo), SandboxBackend)
    assert isinstance(open_backend(f"sandbox:{tenant_dir}", customer(), repo), SandboxBackend)
    snap = open_backend(f"snapshot:{tenant_dir}", customer("sandbox"), repo)
    assert isinstance(snap, SnapshotBackend) and snap.read_only


def test_open_backend_explicit_sandbox_dir_is_not_seeded(repo: Path, tmp_path: Path) -> None:
    backend = open_backend(f"sandbox:{tmp_path / 'empty'}", customer(), repo)
    with pytest.raises(ReconcilerError, match="sandbox init"):
        backend.invoke("Get-Mailbox")


def test_open_backend_exchange_without_connector(repo: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "reconciler.live.exchange", None)
    with pytest.raises(ReconcilerError, match="connector is not available"):
        open_backend("exchange", customer(), repo)


def _writer(directory: str, alias: str, count: int) -> None:
    backend = SandboxBackend(Path(directory), "contoso")
    for n in range(count):
        backend.invoke("Set-Mailbox", {"Identity": alias, f"CustomAttribute{n % 15 + 1}":
                                       f"{alias}-{n}"})


@pytest.mark.skipif(sys.platform == "win32", reason="the directory lock is POSIX only")
def test_concurrent_processes_lose_no_write(tenant_dir: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tenant_dir), alias, 15))
               for alias in ("alice", "bob", "carol")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    mailboxes = {m["Alias"]: m for m in SandboxBackend(tenant_dir, "contoso").invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}).value}
    for alias in ("alice", "bob", "carol"):
        assert [mailboxes[alias][f"CustomAttribute{n}"] for n in range(1, 16)] == [
            f"{alias}-{n}" for n in range(15)]
