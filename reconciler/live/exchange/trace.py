"""Recording every round trip to Exchange Online's gateway as a trace (``--trace DIR``).

The recorder sits in the HTTP transport of the connector's client, so every request to the
gateway is seen exactly as it went over the wire, whichever code sent it (InvokeCommand, its
pages, retries, a ``$batch``); sign-in (the authority's endpoints) is not recorded. Each round
trip is one JSON line of ``DIR/trace.jsonl``:

``{"format", "seq", "at", "tenant", "method", "path", "query", "cmdlet", "parameters"
(or "request_body"), "prefer", "status" (null when no answer came), "transport_error",
"headers" (those that matter: x-ExceptionType, Retry-After, paging, diagnostics), "body"
(JSON) or "body_text", "elapsed_ms"}``

Never recorded: request headers other than ``Prefer`` (so no ``Authorization``), the sign-in,
any value under a secret-named key, and any token-shaped string. With redaction (the default),
the tenant's addresses, names and GUIDs are replaced by stable pseudonyms
(:mod:`reconciler.live.exchange.redact`); the mapping is kept beside the directory, in
``DIR.pseudonyms.json``, to be kept and never shared.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.errors import ReconcilerError
from reconciler.live.exchange.redact import Pseudonyms, scrub_secrets

TRACE_FORMAT = "exchange-trace/1"
TRACE_FILE = "trace.jsonl"
MANIFEST_FILE = "trace.json"
GATEWAY_MARK = "/adminapi/"  # the gateway's paths; sign-in never goes there
# The mapping grows with the tenant: rewritten at most this often (seconds), and at the end.
SAVE_EVERY = 2.0
RESPONSE_HEADERS = ("Content-Type", "Content-Encoding", "Retry-After", "x-ExceptionType",
                    "x-ExceptionTargetType", "Preference-Applied", "x-ms-diagnostics",
                    "WWW-Authenticate", "Rate-Limit-Remaining", "Rate-Limit-Reset")


def pseudonyms_path(directory: Path) -> Path:
    """Where a redacted trace's mapping is kept: beside the directory, not in it."""
    directory = Path(directory).resolve()  # "--trace ." must not put it inside the trace
    return directory.parent / f"{directory.name}.pseudonyms.json"


