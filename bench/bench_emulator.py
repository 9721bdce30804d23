"""Benchmark the Exchange emulator on a large tenant.

    python bench/bench_emulator.py                       # 50,000 mailboxes, 500,000 entries
    python bench/bench_emulator.py --mailboxes 5000 --permissions 50000

Measures, in one run (these machines are noisy: compare the ratios, not the absolute times):
loading the tenant, memory, ``Get-Mailbox -ResultSize Unlimited`` (all properties and with the
reader's $select), ``Get-MailboxPermission -Identity`` per mailbox, and the same per-mailbox call
on a tenant a fiftieth the size, to show that per-identity calls do not grow with the tenant.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen_snapshot import generate

from reconciler.emulator import Emulator, validate_snapshot

SELECT = ("Identity", "Name", "Guid", "UserPrincipalName", "Alias", "DisplayName",
          "PrimarySmtpAddress", "RecipientTypeDetails", "ForwardingAddress",
          "ForwardingSmtpAddress", "DeliverToMailboxAndForward", "GrantSendOnBehalfTo",
          "RetentionPolicy", "ArchiveStatus", "ResourceCapacity", "Office",
          *(f"CustomAttribute{n}" for n in range(1, 16)))


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(fn: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def per_mailbox_calls(em: Emulator, identities: list[str]) -> float:
    start = time.perf_counter()
    for identity in identities:
        em.invoke("Get-MailboxPermission", {"Identity": identity})
    return (time.perf_counter() - start) / len(identities)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=50_000)
    parser.add_argument("--permissions", type=int, default=500_000)
    parser.add_argument("--calls", type=int, default=5_000,
                        help="per-mailbox calls to time (default 5000)")
    parser.add_argument("--validate", action="store_true",
                        help="also time schema validation of the whole snapshot")
    parser.add_argument("--traced-memory", action="store_true",
                        help="also measure the emulator's exact memory with tracemalloc")
    args = parser.parse_args(argv)
    rng = random.Random(1)

    print(f"python {sys.version.split()[0]}, {args.mailboxes:,} mailboxes, "
          f"{args.permissions:,} mailbox permission entries")
    base = rss_mib()
    start = time.perf_counter()
    snap = generate(args.mailboxes, args.permissions)
    print(f"generate snapshot:            {time.perf_counter() - start:8.2f} s")
    snap_rss = rss_mib()
    if args.validate:
        start = time.perf_counter()
        validate_snapshot(snap)
        print(f"validate against the schema:  {time.perf_counter() - start:8.2f} s")
    start = time.perf_counter()
    em = Emulator(snap, validate=False)
    load = time.perf_counter() - start
    del snap
    gc.collect()
    print(f"load into the emulator:       {load:8.2f} s")
    print(f"memory (RSS growth): snapshot as parsed JSON {snap_rss - base:6.0f} MiB; after "
          f"loading the emulator and freeing the snapshot {rss_mib() - base:6.0f} MiB")
    if args.traced_memory:
        # Exact bytes held by the emulator's structures (slow: tracemalloc sees every object).
        snap = generate(args.mailboxes, args.permissions)
        tracemalloc.start()
        other = Emulator(snap, validate=False)
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del other, snap
        gc.collect()
        print(f"memory held by the emulator (tracemalloc): {held / 2**20:6.0f} MiB, "
              f"{held / (args.mailboxes + args.permissions):.0f} bytes per mailbox or entry")

    every = timed(lambda: em.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}), 3)
    selected = timed(lambda: em.invoke("Get-Mailbox", {"ResultSize": "Unlimited"},
                                       select=SELECT), 3)
    count = len(em.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value)
    print(f"Get-Mailbox -ResultSize Unlimited ({count:,} rows): "
          f"{statistics.median(every):6.3f} s per call (median of 3); with $select of "
          f"{len(SELECT)} properties {statistics.median(selected):6.3f} s")

    addresses = [m["PrimarySmtpAddress"] for m in em.invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}, select=["PrimarySmtpAddress"]).value]
    sample = [rng.choice(addresses) for _ in range(args.calls)]
    large = per_mailbox_calls(em, sample)
    entries = sum(len(em.invoke("Get-MailboxPermission", {"Identity": a}).value)
                  for a in sample[:500]) / 500
    print(f"Get-MailboxPermission -Identity: {large * 1e6:8.1f} µs per call "
          f"({entries:.1f} entries returned on average, {args.calls:,} calls)")

    small_n = max(args.mailboxes // 50, 100)
    small = Emulator(generate(small_n, args.permissions * small_n // args.mailboxes),
                     validate=False)
    small_addresses = [m["PrimarySmtpAddress"] for m in small.invoke(
        "Get-Mailbox", {"ResultSize": "Unlimited"}, select=["PrimarySmtpAddress"]).value]
    small_time = per_mailbox_calls(small, [rng.choice(small_addresses)
                                           for _ in range(args.calls)])
    print(f"same call on a {small_n:,}-mailbox tenant: {small_time * 1e6:8.1f} µs per call; "
          f"ratio large/small {large / small_time:.2f} (1.0 = independent of tenant size)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
