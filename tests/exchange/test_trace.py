"""Traces (``--trace DIR``): recorded from the fake Exchange Online, replayed by the replay
service to the identical plan; redacted consistently; never holding a secret."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from reconciler.apply.runner import apply_plan
from reconciler.cli import cli
from reconciler.cli.apply_cmd import render_report
from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.faults import ErrorShape, FaultConfig, FaultKind
from reconciler.emulator.replay import TraceAnswers, replay_gateway, replay_service
from reconciler.live.backend import AmbiguousWriteError, ExchangeError, NotFound, is_write
from reconciler.live.exchange import trace
from reconciler.live.exchange.redact import Pseudonyms, redact_tree
from reconciler.plan.planner import plan_desired
from tests.exchange.conftest import APP_ID, AppCertificate, Pki, backend_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "desired-state"


def example_snapshot() -> dict[str, Any]:
    return json.loads((EXAMPLE / "sandbox" / "contoso.json").read_text())


def plan_over(service: Any, tenant_id: str, pki: Pki, app_cert: AppCertificate,
              key_env: str, desired: Any = None) -> dict[str, Any]:
    desired = desired or load(EXAMPLE)
    backends: list[Any] = []

    def open_backend(state: Any) -> Any:
        backend = backend_for(service, tenant_id, pki, certificate_key=key_env,
                              certificate_thumbprint=app_cert.sha1)
        backends.append(backend)
        return backend

    try:
        result = plan_desired(desired, open_backend, customers=["contoso"])
    finally:
        for backend in backends:
            backend.close()
    return json.loads(result.plan.to_json())


def records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / trace.TRACE_FILE).read_text().splitlines()]


def test_a_recorded_plan_replays_to_the_identical_plan(start_service, pki: Pki,
                                                       app_cert: AppCertificate, key_env: str,
                                                       tmp_path: Path) -> None:
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)}, max_page_size=2,
                            faults=FaultConfig(seed=3, rate=0.2, slow_seconds=0.01,
                                               retry_after_choices=("0.01",),
                                               kinds=(FaultKind.THROTTLE, FaultKind.SERVER_ERROR)))
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    with trace.recording(tmp_path / "t", redact=False):
        recorded = plan_over(service, tenant_id, pki, app_cert, key_env)
    rows = records(tmp_path / "t")
    assert recorded["changes"] and rows
    assert {r["status"] for r in rows} >= {200, 429}  # the faults are in the trace
    assert any("@odata.nextLink" in (r.get("body") or {}) for r in rows)  # and the pages
    assert all(r["path"].endswith("/InvokeCommand") for r in rows)  # sign-in is not

    with replay_service(tmp_path / "t", ssl_context=pki.server_context) as replay:
        replay.identity.register(tenant_id, APP_ID, [app_cert.certificate])
        replayed = plan_over(replay, tenant_id, pki, app_cert, key_env)
    assert replayed == recorded
    assert not replay.answers.unrecorded


def test_errors_and_warnings_replay_and_an_unrecorded_request_fails_naming_it(
        start_service, pki: Pki, app_cert: AppCertificate, key_env: str, tmp_path: Path) -> None:
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)})
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    with trace.recording(tmp_path / "t", redact=False), backend_for(
            service, tenant_id, pki, certificate_key=key_env,
            certificate_thumbprint=app_cert.sha1) as backend:
        live = backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        with pytest.raises(NotFound) as gone:
            backend.invoke("Get-MailboxPermission", {"Identity": "gone@contoso.com"})
        office = next(m["Office"] for m in live.value
                      if m["PrimarySmtpAddress"] == "alice@contoso.com")
        no_op = backend.invoke("Set-Mailbox", {"Identity": "alice@contoso.com",
                                               "Office": office})
    assert no_op.warnings  # "…no settings of … have been modified"
    gateway = replay_gateway(TraceAnswers.load(tmp_path / "t"))
    assert gateway.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}) == live
    # Errors and warnings come back as recorded.
    with pytest.raises(NotFound) as replayed:
        gateway.invoke("Get-MailboxPermission", {"Identity": "gone@contoso.com"})
    assert (replayed.value.exception_type, replayed.value.status, str(replayed.value)) == (
        gone.value.exception_type, gone.value.status, str(gone.value))
    assert gateway.invoke("Set-Mailbox", {"Identity": "alice@contoso.com",
                                          "Office": office}) == no_op
    with pytest.raises(ExchangeError) as missing:
        gateway.invoke("Get-Mailbox", {"Identity": "nobody@contoso.com"})
    assert "not recorded" in str(missing.value)
    assert 'Get-Mailbox {"Identity": "nobody@contoso.com"}' in str(missing.value)


def shape(change: dict[str, Any]) -> tuple[Any, ...]:
    return (change["customer"], change["site"], change["type"], change["action"],
            [(op["cmdlet"], sorted(op["parameters"])) for op in change["operations"]])


def test_a_redacted_trace_plans_the_same_changes_under_pseudonyms(
        start_service, pki: Pki, app_cert: AppCertificate, key_env: str,
        tmp_path: Path) -> None:
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)}, max_page_size=3)
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    with trace.recording(tmp_path / "t") as writer:
        original = plan_over(service, tenant_id, pki, app_cert, key_env)
    pseudonyms = Pseudonyms.load(trace.pseudonyms_path(tmp_path / "t"))
    assert writer.redact and pseudonyms.originals()
    text = (tmp_path / "t" / trace.TRACE_FILE).read_text()
    for value in ("contoso", "alice", "Accueil", tenant_id, snapshot["recipients"][0]["Guid"]):
        assert value.lower() not in text.lower()
    fake_tenant = pseudonyms.guid(tenant_id)
    assert f"/adminapi/beta/{fake_tenant}/InvokeCommand" in text

    assert redact_tree(EXAMPLE, tmp_path / "repo", pseudonyms)
    with replay_service(tmp_path / "t", ssl_context=pki.server_context) as replay:
        replay.identity.register(fake_tenant, APP_ID, [app_cert.certificate])
        redacted = plan_over(replay, fake_tenant, pki, app_cert, key_env,
                             load(tmp_path / "repo"))
    assert not replay.answers.unrecorded
    assert redacted["summary"] == original["summary"]
    by_id = {c["id"]: c for c in redacted["changes"]}
    assert len(by_id) == len(original["changes"])
    for change in original["changes"]:
        twin = by_id[pseudonyms.string(change["id"], "Identity")]
        assert shape(twin) == shape(change)
        for op, twin_op in zip(change["operations"], twin["operations"], strict=True):
            assert twin_op["parameters"] == pseudonyms.value(op["parameters"])
        assert twin["id"] != change["id"] or "@" not in change["id"]


def test_no_secret_or_token_reaches_a_trace(start_service, pki: Pki, app_cert: AppCertificate,
                                            key_env: str, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)},
                            faults=FaultConfig(seed=1, rate=0.3, slow_seconds=0.01,
                                               retry_after_choices=("0.01",)))
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    for redact, name in ((True, "redacted"), (False, "raw")):
        with trace.recording(tmp_path / name, redact=redact), backend_for(
                service, tenant_id, pki, certificate_key=key_env,
                certificate_thumbprint=app_cert.sha1) as backend:
            backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
            service.identity.revoke_all()  # a 401, a new sign-in, the same request again
            backend.invoke("Get-Recipient", {"ResultSize": "Unlimited"})
            with contextlib.suppress(AmbiguousWriteError, ExchangeError):
                backend.invoke("Set-Mailbox", {"Identity": "alice@contoso.com",
                                               "Office": "Paris", "Password": "Secret-123!"})
            # A $batch (each sub-request carries its own Authorization) through the same client.
            token = backend.gateway._current_token()
            backend._client.post(
                f"{service.url}/adminapi/beta/{tenant_id}/$batch",
                headers={"Authorization": f"Bearer {token}"},
                json={"requests": [{"id": "0", "method": "POST", "url": "x",
                                    "headers": {"Authorization": f"Bearer {token}"},
                                    "body": {"CmdletInput": {"CmdletName": "Get-Mailbox"}}}]})
    assert service.identity.tokens_issued >= 2 and service.schedule.injected()
    written = "\n".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "$batch" in written and '"status": 401' in written
    everything = written + caplog.text
    key_lines = [line for line in app_cert.key_pem.decode().splitlines() if "-----" not in line]
    assert not any(line in everything for line in key_lines)
    for token in service.identity.issued:
        assert token not in everything
    assert "Secret-123!" not in everything
    assert not re.search(r"Bearer\s+(?!error=)\S", everything)
    assert not re.search(r"authorization['\"]?\s*[:,=]", everything, re.I)
    assert "eyJ" not in everything and "client_assertion" not in everything
    assert "oauth2" not in written  # sign-in is never recorded


def test_a_recorded_apply_replays_write_for_write(start_service, pki: Pki,
                                                  app_cert: AppCertificate, key_env: str,
                                                  tmp_path: Path) -> None:
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)})
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])

    def apply_over(target: Any, root: Path) -> tuple[Any, Any]:
        shutil.copytree(EXAMPLE / "customers", root / "customers")
        desired = load(root)

        def open_backend(state: Any) -> Any:
            return backend_for(target, tenant_id, pki, certificate_key=key_env,
                               certificate_thumbprint=app_cert.sha1, concurrency=1)

        plan = plan_desired(desired, open_backend, customers=["contoso"]).plan
        return plan, apply_plan(plan, desired, open_backend, root=root)

    with trace.recording(tmp_path / "t", redact=False):
        plan, report = apply_over(service, tmp_path / "first")
    assert report.ok and plan.operation_count > 10
    writes = [r for r in records(tmp_path / "t") if r.get("cmdlet") and is_write(r["cmdlet"])]
    assert len(writes) == sum(service.commits.values())

    with replay_service(tmp_path / "t", ssl_context=pki.server_context) as replay:
        replay.identity.register(tenant_id, APP_ID, [app_cert.certificate])
        replan, again = apply_over(replay, tmp_path / "second")
    assert not replay.answers.unrecorded
    assert replan.to_json() == plan.to_json()
    assert again.ok, render_report(again)
    # Every recorded write was asked for again, as often as it was recorded.
    keys = Counter(trace.request_key(r) for r in writes)
    assert {k: replay.answers.served[k] for k in keys} == keys


@pytest.mark.parametrize("command", [
    ["drift", "{repo}", "--customer", "contoso"],
    ["import", "--customer", "contoso", "{repo}", "--dry-run"],
    ["access", "{repo}", "--customer", "contoso", "--mailbox", "support-london@contoso.com"],
    ["apply", "{repo}", "--customer", "contoso", "--auto-approve", "--allow-large-changes"],
])
def test_every_command_that_talks_to_exchange_records_a_trace(
        command: list[str], start_service, pki: Pki, app_cert: AppCertificate, key_env: str,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)})
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE / "customers", repo / "customers")
    customer_yaml = repo / "customers" / "contoso" / "customer.yaml"
    text = customer_yaml.read_text()
    for line in text.splitlines():
        if "certificate_thumbprint:" in line:
            text = text.replace(line.split(":", 1)[1].split()[0], app_cert.sha1)
        if "app_id:" in line:
            text = text.replace(line.split(":", 1)[1].split()[0], APP_ID)
    customer_yaml.write_text(text)
    for name, value in {"RECONCILER_EXCHANGE_URL": service.url,
                        "RECONCILER_AUTHORITY_HOST": service.url,
                        "SSL_CERT_FILE": str(pki.ca_file),
                        "CONTOSO_EXO_KEY": app_cert.key_pem.decode()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    args = [a.format(repo=repo) for a in command]
    done = CliRunner().invoke(cli, [*args, "--live", "exchange", "--trace",
                                    str(tmp_path / "t")])
    assert done.exit_code in (0, 2), done.output
    rows = records(tmp_path / "t")
    assert f"Trace: {len(rows)} round trip(s) recorded in " in done.output
    assert trace.pseudonyms_path(tmp_path / "t").name in done.output
    assert rows and {r["cmdlet"] for r in rows} >= {"Get-Recipient"}
    assert all(r["tenant"] == Pseudonyms.load(
        trace.pseudonyms_path(tmp_path / "t")).guid(tenant_id) for r in rows)  # redacted
    if command[0] == "apply":
        assert any(is_write(r["cmdlet"]) for r in rows)


def test_replay_timing_waits_as_long_as_the_recording_did(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    record = {"seq": 1, "method": "POST", "path": "/adminapi/beta/t/InvokeCommand",
              "query": "", "cmdlet": "Get-Mailbox", "parameters": {}, "status": 200,
              "headers": {}, "body": {"value": []}, "elapsed_ms": 250.0}
    answers = TraceAnswers.of([record])
    slept: list[float] = []
    monkeypatch.setattr("reconciler.emulator.replay.time.sleep", slept.append)
    body = json.dumps({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {}}})
    url = "https://x/adminapi/beta/t/InvokeCommand"
    assert answers.reply("POST", url, body.encode(), "https://x")[0] == 200
    assert slept == []
    answers.reply("POST", url, body.encode(), "https://x", timing=True)
    assert slept == [0.25]


@pytest.mark.parametrize("shape", list(ErrorShape))
def test_a_redacted_error_in_every_shape_replays_as_the_same_error(
        shape: ErrorShape, start_service, pki: Pki, app_cert: AppCertificate, key_env: str,
        tmp_path: Path) -> None:
    snapshot = example_snapshot()
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)}, error_shape=shape)
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    with trace.recording(tmp_path / "t"):  # a backend opened in the block is recorded
        backend = backend_for(service, tenant_id, pki, certificate_key=key_env,
                              certificate_thumbprint=app_cert.sha1)
        with backend, pytest.raises(NotFound) as live:
            backend.invoke("Get-MailboxPermission", {"Identity": "gone@contoso.com"})
    pseudonyms = Pseudonyms.load(trace.pseudonyms_path(tmp_path / "t"))
    assert "gone" not in (tmp_path / "t" / trace.TRACE_FILE).read_text()
    gateway = replay_gateway(TraceAnswers.load(tmp_path / "t"))
    with pytest.raises(NotFound) as replayed:
        gateway.invoke("Get-MailboxPermission",
                       {"Identity": pseudonyms.address("gone@contoso.com")})
    assert replayed.value.exception_type == live.value.exception_type
    assert replayed.value.status == live.value.status


def test_a_damaged_trace_directory_is_refused_plainly_and_left_as_it_was(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / trace.MANIFEST_FILE).write_text("not json")
    with pytest.raises(trace.ReconcilerError, match=r"--trace .*damaged.*trace\.json"):
        trace.TraceWriter.open(damaged)
    mapped = tmp_path / "mapped"
    mapped.mkdir()
    trace.pseudonyms_path(mapped).write_text("not json")
    with pytest.raises(trace.ReconcilerError, match=r"pseudonyms\.json"):
        trace.TraceWriter.open(mapped)
    assert list(mapped.iterdir()) == []  # no manifest written for a trace that is refused


def test_a_record_that_cannot_be_written_never_loses_the_answer(tmp_path: Path) -> None:
    """Exchange has done what it answered: a full disk under the trace must not turn a done
    write into a failed one. The trace says it is incomplete, and why."""
    writer = trace.TraceWriter.open(tmp_path / "t")
    shutil.rmtree(tmp_path / "t")
    answered = httpx.MockTransport(lambda request: httpx.Response(200, json={"value": []}))
    with httpx.Client(transport=answered) as client:
        trace.attach(client, writer)
        response = client.post("https://outlook.office365.com/adminapi/beta/x/InvokeCommand",
                               json={"CmdletInput": {"CmdletName": "Set-Mailbox"}})
    assert response.status_code == 200 and response.json() == {"value": []}
    assert writer.recorded == 0
    assert "INCOMPLETE" in writer.summary() and "1 round trip(s) not recorded" in writer.summary()


def test_pseudonyms_that_cannot_be_saved_are_said_at_the_end(tmp_path: Path) -> None:
    writer = trace.TraceWriter.open(tmp_path / "t")
    trace.pseudonyms_path(tmp_path / "t").mkdir()  # in the way of the mapping
    writer.write({"method": "POST", "path": "/adminapi/beta/x/InvokeCommand",
                  "parameters": {"Identity": "alice@contoso.com"}})
    writer.close()
    assert writer.recorded == 1
    assert "INCOMPLETE" in writer.summary() and "pseudonyms not saved" in writer.summary()
