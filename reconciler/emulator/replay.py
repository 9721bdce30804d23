"""Answering from a recorded trace (``--trace DIR``) instead of from an emulated tenant.

A request is looked up by what it asks (method, path, query, cmdlet and parameters) and gets the
answer recorded for it: status, headers, body, pages (``@odata.nextLink`` is pointed at whoever
serves the replay), errors and warnings. A request recorded several times (a 429, then its
retry) gets the recorded answers in order, then the last one again. A request the trace does not
hold is answered with a 400 naming it (``Exchange answer not recorded: …``), so the client fails
closed and says which call is missing; the misses are also kept in ``unrecorded``.

Three ways to use a trace:

- :class:`ReplayService`: the fake Exchange Online (gateway and sign-in) answering from it, for
  ``reconciler sandbox serve --replay DIR`` and the tests;
- :class:`ReplayTransport`: an httpx transport answering from it in-process;
- :func:`replay_gateway`: a backend-like object over that transport, with the connector's real
  gateway (paging, error classification), which is how a trace becomes a tenant snapshot.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from reconciler.emulator.identity import FakeIdentity, Reply
from reconciler.emulator.service import FakeExchangeService, _bearer, _error
from reconciler.errors import ReconcilerError
from reconciler.live.exchange.gateway import Gateway, RetryPolicy
from reconciler.live.exchange.trace import (
    TRACE_FILE,
    TRACE_FORMAT,
    body_fields,
    request_key,
)

log = logging.getLogger(__name__)

REPLAY_ORIGIN = "https://replay.invalid"
UNRECORDED = "Exchange answer not recorded"


@dataclass(frozen=True)
class Recorded:
    """One recorded answer. ``status`` None: no answer came (the connection dropped)."""

    status: int | None
    headers: Mapping[str, str]
    body: Any
    body_text: str | None
    elapsed_ms: float

    def reply(self, origin: str) -> Reply | None:
        if self.status is None:
            return None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        if self.body_text is not None:
            content = self.body_text.encode()
        elif self.body is None:
            content = b""
        else:
            content = json.dumps(_relink(self.body, origin), separators=(",", ":")).encode()
        if content and "gzip" in headers.get("Content-Encoding", "").lower():
            content = gzip.compress(content)
        return self.status, headers, content


def _relink(body: Any, origin: str) -> Any:
    """Every ``@odata.nextLink`` pointed at ``origin``: pages are served by the replay."""
    if isinstance(body, dict):
        return {k: (_with_origin(v, origin) if k == "@odata.nextLink" and isinstance(v, str)
                    else _relink(v, origin)) for k, v in body.items()}
    if isinstance(body, list):
        return [_relink(v, origin) for v in body]
    return body


def _with_origin(url: str, origin: str) -> str:
    parts, base = urlsplit(url), urlsplit(origin)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))


@dataclass
class TraceAnswers:
    """A trace, indexed by request."""

    answers: dict[str, list[Recorded]]
    tenants: list[str]
    records: list[dict[str, Any]]
    unrecorded: list[str] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)  # answers given, per request key
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, directory: Path) -> TraceAnswers:
        path = Path(directory) / TRACE_FILE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ReconcilerError(f"cannot read the trace {path}: {e.strerror or e}") from e
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if record.get("format") != TRACE_FORMAT:
                    raise ValueError(f"format is not {TRACE_FORMAT}")
                records.append(record)
            except (ValueError, AttributeError) as e:
                raise ReconcilerError(f"{path}:{number}: not a trace record ({e})") from None
        return cls.of(records)

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> TraceAnswers:
        answers: dict[str, list[Recorded]] = {}
        tenants: list[str] = []
        for record in sorted(records, key=lambda r: r.get("seq", 0)):
            answers.setdefault(request_key(record), []).append(Recorded(
                record.get("status"), record.get("headers") or {}, record.get("body"),
                record.get("body_text"), float(record.get("elapsed_ms") or 0)))
            if record.get("tenant") and record["tenant"] not in tenants:
                tenants.append(record["tenant"])
        return cls(answers, tenants, records)

    def answer(self, method: str, url: str, body: bytes) -> Recorded | str:
        """The recorded answer to this request, or a description of the unrecorded request."""
        parts = urlsplit(url)
        fields = {"method": method, "path": parts.path, "query": parts.query,
                  **body_fields(body)}
        key = request_key(fields)
        with self._lock:
            recorded = self.answers.get(key)
            if not recorded:
                missing = describe(fields)
                self.unrecorded.append(missing)
                log.warning("not in the trace: %s", missing)
                return missing
            served = self.served[key]
            self.served[key] += 1
        return recorded[min(served, len(recorded) - 1)]

    def reply(self, method: str, url: str, body: bytes, origin: str,
              timing: bool = False) -> Reply | None:
        found = self.answer(method, url, body)
        if isinstance(found, str):
            return _error(400, "BadRequest", f"{UNRECORDED}: {found}",
                          "Reconciler.Replay.UnrecordedRequestException")
        if timing and found.elapsed_ms:
            time.sleep(found.elapsed_ms / 1000)
        return found.reply(origin)


def describe(fields: Mapping[str, Any]) -> str:
    """A request in one line, as a user would look for it in the trace."""
    query = f"?{fields['query']}" if fields.get("query") else ""
    what = (f"{fields['cmdlet']} {json.dumps(fields.get('parameters') or {}, sort_keys=True)}"
            if fields.get("cmdlet") else json.dumps(fields.get("request_body"))[:200])
    return f"{fields['method']} {fields['path']}{query} {what}"


def _no_batch(path: str) -> Reply | None:
    """A trace is recorded one request per call (the connector does not batch while tracing):
    its replay is a gateway without $batch, so a client falls back to one request per call."""
    if path.rstrip("/").endswith("/$batch"):
        return _error(404, "NotFound", "This gateway has no $batch.")
    return None


class ReplayService(FakeExchangeService):
    """The fake Exchange Online whose gateway answers from a trace; sign-in is the fake
    identity's, as for the emulated service (register the app on ``service.identity``)."""

    def __init__(self, answers: TraceAnswers, *, identity: FakeIdentity | None = None,
                 timing: bool = False) -> None:
        super().__init__({}, identity=identity)
        self.answers = answers
        self.timing = timing
        for tenant in answers.tenants:
            self.identity.add_tenant(tenant, [])

    def handle(self, request: Any) -> Reply | None:
        """Sign-in as the fake identity does it; every other request needs one of its tokens
        and is answered from the trace."""
        url = urlsplit(request.path)
        origin = f"{self._scheme}://{request.headers.get('Host', '127.0.0.1')}"
        return (self.identity.handle(request.command, url.path, url.query, request.body, origin)
                or self._unauthorized(request.headers.get("Authorization"))
                or _no_batch(url.path)
                or self.answers.reply(request.command, request.path, request.body, origin,
                                      self.timing))

    def _unauthorized(self, authorization: str | None) -> Reply | None:
        if self.identity.validate(_bearer(authorization) or "") is not None:
            return None
        status, headers, body = _error(401, "Unauthorized", "The access token is missing or "
                                       "expired.")
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return status, headers, body


