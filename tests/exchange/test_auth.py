"""Sign-in with the real msal against the fake identity endpoint, over TLS."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import msal
import pytest

from reconciler.live.backend import AuthenticationError
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
from reconciler.live.exchange.auth import MsalHttpAdapter
from tests.exchange.conftest import (
    APP_ID,
    PFX_PASSPHRASE,
    AppCertificate,
    Pki,
    backend_for,
    customer_for,
)
from tests.exchange.standin import StandIn

TENANT = "6f1c1f2e-0000-4000-8000-000000000001"


def _mailbox_count(backend: ExchangeBackend) -> int:
    with backend:
        return len(backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value)


def test_thumbprint_form_signs_rs256_with_sha1(start_service, pki: Pki, app_cert: AppCertificate,
                                               key_env: str) -> None:
    service = start_service({TENANT: StandIn(3)})
    service.identity.register(TENANT, APP_ID, [app_cert.cert_pem])
    thumbprint = ":".join(app_cert.sha1[i:i + 2] for i in range(0, 40, 2)).lower()
    backend = backend_for(service, TENANT, pki, certificate_key=key_env,
                          certificate_thumbprint=thumbprint)
    assert _mailbox_count(backend) == 3
    assert service.identity.assertions == [("RS256", "x5t")]


def test_public_certificate_form_signs_ps256_with_sha256(
        start_service, pki: Pki, app_cert: AppCertificate, tmp_path: Path) -> None:
    service = start_service({TENANT: StandIn(2)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    (tmp_path / "app.key").write_bytes(app_cert.key_pem)
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    backend = backend_for(service, TENANT, pki, certificate_key=f"file:{tmp_path / 'app.key'}",
                          certificate=f"file:{tmp_path / 'app.crt'}")
    assert _mailbox_count(backend) == 2
    assert service.identity.assertions == [("PS256", "x5t#S256")]


def test_pfx_with_passphrase(start_service, pki: Pki, app_cert: AppCertificate, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    service = start_service({TENANT: StandIn(4)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    (tmp_path / "app.pfx").write_bytes(app_cert.pfx)
    monkeypatch.setenv("APP_PFX_PASSPHRASE", PFX_PASSPHRASE)
    backend = backend_for(service, TENANT, pki, certificate_key=f"file:{tmp_path / 'app.pfx'}",
                          certificate_passphrase="env:APP_PFX_PASSPHRASE")
    assert _mailbox_count(backend) == 4
    assert service.identity.assertions == [("PS256", "x5t#S256")]


def test_pfx_base64_in_an_environment_variable(start_service, pki: Pki, app_cert: AppCertificate,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    monkeypatch.setenv("APP_PFX", base64.b64encode(app_cert.pfx).decode())
    (tmp_path / "passphrase").write_text(PFX_PASSPHRASE + "\n")
    backend = backend_for(service, TENANT, pki, certificate_key="env:APP_PFX",
                          certificate_passphrase=f"file:{tmp_path / 'passphrase'}")
    assert _mailbox_count(backend) == 1


def test_wrong_pfx_passphrase_is_reported(start_service, pki: Pki, app_cert: AppCertificate,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = start_service({TENANT: StandIn(1)})
    (tmp_path / "app.pfx").write_bytes(app_cert.pfx)
    monkeypatch.setenv("APP_PFX_PASSPHRASE", "wrong")
    backend = backend_for(service, TENANT, pki, certificate_key=f"file:{tmp_path / 'app.pfx'}",
                          certificate_passphrase="env:APP_PFX_PASSPHRASE")
    with pytest.raises(AuthenticationError, match="wrong passphrase"):
        _mailbox_count(backend)


def test_wrong_key_is_rejected_with_a_clear_message(
        start_service, pki: Pki, app_cert: AppCertificate, other_cert: AppCertificate,
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    # The registered certificate's thumbprint, but signed with another key.
    monkeypatch.setenv("WRONG_KEY", other_cert.key_pem.decode())
    backend = backend_for(service, TENANT, pki, certificate_key="env:WRONG_KEY",
                          certificate_thumbprint=app_cert.sha1)
    with pytest.raises(AuthenticationError) as caught:
        _mailbox_count(backend)
    message = str(caught.value)
    assert "invalid_client" in message and "AADSTS700027" in message
    assert "signature validation" in message
    assert "certificate is not uploaded" in message  # the hint
    assert "Trace ID" not in message
    assert service.identity.tokens_issued == 0


def test_unregistered_certificate_is_rejected(start_service, pki: Pki, app_cert: AppCertificate,
                                              other_cert: AppCertificate, tmp_path: Path) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    (tmp_path / "k.pem").write_bytes(other_cert.key_pem + other_cert.cert_pem)
    backend = backend_for(service, TENANT, pki, certificate_key=f"file:{tmp_path / 'k.pem'}")
    with pytest.raises(AuthenticationError, match="not registered on application"):
        _mailbox_count(backend)


def test_expired_assertion_is_rejected(start_service, pki: Pki, app_cert: AppCertificate,
                                       key_env: str) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    # The identity platform's clock is an hour ahead of the client's: msal's ten-minute
    # assertion arrives expired.
    service.identity.clock = lambda: time.time() + 3600
    backend = backend_for(service, TENANT, pki, certificate_key=key_env,
                          certificate_thumbprint=app_cert.sha1)
    with pytest.raises(AuthenticationError, match="AADSTS700024"):
        _mailbox_count(backend)


def test_wrong_tenant_hints_at_the_tenant_id(start_service, pki: Pki, app_cert: AppCertificate,
                                             key_env: str) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    backend = backend_for(service, "00000000-dead-4000-8000-000000000000", pki,
                          certificate_key=key_env, certificate_thumbprint=app_cert.sha1)
    with pytest.raises(AuthenticationError, match="tenant id is wrong"):
        _mailbox_count(backend)


def test_unknown_app_id_hints_at_consent(start_service, pki: Pki, app_cert: AppCertificate,
                                         key_env: str) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    backend = backend_for(service, TENANT, pki, certificate_key=key_env,
                          certificate_thumbprint=app_cert.sha1,
                          app_id="11111111-0000-4000-8000-000000000000")
    with pytest.raises(AuthenticationError, match=r"AADSTS700016.*admin consent"):
        _mailbox_count(backend)


def test_missing_key_variable_names_it(start_service, pki: Pki) -> None:
    service = start_service({TENANT: StandIn(1)})
    backend = backend_for(service, TENANT, pki, certificate_key="env:NOT_SET_ANYWHERE",
                          certificate_thumbprint="AB" * 20)
    with pytest.raises(AuthenticationError, match="NOT_SET_ANYWHERE is not set"):
        _mailbox_count(backend)


def test_thumbprint_that_does_not_match_the_certificate(
        start_service, pki: Pki, app_cert: AppCertificate, key_env: str, tmp_path: Path) -> None:
    service = start_service({TENANT: StandIn(1)})
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    backend = backend_for(service, TENANT, pki, certificate_key=key_env,
                          certificate=f"file:{tmp_path / 'app.crt'}",
                          certificate_thumbprint="AB" * 20)
    with pytest.raises(AuthenticationError, match="does not match the certificate"):
        _mailbox_count(backend)


def test_tls_trust_from_ssl_cert_file(start_service, pki: Pki, app_cert: AppCertificate,
                                      key_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = start_service({TENANT: StandIn(2)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("RECONCILER_EXCHANGE_URL", service.url)
    monkeypatch.setenv("RECONCILER_AUTHORITY_HOST", service.url)
    customer = customer_for(service, TENANT, certificate_key=key_env,
                            certificate_thumbprint=app_cert.sha1, exchange_url=None,
                            authority_host=None)
    backend = ExchangeBackend(customer)  # no verify override: SSL_CERT_FILE, from the env
    assert backend.settings.exchange_url == service.url
    assert _mailbox_count(backend) == 2


def test_untrusted_server_certificate_fails_closed(start_service, pki: Pki,
                                                   app_cert: AppCertificate, key_env: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    service = start_service({TENANT: StandIn(2)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    customer = customer_for(service, TENANT, certificate_key=key_env,
                            certificate_thumbprint=app_cert.sha1)
    with pytest.raises(AuthenticationError, match="cannot reach the identity endpoint"):
        _mailbox_count(ExchangeBackend(customer))


def test_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.model import Tenant

    env = {"RECONCILER_EXCHANGE_URL": "outlook.office365.us",
           "RECONCILER_AUTHORITY_HOST": "https://login.microsoftonline.us/"}
    tenant = Tenant("t", "t.onmicrosoft.com", concurrency=2)
    settings = ExchangeSettings.for_tenant(tenant, env)
    assert settings.exchange_url == "https://outlook.office365.us"
    assert settings.authority_host == "https://login.microsoftonline.us"
    assert settings.concurrency == 2
    own = Tenant("t", "t.onmicrosoft.com", exchange_url="https://outlook.office365.cn",
                 authority_host="https://login.partner.microsoftonline.cn")
    settings = ExchangeSettings.for_tenant(own, env)
    assert settings.exchange_url == "https://outlook.office365.cn"
    assert settings.authority_host == "https://login.partner.microsoftonline.cn"
    assert ExchangeSettings.for_tenant(Tenant("t", "x"), {}).concurrency == 4


def test_a_bare_httpx_client_corrupts_the_assertion_and_the_adapter_does_not(
        start_service, pki: Pki, app_cert: AppCertificate) -> None:
    service = start_service({TENANT: StandIn(1)})
    service.identity.register(TENANT, APP_ID, [app_cert.certificate])
    credential = {"private_key": app_cert.key_pem.decode(), "thumbprint": app_cert.sha1}
    with httpx.Client(verify=pki.client_context) as client:
        results = []
        for http_client in (client, MsalHttpAdapter(client)):
            app = msal.ConfidentialClientApplication(
                APP_ID, authority=f"{service.url}/{TENANT}", client_credential=credential,
                http_client=http_client, instance_discovery=False)
            results.append(app.acquire_token_for_client([f"{service.url}/.default"]))
    bare, adapted = results
    assert "access_token" not in bare and "AADSTS50027" in bare["error_description"]
    assert "access_token" in adapted


def test_live_exchange_opens_this_connector(app_cert: AppCertificate, key_env: str,
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILER_EXCHANGE_URL", raising=False)
    monkeypatch.delenv("RECONCILER_AUTHORITY_HOST", raising=False)
    from reconciler.live.backend import Backend
    from reconciler.model import Customer, Tenant
    from reconciler.sources.backends import open_backend

    customer = Customer("contoso", "Contoso", Tenant(
        TENANT, "contoso.onmicrosoft.com", app_id=APP_ID, certificate_key=key_env,
        certificate_thumbprint=app_cert.sha1), ())
    backend = open_backend("exchange", customer, tmp_path)  # no network until the first call
    try:
        assert isinstance(backend, ExchangeBackend) and isinstance(backend, Backend)
        assert backend.settings.exchange_url == "https://outlook.office365.com"
        assert backend.gateway.endpoint == (
            f"https://outlook.office365.com/adminapi/beta/{TENANT}/InvokeCommand")
    finally:
        backend.close()
