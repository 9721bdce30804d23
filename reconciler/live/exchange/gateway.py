"""The InvokeCommand client: runs one cmdlet against Exchange Online's admin REST gateway.

Retry policy, because a retry is only safe when Exchange cannot have acted on the request:

- reads (Get-*) are retried on 5xx of no known meaning, on exception types Exchange uses for a
  passing condition (ADTransientException, DCOverloadedException, ...; see ``errors.py``), on
  timeouts, dropped connections and unreadable answers, with capped exponential backoff and
  jitter, a bounded number of times;
- an exception type that means something permanent (not found, address in use, bad parameter,
  access denied, ...) is never retried, whatever the HTTP status it came with;
- 429 (and "maximum number of concurrent requests" answers) are refused before processing, so
  reads and writes alike wait ``Retry-After`` and try again;
- a 401 refreshes the token once and retries: the request was not processed;
- a write (New-/Set-/Add-/Remove-/…) that fails after it may have reached Exchange (a transient
  answer, a read timeout, a connection dropped after sending, an unreadable 200) is never
  replayed: it raises AmbiguousWriteError, and the caller learns what happened by reading back.
  A connection that could not even be opened is safe to retry for writes too.

Reads prove they read: a 200 whose body is empty, not JSON, corrupt gzip, cut short or without a
``value`` list is an UnreadableAnswer (retried, then raised), never "no objects"; a 200 that
carries non-terminating errors (``@adminapi.errors``) fails as the first of them would. Every
page of a result is drained at once by following ``@odata.nextLink`` (links expire after minutes); a
link to another origin is refused (the bearer token must never leave the configured endpoint),
and a link seen before in the same drain, or more than ``max_pages`` pages, restarts the drain a
bounded number of times and then fails.

Every InvokeCommand round trip goes through :meth:`Gateway._send`, so one hook sees them all.
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
    ErrorKind,
    ExchangeError,
    Forbidden,
    NotFound,
    NotPresent,
    Throttled,
    TransientError,
    UnreadableAnswer,
    is_write,
    log_call,
)
from reconciler.live.exchange.errors import classify

log = logging.getLogger(__name__)

ANCHOR_MAILBOX = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"
DEFAULT_MAX_PAGES = 5000  # 5 million objects at 1,000 a page: beyond that, a runaway link

_ERROR_CLASSES: dict[ErrorKind, type[ExchangeError]] = {
    ErrorKind.NOT_FOUND: NotFound,
    ErrorKind.ALREADY_EXISTS: AlreadyExists,
    ErrorKind.NOT_PRESENT: NotPresent,
    ErrorKind.BAD_PARAMETER: BadParameter,
    ErrorKind.FORBIDDEN: Forbidden,
    ErrorKind.TRANSIENT: TransientError,
    ErrorKind.FAILED: ExchangeError,
}


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
    drain_attempts: int = 3  # per read, whole drains restarted after a looping nextLink


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer as received: ``content`` decoded from gzip when so labelled, and
    ``decode_error`` saying why it could not be when it could not."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    decode_error: str | None = None


class _Retry(Exception):
    """A failure worth another attempt: ``error`` is raised when the attempts run out, ``sent``
    says whether the request may have reached Exchange."""

    def __init__(self, error: ExchangeError, *, sent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent = sent


class _Unauthorized(Exception):
    pass


class _RunawayPages(Exception):
    pass


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
        max_pages: int = DEFAULT_MAX_PAGES,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        base = exchange_url.rstrip("/")
        self.endpoint = f"{base}/adminapi/beta/{quote(tenant_id, safe='')}/InvokeCommand"
        self.batch_endpoint = f"{base}/adminapi/beta/{quote(tenant_id, safe='')}/$batch"
        self.batching = True  # until the gateway says it has no $batch
        self._origin = _origin(self.endpoint)
        self.tenant_id = tenant_id
        self._tokens = tokens
        self._slots = concurrency
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.max_pages = max_pages
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
        body, url = self._call(cmdlet, parameters, select)
        # One slot for the whole drain: pages follow each other without waiting for a slot,
        # and a throttled tenant is not hit harder while this call backs off.
        started = time.monotonic()
        with self._slots:
            drains = 0
            while True:
                drains += 1
                try:
                    result = self._drain(cmdlet, url, body)
                except _RunawayPages as e:
                    problem = str(e)
                else:
                    log_call(f"exchange {self.tenant_id}", cmdlet, parameters, result,
                             time.monotonic() - started)
                    return result
                if is_write(cmdlet):  # a second drain would send the write again
                    raise AmbiguousWriteError(
                        f"{cmdlet}: {problem}; the write was not retried. Read the object back "
                        "to learn whether it was applied.", cmdlet=cmdlet)
                if drains >= self.retry.drain_attempts:
                    raise UnreadableAnswer(f"{cmdlet}: {problem} ({drains} times); nothing "
                                           "was read", cmdlet=cmdlet)
                log.debug("%s: %s; reading again from the first page", cmdlet, problem)
                self._sleep(self._backoff(drains))

    def _call(self, cmdlet: str, parameters: Mapping[str, Any] | None,
              select: Sequence[str] | None) -> tuple[bytes, str]:
        """The body and URL of one InvokeCommand request."""
        body = json.dumps({"CmdletInput": {"CmdletName": cmdlet,
                                           "Parameters": dict(parameters or {})}},
                          separators=(",", ":")).encode()
        url = self.endpoint
        if select:
            url += "?$select=" + ",".join(quote(name, safe="") for name in select)
        return body, url

    # --- several reads in one $batch request (GATEWAY-FACTS §a) ----------------------------------

    def invoke_batch(self, calls: Sequence[tuple[str, Mapping[str, Any] | None,
                                                 Sequence[str] | None]]
                     ) -> list[CmdletResult | ExchangeError]:
        """Run several reads in one ``$batch`` request; each answer, or the typed error its
        own call raised. A sub-answer that is not a clean 200 is asked again on its own, as
        Microsoft's module does (so its retries and errors are those of :meth:`invoke`), and
        later pages of a sub-answer are drained with plain requests. A gateway that has no
        ``$batch`` (404, 400, 501 to it) turns batching off for this gateway."""
        if any(is_write(cmdlet) for cmdlet, _, _ in calls):
            raise ValueError("only reads are sent in a $batch")
        requests = [self._call(cmdlet, parameters, select) for cmdlet, parameters, select in calls]
        answers: list[Any] = [None] * len(calls)
        if self.batching:
            try:
                with self._slots:
                    answers = self._batch_answers(requests)
            except ExchangeError as e:
                if e.status not in (400, 404, 405, 501):
                    raise
                log.info("$batch is not available here (%s); one request per call", e.message)
                self.batching = False
        out: list[CmdletResult | ExchangeError] = []
        for (cmdlet, parameters, select), answer, (body, _url) in zip(
                calls, answers, requests, strict=True):
            try:
                out.append(self._batched(cmdlet, parameters, select, answer, body))
            except ExchangeError as e:
                out.append(e)
        return out

    def _batch_answers(self, requests: list[tuple[bytes, str]]) -> list[Any]:
        token = self._current_token()
        inner = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "X-AnchorMailbox": ANCHOR_MAILBOX.format(tenant=self.tenant_id),
                 "Prefer": f"odata.maxpagesize={self.page_size};odata.continue-on-error"}
        body = json.dumps({"requests": [
            {"id": str(i), "method": "POST", "url": url, "headers": inner,
             "body": json.loads(sub_body)} for i, (sub_body, url) in enumerate(requests)]},
            separators=(",", ":")).encode()
        payload = self._request("$batch", self.batch_endpoint, body, page=0,
                                parse=_batch_payload, prefer="odata.continue-on-error")
        by_id = {str(r.get("id")): r for r in payload["responses"] if isinstance(r, dict)}
        return [by_id.get(str(i)) for i in range(len(requests))]

    def _batched(self, cmdlet: str, parameters: Mapping[str, Any] | None,
                 select: Sequence[str] | None, answer: Any, body: bytes) -> CmdletResult:
        """One call's result from its sub-answer, or from a request of its own."""
        sub_body = answer.get("body") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or answer.get("status") != 200 \
                or not isinstance(sub_body, dict) or not isinstance(sub_body.get("value"), list):
            return self.invoke(cmdlet, parameters, select)
        result = CmdletResult(value=list(sub_body["value"]),
                              warnings=[str(w) for w in sub_body.get("@adminapi.warnings") or ()])
        if sub_body.get("@adminapi.errors"):
            return self.invoke(cmdlet, parameters, select)  # as a single call would fail
        next_link = sub_body.get("@odata.nextLink")
        if next_link:
            if not isinstance(next_link, str) or _origin(next_link) != self._origin:
                return self.invoke(cmdlet, parameters, select)
            with self._slots:
                rest = self._drain(cmdlet, next_link, body)
            result.value.extend(rest.value)
            result.warnings.extend(rest.warnings)
        log_call(f"exchange {self.tenant_id} (batched)", cmdlet, parameters, result, 0.0)
        return result

    # --- one drain of every page ---------------------------------------------------------------

    def _drain(self, cmdlet: str, url: str, body: bytes) -> CmdletResult:
        result = CmdletResult()
        started = time.monotonic()
        seen = {url}
        pages = 0
        while True:
            payload = self._request(cmdlet, url, body, page=pages)
            pages += 1
            result.value.extend(payload["value"])
            result.warnings.extend(str(w) for w in payload.get("@adminapi.warnings") or ())
            next_link = payload.get("@odata.nextLink")
            if not next_link:
                break
            if is_write(cmdlet):
                # A write has one answer; following a link would POST the write body again.
                log.warning("%s: ignoring a nextLink on a write's answer; the write is sent "
                            "once", cmdlet)
                break
            if not isinstance(next_link, str):
                raise _RunawayPages(f"page {pages} has a nextLink that is not a link")
            if _origin(next_link) != self._origin:
                raise ExchangeError(
                    f"{cmdlet}: refusing to follow a nextLink to another origin "
                    f"({_origin(next_link)})", cmdlet=cmdlet)
            if next_link in seen:
                raise _RunawayPages(f"page {pages}'s nextLink repeats an earlier page's link")
            if pages >= self.max_pages:
                raise _RunawayPages(f"the answer ran past {self.max_pages} pages")
            seen.add(next_link)
            url = next_link
        log.debug("%s: %d objects, %d page(s), %d warning(s) in %.3fs", cmdlet,
                  len(result.value), pages, len(result.warnings), time.monotonic() - started)
        return result

    # --- one request, with its retries ---------------------------------------------------------

    def _request(self, cmdlet: str, url: str, body: bytes, *, page: int,
                 parse: Callable[[str, Answer], dict[str, Any]] | None = None,
                 prefer: str | None = None) -> dict[str, Any]:
        write = is_write(cmdlet)
        request_id = str(uuid.uuid4())  # one id across retries: support sees them together
        failures = throttles = 0
        refreshed = False
        while True:
            token = self._current_token()
            try:
                return self._attempt(cmdlet, url, body, token, request_id, page,
                                     parse or _payload, prefer)
            except _Unauthorized:
                if refreshed:
                    raise AuthenticationError(
                        f"{cmdlet}: Exchange refused a fresh token (401). Hint: admin consent "
                        "for Exchange.ManageAsApp may be missing, or the token is for "
                        "another cloud's Exchange (set tenant.cloud or "
                        "tenant.exchange_resource).", cmdlet=cmdlet, status=401) from None
                log.debug("%s: 401, refreshing the token once", cmdlet)
                self._refresh(token)
                refreshed = True
            except Throttled as error:
                throttles += 1
                delay = (error.retry_after if error.retry_after is not None
                         else self.retry.default_retry_after)
                if throttles >= self.retry.throttle_attempts or delay > self.retry.max_retry_after:
                    raise
                log.debug("%s: throttled, waiting %.2fs (%d)", cmdlet, delay, throttles)
                self._sleep(delay)
            except _Retry as retry:
                failures += 1
                self._give_up_or_wait(cmdlet, retry, write=write, failures=failures, page=page)

    def _give_up_or_wait(self, cmdlet: str, retry: _Retry, *, write: bool, failures: int,
                         page: int) -> None:
        error = retry.error
        if write and retry.sent:
            raise AmbiguousWriteError(
                f"{cmdlet} failed ({error.message}) after it may have reached Exchange; it was "
                "not retried. Read the object back to learn whether it was applied.",
                cmdlet=cmdlet, exception_type=error.exception_type, status=error.status,
                error_id=error.error_id) from None
        if failures >= self.retry.attempts:
            raise type(error)(f"{cmdlet} failed {failures} times, last: {error.message}",
                              cmdlet=cmdlet, exception_type=error.exception_type,
                              status=error.status, error_id=error.error_id) from None
        delay = self._backoff(failures)
        log.debug("%s page %d: %s, retry %d in %.2fs", cmdlet, page, error.message, failures,
                  delay)
        self._sleep(delay)

    def _attempt(self, cmdlet: str, url: str, body: bytes, token: str, request_id: str,
                 page: int, parse: Callable[[str, Answer], dict[str, Any]] | None = None,
                 prefer: str | None = None) -> dict[str, Any]:
        """One round trip: the payload, or the typed reason it is not one."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "X-AnchorMailbox": ANCHOR_MAILBOX.format(tenant=self.tenant_id),
            "Prefer": prefer or f"odata.maxpagesize={self.page_size}",
            "client-request-id": request_id,
            "return-client-request-id": "true",
        }
        started = time.monotonic()
        try:
            answer = self._send(url, body, headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # Nothing reached Exchange: safe to retry, writes included.
            raise _Retry(TransientError(f"{type(e).__name__} before sending", cmdlet=cmdlet),
                         sent=False) from None
        except httpx.TransportError as e:
            raise _Retry(TransientError(type(e).__name__, cmdlet=cmdlet), sent=True) from None
        status = answer.status_code
        log.debug("%s page %d: HTTP %d in %.3fs (request %s)", cmdlet, page, status,
                  time.monotonic() - started, request_id)
        if status == 401:
            raise _Unauthorized
        if status < 400:
            try:
                payload = (parse or _payload)(cmdlet, answer)
            except UnreadableAnswer as e:
                raise _Retry(e, sent=True) from None
            error = _nonterminating(cmdlet, payload, answer)
            if error is None:
                return payload
        else:
            error = _error(cmdlet, status, answer.headers, answer.content)
        if isinstance(error, TransientError):
            raise _Retry(error, sent=True)
        raise error

    def _send(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """The one place an InvokeCommand request goes out and its answer comes back."""
        request = self._client.build_request("POST", url, content=body, headers=headers)
        response = self._client.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        content, problem = _decode(response.headers, raw)
        return Answer(response.status_code, response.headers, content, problem)

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


# --- answers -----------------------------------------------------------------------------------


def _payload(cmdlet: str, answer: Answer) -> dict[str, Any]:
    """A successful answer's JSON, or UnreadableAnswer: nothing here may read as "no objects"."""
    status = answer.status_code

    def unreadable(what: str) -> UnreadableAnswer:
        return UnreadableAnswer(f"{cmdlet}: Exchange answered HTTP {status} with {what}",
                                cmdlet=cmdlet, status=status)

    if answer.decode_error:
        raise unreadable(answer.decode_error)
    if not answer.content.strip():
        raise unreadable("an empty body")
    try:
        payload = json.loads(answer.content)
    except ValueError:
        raise unreadable("a body that is not JSON (cut short or corrupt)") from None
    if not isinstance(payload, dict):
        raise unreadable("a body that is not a JSON object")
    value = payload.get("value")
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise unreadable("no `value` list of objects")
    return payload