class ReplayTransport(httpx.BaseTransport):
    """An httpx transport answering every request from a trace."""

    def __init__(self, answers: TraceAnswers) -> None:
        self.answers = answers

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        reply = _no_batch(request.url.path) or self.answers.reply(
            request.method, str(request.url), request.read(), origin)
        if reply is None:
            raise httpx.RemoteProtocolError("the recorded request got no answer",
                                            request=request)
        status, headers, body = reply
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


class _NoSignIn:
    """Tokens for a replay: the trace holds none, and the replay asks for none."""

    def token(self) -> str:
        return "replay"

    def refresh(self, rejected: str) -> str:
        return "replay"


def replay_gateway(answers: TraceAnswers, tenant: str | None = None) -> Gateway:
    """The connector's gateway over the trace: ``invoke(cmdlet, parameters, select)`` as for
    a live tenant, answered from the recording (``tenant``: default, the trace's only one)."""
    if tenant is None:
        if len(answers.tenants) != 1:
            raise ReconcilerError(
                f"the trace holds {len(answers.tenants)} tenants "
                f"({', '.join(answers.tenants) or 'none'}): name the one to use")
        tenant = answers.tenants[0]
    client = httpx.Client(transport=ReplayTransport(answers))
    return Gateway(client, exchange_url=REPLAY_ORIGIN, tenant_id=tenant, tokens=_NoSignIn(),
                   concurrency=threading.BoundedSemaphore(4),
                   retry=RetryPolicy(backoff_base=0.0, backoff_cap=0.0, max_retry_after=3600),
                   sleep=lambda _seconds: None, rng=random.Random(0))


@contextlib.contextmanager
def replay_service(directory: Path | TraceAnswers, **options: Any) -> Iterator[ReplayService]:
    """A :class:`ReplayService` for the trace in ``directory``, on 127.0.0.1, for the block.
    Options: ``ssl_context``, ``port``, ``identity``, ``timing``."""
    answers = directory if isinstance(directory, TraceAnswers) else TraceAnswers.load(directory)
    ssl_context = options.pop("ssl_context", None)
    port = options.pop("port", 0)
    service = ReplayService(answers, **options)
    with service.start(port=port, ssl_context=ssl_context):  # stopped on leaving
        yield service
