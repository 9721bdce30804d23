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
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from served import KEY_VARIABLE, served

from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
from reconciler.live.reader import MAILBOX_PROPERTIES
from reconciler.model import Customer, Tenant
from tests.exchange.conftest import APP_ID
from tests.exchange.tenants import TENANT_ID, synthetic_snapshot

BULK = {"ResultSize": "Unlimited"}


def run(mailboxes: int, latency: float, concurrency: int, same_process: bool) -> dict[str, Any]:
    setup = time.perf_counter()
    with served(partial(synthetic_snapshot, mailboxes), TENANT_ID, latency,
                same_process=same_process) as service:
        setup = time.perf_counter() - setup
        tenant = Tenant(TENANT_ID, "contoso.onmicrosoft.com", app_id=APP_ID,
                        certificate_thumbprint=service.app.sha1,
                        certificate_key=f"env:{KEY_VARIABLE}", exchange_url=service.url,
                        authority_host=service.url, concurrency=concurrency)
        customer = Customer("contoso", "Contoso", tenant, ("contoso.com",))
        settings = ExchangeSettings.for_tenant(tenant, verify=service.client_context)
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
                    entries = backend.invoke("Get-MailboxPermission",
                                             {"Identity": identity}).value
                    with lock:
                        done["entries"] += len(entries)
                    return len(entries)

                list(pool.map(full_access, [m["Identity"] for m in found]))
                send_as = bulk_send_as.result().value
            wall = time.perf_counter() - started
        calls = Counter(service.counters()["calls"])
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
