"""A fake Exchange Online admin REST gateway, served over real sockets.

It puts the InvokeCommand protocol in front of any emulator-like object (anything with
``invoke(cmdlet, parameters, select) -> CmdletResult`` raising the typed errors of
``reconciler.live.backend``), so the connector's real msal and httpx code paths can be tested
without a tenant. What it reproduces, because the connector must cope with each:

- ``POST /adminapi/beta/{tenant}/InvokeCommand`` with a Bearer token issued by the fake identity
  endpoint (served on the same port) and an ``X-AnchorMailbox`` header, both required;
- ``Prefer: odata.maxpagesize=N`` paging; the next page is a POST of the same body to
  ``@odata.nextLink``, whose opaque ``$skiptoken`` refers to the result computed by the first page;
- ``?$select=``, ``@adminapi.warnings``, and Exchange's error bodies, including not-found both as
  404 and as 400 with ``ManagementObjectNotFoundException``, the empty 403 wrongly labelled gzip
  for an unknown cmdlet, and the 403 whose reason is only in ``x-ms-diagnostics``;
- faults from a seeded schedule (see ``faults.py``) and a fixed latency per request.

``$batch`` (GATEWAY-FACTS §a): up to ``batch_size`` InvokeCommand sub-requests in one POST, each
answered as if sent alone (its own authorization, faults, paging and errors) under its ``id``;
the latency is paid once per batch. A malformed batch, too many sub-requests or a repeated id
is a 400; ``batch_size=0`` plays a gateway without ``$batch`` (404).

Counters: ``calls`` (POSTs per cmdlet, pages and faulted ones included; a batch counts once
as ``$batch``, its sub-requests in ``batched``), ``commits`` (writes that
changed the tenant, per cmdlet) and ``commits_by_request`` (per ``client-request-id``), so tests
can prove a write never ran twice.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import ipaddress
import json
import logging
import secrets
import ssl
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from reconciler.emulator.faults import (
    TRANSIENT_TYPE,
    ErrorShape,
    Fault,
    FaultConfig,
    FaultKind,
    FaultSchedule,
    Phase,
)
from reconciler.emulator.identity import FakeIdentity, Reply
from reconciler.live.backend import (
    AlreadyExists,
    BadParameter,
    CmdletResult,
    ExchangeError,
    Forbidden,
    NotFound,
    NotPresent,
    Throttled,
    TransientError,
    is_write,
)

log = logging.getLogger(__name__)

INVOKE_PATH = "InvokeCommand"
BATCH_PATH = "$batch"
# The most sub-requests the service takes in one $batch: what Microsoft's module and CIPP send
# (GATEWAY-FACTS §a; the real server-side limit is not documented).
MAX_BATCH = 10
DEFAULT_AUDIENCE = "https://outlook.office365.com"  # Exchange Online, commercial cloud
DEFAULT_PAGE_SIZE = 1000
# Cmdlets whose not-found answer is a plain 404; the rest answer 400 with
# ManagementObjectNotFoundException. Exchange does both, and the connector must map both.
NOT_FOUND_AS_404 = frozenset({
    "Get-Mailbox", "Get-Recipient", "Get-User", "Get-DistributionGroup", "Get-EXOMailbox",
    "Get-MailboxAutoReplyConfiguration",
})
_DEFAULT_TYPES: dict[type[ExchangeError], str] = {
    NotFound: "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
    AlreadyExists: "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException",
    NotPresent: "Microsoft.Exchange.Management.Tasks.MemberNotFoundException",
    BadParameter: "System.Management.Automation.ParameterBindingException",
    Forbidden: "Microsoft.Exchange.Configuration.Authorization.AccessDeniedException",
}


def _qualified(name: str | None) -> str | None:
    """Exchange names its exceptions in full; the emulator may give only the last part."""
    if not name or "." in name:
        return name
    known = next((full for full in _DEFAULT_TYPES.values() if full.endswith(f".{name}")), None)
    return known or f"Microsoft.Exchange.Management.Tasks.{name}"


class EmulatorLike(Protocol):
    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult: ...


def known_cmdlets() -> frozenset[str]:
    """The cmdlets of the official reference extract shipped with the product."""
    path = Path(__file__).resolve().parent.parent / "data" / "exchange-cmdlets.json"
    return frozenset(json.loads(path.read_text(encoding="utf-8"))["cmdlets"])


@dataclass
class _Pages:
    body_digest: str
    value: list[dict[str, Any]]
    created: float


@dataclass
class _Tenant:
    id: str
    emulator: EmulatorLike
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeExchangeService:
    """The fake gateway and identity endpoint for one or more tenants, on one port.

    ``tenants`` maps a tenant id to its emulator. ``identity`` issues and checks the tokens; with
    none given a fresh one is made (register apps on ``service.identity``).
    """

    def __init__(
        self,
        tenants: Mapping[str, EmulatorLike],
        *,
        identity: FakeIdentity | None = None,
        faults: FaultConfig | None = None,
        aliases: Mapping[str, str] | None = None,
        max_page_size: int = DEFAULT_PAGE_SIZE,
        not_found_as_404: Iterable[str] = NOT_FOUND_AS_404,
        cmdlets: Iterable[str] | None = None,
        denied_cmdlets: Iterable[str] = (),
        next_link_origin: str | None = None,
        page_ttl_seconds: float = 600.0,
        lag_seconds: float | None = None,
        audience: str = DEFAULT_AUDIENCE,
        error_shape: ErrorShape = ErrorShape.STANDARD,
        error_shapes: Mapping[str, ErrorShape] | None = None,
        batch_size: int = MAX_BATCH,
    ) -> None:
        # Sub-requests a $batch may hold (0: this gateway has no $batch, it answers 404).
        self.batch_size = batch_size
        self.identity = identity or FakeIdentity()
        # The Exchange resource tokens must be for: the cloud this service plays, whatever
        # host it is reached by (a proxy, 127.0.0.1).
        self.audience = audience
        self.error_shape = error_shape  # how the emulator's own errors are worded
        self.error_shapes = dict(error_shapes or {})  # ... per cmdlet
        self.schedule = FaultSchedule(faults or FaultConfig())
        self.max_page_size = max_page_size
        self.not_found_as_404 = frozenset(not_found_as_404)
        self.cmdlets = frozenset(c.lower() for c in (cmdlets if cmdlets is not None
                                                     else known_cmdlets()))
        self.denied_cmdlets = set(denied_cmdlets)
        self.next_link_origin = next_link_origin  # tests: a link pointing elsewhere
        self.page_ttl_seconds = page_ttl_seconds
        self.calls: Counter[str] = Counter()  # round trips: "$batch" counts each batch once
        self.batched: Counter[str] = Counter()  # sub-requests of batches, per cmdlet
        self.commits: Counter[str] = Counter()
        self.commits_by_request: Counter[str] = Counter()
        self.unauthorized = 0  # requests answered 401 (not counted in ``calls``)
        self._tenants: dict[str, _Tenant] = {}
        self._pages: OrderedDict[str, _Pages] = OrderedDict()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._scheme = "http"
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.lag_seconds = lag_seconds
        for tenant_id, emulator in tenants.items():
            self.add_tenant(tenant_id, emulator)
        for alias, tenant_id in (aliases or {}).items():
            self._tenants[alias.lower()] = self._tenants[tenant_id.lower()]
            self.identity.add_tenant(tenant_id, [alias])

    @property
    def faults(self) -> FaultConfig:
        return self.schedule.config

    def add_tenant(self, tenant_id: str, emulator: EmulatorLike,
                   aliases: Iterable[str] = ()) -> None:
        if self.lag_seconds is not None and hasattr(emulator, "lag_seconds"):
            # Read-after-write lag is the emulator's own behaviour; the service only sets it.
            emulator.lag_seconds = self.lag_seconds
        tenant = _Tenant(tenant_id, emulator)
        for name in (tenant_id, *aliases):
            self._tenants[name.lower()] = tenant
        self.identity.add_tenant(tenant_id, aliases)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0,
              ssl_context: ssl.SSLContext | None = None) -> FakeExchangeService:
        server = _Server((host, port), _Handler)
        server.service = self
        if ssl_context is not None:
            # The handshake happens lazily in the connection's own thread, so a slow client
            # cannot hold up the accept loop.
            server.socket = ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False)
            self._scheme = "https"
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-exchange",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeExchangeService:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the service is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The origin to configure as both the Exchange URL and the authority host."""
        return f"{self._scheme}://127.0.0.1:{self.port}"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (a slow answer may still commit a write after
        its client gave up). False if requests are still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    # --- request handling ----------------------------------------------------------------------

    def handle(self, request: _Handler) -> Reply | None:
        """Answer one request. ``None`` means: drop the connection without an answer."""
        url = urlsplit(request.path)
        origin = f"{self._scheme}://{request.headers.get('Host', '127.0.0.1')}"
        identity_reply = self.identity.handle(request.command, url.path, url.query,
                                              request.body, origin)
        if identity_reply is not None:
            return identity_reply
        parts = [p for p in url.path.split("/") if p]
        if (request.command == "POST" and len(parts) == 4 and parts[:2] == ["adminapi", "beta"]
                and parts[3] == BATCH_PATH and self.batch_size):
            return self._batch(request, parts[2], origin)
        if (request.command != "POST" or len(parts) != 4 or parts[:2] != ["adminapi", "beta"]
                or parts[3] != INVOKE_PATH):
            return _error(404, "NotFound", f"No route for {request.command} {url.path}.")
        tenant = self._tenants.get(parts[2].lower())
        if tenant is None:
            return _error(404, "NotFound", f"Tenant '{parts[2]}' not found.")
        return self._invoke(request, tenant, origin)

    def _invoke(self, request: Any, tenant: _Tenant, origin: str, *,
                batched: bool = False) -> Reply | None:
        """One InvokeCommand request (or one sub-request of a $batch)."""
        denied = self._authorize(request, tenant)
        if denied is not None:
            return denied
        if not request.headers.get("X-AnchorMailbox"):
            return _error(400, "BadRequest", "The X-AnchorMailbox header is required.")
        try:
            envelope = json.loads(request.body or b"{}")
            cmdlet_input = envelope["CmdletInput"]
            cmdlet = cmdlet_input["CmdletName"]
            parameters = cmdlet_input.get("Parameters") or {}
            if not isinstance(cmdlet, str) or not isinstance(parameters, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, "BadRequest", "The request body is not a CmdletInput.")
        with self._lock:
            (self.batched if batched else self.calls)[cmdlet] += 1
        if cmdlet.lower() not in self.cmdlets:
            return _UNKNOWN_CMDLET
        token = self.identity.validate(_bearer(request.headers.get("Authorization")) or "")
        if cmdlet in self.denied_cmdlets or (token is not None and not token.exchange_role):
            return 403, {"x-ms-diagnostics": (
                f'2000005;reason="The user or application is not assigned a role that allows '
                f'running {cmdlet}.";error_category="insufficient_permissions"'),
                "Content-Type": "application/json"}, b""
        fault = self.schedule.next(cmdlet, write=is_write(cmdlet))
        if self.faults.latency_seconds and not batched:  # a batch waits once
            time.sleep(self.faults.latency_seconds)
        return self._answer(request, tenant, cmdlet, parameters, fault, origin)

    def _batch(self, request: _Handler, tenant_part: str, origin: str) -> Reply | None:
        tenant = self._tenants.get(tenant_part.lower())
        if tenant is None:
            return _error(404, "NotFound", f"Tenant '{tenant_part}' not found.")
        denied = self._authorize(request, tenant)
        if denied is not None:
            return denied
        try:
            subs = json.loads(request.body or b"{}")["requests"]
            if not isinstance(subs, list) or not all(
                    isinstance(r, dict) and isinstance(r.get("id"), str)
                    and isinstance(r.get("url"), str) and isinstance(r.get("body"), dict)
                    for r in subs):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(400, "BadRequest", "The request body is not a batch of requests.")
        if not subs or len(subs) > self.batch_size:
            return _error(400, "BadRequest", f"A batch holds 1 to {self.batch_size} requests, "
                                             f"not {len(subs)}.")
        if len({r["id"] for r in subs}) != len(subs):
            return _error(400, "BadRequest", "Two requests of the batch have the same id.")
        with self._lock:
            self.calls[BATCH_PATH] += 1
        if self.faults.latency_seconds:
            time.sleep(self.faults.latency_seconds)
        responses = [self._sub_answer(request, tenant, origin, sub) for sub in subs]
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"responses": responses}, default=str, separators=(",", ":")).encode()

    def _sub_answer(self, request: _Handler, tenant: _Tenant, origin: str,
                    sub: dict[str, Any]) -> dict[str, Any]:
        url = urlsplit(sub["url"])
        parts = [p for p in url.path.split("/") if p]
        if sub.get("method", "POST") != "POST" or parts[-1:] != [INVOKE_PATH] \
                or len(parts) != 4 or parts[2].lower() != tenant.id.lower():
            reply: Reply | None = _error(400, "BadRequest", "A batched request must be an "
                                                            "InvokeCommand of this tenant.")
        else:
            headers = {**{k: v for k, v in request.headers.items()},
                       **{k: str(v) for k, v in (sub.get("headers") or {}).items()}}
            inner = _SubRequest(f"{url.path}?{url.query}" if url.query else url.path,
                                headers, json.dumps(sub["body"], separators=(",", ":")).encode())
            reply = self._invoke(inner, tenant, origin, batched=True)
        if reply is None:  # a sub-request dropped: the batch still answers
            reply = _error(502, "BadGateway", "The request was not answered.")
        status, headers, body = reply
        if headers.get("Content-Encoding") == "gzip" and body:
            body = gzip.decompress(body)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        return {"id": sub["id"], "status": status,
                "headers": {k: v for k, v in headers.items() if k != "Content-Encoding"},
                "body": parsed}

    def _answer(self, request: _Handler, tenant: _Tenant, cmdlet: str,
                parameters: dict[str, Any], fault: Fault | None, origin: str) -> Reply | None:
        """The cmdlet's answer, with ``fault`` striking before it ran or after."""
        if fault is not None and fault.phase is Phase.BEFORE and fault.kind not in _SPOILERS:
            reply = self._fault_reply(fault, cmdlet)
            if reply is not _PROCEED:
                return reply  # type: ignore[return-value]
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        skiptoken = query.get("$skiptoken", [None])[0]
        if fault is not None and fault.kind in _LINK_FAULTS:
            skiptoken = None  # the links it hands out lead nowhere: answer the first page
        page_size = _page_size(request.headers.get("Prefer"), self.max_page_size)
        digest = hashlib.sha256(request.body).hexdigest()
        warnings: list[str] = []
        key: str | None = None
        if skiptoken is not None:
            pages, offset, refusal = self._continuation(skiptoken, digest)
            if pages is None:
                return refusal
            value, key = pages.value, (_decode_skiptoken(skiptoken) or ("", 0))[0]
        else:
            ran = self._run(request, tenant, cmdlet, parameters, _select(query))
            if not isinstance(ran, CmdletResult):
                return ran
            value, warnings, offset = list(ran.value), list(ran.warnings), 0
            if len(value) > page_size:
                key = self._remember(digest, value)
        if fault is not None and fault.phase is Phase.AFTER and fault.kind not in _SPOILERS:
            reply = self._fault_reply(fault, cmdlet)
            if reply is not _PROCEED:
                return reply  # type: ignore[return-value]
        payload: dict[str, Any] = {
            "@odata.context": f"{origin}/adminapi/beta/{tenant.id}/$metadata"
                              "#Collection(Exchange.GenericHashTable)",
            "value": value[offset: offset + page_size],
        }
        if key is not None and offset + page_size < len(value):
            link_query = {k: v[0] for k, v in query.items() if k != "$skiptoken"}
            link_query["$skiptoken"] = _encode_skiptoken(key, offset + page_size)
            link_origin = self.next_link_origin or origin
            payload["@odata.nextLink"] = (f"{link_origin}{url.path}?"
                                          f"{urlencode(link_query, safe='$,')}")
        if warnings:
            payload["@adminapi.warnings"] = warnings
        headers = {"Content-Type": "application/json; odata.metadata=minimal; charset=utf-8"}
        if request.headers.get("Prefer"):
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        if fault is not None and fault.kind in _SPOILERS:
            return _spoil(fault, payload, headers, f"{origin}{request.path}", cmdlet)
        return 200, headers, json.dumps(payload, default=str, separators=(",", ":")).encode()

    def _run(self, request: _Handler, tenant: _Tenant, cmdlet: str, parameters: dict[str, Any],
             select: list[str] | None) -> CmdletResult | Reply:
        """Run the cmdlet on the tenant's emulator; its error as Exchange would answer it."""
        try:
            with tenant.lock:
                result = tenant.emulator.invoke(cmdlet, parameters, select)
        except ExchangeError as e:
            if e.exception_type and e.exception_type.endswith("CommandNotFoundException"):
                return _UNKNOWN_CMDLET
            return self._exchange_error(cmdlet, e)
        except Exception as e:  # an emulator bug: answer as Exchange's own 500 would
            log.exception("emulator failed on %s", cmdlet)
            return _error(500, "InternalServerError", f"{type(e).__name__}: {e}")
        if is_write(cmdlet):
            with self._lock:
                self.commits[cmdlet] += 1
                self.commits_by_request[request.headers.get("client-request-id", "")] += 1
        return result

    def _authorize(self, request: _Handler, tenant: _Tenant) -> Reply | None:
        token = _bearer(request.headers.get("Authorization"))
        issued = self.identity.validate(token) if token else None
        problem = None
        if issued is None:
            problem = "The access token is missing, expired or not issued for this service."
        elif issued.tenant_id != tenant.id:
            problem = "The access token was issued for another tenant."
        elif issued.audience.rstrip("/").lower() != self.audience.rstrip("/").lower():
            problem = (f"The access token's audience '{issued.audience}' is not this service "
                       f"('{self.audience}').")
        elif not issued.roles:
            problem = "The access token carries no Exchange.ManageAsApp role."
        if problem is None:
            return None
        with self._lock:
            self.unauthorized += 1
        status, headers, body = _error(401, "Unauthorized", problem)
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return status, headers, body

    def _fault_reply(self, fault: Fault, cmdlet: str) -> Reply | object | None:
        if fault.kind is FaultKind.THROTTLE:
            status, headers, body = _error(
                429, "TooManyRequests",
                "The request was throttled: the maximum number of concurrent requests per "
                "tenant was exceeded.")
            headers["Retry-After"] = fault.retry_after or "1"
            return status, headers, body
        if fault.kind is FaultKind.SERVER_ERROR:
            return _error(500, "InternalServerError", "An internal server error occurred.")
        if fault.kind is FaultKind.UNAVAILABLE:
            return _error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
        if fault.kind is FaultKind.DROP:
            return None
        if fault.kind is FaultKind.EXCHANGE_ERROR:
            return _fault_error(fault, cmdlet)
        if fault.kind in _BROKEN_200S:
            return _BROKEN_200S[fault.kind]
        if fault.kind is FaultKind.EMPTY_GZIP_403:
            return _UNKNOWN_CMDLET
        time.sleep(self.faults.slow_seconds)  # SLOW: answer normally, late
        return _PROCEED

    def _exchange_error(self, cmdlet: str, e: ExchangeError) -> Reply:
        exception_type = _qualified(e.exception_type) or next(
            (name for cls, name in _DEFAULT_TYPES.items() if isinstance(e, cls)),
            "System.InvalidOperationException")
        status = 400
        if isinstance(e, NotFound) and cmdlet in self.not_found_as_404:
            status = 404
        elif isinstance(e, Forbidden):
            status = 403
        elif isinstance(e, Throttled):
            reply = _error(429, "TooManyRequests", e.message, exception_type, e.error_id)
            reply[1]["Retry-After"] = f"{e.retry_after or 1:g}"
            return reply
        elif isinstance(e, TransientError):
            status = 503
        shape = self.error_shapes.get(cmdlet, self.error_shape)
        return render_error(shape, _shape_status(shape, status), e.message, exception_type,
                            e.error_id, cmdlet=cmdlet)

    def _remember(self, digest: str, value: list[dict[str, Any]]) -> str:
        key = secrets.token_urlsafe(12)
        now = time.monotonic()
        with self._lock:
            self._pages[key] = _Pages(digest, value, now)
            while self._pages and (len(self._pages) > 256 or next(
                    iter(self._pages.values())).created + self.page_ttl_seconds < now):
                self._pages.popitem(last=False)
        return key

    def _continuation(self, skiptoken: str,
                      digest: str) -> tuple[_Pages | None, int, Reply | None]:
        decoded = _decode_skiptoken(skiptoken)
        with self._lock:
            entry = self._pages.get(decoded[0]) if decoded else None
        if decoded is None or entry is None or (
                entry.created + self.page_ttl_seconds < time.monotonic()):
            return None, 0, _error(400, "BadRequest",
                                   "The continuation token is invalid or has expired.")
        if entry.body_digest != digest:
            return None, 0, _error(
                400, "BadRequest",
                "The continuation request's body differs from the first request's.")
        return entry, decoded[1], None


