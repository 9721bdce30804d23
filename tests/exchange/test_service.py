"""The fake Exchange Online gateway's protocol, spoken by a plain httpx client (no msal, no
connector), so the shapes are checked independently of the code that consumes them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from reconciler.emulator import Emulator
from reconciler.emulator.faults import ALL_KINDS, FaultConfig, FaultKind, FaultSchedule, Phase
from reconciler.emulator.service import FakeExchangeService
from tests.exchange.conftest import APP_ID, Pki, plain_client
from tests.exchange.tenants import TENANT_ID, synthetic_snapshot

ANCHOR = f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT_ID}"


def _headers(service: FakeExchangeService, **extra: str) -> dict[str, str]:
    token = service.identity.issue_token(TENANT_ID, APP_ID, service.audience)
    return {"Authorization": f"Bearer {token}", "X-AnchorMailbox": ANCHOR,
            "Content-Type": "application/json", **extra}


def _body(cmdlet: str, **parameters: Any) -> bytes:
    return json.dumps({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}).encode()


@pytest.fixture
def service(start_service, pki: Pki) -> FakeExchangeService:
    emulator = Emulator(synthetic_snapshot(5000, grants_per_mailbox=0), validate=False)
    started = start_service({TENANT_ID: emulator})
    started.identity.register(TENANT_ID, APP_ID)
    return started


def test_5000_mailboxes_in_exactly_5_posts(service: FakeExchangeService, pki: Pki) -> None:
    body = _body("Get-Mailbox", ResultSize="Unlimited")
    url = f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand?$select=Identity,Alias"
    headers = _headers(service, Prefer="odata.maxpagesize=1000")
    seen: list[dict[str, Any]] = []
    posts = 0
    with plain_client(pki) as client:
        while url:
            response = client.post(url, content=body, headers=headers)
            posts += 1
            assert response.status_code == 200
            assert response.headers["Preference-Applied"] == "odata.maxpagesize=1000"
            page = response.json()
            assert len(page["value"]) == 1000
            seen.extend(page["value"])
            url = page.get("@odata.nextLink")
    assert posts == 5
    assert service.calls["Get-Mailbox"] == 5
    assert len({m["Identity"] for m in seen}) == 5000
    assert set(seen[0]) == {"Identity", "Alias"}


def test_continuation_requires_the_same_body(service: FakeExchangeService, pki: Pki) -> None:
    url = f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand"
    headers = _headers(service, Prefer="odata.maxpagesize=100")
    with plain_client(pki) as client:
        first = client.post(url, content=_body("Get-Mailbox", ResultSize="Unlimited"),
                            headers=headers).json()
        other = client.post(first["@odata.nextLink"], headers=headers,
                            content=_body("Get-Mailbox", ResultSize="5000"))
    assert other.status_code == 400
    assert "differs" in other.json()["error"]["message"]


def test_bearer_token_and_anchor_mailbox_are_required(service: FakeExchangeService,
                                                       pki: Pki) -> None:
    url = f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand"
    body = _body("Get-AcceptedDomain")
    with plain_client(pki) as client:
        no_token = client.post(url, content=body, headers={"X-AnchorMailbox": ANCHOR})
        forged = client.post(url, content=body, headers={"X-AnchorMailbox": ANCHOR,
                                                         "Authorization": "Bearer forged"})
        headers = _headers(service)
        del headers["X-AnchorMailbox"]
        no_anchor = client.post(url, content=body, headers=headers)
        ok = client.post(url, content=body, headers=_headers(service))
    assert no_token.status_code == 401 and forged.status_code == 401
    assert "WWW-Authenticate" in no_token.headers
    assert no_anchor.status_code == 400
    assert ok.status_code == 200


def _error(service: FakeExchangeService, pki: Pki, body: bytes) -> httpx.Response:
    with plain_client(pki) as client:
        return client.post(f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand",
                           content=body, headers=_headers(service))


def _details(response: httpx.Response) -> list[str]:
    return response.json()["error"]["details"][0]["message"].split("|")


def test_not_found_comes_in_both_shapes(service: FakeExchangeService, pki: Pki) -> None:
    as_404 = _error(service, pki, _body("Get-Mailbox", Identity="nobody"))
    as_400 = _error(service, pki, _body("Get-MailboxPermission", Identity="nobody"))
    assert as_404.status_code == 404 and as_400.status_code == 400
    for response in (as_404, as_400):
        error_id, exception_type, text = _details(response)
        assert exception_type.endswith("ManagementObjectNotFoundException")
        assert "couldn't be found" in text and error_id
        assert response.json()["error"]["code"] and "innererror" in response.json()["error"]


def test_bad_parameter_is_400_naming_it(service: FakeExchangeService, pki: Pki) -> None:
    response = _error(service, pki, _body("Get-Mailbox", Identity="mbx000001", Colour="blue"))
    assert response.status_code == 400
    assert "'Colour'" in response.json()["error"]["message"]
    assert _details(response)[1].endswith("ParameterBindingException")


def test_unknown_cmdlet_is_an_empty_403_labelled_gzip(service: FakeExchangeService,
                                                       pki: Pki) -> None:
    with plain_client(pki) as client:
        request = client.build_request(
            "POST", f"{service.url}/adminapi/beta/{TENANT_ID}/InvokeCommand",
            content=_body("Get-Wombat"), headers=_headers(service))
        response = client.send(request, stream=True)
        raw = b"".join(response.iter_raw())
    assert response.status_code == 403
    assert response.headers["Content-Encoding"] == "gzip"
    assert raw == b""
    assert service.calls["Get-Wombat"] == 1


def test_rbac_denial_gives_its_reason_only_in_x_ms_diagnostics(start_service, pki: Pki) -> None:
    emulator = Emulator(synthetic_snapshot(3), validate=False)
    service = start_service({TENANT_ID: emulator}, denied_cmdlets={"Set-Mailbox"})
    service.identity.register(TENANT_ID, APP_ID)
    response = _error(service, pki, _body("Set-Mailbox", Identity="mbx000001", Office="Paris"))
    assert response.status_code == 403 and response.content == b""
    assert "not assigned a role" in response.headers["x-ms-diagnostics"]
    assert service.commits["Set-Mailbox"] == 0


def test_warnings_and_commit_counters(service: FakeExchangeService, pki: Pki) -> None:
    body = _body("Add-RecipientPermission", Identity="mbx000001", Trustee="mbx000002",
                 AccessRights="SendAs", Confirm=False)
    first = _error(service, pki, body)
    again = _error(service, pki, body)
    assert first.status_code == again.status_code == 200
    assert "@adminapi.warnings" not in first.json()
    assert any("already present" in w for w in again.json()["@adminapi.warnings"])
    assert service.commits["Add-RecipientPermission"] == 2
    assert service.calls["Add-RecipientPermission"] == 2


def test_same_seed_same_faults_in_the_same_order() -> None:
    config = FaultConfig(seed=42, rate=0.3)
    calls = [("Get-Mailbox", False), ("Set-Mailbox", True)] * 200

    def run(seed_config: FaultConfig) -> list[Any]:
        schedule = FaultSchedule(seed_config)
        return [schedule.next(cmdlet, write=write) for cmdlet, write in calls]

    first, second = run(config), run(config)
    assert first == second
    injected = [f for f in first if f is not None]
    assert {f.kind for f in injected} == set(ALL_KINDS)
    assert {f.phase for f in injected} == {Phase.BEFORE, Phase.AFTER}
    assert all(f.phase is Phase.BEFORE for f in injected if f.kind is FaultKind.THROTTLE)
    assert run(FaultConfig(seed=43, rate=0.3)) != first


def test_same_seed_same_faults_over_http(start_service, pki: Pki) -> None:
    histories = []
    for _ in range(2):
        emulator = Emulator(synthetic_snapshot(3), validate=False)
        service = start_service({TENANT_ID: emulator}, faults=FaultConfig(
            seed=7, rate=0.5, kinds=(FaultKind.THROTTLE, FaultKind.SERVER_ERROR,
                                     FaultKind.UNAVAILABLE), retry_after_choices=("0.5", "1")))
        service.identity.register(TENANT_ID, APP_ID)
        statuses = [_error(service, pki, _body("Get-Mailbox", Identity="mbx000001")).status_code
                    for _ in range(30)]
        histories.append((statuses, [entry.fault for entry in service.schedule.history]))
        service.stop()
    assert histories[0] == histories[1]
    assert {429, 500, 503, 200} <= set(histories[0][0])


def test_throttle_sends_retry_after(start_service, pki: Pki) -> None:
    emulator = Emulator(synthetic_snapshot(3), validate=False)
    service = start_service({TENANT_ID: emulator}, faults=FaultConfig(
        rate=1.0, kinds=(FaultKind.THROTTLE,), retry_after_choices=("0.25",)))
    service.identity.register(TENANT_ID, APP_ID)
    response = _error(service, pki, _body("Get-Mailbox", Identity="mbx000001"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "0.25"


def test_dropped_connection_sends_nothing(start_service, pki: Pki) -> None:
    emulator = Emulator(synthetic_snapshot(3), validate=False)
    service = start_service({TENANT_ID: emulator},
                            faults=FaultConfig(rate=1.0, kinds=(FaultKind.DROP,)))
    service.identity.register(TENANT_ID, APP_ID)
    with pytest.raises(httpx.RemoteProtocolError):
        _error(service, pki, _body("Get-Mailbox", Identity="mbx000001"))


def test_lag_is_passed_to_the_emulator(start_service) -> None:
    emulator = Emulator(synthetic_snapshot(1), validate=False)
    start_service({TENANT_ID: emulator}, lag_seconds=3.0)
    assert emulator.lag_seconds == 3.0


def test_serve_context_manager_starts_and_stops_on_a_free_port(pki: Pki) -> None:
    from reconciler.emulator.service import serve

    emulator = Emulator(synthetic_snapshot(2), validate=False)
    with serve({TENANT_ID: emulator}, ssl_context=pki.server_context) as service:
        service.identity.register(TENANT_ID, APP_ID)
        assert service.url.startswith("https://127.0.0.1:") and service.port > 0
        response = _error(service, pki, _body("Get-Mailbox", ResultSize="Unlimited"))
        assert len(response.json()["value"]) == 2
        url = service.url
    with pytest.raises(httpx.ConnectError), plain_client(pki) as client:
        client.get(f"{url}/{TENANT_ID}/v2.0/.well-known/openid-configuration")
