"""Reading a tenant through HTTP (msal + httpx + the fake gateway) gives exactly what reading
the same tenant in-process gives: the connector adds transport, never meaning."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.live.reader import read_live
from tests.exchange.conftest import APP_ID, AppCertificate, Pki, backend_for
from tests.exchange.tenants import TENANT_ID, synthetic_snapshot

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "desired-state"
BULK = {"ResultSize": "Unlimited"}


def test_bulk_reads_match_the_in_process_emulator(start_service, pki: Pki,
                                                  app_cert: AppCertificate, key_env: str) -> None:
    snapshot = synthetic_snapshot(2300, grants_per_mailbox=2)
    served = Emulator(snapshot, validate=False)
    local = Emulator(snapshot, validate=False)
    service = start_service({TENANT_ID: served})
    service.identity.register(TENANT_ID, APP_ID, [app_cert.certificate])
    with backend_for(service, TENANT_ID, pki, certificate_key=key_env,
                     certificate_thumbprint=app_cert.sha1) as backend:
        for cmdlet, select in (("Get-Mailbox", None), ("Get-Mailbox", ["Identity", "Office"]),
                               ("Get-Recipient", None), ("Get-RecipientPermission", None),
                               ("Get-AcceptedDomain", None), ("Get-RetentionPolicy", None)):
            params = {} if cmdlet in ("Get-AcceptedDomain", "Get-RetentionPolicy") else BULK
            assert backend.invoke(cmdlet, params, select) == local.invoke(cmdlet, params, select)
        for n in (0, 1, 2299):
            one = {"Identity": f"mbx{n:06d}"}
            assert (backend.invoke("Get-MailboxPermission", one)
                    == local.invoke("Get-MailboxPermission", one))
    assert service.calls["Get-RecipientPermission"] == 7  # 2300 x 3 entries, pages of 1000


def test_full_read_of_the_example_tenants_matches(start_service, pki: Pki,
                                                  app_cert: AppCertificate,
                                                  key_env: str) -> None:
    desired = load(EXAMPLE)
    for customer_id, state in desired.customers.items():
        snapshot = json.loads((EXAMPLE / "sandbox" / f"{customer_id}.json").read_text())
        tenant_id = snapshot["tenant"]["id"]
        service = start_service({tenant_id: Emulator(snapshot)})
        service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
        in_process = read_live(state, Emulator(snapshot))
        with backend_for(service, tenant_id, pki, certificate_key=key_env,
                         certificate_thumbprint=app_cert.sha1) as backend:
            over_http = read_live(state, backend)
        assert over_http.state.resources == in_process.state.resources
        assert over_http.exists_as == in_process.exists_as
        assert over_http.ambiguous_placement == in_process.ambiguous_placement
        assert in_process.state.resources, customer_id
        for rid, resource in in_process.state.resources.items():
            # Equality of the model ignores source positions; compare every field's value.
            assert dataclasses.asdict(over_http.state.resources[rid]) == dataclasses.asdict(
                resource)