_PROCEED = object()
# Exchange answers an unknown cmdlet with an empty body labelled as gzip.
_UNKNOWN_CMDLET: Reply = (403, {"Content-Encoding": "gzip"}, b"")


def _bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def _page_size(prefer: str | None, limit: int) -> int:
    for item in (prefer or "").split(","):
        name, _, value = item.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            with contextlib.suppress(ValueError):
                return max(1, min(limit, int(value)))
    return limit


def _select(query: Mapping[str, list[str]]) -> list[str] | None:
    raw = query.get("$select")
    if not raw:
        return None
    return [name.strip() for name in raw[0].split(",") if name.strip()]


def _encode_skiptoken(key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{key}~{offset}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str) -> tuple[str, int] | None:
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        key, _, offset = decoded.partition("~")
        return key, int(offset)
    except (ValueError, UnicodeDecodeError):
        return None


def _error(status: int, code: str, message: str, exception_type: str | None = None,
           error_id: str | None = None) -> Reply:
    exception_type = exception_type or "Microsoft.Exchange.Management.Tasks.TaskException"
    error_id = error_id or hashlib.sha1(exception_type.encode()).hexdigest()[:8].upper()
    body = json.dumps({"error": {
        "code": code,
        "message": message,
        "details": [{"code": "Context", "target": "",
                     "message": f"{error_id}|{exception_type}|{message}"}],
        "innererror": {"message": message, "type": exception_type},
    }}).encode()
    return status, {"Content-Type": "application/json; charset=utf-8"}, body


