"""The InvokeCommand client: runs one cmdlet against Exchange Online's admin REST gateway.

Retry policy, because a retry is only safe when Exchange cannot have acted on the request:

- reads (Get-*) are retried on 5xx, timeouts and dropped connections with capped exponential
  backoff and jitter, a bounded number of times;
- 429 (and "maximum number of concurrent requests" answers) are refused before processing, so
  reads and writes alike wait ``Retry-After`` and try again;
- a 401 refreshes the token once and retries: the request was not processed;
- a write (New-/Set-/Add-/Remove-/…) that fails after it may have reached Exchange (5xx, read
  timeout, connection dropped after sending) is never replayed: it raises AmbiguousWriteError,
  and the caller learns what happened by reading back. A connection that could not even be opened
  is safe to retry for writes too.

Every page of a result is drained at once by following ``@odata.nextLink`` (links expire after
minutes), and a link to another origin is refused: the bearer token must never leave the
configured Exchange endpoint.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

from reconciler.live.backend import (
    AlreadyExists,
    AmbiguousWriteError,
    AuthenticationError,
    BadParameter,
    CmdletResult,
    ExchangeError,
    Forbidden,
    NotFound,
    NotPresent,
    Throttled,
    TransientError,
    is_write,
    log_call,
)

log = logging.getLogger(__name__)

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"

# Exchange's exception types (the last dotted component) and what they mean to the caller.
_EXCEPTION_TYPES: dict[str, type[ExchangeError]] = {
    "ManagementObjectNotFoundException": NotFound,
    "ManagementObjectAmbiguousException": BadParameter,
    "ObjectNotFoundException": NotFound,
    "MailboxNotFoundException": NotFound,
    "RecipientNotFoundException": NotFound,
    "ManagementObjectAlreadyExistsException": AlreadyExists,
    "ADObjectAlreadyExistsException": AlreadyExists,
    "MemberAlreadyExistsException": AlreadyExists,
    "ProxyAddressExistsException": AlreadyExists,
    "UserAlreadyExistsInPermissionEntryException": AlreadyExists,
    "MemberNotFoundException": NotPresent,
    "UserNotFoundInPermissionEntryException": NotPresent,
    "ParameterBindingException": BadParameter,
    "ParameterBindingValidationException": BadParameter,
    "ParameterBindingArgumentTransformationException": BadParameter,
    "ValidationArgumentException": BadParameter,
    "ArgumentException": BadParameter,
    "CommandNotFoundException": Forbidden,
    "AccessDeniedException": Forbidden,
    "UnauthorizedAccessException": Forbidden,
}
# Where the exception type says nothing specific, Exchange's wording still does.
_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], type[ExchangeError]], ...] = (
    (re.compile(r"couldn't be found|could not be found|wasn't found", re.I), NotFound),
    (re.compile(r"is already a member|already exists|already present", re.I), AlreadyExists),
    (re.compile(r"isn't a member|is not a member|doesn't exist in the ACL", re.I), NotPresent),
    (re.compile(r"cannot be found that matches parameter name|cannot bind|"
                r"cannot validate argument", re.I), BadParameter),
    (re.compile(r"maximum number of concurrent requests|throttl", re.I), Throttled),
)


class TokenSource(Protocol):
    def token(self) -> str: ...

    def refresh(self, rejected: str) -> str: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying. Sleeps are ``min(cap, base * 2**n)`` with jitter in its upper half."""

    attempts: int = 5  # per request, transient failures of reads
    throttle_attempts: int = 8  # per request, 429s (reads and writes)
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    max_retry_after: float = 120.0  # a longer Retry-After is not waited for: Throttled
    default_retry_after: float = 2.0  # a 429 without Retry-After


