"""Benchmark `reconciler plan` on a large repository against a tenant snapshot with 1% drift.

    python bench/bench_plan.py [--mailboxes 10000 --grants 100000 --files 100 --drift 0.01]

Prints: wall time and peak memory of a full plan, the ratio to PyYAML's CSafeLoader merely
parsing the same YAML (measured in the same run), the backend calls made against the minimum
the data needs, and the calls a 3-mailbox pull request costs with --changed-since.

The live tenant is made by carrying out the repository's own plan on the Exchange emulator
(so it matches the YAML exactly, with Exchange's noise), then changing 1% of the mailboxes.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from gen_repo import generate
from gen_snapshot import add_mailbox, empty_snapshot

from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.plan.planner import plan_desired


def build_live(root: Path, users_per_site: int, drift: float, seed: int) -> dict:
    desired = load(root)
    (state,) = desired.customers.values()
    tenant = state.customer.tenant
    snap = empty_snapshot(tenant.id, tenant.initial_domain, list(state.customer.mail_domains),
                          ["Default MRM Policy", "Default 2y"])
    for site in state.customer.sites:
        for u in range(users_per_site):
            add_mailbox(snap, address=f"user-{u}-{site}@{state.customer.mail_domains[0]}",
                        display_name=f"User {u} {site}", office=site)
    emulator = Emulator(snap)
    plan = plan_desired(desired, lambda _: emulator).plan
    for change in plan.actionable:
        for op in change.operations:
            emulator.invoke(op.cmdlet, dict(op.parameters))
    rng = random.Random(seed)
    ids = sorted(state.resources)
    for rid in rng.sample(ids, max(1, int(len(ids) * drift))):
        emulator.invoke("Set-Mailbox", {"Identity": rid, "RetentionPolicy": "Default MRM Policy"})
    return emulator.to_snapshot()


def parse_only(root: Path) -> float:
    start = time.perf_counter()
    for path in sorted(root.rglob("*.yaml")):
        with path.open("rb") as f:
            yaml.load(f, Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def measure(root: Path, live: Path, changed_since: str | None) -> dict:
    """Run one plan in a fresh interpreter, so peak memory is the plan's own."""
    code = f"""
import json, resource, time
from collections import Counter
from reconciler.emulator import Emulator
calls = Counter()
original = Emulator.invoke
def invoke(self, cmdlet, *a, **k):
    calls[cmdlet] += 1
    return original(self, cmdlet, *a, **k)
Emulator.invoke = invoke
from reconciler.plan.planner import make_plan
start = time.perf_counter()
result = make_plan({str(root)!r}, live_source={"snapshot:" + str(live)!r},
                   changed_since={changed_since!r})
wall = time.perf_counter() - start
print(json.dumps({{"wall": wall, "calls": dict(calls), "summary": result.plan.summary,
                   "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--users-per-site", type=int, default=50)
    parser.add_argument("--drift", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = Path(tmp) / "repo"
        size = generate(root, args.mailboxes, args.grants, args.files,
                        users_per_site=args.users_per_site)
        print(f"repository: {size.mailboxes} mailboxes, {size.grants} grants, {size.files} "
              f"files, {size.bytes / 1e6:.1f} MB of YAML")
        t = time.perf_counter()
        live = Path(tmp) / "live"
        live.mkdir()
        snapshot = build_live(root, args.users_per_site, args.drift, args.seed)
        (live / "customer-0.json").write_text(json.dumps(snapshot))
        print(f"live tenant built in {time.perf_counter() - t:.1f} s "
              f"({len(snapshot['mailboxes'])} mailboxes, "
              f"{len(snapshot['mailbox_permissions'])} mailbox permission entries)")

        # Best of N of each, alternating, as these machines are noisy.
        parses, fulls = [], []
        for _ in range(args.rounds):
            parses.append(parse_only(root))
            fulls.append(measure(root, live, None))
        parse = min(parses)
        full = min(fulls, key=lambda r: r["wall"])
        calls = Counter(full["calls"])
        with_perms = size.mailboxes  # every generated mailbox declares permissions
        with_calendar = size.mailboxes if args.grants >= 2 * size.mailboxes else 0
        minimum = 3 + 1 + with_perms + with_calendar  # bulk reads, SendAs, per mailbox
        print(f"CSafeLoader parse only: {parse:.2f} s (best of {args.rounds})")
        print(f"full plan:              {full['wall']:.2f} s (best of {args.rounds}) "
              f"(ratio to parse {full['wall'] / parse:.2f}, target <= 2.0)")
        print(f"peak memory (maxrss):   {full['maxrss_kib'] / 1024:.0f} MiB (target <= 1024)")
        print(f"plan summary:           {full['summary']}")
        print(f"backend calls:          {sum(calls.values())} (minimum the data needs: "
              f"{minimum}) {dict(sorted(calls.items()))}")

        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(["git", "-c", "user.email=b@example.com", "-c", "user.name=b", "commit",
                        "-qm", "base"], cwd=root, check=True)
        first = sorted(root.rglob("mailboxes-0000.yaml"))[0]
        text = first.read_text()
        for n in range(3):
            text = text.replace(f"    alias: mbx-{n}\n", f"    alias: mbx-{n}\n    archive: true\n")
        first.write_text(text)
        scoped = measure(root, live, "HEAD")
        scoped_calls = sum(scoped["calls"].values())
        print(f"--changed-since, 3 mailboxes edited: {scoped['wall']:.2f} s, {scoped_calls} "
              f"backend calls (target <= 20) {dict(sorted(scoped['calls'].items()))}, "
              f"summary {scoped['summary']}")
        print(f"benchmark process maxrss: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