_STATUS_CODES = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests",
                 500: "InternalServerError", 503: "ServiceUnavailable"}
PROXY_TYPE = "Microsoft.Exchange.Configuration.CmdletProxyException"
_FAULT_MESSAGES = {
    "ADTransientException": "The LDAP server is unavailable.",
    "ADServerSettingsChangedException":
        "An error caused a change in the current set of domain controllers.",
    "DCOverloadedException": "The domain controller is overloaded. Try again later.",
    "StorageTransientException": "The mailbox store is temporarily unavailable.",
    "ServerInMMException": "The server is in maintenance mode.",
    "SuitabilityDirectoryException": "No suitable domain controller was found.",
    "UnableToWriteToAadException": "Unable to write to Azure Active Directory; the issue may "
                                   "be transient.",
}


def _shape_status(shape: ErrorShape, status: int) -> int:
    # A proxied cmdlet's error, and the bare innererror, come back as 500 whatever they mean.
    return 500 if shape in (ErrorShape.PROXY, ErrorShape.INNER_ONLY) else status


def render_error(shape: ErrorShape, status: int, message: str, exception_type: str,
                 error_id: str | None = None, *, cmdlet: str = "") -> Reply:
    """An error answer worded as ``shape`` (docs/exchange.md, "What an Exchange error means")."""
    code = _STATUS_CODES.get(status, "BadRequest")
    if shape is ErrorShape.STANDARD:
        return _error(status, code, message, exception_type, error_id)
    error_id = error_id or hashlib.sha1(exception_type.encode()).hexdigest()[:8].upper()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    error: dict[str, Any] = {"code": code, "message": message}
    if shape is ErrorShape.HEADER:
        headers["x-ExceptionType"] = exception_type.rsplit(".", 1)[-1]
        error["details"] = [{"code": "Context", "target": "", "message": message}]
    elif shape is ErrorShape.PROXY:
        stamp = datetime.now(UTC).strftime("%m/%d/%Y %I:%M:%S %p")
        text = (f"Error on proxy command '{cmdlet}' to server "
                "BN8PR01MB1234.namprd01.prod.outlook.com: Server version 15.20.8000.000, "
                "Proxy method PSWS: Cmdlet error with following error message: "
                f"{exception_type}: {message}. [Server=BN8PR01MB5678,RequestId="
                f"{secrets.token_hex(8)},TimeStamp={stamp}]")
        headers["x-ExceptionType"] = PROXY_TYPE.rsplit(".", 1)[-1]
        error["details"] = [{"code": "Context", "target": "",
                             "message": f"{error_id}|{PROXY_TYPE}|{text}"}]
        error["innererror"] = {"message": text, "type": PROXY_TYPE}
    elif shape is ErrorShape.INNER_ONLY:
        error = {"code": code, "message": "",
                 "innererror": {"message": message, "type": exception_type}}
    else:  # JSON_DETAILS
        error["details"] = [{"code": "Context", "target": "", "message": json.dumps({
            "localizedString": {"stringId": error_id}, "ClassName": exception_type,
            "Message": message})}]
    return status, headers, json.dumps({"error": error}).encode()


