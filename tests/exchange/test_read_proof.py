"""Reads prove they read: a 200 that carries no readable answer is retried a bounded number of
times and then fails; it never reads as "no objects". Through real httpx and msal against the
fake service over TLS."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.faults import UNREADABLE_KINDS, ErrorShape, Fault, FaultKind, Phase
from reconciler.errors import InputError, ReconcilerError
from reconciler.live.backend import (
    AmbiguousWriteError,
    CmdletResult,
    NotFound,
    TransientError,
    UnreadableAnswer,
)
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
from reconciler.live.reader import read_live
from reconciler.plan.planner import plan_desired
from tests.exchange.conftest import FAST_RETRY, AppCertificate, Pki, serve_customer

BULK = {"ResultSize": "Unlimited"}
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "desired-state"
SNAPSHOTS = ROOT / "tests" / "apply" / "data"


# A looping link restarts the drain; a transient non-terminating error is retried as any.
@pytest.mark.parametrize("kind", [*UNREADABLE_KINDS, FaultKind.LOOPING_NEXTLINK,
                                  FaultKind.NONTERMINATING_ERROR])
def test_an_unreadable_200_is_retried_and_then_read_in_full(connect, kind: FaultKind) -> None:
    service, emulator, backend = connect(30)
    expected = emulator.invoke("Get-Mailbox", BULK).value
    service.schedule.force(Fault(kind), cmdlet="Get-Mailbox", times=2)
    assert backend.invoke("Get-Mailbox", BULK).value == expected
    assert service.calls["Get-Mailbox"] == 3  # two unreadable answers, then the real one


@pytest.mark.parametrize("kind", UNREADABLE_KINDS)
def test_an_always_unreadable_200_is_an_error_never_an_empty_result(connect,
                                                                    kind: FaultKind) -> None:
    service, _, backend = connect(30)
    service.schedule.force(Fault(kind), cmdlet="Get-Mailbox", times=None)
    with pytest.raises(TransientError) as raised:
        backend.invoke("Get-Mailbox", BULK)
    attempts = backend.settings.retry.attempts
    assert f"failed {attempts} times" in str(raised.value)
    assert service.calls["Get-Mailbox"] == attempts  # bounded
    if kind is not FaultKind.TRUNCATED:  # a cut connection is a transport error, not a 200
        assert isinstance(raised.value, UnreadableAnswer)


@pytest.mark.parametrize("kind", [FaultKind.LOOPING_NEXTLINK, FaultKind.ENDLESS_NEXTLINK])
def test_a_nextlink_that_never_ends_fails_after_bounded_pages(connect, kind: FaultKind) -> None:
    # Forced for 500 requests, not for ever: a client with no bound ends too, and then
    # fails differently (or reads duplicates), so this test tells the two apart.
    service, _, backend = connect(30, settings={"max_pages": 20})
    service.schedule.force(Fault(kind), cmdlet="Get-Mailbox", times=500)
    with pytest.raises(UnreadableAnswer, match="nothing was read"):
        backend.invoke("Get-Mailbox", BULK)
    drains = backend.settings.retry.drain_attempts
    pages_per_drain = 1 if kind is FaultKind.LOOPING_NEXTLINK else 20  # its link is its own URL
    assert service.calls["Get-Mailbox"] == drains * pages_per_drain


@pytest.mark.parametrize("kind", [FaultKind.EMPTY_BODY, FaultKind.CORRUPT_GZIP])
def test_an_unreadable_answer_to_a_write_is_in_doubt_and_not_replayed(connect,
                                                                     kind: FaultKind) -> None:
    service, emulator, backend = connect(5)
    service.schedule.force(Fault(kind, Phase.AFTER), cmdlet="Set-Mailbox", times=None)
    with pytest.raises(AmbiguousWriteError):
        backend.invoke("Set-Mailbox", {"Identity": "mbx000001", "Office": "Paris"})
    assert service.calls["Set-Mailbox"] == 1 and service.commits["Set-Mailbox"] == 1
    assert emulator.invoke("Get-Mailbox", {"Identity": "mbx000001"}).value[0]["Office"] == (
        "Paris")


@pytest.mark.parametrize("shape", list(ErrorShape))
def test_a_200_carrying_a_nonterminating_error_is_that_error(connect, shape: ErrorShape) -> None:
    service, _, backend = connect(30)
    service.schedule.force(Fault(
        FaultKind.NONTERMINATING_ERROR, shape=shape,
        exception_type="Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
        message="The operation couldn't be performed because object 'mbx000007' couldn't be "
                "found."), cmdlet="Get-MailboxPermission")
    with pytest.raises(NotFound, match="mbx000007"):
        backend.invoke("Get-MailboxPermission", {"Identity": "mbx000001"})
    assert service.calls["Get-MailboxPermission"] == 1


# --- the rule at the reader and the planner: a read error stops the plan ---------------------


class _FailingOn:
    """A backend over the in-process emulator whose ``cmdlet`` always fails transiently."""

    concurrency = 1
    read_only = True

    def __init__(self, emulator: Emulator, cmdlet: str) -> None:
        self.emulator, self.cmdlet = emulator, cmdlet
        self.failed = 0

    def invoke(self, cmdlet: str, parameters: Any = None, select: Any = None) -> CmdletResult:
        if cmdlet == self.cmdlet:
            self.failed += 1
            raise UnreadableAnswer(f"{cmdlet}: an empty body", cmdlet=cmdlet)
        return self.emulator.invoke(cmdlet, parameters, select)

    def close(self) -> None:
        pass


READER_CMDLETS = ("Get-Recipient", "Get-Mailbox", "Get-DistributionGroup",
                  "Get-MailboxPermission", "Get-RecipientPermission",
                  "Get-MailboxFolderPermission", "Get-MailboxAutoReplyConfiguration",
                  "Get-DistributionGroupMember")


@pytest.mark.parametrize("cmdlet", READER_CMDLETS)
def test_the_reader_never_turns_a_failed_read_into_absence(cmdlet: str) -> None:
    desired = load(EXAMPLE).customers["contoso"]
    snapshot = json.loads((SNAPSHOTS / "contoso.json").read_text())
    backend = _FailingOn(Emulator(snapshot), cmdlet)
    with pytest.raises(UnreadableAnswer):
        read_live(desired, backend, workers=1)
    assert backend.failed == 1  # the reader really asked, and the failure reached the caller


@pytest.fixture
def example_over_tls(tmp_path: Path, start_service, pki: Pki, app_cert: AppCertificate,
                     key_env: str):
    """The example repository's contoso, its live tenant behind the fake service."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE / "customers", root / "customers")
    shutil.copy(EXAMPLE / "reconciler.yaml", root / "reconciler.yaml")
    desired = load(root)
    snapshot = json.loads((SNAPSHOTS / "contoso.json").read_text())
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(copy.deepcopy(snapshot))})
    state = desired.customers["contoso"]
    serve_customer(state, service, tenant_id, app_cert, key_env)

    def backend_for(state: Any) -> ExchangeBackend:
        settings = ExchangeSettings.for_tenant(state.customer.tenant, verify=pki.client_context,
                                               retry=FAST_RETRY)
        return ExchangeBackend(state.customer, settings=settings)

    return desired, service, backend_for


