"""tenant.cloud fills the REST base, the authority and the token audience; tenant.exchange_resource
overrides the audience; a configured URL (a proxy's) never changes what the token is for."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired import load
from reconciler.errors import ReconcilerError
from reconciler.live.backend import AuthenticationError
from reconciler.live.exchange import ExchangeSettings
from reconciler.model import Tenant
from tests.desired.conftest import CUSTOMER
from tests.exchange.conftest import APP_ID, AppCertificate, Pki, backend_for
from tests.exchange.standin import StandIn
from tests.exchange.tenants import TENANT_ID
from tests.trees import write_customer_tree

# The documented table (docs/exchange.md §5), written out here rather than read from the product.
EXPECTED = {
    None: ("https://outlook.office365.com", "https://login.microsoftonline.com",
           "https://outlook.office365.com"),
    "commercial": ("https://outlook.office365.com", "https://login.microsoftonline.com",
                   "https://outlook.office365.com"),
    "gcc": ("https://outlook.office365.com", "https://login.microsoftonline.com",
            "https://outlook.office365.com"),
    "gcc_high": ("https://outlook.office365.us", "https://login.microsoftonline.us",
                 "https://outlook.office365.us"),
    "dod": ("https://outlook-dod.office365.us", "https://login.microsoftonline.us",
            "https://outlook-dod.office365.us"),
    "china": ("https://outlook.office365.cn", "https://login.partner.microsoftonline.cn",
              "https://partner.outlook.cn"),
}


@pytest.mark.parametrize("cloud", list(EXPECTED))
def test_each_cloud_fills_rest_base_authority_and_audience(cloud: str | None) -> None:
    settings = ExchangeSettings.for_tenant(Tenant("t", "t.onmicrosoft.com", cloud=cloud), {})
    assert (settings.exchange_url, settings.authority_host, settings.resource) == (
        EXPECTED[cloud])


def test_a_proxy_url_never_changes_the_audience() -> None:
    proxy = "https://exo-proxy.contoso.net/exchange"
    own = ExchangeSettings.for_tenant(Tenant("t", "x", cloud="gcc_high", exchange_url=proxy), {})
    assert own.exchange_url == proxy and own.resource == "https://outlook.office365.us"
    by_env = ExchangeSettings.for_tenant(Tenant("t", "x"), {"RECONCILER_EXCHANGE_URL": proxy})
    assert by_env.exchange_url == proxy and by_env.resource == "https://outlook.office365.com"


def test_exchange_resource_overrides_the_audience() -> None:
    settings = ExchangeSettings.for_tenant(Tenant(
        "t", "x", cloud="china", exchange_resource="https://outlook.office365.cn/.default"), {})
    assert settings.resource == "https://outlook.office365.cn"
    assert settings.authority_host == "https://login.partner.microsoftonline.cn"


def test_an_unknown_cloud_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown cloud 'azure-germany'"):
        ExchangeSettings.for_tenant(Tenant("t", "x", cloud="azure-germany"), {})


# --- over TLS: the fake service accepts only tokens for the cloud it plays ---------------------


def _connect(start_service, pki: Pki, app_cert: AppCertificate, key_env: str,
             audience: str | None = None, **tenant: str):
    options = {"audience": audience} if audience else {}
    service = start_service({TENANT_ID: StandIn(2)}, **options)
    service.identity.register(TENANT_ID, APP_ID, [app_cert.certificate])
    backend = backend_for(service, TENANT_ID, pki, certificate_key=key_env,
                          certificate_thumbprint=app_cert.sha1, **tenant)
    return service, backend


def _audiences(service) -> set[str]:
    return {service.identity.validate(token).audience for token in service.identity.issued}


def test_through_a_proxy_the_token_is_still_for_exchange(start_service, pki: Pki,
                                                         app_cert: AppCertificate,
                                                         key_env: str) -> None:
    # exchange_url is the fake service on 127.0.0.1, standing where a proxy would.
    service, backend = _connect(start_service, pki, app_cert, key_env)
    with backend:
        assert len(backend.invoke("Get-Mailbox").value) == 2
    assert _audiences(service) == {"https://outlook.office365.com"}
    assert service.unauthorized == 0


@pytest.mark.parametrize("cloud", ["gcc_high", "dod"])
def test_a_sovereign_cloud_signs_in_for_its_own_exchange(start_service, pki: Pki,
                                                         app_cert: AppCertificate, key_env: str,
                                                         cloud: str) -> None:
    audience = EXPECTED[cloud][2]
    service, backend = _connect(start_service, pki, app_cert, key_env, audience, cloud=cloud)
    with backend:
        assert len(backend.invoke("Get-Mailbox").value) == 2
    assert _audiences(service) == {audience}


def test_a_token_for_another_cloud_is_refused_with_a_hint(start_service, pki: Pki,
                                                          app_cert: AppCertificate,
                                                          key_env: str) -> None:
    service, backend = _connect(start_service, pki, app_cert, key_env,
                                "https://outlook.office365.us")
    with backend, pytest.raises(AuthenticationError, match=r"tenant\.cloud"):
        backend.invoke("Get-Mailbox")
    assert service.unauthorized == 2


def test_exchange_resource_is_the_audience_over_tls(start_service, pki: Pki,
                                                    app_cert: AppCertificate,
                                                    key_env: str) -> None:
    service, backend = _connect(start_service, pki, app_cert, key_env,
                                "https://partner.outlook.cn", cloud="china",
                                exchange_resource="https://partner.outlook.cn/")
    with backend:
        assert backend.invoke("Get-Mailbox").value
    assert _audiences(service) == {"https://partner.outlook.cn"}


# --- the YAML ----------------------------------------------------------------------------------

KEY_LINE = "    certificate_key: env:ACME_KEY\n"


def _customer_yaml(cloud: str) -> str:
    return CUSTOMER.replace(KEY_LINE, f"{KEY_LINE}    cloud: {cloud}\n"
                            "    exchange_resource: https://outlook-dod.office365.us\n")


def test_cloud_and_exchange_resource_are_read_from_customer_yaml(tmp_path: Path) -> None:
    write_customer_tree(tmp_path, "acme", _customer_yaml("dod"), {}, {})
    tenant = load(tmp_path).customers["acme"].customer.tenant
    assert (tenant.cloud, tenant.exchange_resource) == ("dod",
                                                         "https://outlook-dod.office365.us")


def test_an_unknown_cloud_in_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    write_customer_tree(tmp_path, "acme", _customer_yaml("germany"), {}, {})
    with pytest.raises(ReconcilerError) as raised:
        load(tmp_path)
    assert "customer.yaml:7" in str(raised.value) and "cloud" in str(raised.value)