_JSON = {"Content-Type": "application/json; odata.metadata=minimal; charset=utf-8"}
# 200s that do not prove a read, and need nothing of the cmdlet's answer.
_BROKEN_200S: dict[FaultKind, Reply] = {
    FaultKind.EMPTY_BODY: (200, dict(_JSON), b""),
    FaultKind.BAD_JSON: (200, dict(_JSON), b"<html><body>Bad gateway</body></html>"),
    FaultKind.CORRUPT_GZIP: (200, {**_JSON, "Content-Encoding": "gzip"},
                             b"\x1f\x8b\x08\x00not really gzip"),
    FaultKind.NO_VALUE: (200, dict(_JSON), b'{"@odata.context":"$metadata"}'),
}
# Faults that spoil the cmdlet's real answer rather than replace it.
_LINK_FAULTS = frozenset({FaultKind.LOOPING_NEXTLINK, FaultKind.ENDLESS_NEXTLINK})
_SPOILERS = _LINK_FAULTS | {FaultKind.TRUNCATED, FaultKind.TRUNCATED_GZIP,
                            FaultKind.NONTERMINATING_ERROR}


def _fault_error(fault: Fault, cmdlet: str) -> Reply:
    """The error an EXCHANGE_ERROR or NONTERMINATING_ERROR fault names, worded as its shape."""
    exception_type = fault.exception_type or TRANSIENT_TYPE
    message = fault.message or _FAULT_MESSAGES.get(exception_type.rsplit(".", 1)[-1],
                                                   "The operation failed.")
    return render_error(fault.shape, fault.status or _shape_status(fault.shape, 400), message,
                        exception_type, cmdlet=cmdlet)