class _EmptyGroups:
    """What a reader that swallowed a failed group read would see: no groups."""

    read_only = False

    def __init__(self, inner: ExchangeBackend) -> None:
        self.inner = inner

    def invoke(self, cmdlet: str, parameters: Any = None, select: Any = None) -> CmdletResult:
        if cmdlet == "Get-DistributionGroup":
            return CmdletResult()
        return self.inner.invoke(cmdlet, parameters, select)

    def close(self) -> None:
        self.inner.close()


def _group_creates(plan: Any) -> set[str]:
    return {c.address for c in plan.actionable
            for op in c.operations if op.cmdlet == "New-DistributionGroup"}


def test_an_empty_group_read_would_misplan_existing_groups(example_over_tls) -> None:
    """Why the next test matters: were a failed read taken for "no groups", the groups that
    exist would be planned as new, and refused as taking their own address."""
    desired, _, backend_for = example_over_tls
    live_groups = {"london-all@contoso.com", "paris-all@contoso.com"}  # in the snapshot
    assert live_groups <= set(desired.customers["contoso"].resources)
    honest = plan_desired(desired, backend_for, customers=["contoso"]).plan
    assert not any(g in a for a in _group_creates(honest) for g in live_groups)
    with pytest.raises(InputError) as fooled:
        plan_desired(desired, lambda state: _EmptyGroups(backend_for(state)),
                     customers=["contoso"])
    for group in live_groups:
        assert f"distribution_group {group} cannot be created" in str(fooled.value)


@pytest.mark.parametrize(("cmdlet", "kind"), [
    (cmdlet, UNREADABLE_KINDS[n % len(UNREADABLE_KINDS)])
    for n, cmdlet in enumerate(READER_CMDLETS)])
def test_an_unreadable_tenant_stops_the_plan(example_over_tls, cmdlet: str,
                                             kind: FaultKind) -> None:
    desired, service, backend_for = example_over_tls
    service.schedule.force(Fault(kind), cmdlet=cmdlet, times=None)
    with pytest.raises(ReconcilerError, match="reading the tenant of customer contoso failed"):
        plan_desired(desired, backend_for, customers=["contoso"])
    assert service.calls[cmdlet] >= FAST_RETRY.attempts


@pytest.mark.parametrize("kind", [FaultKind.LOOPING_NEXTLINK, FaultKind.ENDLESS_NEXTLINK])
def test_a_nextlink_on_a_writes_answer_is_never_followed(connect, kind: FaultKind) -> None:
    # Following it would POST the write's body again: the write would run twice.
    service, emulator, backend = connect(5)
    service.schedule.force(Fault(kind, Phase.AFTER), cmdlet="Set-Mailbox", times=None)
    backend.invoke("Set-Mailbox", {"Identity": "mbx000001", "Office": "Paris"})
    assert service.calls["Set-Mailbox"] == 1 and service.commits["Set-Mailbox"] == 1
    assert emulator.invoke("Get-Mailbox", {"Identity": "mbx000001"}).value[0]["Office"] == (
        "Paris")
