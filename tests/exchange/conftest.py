"""Fixtures: a test CA, an app certificate in every form, and the fake Exchange Online service
(gateway + identity endpoint) on 127.0.0.1 over TLS, started and stopped by each test."""

from __future__ import annotations

import datetime
import ssl
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from reconciler.emulator.faults import FaultConfig
from reconciler.emulator.service import EmulatorLike, FakeExchangeService
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings, RetryPolicy
from reconciler.model import Customer, Tenant

APP_ID = "2b8c0d7e-0000-4000-8000-0000000000aa"
PFX_PASSPHRASE = "correct horse battery staple"
# Fast enough for a test suite, same logic as production.
FAST_RETRY = RetryPolicy(attempts=8, throttle_attempts=12, backoff_base=0.002,
                         backoff_cap=0.02, max_retry_after=1.0)


@dataclass(frozen=True)
class AppCertificate:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    key_pem: bytes
    cert_pem: bytes
    pfx: bytes  # PKCS#12 protected by PFX_PASSPHRASE

    @property
    def sha1(self) -> str:
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()


def make_app_certificate(subject: str = "reconciler") -> AppCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    pfx = pkcs12.serialize_key_and_certificates(
        b"reconciler", key, certificate, None,
        serialization.BestAvailableEncryption(PFX_PASSPHRASE.encode()))
    return AppCertificate(key, certificate, key_pem,
                          certificate.public_bytes(serialization.Encoding.PEM), pfx)


@pytest.fixture(scope="session")
def app_cert() -> AppCertificate:
    return make_app_certificate()


@pytest.fixture(scope="session")
def other_cert() -> AppCertificate:
    return make_app_certificate("someone-else")


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca, server, client, ca_file)


@pytest.fixture
def start_service(pki: Pki) -> Iterator[Callable[..., FakeExchangeService]]:
    """``start_service(tenants, **options)`` -> a started FakeExchangeService over TLS."""
    started: list[FakeExchangeService] = []

    def start(tenants: Mapping[str, EmulatorLike], **options: Any) -> FakeExchangeService:
        service = FakeExchangeService(tenants, **options)
        service.start(ssl_context=pki.server_context)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch, app_cert: AppCertificate) -> str:
    monkeypatch.setenv("RECONCILER_TEST_KEY", app_cert.key_pem.decode())
    return "env:RECONCILER_TEST_KEY"


def serve_customer(state: Any, service: FakeExchangeService, tenant_id: str,
                   app_cert: AppCertificate, key_env: str, **tenant: Any) -> None:
    """Point a loaded customer's tenant at the fake service, signing in with the test's app
    certificate (registered with the service's identity endpoint)."""
    service.identity.register(tenant_id, APP_ID, [app_cert.certificate])
    state.customer = replace(state.customer, tenant=replace(
        state.customer.tenant, id=tenant_id, app_id=APP_ID, exchange_url=service.url,
        authority_host=service.url, certificate_key=key_env,
        certificate_thumbprint=app_cert.sha1, **tenant))


def customer_for(service: FakeExchangeService, tenant_id: str, **tenant: Any) -> Customer:
    fields: dict[str, Any] = {"app_id": APP_ID, "exchange_url": service.url,
                              "authority_host": service.url}
    fields.update(tenant)
    return Customer("contoso", "Contoso", Tenant(tenant_id, "contoso.onmicrosoft.com", **fields),
                    ("contoso.com",))


def backend_for(service: FakeExchangeService, tenant_id: str, pki: Pki, *,
                settings: Mapping[str, Any] | None = None, **tenant: Any) -> ExchangeBackend:
    customer = customer_for(service, tenant_id, **tenant)
    base = ExchangeSettings.for_tenant(customer.tenant, verify=pki.client_context,
                                       retry=FAST_RETRY)
    return ExchangeBackend(customer, settings=replace(base, **(settings or {})))


def no_faults() -> FaultConfig:
    return FaultConfig()


def plain_client(pki: Pki) -> httpx.Client:
    return httpx.Client(verify=pki.client_context, timeout=30)


@pytest.fixture
def connect(start_service, pki: Pki, app_cert: AppCertificate, key_env: str):
    """``connect(snapshot_size, **service_options)`` -> (service, emulator, backend): the
    connector signed in to a fake service holding a synthetic tenant."""
    from reconciler.emulator import Emulator
    from tests.exchange.tenants import TENANT_ID, synthetic_snapshot

    opened: list[ExchangeBackend] = []

    def connect(size: int = 30, *, register: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None, **options: Any):
        emulator = Emulator(synthetic_snapshot(size), validate=False)
        service = start_service({TENANT_ID: emulator}, **options)
        service.identity.register(TENANT_ID, APP_ID, [app_cert.certificate], **(register or {}))
        backend = backend_for(service, TENANT_ID, pki, certificate_key=key_env,
                              certificate_thumbprint=app_cert.sha1, settings=settings)
        opened.append(backend)
        return service, emulator, backend

    yield connect
    for backend in opened:
        backend.close()


def read_serve_banner(server: subprocess.Popen[str]) -> tuple[list[str], dict[str, str]]:
    """The lines ``reconciler sandbox serve`` prints up to "Ctrl+C", and the environment that
    points a client at it (its URL as Exchange and as the sign-in authority, its CA file)."""
    assert server.stdout is not None
    lines: list[str] = []
    for line in server.stdout:
        lines.append(line)
        if line.startswith("Ctrl+C"):
            break
    assert any(line.startswith("Serving on") for line in lines), "".join(lines)
    url = next(line.split()[2] for line in lines if line.startswith("Serving on"))
    ca_file = next(line.split("=", 1)[1].strip() for line in lines if "SSL_CERT_FILE" in line)
    return lines, {"SSL_CERT_FILE": ca_file, "RECONCILER_EXCHANGE_URL": url,
                   "RECONCILER_AUTHORITY_HOST": url}
