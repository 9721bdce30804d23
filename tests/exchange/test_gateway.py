"""The connector against the fake service: paging, errors, faults, writes, tokens."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.emulator.faults import ALL_KINDS, UNREADABLE_KINDS, FaultConfig, FaultKind
from reconciler.live.backend import (
    AlreadyExists,
    AmbiguousWriteError,
    AuthenticationError,
    BadParameter,
    ExchangeError,
    Forbidden,
    NotFound,
    NotPresent,
    Throttled,
)
from tests.exchange.tenants import synthetic_snapshot

BULK = {"ResultSize": "Unlimited"}


def test_pages_are_drained_and_select_is_sent(connect) -> None:
    service, emulator, backend = connect(2500)
    result = backend.invoke("Get-Mailbox", BULK, ["Identity", "PrimarySmtpAddress"])
    assert len(result.value) == 2500
    assert service.calls["Get-Mailbox"] == 3 and emulator.calls["Get-Mailbox"] == 1
    assert set(result.value[0]) == {"Identity", "PrimarySmtpAddress"}


def test_next_link_to_another_origin_is_refused(connect) -> None:
    service, _, backend = connect(1500, next_link_origin="https://evil.example")
    with pytest.raises(ExchangeError, match="another origin"):
        backend.invoke("Get-Mailbox", BULK)
    assert service.calls["Get-Mailbox"] == 1  # the link was never followed


def test_errors_are_typed_by_exception_type(connect) -> None:
    _, _, backend = connect(3)
    with pytest.raises(NotFound) as as_404:
        backend.invoke("Get-Mailbox", {"Identity": "nobody"})
    with pytest.raises(NotFound) as as_400:
        backend.invoke("Get-MailboxPermission", {"Identity": "nobody"})
    assert (as_404.value.status, as_400.value.status) == (404, 400)
    assert as_400.value.exception_type == "ManagementObjectNotFoundException"
    with pytest.raises(BadParameter, match="'Colour'"):
        backend.invoke("Get-Mailbox", {"Identity": "mbx000001", "Colour": "blue"})
    with pytest.raises(Forbidden, match="unknown to Exchange"):
        backend.invoke("Get-Wombat", {})
    with pytest.raises(BadParameter, match="empty Identity"):
        backend.invoke("Get-Mailbox", {"Identity": ""})
    with pytest.raises(NotFound, match="mbx000009"):
        backend.invoke("Remove-MailboxPermission", {
            "Identity": "mbx000001", "User": "mbx000009", "AccessRights": "FullAccess",
            "Confirm": False})
    backend.invoke("New-DistributionGroup", {"Name": "Sales", "Alias": "sales",
                                             "PrimarySmtpAddress": "sales@contoso.com",
                                             "ManagedBy": ["mbx000001"]})
    backend.invoke("Add-DistributionGroupMember", {"Identity": "sales", "Member": "mbx000002"})
    with pytest.raises(AlreadyExists):
        backend.invoke("Add-DistributionGroupMember", {"Identity": "sales",
                                                       "Member": "mbx000002"})
    with pytest.raises(NotPresent):
        backend.invoke("Remove-DistributionGroupMember", {"Identity": "sales",
                                                          "Member": "mbx000001",
                                                          "Confirm": False})


def test_warnings_are_surfaced(connect) -> None:
    _, _, backend = connect(3)
    grant = {"Identity": "mbx000001", "Trustee": "mbx000000", "AccessRights": "SendAs",
             "Confirm": False}
    assert backend.invoke("Add-RecipientPermission", grant).warnings == []
    assert any("already present" in w
               for w in backend.invoke("Add-RecipientPermission", grant).warnings)


def test_rbac_denial_reason_comes_from_x_ms_diagnostics(connect) -> None:
    _, _, backend = connect(3, register={"exchange_role": False})
    with pytest.raises(Forbidden, match="not assigned a role"):
        backend.invoke("Get-Mailbox", BULK)


def test_401_refreshes_the_token_once(connect) -> None:
    service, _, backend = connect(3)
    backend.invoke("Get-Mailbox", BULK)
    assert service.identity.tokens_issued == 1
    service.identity.revoke_all()  # Exchange no longer accepts the cached token
    assert len(backend.invoke("Get-Mailbox", BULK).value) == 3
    assert service.identity.tokens_issued == 2
    assert service.unauthorized == 1 and service.calls["Get-Mailbox"] == 2


def test_a_second_401_is_an_authentication_error_with_a_hint(connect) -> None:
    service, _, backend = connect(3, register={"consented": False})
    with pytest.raises(AuthenticationError, match="admin consent"):
        backend.invoke("Get-Mailbox", BULK)
    assert service.identity.tokens_issued == 2
    assert service.unauthorized == 2


def test_429_honours_retry_after(connect) -> None:
    service, _, backend = connect(3, faults=FaultConfig(
        seed=3, rate=0.5, kinds=(FaultKind.THROTTLE,), retry_after_choices=("0.01", "0")))
    waits: list[float] = []
    backend.gateway._sleep = waits.append
    for _ in range(10):
        assert len(backend.invoke("Get-Mailbox", BULK).value) == 3
    throttles = [e.fault for e in service.schedule.injected()]
    assert waits == [float(f.retry_after) for f in throttles]  # type: ignore[arg-type]
    assert len(waits) > 0


def test_persistent_throttling_gives_up_with_throttled(connect) -> None:
    _, _, backend = connect(3, faults=FaultConfig(
        rate=1.0, kinds=(FaultKind.THROTTLE,), retry_after_choices=("0",)))
    with pytest.raises(Throttled):
        backend.invoke("Get-Mailbox", BULK)


def _reference(size: int) -> dict[str, list[dict[str, Any]]]:
    emulator = Emulator(synthetic_snapshot(size), validate=False)
    return {"Get-Mailbox": emulator.invoke("Get-Mailbox", BULK).value,
            "Get-RecipientPermission": emulator.invoke("Get-RecipientPermission", BULK).value}


@pytest.mark.parametrize("kind", ALL_KINDS + UNREADABLE_KINDS)
def test_reads_survive_every_fault_kind(connect, kind: FaultKind) -> None:
    expected = _reference(1200)
    service, _, backend = connect(
        1200,
        faults=FaultConfig(seed=11, rate=0.3, kinds=(kind,), slow_seconds=0.3,
                           retry_after_choices=("0.01",)),
        settings={"timeout": _timeout(read=0.15)},
    )
    for _ in range(3):
        for cmdlet, value in expected.items():
            assert backend.invoke(cmdlet, BULK).value == value
        for n in range(0, 1200, 150):
            permissions = backend.invoke("Get-MailboxPermission",
                                         {"Identity": f"mbx{n:06d}"}).value
            assert [p["User"] for p in permissions] == ["NT AUTHORITY\\SELF",
                                                        f"mbx{n + 1:06d}"]
    assert len(service.schedule.injected()) >= 5
    assert {entry.fault.kind for entry in service.schedule.injected()} == {kind}  # type: ignore
    assert service.wait_idle()


def _timeout(read: float):
    import httpx

    return httpx.Timeout(connect=5.0, read=read, write=5.0, pool=30.0)


def test_writes_are_never_replayed_under_faults(connect) -> None:
    service, emulator, backend = connect(
        60,
        faults=FaultConfig(seed=5, rate=0.4, slow_seconds=0.3, retry_after_choices=("0.01",)),
        settings={"timeout": _timeout(read=0.15)},
    )
    outcomes: Counter[str] = Counter()
    ambiguous: list[tuple[str, str]] = []
    succeeded: list[tuple[str, str]] = []
    for n in range(60):
        target = (f"mbx{n:06d}", f"mbx{(n + 7) % 60:06d}")
        try:
            backend.invoke("Add-MailboxPermission", {"Identity": target[0], "User": target[1],
                                                     "AccessRights": "FullAccess"})
        except AmbiguousWriteError:
            outcomes["ambiguous"] += 1
            ambiguous.append(target)
        else:
            outcomes["ok"] += 1
            succeeded.append(target)
    assert service.wait_idle()  # slow answers may still be committing
    # No request ever committed twice, and the only retries were for 429s.
    assert set(service.commits_by_request.values()) == {1}
    writes = [e for e in service.schedule.history if e.cmdlet == "Add-MailboxPermission"]
    throttled = sum(1 for e in writes if e.fault and e.fault.kind is FaultKind.THROTTLE)
    assert len(writes) == 60 + throttled
    # Every fault other than a 429 left the caller in doubt, and was reported as such.
    in_doubt = [e.fault for e in writes if e.fault and e.fault.kind is not FaultKind.THROTTLE]
    assert outcomes["ambiguous"] == len(in_doubt) and outcomes["ok"] == 60 - len(in_doubt)
    assert {f.phase.value for f in in_doubt} == {"before", "after"}
    assert {f.kind for f in in_doubt} == set(ALL_KINDS) - {FaultKind.THROTTLE}
    assert throttled > 0
    # What committed: every success, plus the ambiguous calls whose fault struck after the
    # commit (or that were merely slow): reading back tells which.
    committed_late = sum(1 for f in in_doubt if f.phase.value == "after" or f.kind is
                         FaultKind.SLOW)
    assert service.commits["Add-MailboxPermission"] == outcomes["ok"] + committed_late
    granted = {(p["Identity"], p["User"]) for p in emulator.to_snapshot()["mailbox_permissions"]}
    assert all(t in granted for t in succeeded)
    assert sum(t in granted for t in ambiguous) == committed_late


def test_writes_retry_429_and_commit_once(connect) -> None:
    service, _, backend = connect(20, faults=FaultConfig(
        seed=9, rate=0.5, kinds=(FaultKind.THROTTLE,), retry_after_choices=("0.01",)))
    for n in range(20):
        backend.invoke("Set-Mailbox", {"Identity": f"mbx{n:06d}", "Office": "Paris"})
    assert service.commits["Set-Mailbox"] == 20
    assert service.calls["Set-Mailbox"] > 20
    assert set(service.commits_by_request.values()) == {1}


def test_concurrency_is_limited_per_tenant(connect) -> None:
    service, _, backend = connect(40, faults=FaultConfig(latency_seconds=0.02),
                                  settings={"concurrency": 3, "batch_size": 1})
    peak = 0
    active = 0
    lock = threading.Lock()
    original = service.handle

    def counting(request):
        nonlocal peak, active
        if "InvokeCommand" in request.path:
            with lock:
                active += 1
                peak = max(peak, active)
        try:
            return original(request)
        finally:
            if "InvokeCommand" in request.path:
                with lock:
                    active -= 1

    service.handle = counting  # type: ignore[method-assign]
    threads = [threading.Thread(target=backend.invoke, args=(
        "Get-MailboxPermission", {"Identity": f"mbx{n:06d}"})) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.calls["Get-MailboxPermission"] == 40
    assert 1 < peak <= 3
