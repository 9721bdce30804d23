"""A tenant served by the fake Exchange Online service over TLS, for the benchmarks that go
through the real connector (msal sign-in, httpx).

The service runs in a child process by default, so that the client's and the server's Python
work do not compete for one interpreter lock; ``same_process=True`` serves from threads of this
process instead, to compare.
"""

from __future__ import annotations

import multiprocessing
import os
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402 - a test dependency: the bench serves TLS with a throwaway CA

from reconciler.emulator import Emulator  # noqa: E402
from reconciler.emulator.faults import FaultConfig  # noqa: E402
from reconciler.emulator.service import FakeExchangeService  # noqa: E402
from tests.exchange.conftest import APP_ID, AppCertificate, make_app_certificate  # noqa: E402

KEY_VARIABLE = "BENCH_EXO_KEY"  # the tenant's certificate_key is env:BENCH_EXO_KEY

Snapshot = Callable[[], dict[str, Any]]


@dataclass
class Served:
    """Where the tenant is served, and how a client signs in to it."""

    url: str
    app: AppCertificate
    client_context: ssl.SSLContext
    counters: Callable[[], dict[str, dict[str, int]]]  # {"calls": ..., "commits": ...}


def _start(snapshot: Snapshot, tenant_id: str, latency: float, cert_pem: bytes,
           server_pem: bytes) -> FakeExchangeService:
    emulator = Emulator(snapshot(), validate=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
        pem.write(server_pem)
        pem.flush()
        context.load_cert_chain(pem.name)
    service = FakeExchangeService({tenant_id: emulator},
                                  faults=FaultConfig(latency_seconds=latency))
    service.identity.register(tenant_id, APP_ID, [cert_pem])
    service.start(ssl_context=context)
    return service


def _counters(service: FakeExchangeService) -> dict[str, dict[str, int]]:
    return {"calls": dict(service.calls), "commits": dict(service.commits)}


def _child(snapshot: Snapshot, tenant_id: str, latency: float, cert_pem: bytes,
           server_pem: bytes, pipe: Any) -> None:
    """Serve until told to stop, answering each request for the counters."""
    service = _start(snapshot, tenant_id, latency, cert_pem, server_pem)
    pipe.send(service.url)
    while pipe.recv() == "counters":
        pipe.send(_counters(service))
    service.stop()


@contextmanager
def served(snapshot: Snapshot, tenant_id: str, latency: float, *,
           same_process: bool = False) -> Iterator[Served]:
    """Serve the tenant ``snapshot()`` builds (not timed: it is built before this yields), with
    ``latency`` seconds added to every call; the app's key is put in $BENCH_EXO_KEY."""
    ca = trustme.CA()
    server_pem = ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes()
    app = make_app_certificate()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    os.environ[KEY_VARIABLE] = app.key_pem.decode()
    if same_process:
        service = _start(snapshot, tenant_id, latency, app.cert_pem, server_pem)
        try:
            yield Served(service.url, app, client_context, lambda: _counters(service))
        finally:
            service.stop()
        return
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(
        target=_child, args=(snapshot, tenant_id, latency, app.cert_pem, server_pem, child),
        daemon=True)
    process.start()
    url = parent.recv()

    def counters() -> dict[str, dict[str, int]]:
        parent.send("counters")
        return parent.recv()  # type: ignore[no-any-return]

    try:
        yield Served(url, app, client_context, counters)
    finally:
        parent.send("stop")
        process.join(timeout=30)
