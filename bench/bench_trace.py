"""Benchmark: what ``--trace DIR`` costs. Reads a tenant through the Exchange Online connector
(msal, httpx, TLS) against the fake gateway three times: without a trace, with a raw trace and
with a redacted one (the default), and prints wall time, the ratio to the untraced run measured
in the same process, records written and the trace's size. Then replays the redacted trace
in-process (``replay_gateway``) and prints how long answering every read from it takes.

    python bench/bench_trace.py                    # 2,000 mailboxes
    python bench/bench_trace.py --mailboxes 500    # a quicker run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from served import KEY_VARIABLE, served

from reconciler.emulator.replay import TraceAnswers, replay_gateway
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings, trace
from reconciler.model import Customer, Tenant
from tests.exchange.conftest import APP_ID
from tests.exchange.tenants import TENANT_ID, synthetic_snapshot

BULK = {"ResultSize": "Unlimited"}


def read_all(backend: Any, mailboxes: int, concurrency: int) -> int:
    """Get-Mailbox in bulk, then Get-MailboxPermission per mailbox; the number of rows."""
    rows = backend.invoke("Get-Mailbox", BULK).value
    names = [row["Identity"] for row in rows[:mailboxes]]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        counts = pool.map(lambda n: len(backend.invoke("Get-MailboxPermission",
                                                       {"Identity": n}).value), names)
        return len(rows) + sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with served(partial(synthetic_snapshot, args.mailboxes), TENANT_ID, 0.0) as service, \
            tempfile.TemporaryDirectory() as scratch:
        tenant = Tenant(TENANT_ID, "contoso.onmicrosoft.com", app_id=APP_ID,
                        certificate_thumbprint=service.app.sha1,
                        certificate_key=f"env:{KEY_VARIABLE}", exchange_url=service.url,
                        authority_host=service.url, concurrency=args.concurrency)
        customer = Customer("contoso", "Contoso", tenant, ("contoso.com",))
        settings = ExchangeSettings.for_tenant(tenant, verify=service.client_context)
        with ExchangeBackend(customer, settings=settings) as warm:  # sign-in, connections
            warm.invoke("Get-Mailbox", {"Identity": "mbx000000"})
        base = None
        for label, redact in (("no trace", None), ("raw trace", False),
                              ("redacted trace", True)):
            directory = Path(scratch) / label.replace(" ", "-")
            started = time.perf_counter()
            if redact is None:
                with ExchangeBackend(customer, settings=settings) as backend:
                    rows = read_all(backend, args.mailboxes, args.concurrency)
            else:
                with trace.recording(directory, redact=redact), ExchangeBackend(
                        customer, settings=settings) as backend:
                    rows = read_all(backend, args.mailboxes, args.concurrency)
            wall = time.perf_counter() - started
            base = base or wall
            size = sum(p.stat().st_size for p in Path(scratch).glob(f"{directory.name}*/*"))
            records = (len((directory / trace.TRACE_FILE).read_text().splitlines())
                       if redact is not None else 0)
            print(f"{label:15} {rows:7} rows {wall:7.2f} s  x{wall / base:4.2f}  "
                  f"{records:6} records  {size / 1e6:6.2f} MB")
        started = time.perf_counter()
        answers = TraceAnswers.load(Path(scratch) / "redacted-trace")
        loaded = time.perf_counter() - started
        gateway = replay_gateway(answers)
        started = time.perf_counter()
        names = [row["Identity"] for row in gateway.invoke("Get-Mailbox", BULK).value]
        for name in names:
            gateway.invoke("Get-MailboxPermission", {"Identity": name})
        print(f"replay          {len(names):7} mailboxes: load {loaded:5.2f} s, answer every "
              f"read {time.perf_counter() - started:5.2f} s, unrecorded "
              f"{len(answers.unrecorded)}")


if __name__ == "__main__":
    main()
