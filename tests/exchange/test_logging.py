"""No secret reaches a log line: a full run at DEBUG, every logger captured and searched."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.emulator.faults import FaultConfig
from reconciler.live.backend import AmbiguousWriteError, AuthenticationError
from reconciler.live.reader import read_live
from tests.exchange.conftest import APP_ID, AppCertificate, Pki, backend_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "desired-state"


def test_debug_logs_of_a_full_run_hold_no_secret(start_service, pki: Pki,
                                                 app_cert: AppCertificate,
                                                 other_cert: AppCertificate, key_env: str,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    desired = load(EXAMPLE)
    state = desired.customers["contoso"]
    snapshot = json.loads((EXAMPLE / "sandbox" / "contoso.json").read_text())
    tenant_id = snapshot["tenant"]["id"]
    service = start_service({tenant_id: Emulator(snapshot)},
                            faults=FaultConfig(seed=1, rate=0.3, slow_seconds=0.01,
                                               retry_after_choices=("0.01",)))
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    errors: list[str] = []
    with backend_for(service, tenant_id, pki, certificate_key=key_env,
                     certificate_thumbprint=app_cert.sha1) as backend:
        read_live(state, backend)
        service.identity.revoke_all()  # forces a 401 and a token refresh
        read_live(state, backend)
        mailbox = next(iter(state.resources))
        for office in ("Paris", "London", "Berlin", "Rome"):
            try:
                backend.invoke("Set-Mailbox", {"Identity": mailbox, "Office": office})
            except AmbiguousWriteError as e:
                errors.append(str(e))
    # A failed sign-in logs and raises too.
    monkeypatch.setenv("WRONG_KEY", other_cert.key_pem.decode())
    with backend_for(service, tenant_id, pki, certificate_key="env:WRONG_KEY",
                     certificate_thumbprint=app_cert.sha1, app_id=APP_ID.upper()) as backend:
        with pytest.raises(AuthenticationError) as failed:
            backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
        errors.append(str(failed.value))

    assert service.identity.tokens_issued >= 2 and service.schedule.injected()
    logged = caplog.text + "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "reconciler.live.exchange" in {r.name.rsplit(".", 1)[0] for r in caplog.records}
    everything = logged + "\n".join(errors)
    for cert in (app_cert, other_cert):
        key_lines = [line for line in cert.key_pem.decode().splitlines() if "-----" not in line]
        assert not any(line in everything for line in key_lines)
    assert "PRIVATE KEY" not in everything
    for token in service.identity.issued:
        assert token not in everything
    # A server's WWW-Authenticate challenge says "Bearer error=…"; a credential never shows.
    assert not re.search(r"Bearer\s+(?!error=)\S", everything)
    assert not re.search(r"authorization['\"]?\s*[:,=]", everything, re.I)
    assert "eyJ" not in everything  # the start of any JWT, the client assertion included
    assert "client_assertion" not in everything