def _spoil(fault: Fault, payload: dict[str, Any], headers: dict[str, str],
           own_url: str, cmdlet: str) -> Reply:
    """The answer ``payload`` with ``fault`` done to it."""
    if fault.kind is FaultKind.NONTERMINATING_ERROR:
        _, error_headers, error_body = _fault_error(fault, cmdlet)
        payload["@adminapi.errors"] = [json.loads(error_body)["error"]]
        headers = {**headers, **{k: v for k, v in error_headers.items()
                                 if k.lower() == "x-exceptiontype"}}
    elif fault.kind is FaultKind.LOOPING_NEXTLINK:
        payload["@odata.nextLink"] = own_url
    elif fault.kind is FaultKind.ENDLESS_NEXTLINK:
        base = own_url.split("?", 1)[0]
        payload["@odata.nextLink"] = f"{base}?$skiptoken={secrets.token_urlsafe(9)}"
    body = json.dumps(payload, default=str, separators=(",", ":")).encode()
    if fault.kind is FaultKind.TRUNCATED:
        # The length promises the whole body; half of it is sent and the socket closed.
        return 200, {**headers, "Content-Length": str(len(body))}, body[: len(body) // 2]
    if fault.kind is FaultKind.TRUNCATED_GZIP:
        packed = gzip.compress(body)
        return 200, {**headers, "Content-Encoding": "gzip"}, packed[: len(packed) // 2]
    return 200, headers, body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: FakeExchangeService

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or vanish mid-answer are part of the fault schedule.
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class _Headers(dict):  # type: ignore[type-arg]
    """Request headers looked up as HTTP does, whatever their letter case."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        low = key.lower()
        return next((v for k, v in self.items() if k.lower() == low), default)


class _SubRequest:
    """One request of a $batch, shaped as the handler's own requests are."""

    command = "POST"

    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = _Headers(headers)
        self.body = body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Exchange's gateway
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server
    body: bytes = b""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        service = self.server.service
        service._enter()
        try:
            reply = service.handle(self)
        finally:
            service._leave()
        if reply is None:
            self.close_connection = True  # dropped: no status line, no body
            return
        status, headers, body = reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        elif int(headers["Content-Length"]) != len(body):
            self.close_connection = True  # a body cut short: the promised rest never comes
        self.send_header("request-id", secrets.token_hex(16))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake exchange: " + format, *args)


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 / localhost signed by it. Returns the
    server's SSL context and the CA file clients must trust (``SSL_CERT_FILE``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject: str, key: Any, issuer: x509.Name | None, issuer_key: Any,
              ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                  critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("reconciler sandbox CA", ca_key, None, ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = build("127.0.0.1", server_key, ca_cert.subject, ca_key, False)
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "serve-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl loads keys only from files: a private temporary file, removed straight away.
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".pem") as chain:
        chain.write(server_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        chain.write(server_cert.public_bytes(serialization.Encoding.PEM))
        chain.flush()
        context.load_cert_chain(chain.name)
    return context, ca_file


@contextlib.contextmanager
def serve(
    tenants: Mapping[str, EmulatorLike],
    *,
    ssl_context: ssl.SSLContext | None = None,
    port: int = 0,
    **options: Any,
) -> Iterator[FakeExchangeService]:
    """Run a FakeExchangeService on 127.0.0.1 (a free port unless given) for the block."""
    service = FakeExchangeService(tenants, **options)
    service.start(port=port, ssl_context=ssl_context)
    try:
        yield service
    finally:
        service.stop()