@dataclass
class TraceWriter:
    """Appends records to one trace directory; shared by every backend of the process."""

    directory: Path
    redact: bool = True
    pseudonyms: Pseudonyms = field(default_factory=Pseudonyms)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0
    _saved_at: float = 0.0  # when the pseudonyms were last written
    recorded: int = 0  # records written by this writer (the file may hold earlier ones)
    lost: int = 0  # round trips whose record could not be written
    lost_because: str = ""

    @classmethod
    def open(cls, directory: Path, *, redact: bool = True) -> TraceWriter:
        """The writer of ``directory``, appending to a trace already there (same redaction,
        same pseudonyms); anything unreadable is refused before a file is written."""
        directory = Path(directory)
        mapping = pseudonyms_path(directory)
        try:
            pseudonyms = Pseudonyms.load(mapping) if redact else Pseudonyms()
        except (OSError, ValueError) as e:
            raise ReconcilerError(f"--trace {directory}: cannot read {mapping}: "
                                  f"{getattr(e, 'strerror', None) or e}") from e
        manifest = directory / MANIFEST_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if manifest.exists():
                _check_manifest(directory, json.loads(manifest.read_text(encoding="utf-8")),
                                redact)
            else:
                manifest.write_text(json.dumps({"format": TRACE_FORMAT, "redacted": redact})
                                    + "\n", encoding="utf-8")
            trace = directory / TRACE_FILE
            seq = sum(1 for _ in trace.open(encoding="utf-8")) if trace.exists() else 0
        except OSError as e:
            raise ReconcilerError(f"--trace {directory}: {e.strerror or e}") from e
        except ValueError as e:
            raise ReconcilerError(f"--trace {directory}: {manifest} is not a trace's "
                                  f"manifest ({e}); record into another directory") from e
        return cls(directory, redact, pseudonyms, _seq=seq)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record. A record that cannot be written is counted, never raised:
        the round trip it describes has happened, and its answer must reach the caller."""
        record = scrub_secrets(record)
        if self.redact:
            record = redact_record(record, self.pseudonyms)
        with self._lock:
            try:
                line = json.dumps({"format": TRACE_FORMAT, "seq": self._seq + 1, **record},
                                  ensure_ascii=False, sort_keys=False, default=str)
                with (self.directory / TRACE_FILE).open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
            except OSError as e:
                self.lost += 1
                self.lost_because = self.lost_because or (e.strerror or str(e))
                return
            self._seq += 1
            self.recorded += 1
            if self.redact and time.monotonic() - self._saved_at >= SAVE_EVERY:
                with contextlib.suppress(OSError):  # tried again at the end, which says so
                    self._save()

    def summary(self) -> str:
        """One line for the user: what was recorded where, and what to keep private."""
        where = self.directory / TRACE_FILE
        if self.lost or self.lost_because:
            return (f"Trace INCOMPLETE: {self.recorded} round trip(s) recorded in {where}, "
                    f"{self.lost} round trip(s) not recorded ({self.lost_because}); the "
                    "command itself was not affected.")
        if not self.redact:
            return f"Trace: {self.recorded} round trip(s) recorded in {where}, NOT redacted."
        return (f"Trace: {self.recorded} round trip(s) recorded in {where}, redacted; the "
                f"pseudonyms are in {pseudonyms_path(self.directory)} (keep it, never share "
                "it).")

    def close(self) -> None:
        """Write the pseudonyms as they are at the end (records are written as they come)."""
        if self.redact:
            with self._lock:
                try:
                    self._save()
                except OSError as e:  # the records stand; the reporter must hear of it
                    self.lost_because = f"pseudonyms not saved: {e.strerror or e}"

    def _save(self) -> None:
        self.pseudonyms.save(pseudonyms_path(self.directory))
        self._saved_at = time.monotonic()


def _check_manifest(directory: Path, existing: Any, redact: bool) -> None:
    """An existing trace is appended to only when it is one, redacted as this one will be."""
    if not isinstance(existing, dict) or existing.get("format") != TRACE_FORMAT:
        raise ValueError(f"format {TRACE_FORMAT} expected")
    if bool(existing.get("redacted")) != redact:
        state = "redacted" if existing.get("redacted") else "not redacted"
        raise ReconcilerError(f"--trace {directory}: that trace is {state}; record into another "
                              "directory rather than mix redacted and raw records")


def redact_record(record: dict[str, Any], pseudonyms: Pseudonyms) -> dict[str, Any]:
    """A record with the tenant's values replaced; Exchange's own words and the shape kept."""
    out = dict(record)
    tenant = str(out.get("tenant") or "")
    if tenant:  # a GUID, or a domain (a tenant may be addressed by its initial domain)
        out["tenant"] = pseudonyms.name(tenant)
        out["path"] = str(out.get("path") or "").replace(tenant, out["tenant"])
    if out.get("query"):
        out["query"] = pseudonyms.url(out["query"])
    for key in ("parameters", "request_body", "body"):
        if key in out:
            out[key] = pseudonyms.value(out[key])
    if out.get("body_text"):
        out["body_text"] = pseudonyms.message(out["body_text"])
    headers = dict(out.get("headers") or {})
    for name in ("x-ms-diagnostics", "WWW-Authenticate"):
        if headers.get(name):
            headers[name] = pseudonyms.header(headers[name])
    out["headers"] = headers
    return out


# --- the process-wide recorder ---------------------------------------------------------------

_active: TraceWriter | None = None
_active_lock = threading.Lock()


def active() -> TraceWriter | None:
    return _active


@contextlib.contextmanager
def recording(directory: Path, *, redact: bool = True) -> Iterator[TraceWriter]:
    """Record every gateway round trip of every Exchange backend opened within the block."""
    global _active
    writer = TraceWriter.open(directory, redact=redact)
    with _active_lock:
        previous, _active = _active, writer
    try:
        yield writer
    finally:
        with _active_lock:
            _active = previous
        writer.close()


def attach(client: httpx.Client, writer: TraceWriter | None = None) -> None:
    """Record ``client``'s gateway round trips into ``writer`` (default: the active trace).

    httpx picks a transport per URL (a proxy from the environment has its own), so each is
    wrapped; without a trace this does nothing."""
    writer = writer or active()
    if writer is None:
        return
    client._transport = TracingTransport(client._transport, writer)
    for pattern, transport in list(client._mounts.items()):
        if transport is not None:
            client._mounts[pattern] = TracingTransport(transport, writer)


class TracingTransport(httpx.BaseTransport):
    """Passes each request on, and records it with its answer when it is the gateway's."""

    def __init__(self, inner: httpx.BaseTransport, writer: TraceWriter) -> None:
        self._inner = inner
        self._writer = writer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if GATEWAY_MARK not in request.url.path:
            return self._inner.handle_request(request)
        started = time.monotonic()
        record = request_record(request)
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as e:
            self._failed(record, e, started)
            raise
        try:
            raw = b"".join(response.stream)
        except httpx.TransportError as e:
            self._failed(record, e, started)
            raise
        finally:
            response.close()
        record.update(response_record(response.status_code, response.headers, raw))
        record["elapsed_ms"] = _ms(started)
        self._writer.write(record)
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=httpx.ByteStream(raw), extensions=response.extensions)

    def _failed(self, record: dict[str, Any], error: Exception, started: float) -> None:
        """A round trip that got no (whole) answer is recorded too: replay drops it."""
        record.update(status=None, transport_error=type(error).__name__, headers={},
                      elapsed_ms=_ms(started))
        self._writer.write(record)

    def close(self) -> None:
        self._inner.close()