class Gateway:
    """InvokeCommand over one httpx client, for one tenant."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        exchange_url: str,
        tenant_id: str,
        tokens: TokenSource,
        concurrency: threading.BoundedSemaphore,
        retry: RetryPolicy | None = None,
        page_size: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        base = exchange_url.rstrip("/")
        self.endpoint = f"{base}/adminapi/beta/{quote(tenant_id, safe='')}/InvokeCommand"
        self._origin = _origin(self.endpoint)
        self.tenant_id = tenant_id
        self._tokens = tokens
        self._slots = concurrency
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._token: str | None = None
        self._token_lock = threading.Lock()

    # --- public --------------------------------------------------------------------------------

    def invoke(
        self,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
    ) -> CmdletResult:
        body = json.dumps({"CmdletInput": {"CmdletName": cmdlet,
                                           "Parameters": dict(parameters or {})}},
                          separators=(",", ":")).encode()
        url = self.endpoint
        if select:
            url += "?$select=" + ",".join(quote(name, safe="") for name in select)
        result = CmdletResult()
        started = time.monotonic()
        pages = 0
        # One slot for the whole drain: pages follow each other without waiting for a slot,
        # and a throttled tenant is not hit harder while this call backs off.
        with self._slots:
            while True:
                payload = self._request(cmdlet, url, body, page=pages)
                pages += 1
                value = payload.get("value", [])
                if isinstance(value, list):
                    result.value.extend(value)
                result.warnings.extend(str(w) for w in payload.get("@adminapi.warnings") or ())
                next_link = payload.get("@odata.nextLink")
                if not next_link:
                    break
                if _origin(next_link) != self._origin:
                    raise ExchangeError(
                        f"{cmdlet}: refusing to follow a nextLink to another origin "
                        f"({_origin(next_link)})", cmdlet=cmdlet)
                url = next_link
        log.debug("%s: %d page(s), %d warning(s)", cmdlet, pages, len(result.warnings))
        log_call(f"exchange {self.tenant_id}", cmdlet, parameters, result,
                 time.monotonic() - started)
        return result

    # --- one request, with its retries ---------------------------------------------------------

    def _request(self, cmdlet: str, url: str, body: bytes, *, page: int) -> dict[str, Any]:
        write = is_write(cmdlet)
        request_id = str(uuid.uuid4())  # one id across retries: support sees them together
        transient_failures = 0
        throttles = 0
        refreshed = False
        while True:
            token = self._current_token()
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Accept-Encoding": "gzip",
                "X-AnchorMailbox": ANCHOR_MAILBOX.format(tenant=self.tenant_id),
                "Prefer": f"odata.maxpagesize={self.page_size}",
                "client-request-id": request_id,
                "return-client-request-id": "true",
            }
            started = time.monotonic()
            try:
                response = self._send(url, body, headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                # Nothing reached Exchange: safe to retry, writes included.
                failure = f"{type(e).__name__} before sending"
                sent = False
            except httpx.TransportError as e:
                failure = type(e).__name__
                sent = True
            else:
                elapsed = time.monotonic() - started
                status = response.status_code
                log.debug("%s page %d: HTTP %d in %.3fs (request %s)", cmdlet, page, status,
                          elapsed, request_id)
                if status < 400:
                    return self._json(cmdlet, response)
                if status == 401:
                    if refreshed:
                        raise AuthenticationError(
                            f"{cmdlet}: Exchange refused a fresh token (401). Hint: admin consent "
                            "for Exchange.ManageAsApp may be missing, or the token is for "
                            "another cloud's Exchange endpoint.", cmdlet=cmdlet, status=401)
                    log.debug("%s: 401, refreshing the token once", cmdlet)
                    self._refresh(token)
                    refreshed = True
                    continue
                error = self._error(cmdlet, response)
                if isinstance(error, Throttled):
                    throttles += 1
                    delay = (error.retry_after if error.retry_after is not None
                             else self.retry.default_retry_after)
                    if throttles >= self.retry.throttle_attempts or (
                            delay > self.retry.max_retry_after):
                        raise error
                    log.debug("%s: throttled, waiting %.2fs (%d)", cmdlet, delay, throttles)
                    self._sleep(delay)
                    continue
                if status < 500:
                    raise error
                failure = f"HTTP {status}"
                sent = True
            if write and sent:
                raise AmbiguousWriteError(
                    f"{cmdlet} failed ({failure}) after it may have reached Exchange; it was not "
                    "retried. Read the object back to learn whether it was applied.",
                    cmdlet=cmdlet)
            transient_failures += 1
            if transient_failures >= self.retry.attempts:
                raise TransientError(
                    f"{cmdlet} failed {transient_failures} times, last: {failure}",
                    cmdlet=cmdlet)
            delay = self._backoff(transient_failures)
            log.debug("%s page %d: %s, retry %d in %.2fs", cmdlet, page, failure,
                      transient_failures, delay)
            self._sleep(delay)

    def _send(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        request = self._client.build_request("POST", url, content=body, headers=headers)
        response = self._client.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        return _Answer(response.status_code, response.headers, _decode(response.headers, raw))

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.retry.backoff_cap, self.retry.backoff_base * 2 ** (failures - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _current_token(self) -> str:
        with self._token_lock:
            token = self._token
        if token is None:
            token = self._tokens.token()
            with self._token_lock:
                self._token = token
        return token

    def _refresh(self, rejected: str) -> None:
        with self._token_lock:
            if self._token not in (None, rejected):
                return  # another thread already refreshed
        token = self._tokens.refresh(rejected)
        with self._token_lock:
            self._token = token

    # --- answers -------------------------------------------------------------------------------

    def _json(self, cmdlet: str, response: _Answer) -> dict[str, Any]:
        try:
            payload = json.loads(response.content or b"{}")
        except ValueError:
            raise TransientError(f"{cmdlet}: Exchange answered with a body that is not JSON",
                                 cmdlet=cmdlet, status=response.status_code) from None
        if not isinstance(payload, dict):
            raise TransientError(f"{cmdlet}: unexpected answer shape", cmdlet=cmdlet)
        return payload

    def _error(self, cmdlet: str, response: _Answer) -> ExchangeError:
        status = response.status_code
        raw = response.content
        error: dict[str, Any] = {}
        try:
            parsed = json.loads(raw) if raw else {}
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                error = parsed["error"]
        except ValueError:
            pass
        message = str(error.get("message") or "").strip()
        error_id = exception_type = None
        for detail in error.get("details") or ():
            parts = str(detail.get("message", "")).split("|", 2) if isinstance(detail, dict) \
                else []
            if len(parts) == 3:
                error_id, exception_type, text = parts
                exception_type = exception_type.rsplit(".", 1)[-1] or None
                message = text.strip() or message
                break
        if not exception_type:
            inner = error.get("innererror")
            if isinstance(inner, dict) and inner.get("type"):
                exception_type = str(inner["type"]).rsplit(".", 1)[-1]
        kind: type[ExchangeError] | None = _EXCEPTION_TYPES.get(exception_type or "")
        if kind is None and message:
            kind = next((k for pattern, k in _TEXT_PATTERNS if pattern.search(message)), None)
        if status == 429:
            kind = Throttled
        elif kind is None:
            kind = {404: NotFound, 403: Forbidden}.get(status, ExchangeError)
        if status == 403 and not message:
            diagnostics = response.headers.get("x-ms-diagnostics", "")
            reason = re.search(r'reason="([^"]*)"', diagnostics)
            message = (reason.group(1) if reason else
                       "no reason given: the cmdlet is unknown to Exchange, or the app has no "
                       "Exchange role that allows it (assign e.g. Exchange Administrator or "
                       "Recipient Management)")
        if not message:
            message = f"HTTP {status}"
        text = f"{cmdlet}: {message}"
        common: dict[str, Any] = {"cmdlet": cmdlet, "exception_type": exception_type,
                                  "error_id": error_id, "status": status}
        if kind is Throttled:
            return Throttled(text, retry_after=_retry_after(response), **common)
        return kind(text, **common)


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    headers: httpx.Headers
    content: bytes


def _retry_after(response: _Answer) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the default wait


def _decode(headers: httpx.Headers, raw: bytes) -> bytes:
    """The body, decoded defensively: Exchange labels some empty bodies as gzip."""
    if raw and "gzip" in headers.get("Content-Encoding", "").lower():
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return b""
    return raw


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
