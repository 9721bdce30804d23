"""Benchmark: apply 1,000 operations through the Exchange Online connector (msal sign-in, httpx,
TLS) to the fake gateway with 50 ms latency per call, at the tenant's concurrency of 4.

The plan grants FullAccess and SendAs to two users on each of 250 existing shared mailboxes:
four operations per mailbox, serial within a mailbox, parallel across mailboxes. Prints the
wall time of executing the operations (journal fsyncs included) against the ideal
``operations x latency / concurrency``, and the whole apply including the read-back that
verifies it.

    python bench/bench_apply.py                          # 1,000 operations, 50 ms, 4
    python bench/bench_apply.py --mailboxes 50           # a quicker run

The fake service runs in a child process, so the client's and the server's Python work do not
compete for one interpreter lock.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_snapshot import add_mailbox, empty_snapshot
from served import KEY_VARIABLE, served

from reconciler.apply.runner import ApplyOptions, apply_plan
from reconciler.desired import load
from reconciler.live.backend import is_write
from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
from reconciler.plan.planner import plan_desired
from tests.exchange.conftest import APP_ID

TENANT_ID = "6f1c1f2e-0000-4000-8000-00000000b001"
USERS = [f"user{n}@contoso.com" for n in range(8)]


def tenant_snapshot(mailboxes: int) -> dict[str, Any]:
    snap = empty_snapshot(TENANT_ID, "contoso.onmicrosoft.com", ["contoso.com"],
                          ["Default MRM Policy"])
    for user in USERS:
        add_mailbox(snap, address=user, display_name=user.split("@")[0].title())
    for n in range(mailboxes):
        add_mailbox(snap, address=f"shared{n:04d}@contoso.com", display_name=f"Shared {n}",
                    type_details="SharedMailbox")
    return snap


def write_repo(root: Path, mailboxes: int, concurrency: int) -> None:
    customer = root / "customers" / "contoso"
    customer.mkdir(parents=True)
    (customer / "customer.yaml").write_text(
        "customer:\n  name: Contoso\n  tenant:\n"
        f"    id: {TENANT_ID}\n    initial_domain: contoso.onmicrosoft.com\n"
        f"    app_id: {APP_ID}\n    certificate_key: env:{KEY_VARIABLE}\n"
        f"    concurrency: {concurrency}\n"
        "  mail_domains: [contoso.com]\n")
    lines = ["shared_mailboxes:"]
    for n in range(mailboxes):
        first, second = USERS[n % len(USERS)], USERS[(n + 3) % len(USERS)]
        lines += [f"  - name: Shared {n}", f"    alias: shared{n:04d}", "    permissions:",
                  f"      - {{user: {first}, access: [FullAccess, SendAs]}}",
                  f"      - {{user: {second}, access: [FullAccess, SendAs]}}"]
    (customer / "mailboxes.yaml").write_text("\n".join(lines) + "\n")


def run(mailboxes: int, latency: float, concurrency: int) -> dict[str, Any]:
    with served(partial(tenant_snapshot, mailboxes), TENANT_ID, latency) as service, \
            tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        root = Path(tmp)
        write_repo(root, mailboxes, concurrency)
        desired = load(root)
        declared = desired.customers["contoso"].customer
        customer = dataclasses.replace(declared, tenant=dataclasses.replace(
            declared.tenant, exchange_url=service.url, authority_host=service.url,
            certificate_thumbprint=service.app.sha1))
        settings = ExchangeSettings.for_tenant(customer.tenant, verify=service.client_context)

        def backend_for(state: Any) -> ExchangeBackend:
            return ExchangeBackend(customer, settings=settings)

        plan = plan_desired(desired, backend_for).plan
        before = service.counters()
        marks: dict[str, float] = {}
        lock = threading.Lock()

        def progress(result: Any, ref: Any, done: int, total: int) -> None:
            with lock:
                marks.setdefault("first", time.perf_counter())
                if result is not None:
                    marks["last"] = time.perf_counter()

        started = time.perf_counter()
        report = apply_plan(plan, desired, backend_for, root=root,
                            options=ApplyOptions(verify_attempts=0), progress=progress)
        total_wall = time.perf_counter() - started
        after = service.counters()
    writes = sum(v for k, v in after["commits"].items() if is_write(k)) - sum(
        v for k, v in before["commits"].items() if is_write(k))
    reads = sum(v for k, v in after["calls"].items() if not is_write(k)) - sum(
        v for k, v in before["calls"].items() if not is_write(k))
    execution = marks["last"] - marks["first"]
    ideal = plan.operation_count * latency / concurrency
    return {"operations": plan.operation_count, "writes": writes, "verify_reads": reads,
            "ok": report.ok, "execution": execution, "total": total_wall, "ideal": ideal,
            "ratio": execution / ideal, "total_ratio": total_wall / ideal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=250, help="4 operations each")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    r = run(args.mailboxes, args.latency_ms / 1000, args.concurrency)
    print(f"operations applied:      {r['operations']:,} ({r['writes']:,} writes committed by "
          f"the service; apply {'succeeded' if r['ok'] else 'FAILED'})")
    print(f"latency per call:        {args.latency_ms:g} ms, concurrency {args.concurrency} "
          "(server in a child process)")
    print(f"ideal (operations x latency / concurrency): {r['ideal']:.2f} s")
    print(f"execution wall time:     {r['execution']:.2f} s  -> {r['ratio']:.3f} x ideal "
          "(target <= 1.25)")
    print(f"whole apply:             {r['total']:.2f} s  -> {r['total_ratio']:.3f} x ideal "
          f"(includes the verifying re-read: {r['verify_reads']:,} read calls)")
    return 0 if r["ok"] and r["writes"] == r["operations"] and r["ratio"] <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
