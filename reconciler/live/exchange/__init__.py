"""The Exchange Online backend: msal certificate sign-in and the admin REST gateway over httpx.

``ExchangeBackend(customer)`` implements :class:`reconciler.live.backend.Backend`, so the reader,
the planner and apply use it exactly as they use the sandbox. Where it connects:

- Cloud: ``tenant.cloud`` (commercial, gcc, gcc_high, dod, china; default commercial) gives
  the defaults below (``clouds.py``).
- Exchange endpoint: ``tenant.exchange_url``, else ``RECONCILER_EXCHANGE_URL``, else the cloud's
  REST base.
- Sign-in authority: ``tenant.authority_host``, else ``RECONCILER_AUTHORITY_HOST``, else the
  cloud's authority.
- Token audience: ``tenant.exchange_resource``, else the cloud's Exchange resource; never the
  endpoint's URL, which may be a proxy's.
- TLS: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else the system trust store (certifi's
  bundle when the system has none).
- Parallel requests per tenant: ``tenant.concurrency``, else 4, shared by every backend of the
  tenant in the process.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from reconciler.live.backend import BadParameter, CmdletResult, is_write
from reconciler.live.exchange import trace
from reconciler.live.exchange.auth import DEFAULT_AUTHORITY_HOST, TokenProvider
from reconciler.live.exchange.batch import Batcher
from reconciler.live.exchange.clouds import DEFAULT_CLOUD, audience, cloud_named
from reconciler.live.exchange.gateway import DEFAULT_MAX_PAGES, Gateway, RetryPolicy
from reconciler.model import Customer, Tenant

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_EXCHANGE_URL",
    "ExchangeBackend",
    "ExchangeSettings",
    "RetryPolicy",
    "open_exchange_backend",
    "trust_context",
]

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE_URL = "https://outlook.office365.com"
# Microsoft's module and its peers send at most 10 calls in a $batch (GATEWAY-FACTS §a).
DEFAULT_BATCH_SIZE = 10
DEFAULT_CONCURRENCY = 4  # real per-tenant budgets are unpublished; 1-4 is the safe range


def _with_scheme(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"https://{url}"


def trust_context() -> ssl.SSLContext:
    """TLS verification from SSL_CERT_FILE / SSL_CERT_DIR, else the system store."""
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    has_system_store = bool(paths.cafile) or bool(paths.capath and os.listdir(paths.capath))
    if not has_system_store:
        import certifi  # httpx's dependency: a bundle for systems without a store

        context.load_verify_locations(cafile=certifi.where())
    return context


@dataclass(frozen=True)
class ExchangeSettings:
    cloud: str = DEFAULT_CLOUD
    exchange_url: str = DEFAULT_EXCHANGE_URL
    authority_host: str = DEFAULT_AUTHORITY_HOST
    resource: str = DEFAULT_EXCHANGE_URL  # the token audience
    concurrency: int = DEFAULT_CONCURRENCY
    batch_size: int = DEFAULT_BATCH_SIZE  # reads per $batch request; 1: no $batch
    timeout: httpx.Timeout = field(
        default_factory=lambda: httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=300.0))
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    page_size: int = 1000
    max_pages: int = DEFAULT_MAX_PAGES
    verify: ssl.SSLContext | None = None  # None: trust_context()

    @classmethod
    def for_tenant(cls, tenant: Tenant, environ: Mapping[str, str] | None = None,
                   **overrides: Any) -> ExchangeSettings:
        env = os.environ if environ is None else environ
        try:
            cloud = cloud_named(tenant.cloud)
        except ValueError as e:
            raise ValueError(f"tenant {tenant.id}: {e}") from None
        settings = cls(
            cloud=cloud.name,
            exchange_url=_with_scheme(tenant.exchange_url or env.get("RECONCILER_EXCHANGE_URL")
                                      or cloud.rest_base),
            authority_host=_with_scheme(tenant.authority_host
                                        or env.get("RECONCILER_AUTHORITY_HOST")
                                        or cloud.authority_host),
            # The audience names the service, not the way to it: never the exchange_url.
            resource=audience(tenant.exchange_resource or cloud.resource),
            concurrency=tenant.concurrency or DEFAULT_CONCURRENCY,
            # 0 says "off" as 1 does: never the default (which batches).
            batch_size=DEFAULT_BATCH_SIZE if tenant.batch_size is None
            else max(1, tenant.batch_size),
        )
        if settings.concurrency < 1:
            raise ValueError(f"tenant {tenant.id}: concurrency must be at least 1")
        return replace(settings, **overrides)


_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def _tenant_slots(tenant_id: str, limit: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        return _slots.setdefault((tenant_id.lower(), limit), threading.BoundedSemaphore(limit))


class ExchangeBackend:
    """A connection to one customer's Exchange Online tenant."""

    read_only = False

    def __init__(
        self,
        customer: Customer,
        *,
        settings: ExchangeSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        tenant = customer.tenant
        self.customer = customer
        self.settings = settings or ExchangeSettings.for_tenant(tenant)
        s = self.settings
        pool = s.concurrency + 2
        self._client = httpx.Client(
            verify=s.verify or trust_context(),
            timeout=s.timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"User-Agent": "exchange-reconciler"},
            trust_env=True,  # HTTPS_PROXY / NO_PROXY
        )
        trace.attach(self._client)  # --trace DIR: every gateway round trip, recorded
        tokens = TokenProvider(tenant, authority_host=s.authority_host,
                               resource=s.resource, http_client=self._client,
                               sleep=sleep)
        self.gateway = Gateway(
            self._client,
            exchange_url=s.exchange_url,
            tenant_id=tenant.id,
            tokens=tokens,
            concurrency=_tenant_slots(tenant.id, s.concurrency),
            retry=s.retry,
            page_size=s.page_size,
            max_pages=s.max_pages,
            sleep=sleep,
        )
        # A trace replays call for call, so a traced run sends one request per call.
        self._batcher = (Batcher(self.gateway.invoke_batch, self.gateway.invoke, s.batch_size)
                         if s.batch_size > 1 and trace.active() is None else None)
        log.debug("exchange backend for %s: %s cloud, %s (authority %s, audience %s, "
                  "concurrency %d)", customer.id, s.cloud, s.exchange_url, s.authority_host,
                  s.resource, s.concurrency)

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult:
        if parameters and "Identity" in parameters and not str(
                parameters["Identity"] or "").strip():
            # Some Get cmdlets answer an empty Identity with every object in the tenant.
            raise BadParameter(f"{cmdlet}: refusing to send an empty Identity", cmdlet=cmdlet,
                               exception_type="ParameterBindingValidationException")
        if self._batcher is not None and not is_write(cmdlet) and self.gateway.batching:
            return self._batcher.call(cmdlet, parameters, select)
        return self.gateway.invoke(cmdlet, parameters, select)

    @property
    def batch_size(self) -> int:
        """How many reads may usefully be in flight per request slot (the reader runs that many
        times ``concurrency`` at once)."""
        return self._batcher.size if self._batcher is not None and self.gateway.batching else 1

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ExchangeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_exchange_backend(customer: Customer) -> ExchangeBackend:
    """The backend ``--live exchange`` uses for ``customer``."""
    return ExchangeBackend(customer)