def _batch_payload(cmdlet: str, answer: Answer) -> dict[str, Any]:
    """A $batch answer's JSON: ``{"responses": [...]}``, or UnreadableAnswer."""
    try:
        payload = json.loads(answer.content) if answer.decode_error is None else None
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("responses"), list):
        raise UnreadableAnswer(f"{cmdlet}: the answer holds no list of responses",
                               cmdlet=cmdlet, status=answer.status_code)
    return payload



def _nonterminating(cmdlet: str, payload: Mapping[str, Any],
                    answer: Answer) -> ExchangeError | None:
    """A 200 can still carry the cmdlet's non-terminating errors (``@adminapi.errors``): the
    answer is then not the whole answer, and the first error says what went wrong."""
    errors = payload.get("@adminapi.errors")
    if not errors:
        return None
    first = errors[0] if isinstance(errors, list) else errors
    item = first if isinstance(first, dict) else {"message": str(first)}
    return _error(cmdlet, answer.status_code, answer.headers,
                  json.dumps({"error": item}, default=str).encode())


def _error(cmdlet: str, status: int, headers: httpx.Headers, body: bytes) -> ExchangeError:
    info = classify(status, headers, body)
    message = info.message
    if status == 403 and not message:
        diagnostics = headers.get("x-ms-diagnostics", "")
        reason = re.search(r'reason="([^"]*)"', diagnostics)
        message = (reason.group(1) if reason else
                   "no reason given: the cmdlet is unknown to Exchange, or the app has no "
                   "Exchange role that allows it (assign e.g. Exchange Administrator or "
                   "Recipient Management)")
    text = f"{cmdlet}: {message or f'HTTP {status}'}"
    common: dict[str, Any] = {"cmdlet": cmdlet, "exception_type": info.exception_type,
                              "error_id": info.error_id, "status": status}
    if info.kind is ErrorKind.THROTTLED:
        return Throttled(text, retry_after=_retry_after(headers), **common)
    return _ERROR_CLASSES.get(info.kind, ExchangeError)(text, **common)


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the default wait


def _decode(headers: httpx.Headers, raw: bytes) -> tuple[bytes, str | None]:
    """The body and, when a body labelled gzip is not gzip, why: Exchange labels some empty
    error bodies as gzip, and a 200 that cannot be decoded is no answer."""
    if raw and "gzip" in headers.get("Content-Encoding", "").lower():
        try:
            return gzip.decompress(raw), None
        except (OSError, EOFError, zlib.error) as e:
            return b"", f"a gzip body that cannot be decoded ({type(e).__name__})"
    return raw, None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
