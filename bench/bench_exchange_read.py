"""Benchmark: read a tenant's mailboxes and their managed permissions through the Exchange
Online connector (msal sign-in, httpx, TLS) against the fake gateway with injected latency.

The reads are those a full plan makes for mailbox permissions: Get-Mailbox in bulk,
Get-RecipientPermission in bulk (SendAs), and Get-MailboxPermission once per mailbox (FullAccess
has no bulk read), in parallel under the tenant's concurrency limit. Prints calls per cmdlet,
wall time, and wall time relative to the ideal ``calls x latency / concurrency``.

    python bench/bench_exchange_read.py                       # 10,000 mailboxes, 50 ms, 4
    python bench/bench_exchange_read.py --mailboxes 2000      # a quicker run

The fake service runs in a child process by default, so the client's and the server's Python
work do not compete for one interpreter lock (``--same-process`` to compare).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402 - a test dependency: the bench serves TLS with a throwaway CA

from reconciler.emulator import Emulator  # noqa: E402
from reconciler.emulator.faults import FaultConfig  # noqa: E402
from reconciler.emulator.service import FakeExchangeService  # noqa: E402
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings  # noqa: E402
from reconciler.live.reader import MAILBOX_PROPERTIES  # noqa: E402
from reconciler.model import Customer, Tenant  # noqa: E402
from tests.exchange.conftest import APP_ID, make_app_certificate  # noqa: E402
from tests.exchange.tenants import TENANT_ID, synthetic_snapshot  # noqa: E402

BULK = {"ResultSize": "Unlimited"}


def _serve(mailboxes: int, latency: float, cert_pem: bytes, server_pem: bytes,
           ready: Any) -> None:
    """Child process: build the tenant, serve it until told to stop, report the counters."""
    emulator = Emulator(synthetic_snapshot(mailboxes), validate=False)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
        pem.write(server_pem)
        pem.flush()
        context.load_cert_chain(pem.name)
    service = FakeExchangeService({TENANT_ID: emulator},
                                  faults=FaultConfig(latency_seconds=latency))
    service.identity.register(TENANT_ID, APP_ID, [cert_pem])
    service.start(ssl_context=context)
    ready.send(service.url)
    ready.recv()  # the parent asks for the counters when done
    ready.send(dict(service.calls))
    service.stop()


def run(mailboxes: int, latency: float, concurrency: int, same_process: bool) -> dict[str, Any]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    app = make_app_certificate()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    os.environ["BENCH_EXO_KEY"] = app.key_pem.decode()

    setup = time.perf_counter()
    process = None
    service = None
    if same_process:
        emulator = Emulator(synthetic_snapshot(mailboxes), validate=False)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(context)
        service = FakeExchangeService({TENANT_ID: emulator},
                                      faults=FaultConfig(latency_seconds=latency))
        service.identity.register(TENANT_ID, APP_ID, [app.certificate])
        service.start(ssl_context=context)
        url = service.url
    else:
        parent, child = multiprocessing.Pipe()
        process = multiprocessing.Process(
            target=_serve, args=(mailboxes, latency, app.cert_pem,
                                 server_cert.private_key_and_cert_chain_pem.bytes(), child),
            daemon=True)
        process.start()
        url = parent.recv()
    setup = time.perf_counter() - setup

    tenant = Tenant(TENANT_ID, "contoso.onmicrosoft.com", app_id=APP_ID,
                    certificate_thumbprint=app.sha1, certificate_key="env:BENCH_EXO_KEY",
                    exchange_url=url, authority_host=url, concurrency=concurrency)
    customer = Customer("contoso", "Contoso", tenant, ("contoso.com",))
    settings = ExchangeSettings.for_tenant(tenant, verify=client_context)
    done = Counter[str]()
    lock = threading.Lock()

    with ExchangeBackend(customer, settings=settings) as backend:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            bulk_mailboxes = pool.submit(backend.invoke, "Get-Mailbox", BULK,
                                         list(MAILBOX_PROPERTIES))
            bulk_send_as = pool.submit(backend.invoke, "Get-RecipientPermission", BULK)
            found = bulk_mailboxes.result().value

            def full_access(identity: str) -> int:
                entries = backend.invoke("Get-MailboxPermission", {"Identity": identity}).value
                with lock:
                    done["entries"] += len(entries)
                return len(entries)

            list(pool.map(full_access, [m["Identity"] for m in found]))
            send_as = bulk_send_as.result().value
        wall = time.perf_counter() - started

    if process is not None:
        parent.send("counters")
        calls = Counter(parent.recv())
        process.join(timeout=30)
    else:
        assert service is not None
        calls = Counter(service.calls)
        service.stop()
    total = sum(calls.values())
    ideal = total * latency / concurrency
    return {"mailboxes": len(found), "send_as_entries": len(send_as),
            "full_access_entries": done["entries"], "calls": calls, "total_calls": total,
            "wall": wall, "ideal": ideal, "ratio": wall / ideal if ideal else float("nan"),
            "setup": setup}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--same-process", action="store_true",
                        help="serve from this process instead of a child process")
    args = parser.parse_args(argv)
    r = run(args.mailboxes, args.latency_ms / 1000, args.concurrency, args.same_process)
    print(f"mailboxes read:          {r['mailboxes']:,} (SendAs entries {r['send_as_entries']:,},"
          f" FullAccess entries {r['full_access_entries']:,})")
    print(f"latency per call:        {args.latency_ms:g} ms, concurrency {args.concurrency}"
          f" ({'same process' if args.same_process else 'server in a child process'})")
    for cmdlet, count in sorted(r["calls"].items()):
        print(f"  {cmdlet:<28} {count:>7,} calls")
    print(f"total calls:             {r['total_calls']:,}")
    print(f"wall time:               {r['wall']:.1f} s (tenant setup {r['setup']:.1f} s, "
          "not counted)")
    print(f"ideal (calls x latency / concurrency): {r['ideal']:.1f} s")
    print(f"wall / ideal:            {r['ratio']:.3f}  (target <= 1.25)")
    return 0 if r["ratio"] <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
