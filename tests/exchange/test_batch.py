"""$batch (GATEWAY-FACTS §a): reads made at once go several to a request, each read still gets
its own answer or its own typed error, and a gateway without $batch is read one call at a time."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from reconciler.emulator.faults import Fault, FaultConfig, FaultKind
from reconciler.live.backend import CmdletResult, NotFound, TransientError


def read_at_once(backend: Any, identities: list[str]) -> dict[str, Any]:
    """Get-MailboxPermission for each identity, all from threads at once."""
    out: dict[str, Any] = {}
    lock = threading.Lock()

    def read(identity: str) -> None:
        try:
            value: Any = backend.invoke("Get-MailboxPermission", {"Identity": identity}).value
        except Exception as e:
            value = e
        with lock:
            out[identity] = value

    threads = [threading.Thread(target=read, args=(i,)) for i in identities]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def names(n: int) -> list[str]:
    return [f"mbx{k:06d}@contoso.com" for k in range(n)]


def test_reads_made_at_once_share_batches_and_get_their_own_answers(connect) -> None:
    service, emulator, backend = connect(40, faults=FaultConfig(latency_seconds=0.02),
                                         settings={"concurrency": 2, "batch_size": 10})
    got = read_at_once(backend, names(40))
    for identity, value in got.items():
        assert value == emulator.invoke("Get-MailboxPermission", {"Identity": identity}).value
    assert service.batched["Get-MailboxPermission"] + service.calls[
        "Get-MailboxPermission"] == 40
    assert service.batched["Get-MailboxPermission"] >= 20  # most went in batches
    assert 4 <= service.calls["$batch"] + service.calls["Get-MailboxPermission"] <= 20


def test_a_failing_read_in_a_batch_fails_alone_with_its_own_error(connect) -> None:
    _, _, backend = connect(20, faults=FaultConfig(latency_seconds=0.02),
                            settings={"concurrency": 1, "batch_size": 10})
    missing = "nobody@contoso.com"
    got = read_at_once(backend, [*names(9), missing])
    assert isinstance(got[missing], NotFound)
    assert all(isinstance(v, list) and v for k, v in got.items() if k != missing)


def test_a_transient_sub_answer_is_asked_again_on_its_own(connect) -> None:
    service, emulator, backend = connect(20, faults=FaultConfig(latency_seconds=0.02),
                                         settings={"concurrency": 1, "batch_size": 10})
    service.schedule.force(Fault(FaultKind.SERVER_ERROR), cmdlet="Get-MailboxPermission",
                           times=2)
    backend.gateway._sleep = lambda _s: None
    got = read_at_once(backend, names(10))
    for identity, value in got.items():
        assert not isinstance(value, TransientError), value
        assert value == emulator.invoke("Get-MailboxPermission", {"Identity": identity}).value


def test_a_gateway_without_batch_is_read_one_call_at_a_time(connect) -> None:
    service, emulator, backend = connect(30, faults=FaultConfig(latency_seconds=0.02),
                                         batch_size=0, settings={"batch_size": 10})
    got = read_at_once(backend, names(30))
    assert all(v == emulator.invoke("Get-MailboxPermission", {"Identity": k}).value
               for k, v in got.items())
    assert service.calls["Get-MailboxPermission"] == 30 and not service.batched
    assert not backend.gateway.batching and backend.batch_size == 1


def test_a_tenant_that_says_batch_size_1_never_batches(connect) -> None:
    service, _, backend = connect(20, faults=FaultConfig(latency_seconds=0.02),
                                  settings={"batch_size": 1})
    read_at_once(backend, names(20))
    assert service.calls["Get-MailboxPermission"] == 20 and "$batch" not in service.calls


def _post_batch(backend: Any, requests: list[dict[str, Any]]) -> tuple[int, Any]:
    gateway = backend.gateway
    token = gateway._current_token()
    response = backend._client.post(
        gateway.batch_endpoint, content=json.dumps({"requests": requests}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return response.status_code, response.json()


def _sub(backend: Any, identity: str, rid: str) -> dict[str, Any]:
    token = backend.gateway._current_token()
    return {"id": rid, "method": "POST", "url": backend.gateway.endpoint,
            "headers": {"Authorization": f"Bearer {token}", "X-AnchorMailbox": "APP:x"},
            "body": {"CmdletInput": {"CmdletName": "Get-MailboxPermission",
                                     "Parameters": {"Identity": identity}}}}


def test_the_service_holds_batches_to_ten_distinct_ids(connect) -> None:
    _, _, backend = connect(20)
    status, body = _post_batch(backend, [_sub(backend, n, str(i))
                                         for i, n in enumerate(names(11))])
    assert status == 400 and "1 to 10" in json.dumps(body)
    status, body = _post_batch(backend, [_sub(backend, n, "same") for n in names(2)])
    assert status == 400 and "same id" in json.dumps(body)
    status, body = _post_batch(backend, [_sub(backend, n, f"r{i}")
                                         for i, n in enumerate(names(3))])
    assert status == 200 and [r["id"] for r in body["responses"]] == ["r0", "r1", "r2"]
    assert all(r["status"] == 200 and r["body"]["value"] for r in body["responses"])


def test_writes_are_never_batched(connect) -> None:
    _, _, backend = connect(5)
    with pytest.raises(ValueError, match="only reads"):
        backend.gateway.invoke_batch([("Set-Mailbox", {"Identity": "x"}, None)])
    assert isinstance(backend.invoke("Get-Mailbox", {"Identity": names(1)[0]}), CmdletResult)


@pytest.mark.parametrize("off", [0, 1])
def test_a_tenant_that_says_batch_size_0_or_1_is_read_without_batches(tmp_path: Any,
                                                                      off: int) -> None:
    from reconciler.desired import load
    from reconciler.live.exchange import ExchangeSettings
    from tests.desired.conftest import CUSTOMER, write_repo

    root = write_repo(tmp_path / "repo", {"customers/acme/customer.yaml": CUSTOMER.replace(
        "    certificate_key: env:ACME_KEY\n",
        f"    certificate_key: env:ACME_KEY\n    batch_size: {off}\n")})
    tenant = load(root).customers["acme"].customer.tenant
    assert tenant.batch_size == off
    assert ExchangeSettings.for_tenant(tenant).batch_size == 1  # never the default's 10


def test_batch_size_comes_from_the_tenant(tmp_path: Any) -> None:
    from reconciler.desired import load
    from reconciler.live.exchange import DEFAULT_BATCH_SIZE, ExchangeSettings
    from tests.desired.conftest import CUSTOMER, write_repo

    root = write_repo(tmp_path / "repo", {"customers/acme/customer.yaml": CUSTOMER.replace(
        "    certificate_key: env:ACME_KEY\n",
        "    certificate_key: env:ACME_KEY\n    batch_size: 1\n")})
    tenant = load(root).customers["acme"].customer.tenant
    assert tenant.batch_size == 1
    assert ExchangeSettings.for_tenant(tenant).batch_size == 1
    assert ExchangeSettings.for_tenant(
        type(tenant)(tenant.id, tenant.initial_domain)).batch_size == DEFAULT_BATCH_SIZE == 10


def test_the_sizes_a_plan_needs_are_read_together(connect) -> None:
    """Mailboxes given an archive while shared need their size (the 50 GB licence note): those
    reads go out at once, so a batching gateway takes them together, not one round trip each."""
    from reconciler.live.pool import read_width
    from reconciler.live.tenant_facts import read_tenant_facts
    from reconciler.model import Customer, CustomerState, Location, SharedMailbox, Tenant

    service, _, backend = connect(12, faults=FaultConfig(latency_seconds=0.05),
                                         settings={"concurrency": 2, "batch_size": 10})
    ids = names(12)
    state = CustomerState(Customer("contoso", "Contoso", Tenant("t", "contoso.onmicrosoft.com"),
                                   ("contoso.com",)))
    for rid in ids:
        state.add(SharedMailbox(id=rid, located_at=Location("contoso"), archive=True))
    raw = {rid: ("mailbox", {"RecipientTypeDetails": "SharedMailbox"}) for rid in ids}
    before = service.calls["$batch"] + service.calls["Get-MailboxStatistics"]
    facts = read_tenant_facts(state, backend, raw, None, read_width(backend, 2))
    assert sorted(facts.mailbox_bytes) == sorted(ids)
    assert service.batched["Get-MailboxStatistics"] >= 6  # most went in batches
    trips = service.calls["$batch"] + service.calls["Get-MailboxStatistics"] - before
    assert trips <= 6  # one after another: 12