def request_record(request: httpx.Request) -> dict[str, Any]:
    """What a request asked: path, query and the cmdlet with its parameters."""
    url = urlsplit(str(request.url))
    parts = [p for p in url.path.split("/") if p]
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "tenant": parts[2] if len(parts) > 2 else "",
        "method": request.method, "path": url.path, "query": url.query,
    }
    record.update(body_fields(request.content))
    if request.headers.get("Prefer"):
        record["prefer"] = request.headers["Prefer"]
    return record


def body_fields(body: bytes) -> dict[str, Any]:
    """A request body as the record holds it: ``cmdlet`` and ``parameters`` for InvokeCommand,
    else the body itself as ``request_body``."""
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    cmdlet_input = parsed.get("CmdletInput") if isinstance(parsed, dict) else None
    if isinstance(cmdlet_input, dict) and set(parsed) == {"CmdletInput"}:
        return {"cmdlet": cmdlet_input.get("CmdletName"),
                "parameters": cmdlet_input.get("Parameters") or {}}
    return {"request_body": parsed}


def response_record(status: int, headers: httpx.Headers | dict[str, str],
                    raw: bytes) -> dict[str, Any]:
    """What came back: status, the headers that matter, and the body, decoded."""
    headers = httpx.Headers(headers)
    kept = {name: headers[name] for name in RESPONSE_HEADERS if name in headers}
    content = raw
    if raw and "gzip" in headers.get("Content-Encoding", "").lower():
        try:
            content = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            content = b""
    record: dict[str, Any] = {"status": status, "headers": kept}
    try:
        record["body"] = json.loads(content) if content else None
    except ValueError:
        record["body_text"] = content.decode("utf-8", "replace")
    return record


def request_key(record: dict[str, Any]) -> str:
    """One string per distinct request, for replay: the same request has the same key."""
    method, path, query = record["method"], record["path"], record.get("query") or ""
    body = ({"CmdletInput": {"CmdletName": record["cmdlet"],
                             "Parameters": record.get("parameters") or {}}}
            if record.get("cmdlet") is not None else record.get("request_body"))
    query_items = sorted(q for q in query.split("&") if q)
    body = _without_origins(body)
    return json.dumps([method.upper(), path.rstrip("/").lower(), query_items, body],
                      sort_keys=True, separators=(",", ":"))


def _without_origins(data: Any) -> Any:
    """A ``$batch`` body's sub-request ``url``s as path and query: the replay that answers
    them is not the host they were recorded from."""
    if isinstance(data, dict):
        return {k: (_path_of(v) if k == "url" and isinstance(v, str) else _without_origins(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_without_origins(v) for v in data]
    return data


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
