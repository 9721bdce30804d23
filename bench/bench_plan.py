"""Benchmark `reconciler plan`: full plans against the parse floor, a pull request's plan cold and
warm, and what each costs in Exchange round trips over HTTP.

    python bench/bench_plan.py            # 10,000 and 50,000 mailboxes (several minutes)
    python bench/bench_plan.py --quick    # 2,000 and 5,000 mailboxes, for development

Every timed command runs in its own interpreter, the parse floor too (PyYAML's CSafeLoader
merely parsing the same files: a process that already holds a large heap parses slower), and
the rounds alternate parse and plan (these machines are noisy: medians of ``--rounds``).
Printed side by side:

- full plan at each size: wall time, ratio to the parse, peak RSS;
- ``--changed-since HEAD`` with 3 mailboxes edited in one file, at the smaller size: cold (no
  parse cache) and warm (the cache filled by a previous plan), each as a ratio to a full plan;
- round trips of that pull request's plan over HTTP (real msal sign-in, httpx, TLS, against the
  fake Exchange Online service) at each size;
- a full read over HTTP with ``--latency-ms`` per call at ``--concurrency``, against the ideal
  ``round trips x latency / concurrency``, projected to 50,000 mailboxes at 0.3 s per call.

The live tenant is made by carrying out the repository's own plan on the Exchange emulator (so
it matches the YAML with Exchange's noise), then 1% of the mailboxes get another retention
policy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from gen_repo import RepoSize, generate
from gen_snapshot import add_mailbox, empty_snapshot

from reconciler.desired import load
from reconciler.emulator import Emulator
from reconciler.plan.planner import plan_desired

USERS_PER_SITE = 50
CACHE_DIR = (".reconciler", "cache")

PARSE_CODE = """
import sys, time, yaml
from pathlib import Path
files = sorted(p for p in Path(sys.argv[1]).rglob("*.yaml") if ".reconciler" not in p.parts)
start = time.perf_counter()
for path in files:
    with path.open("rb") as f:
        yaml.load(f, Loader=yaml.CSafeLoader)
print(time.perf_counter() - start)
"""

PLAN_CODE = """
import json, sys, time
from collections import Counter
from reconciler.emulator import Emulator
root, live, since, cache = sys.argv[1], sys.argv[2], sys.argv[3] or None, sys.argv[4] == "1"
calls = Counter()
original = Emulator.invoke
def invoke(self, cmdlet, *a, **k):
    calls[cmdlet] += 1
    return original(self, cmdlet, *a, **k)
Emulator.invoke = invoke
from reconciler.plan.planner import make_plan
import inspect
options = {"use_cache": cache} if "use_cache" in inspect.signature(make_plan).parameters else {}
try:
    from reconciler.collector import whole_run  # the garbage collection policy of a command
except ImportError:
    from contextlib import nullcontext as whole_run
start = time.perf_counter()
with whole_run():
    result = make_plan(root, live_source="snapshot:" + live, changed_since=since, **options)
wall = time.perf_counter() - start
# The high-water mark of this process's own memory: ru_maxrss would also count the parent's
# pages, which a child started by vfork holds until it runs this interpreter.
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
import resource
own, workers = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                    resource.RUSAGE_CHILDREN))
print(json.dumps({"wall": wall, "calls": dict(calls), "summary": result.plan.summary,
                  "maxrss_kib": peak, "workers_maxrss_kib": workers.ru_maxrss,
                  "cpu": own.ru_utime + own.ru_stime,
                  "workers_cpu": workers.ru_utime + workers.ru_stime}))
"""


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


@dataclass
class Case:
    """One generated repository with its tenant snapshot, committed to git."""

    size: RepoSize
    root: Path
    live: Path
    snapshot: dict[str, Any]


def make_case(base: Path, mailboxes: int, drift: float, seed: int) -> Case:
    root = base / f"repo-{mailboxes}"
    kept = base / f"live-{mailboxes}" / "customer-0.json"
    if (root / ".git").is_dir() and kept.is_file():  # --keep: built by an earlier run
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
        subprocess.run(["git", "clean", "-qfdx"], cwd=root, check=True)
        files = [p for p in root.rglob("*.yaml") if ".git" not in p.parts]
        size = RepoSize(root, 1, 10, sum("mailboxes-" in p.name for p in files), mailboxes,
                        10 * mailboxes, sum(p.stat().st_size for p in files))
        print(f"{mailboxes:>6} mailboxes: reusing {root} and {kept}", flush=True)
        return Case(size, root, kept.parent, json.loads(kept.read_bytes()))
    size = generate(root, mailboxes, 10 * mailboxes, max(1, mailboxes // 100),
                    users_per_site=USERS_PER_SITE)
    snapshot = build_live(root, USERS_PER_SITE, drift, seed)
    live = base / f"live-{mailboxes}"
    live.mkdir()
    (live / "customer-0.json").write_text(json.dumps(snapshot))
    git = ["git", "-c", "user.email=b@example.com", "-c", "user.name=b"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / ".gitignore").write_text(".reconciler/\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=root, check=True)
    print(f"{mailboxes:>6} mailboxes: {size.grants} grants, {size.files} files, "
          f"{size.bytes / 1e6:.1f} MB of YAML, snapshot "
          f"{(live / 'customer-0.json').stat().st_size / 1e6:.0f} MB", flush=True)
    return Case(size, root, live, snapshot)


def edit_three(root: Path) -> None:
    """The pull request: 3 mailboxes of one file get an archive."""
    first = sorted(root.rglob("mailboxes-0000.yaml"))[0]
    text = first.read_text()
    for n in range(3):
        text = text.replace(f"    alias: mbx-{n}\n", f"    alias: mbx-{n}\n    archive: true\n")
    first.write_text(text)


def parse_seconds(root: Path) -> float:
    done = subprocess.run([sys.executable, "-c", PARSE_CODE, str(root)], capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip())


# What a full plan is measured under: the defaults first, then each setting on its own.
VARIANTS = {
    "defaults (RECONCILER_GC=pause, YAML parsed on one worker per core)": {},
    "RECONCILER_JOBS=1 (YAML parsed in the command's process)": {"RECONCILER_JOBS": "1"},
    "RECONCILER_GC=freeze": {"RECONCILER_GC": "freeze"},
    "RECONCILER_GC=normal": {"RECONCILER_GC": "normal"},
}


def plan_process(case: Case, since: str | None = None, cache: bool = True,
                 settings: dict[str, str] | None = None) -> dict[str, Any]:
    env = {**os.environ, **(settings or {})}
    done = subprocess.run([sys.executable, "-c", PLAN_CODE, str(case.root), str(case.live),
                           since or "", "1" if cache else "0"],
                          capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"plan failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def clear_cache(root: Path) -> None:
    shutil.rmtree(root.joinpath(*CACHE_DIR), ignore_errors=True)


def full_plans(case: Case, rounds: int, variants: tuple[str, ...]) -> dict[str, Any]:
    """Full plans (no parse cache) under each of ``variants`` (keys of VARIANTS), interleaved
    with the parse; the first is the default."""
    parses: list[float] = []
    plans: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(rounds):
        parses.append(parse_seconds(case.root))
        for variant in variants:
            clear_cache(case.root)
            plans[variant].append(plan_process(case, cache=False, settings=VARIANTS[variant]))
    parse = statistics.median(parses)
    print(f"full plan, {case.size.mailboxes} mailboxes: parse {parse:.2f} s "
          f"(median of {rounds})", flush=True)
    walls = {}
    for policy, runs in plans.items():
        wall = walls[policy] = statistics.median(p["wall"] for p in runs)
        rss = max(p["maxrss_kib"] for p in runs) / 1024
        workers_rss = max(p.get("workers_maxrss_kib", 0) for p in runs) / 1024
        cpu = statistics.median(p.get("cpu", 0) for p in runs)
        workers_cpu = statistics.median(p.get("workers_cpu", 0) for p in runs)
        calls = sum(runs[0]["calls"].values())
        print(f"  {policy}: plan {wall:.2f} s, ratio {wall / parse:.2f} "
              f"(target <= 2.0), peak RSS {rss:.0f} MiB (target <= 1024; each YAML worker "
              f"{workers_rss:.0f} MiB at most), CPU {cpu:.2f} s here + {workers_cpu:.2f} s in "
              f"YAML workers, {calls} backend calls, {runs[0]['summary']}", flush=True)
    return {"parse": parse, "wall": walls[variants[0]]}


def pull_request(case: Case, full_wall: float, rounds: int) -> None:
    colds, warms, warm_fulls = [], [], []
    for _ in range(rounds):
        clear_cache(case.root)
        colds.append(plan_process(case, "HEAD", cache=False))
        plan_process(case)  # fills the cache
        warms.append(plan_process(case, "HEAD"))
        warm_fulls.append(plan_process(case))
    cold = statistics.median(r["wall"] for r in colds)
    warm = statistics.median(r["wall"] for r in warms)
    warm_full = statistics.median(r["wall"] for r in warm_fulls)
    calls = sum(colds[0]["calls"].values())
    print(f"--changed-since HEAD, 3 mailboxes edited, {case.size.mailboxes}: cold {cold:.2f} s "
          f"= {cold / full_wall:.2f} x a full plan (target <= 0.3), warm {warm:.2f} s = "
          f"{warm / full_wall:.2f} x (target <= 2 s), against a full plan with the warm cache "
          f"({warm_full:.2f} s) {warm / warm_full:.2f} x; {calls} backend calls, "
          f"{colds[0]['summary']}", flush=True)


# --- over HTTP ---------------------------------------------------------------------------------


def _exchange_customer(state: Any, service: Any) -> Any:
    from served import KEY_VARIABLE

    from tests.exchange.conftest import APP_ID

    tenant = replace(state.customer.tenant, app_id=APP_ID,
                     certificate_thumbprint=service.app.sha1,
                     certificate_key=f"env:{KEY_VARIABLE}", exchange_url=service.url,
                     authority_host=service.url, connection="exchange", concurrency=4)
    return replace(state.customer, tenant=tenant)


def http_plan(case: Case, latency: float, changed_since: str | None) -> dict[str, Any]:
    """Plan the case through the Exchange Online connector; round trips counted by the
    service (every POST, pages included)."""
    from served import served

    from reconciler.live.exchange import ExchangeBackend, ExchangeSettings
    from reconciler.model import CustomerState
    from reconciler.plan.scope import changed_since as scope_since

    desired = load(case.root)
    (cid, state), = desired.customers.items()
    scope = scope_since(case.root, changed_since, desired) if changed_since else None
    with served(lambda: case.snapshot, state.customer.tenant.id, latency) as service:
        customer = _exchange_customer(state, service)
        desired.customers[cid] = CustomerState(customer, state.resources)
        settings = ExchangeSettings.for_tenant(customer.tenant, verify=service.client_context)
        before = sum(service.counters()["calls"].values())
        start = time.perf_counter()
        result = plan_desired(desired, lambda _: ExchangeBackend(customer, settings=settings),
                              scope=scope.ids if scope else None)
        wall = time.perf_counter() - start
        counted = service.counters()["calls"]
    trips = sum(counted.values()) - before
    return {"trips": trips, "wall": wall, "calls": counted, "summary": result.plan.summary,
            "concurrency": customer.tenant.concurrency}


def http_pull_request(case: Case) -> None:
    run = http_plan(case, 0.0, "HEAD")
    print(f"pull request over HTTP, {case.size.mailboxes} mailboxes: {run['trips']} round "
          f"trips (target <= 20) {dict(sorted(run['calls'].items()))}, {run['summary']}",
          flush=True)


def http_full_read(case: Case, latency: float) -> None:
    run = http_plan(case, latency, None)
    ideal = run["trips"] * latency / run["concurrency"]
    per_mailbox = run["trips"] / case.size.mailboxes
    projected = per_mailbox * 50_000 * 0.3 / 4 * (run["wall"] / ideal)
    print(f"full read over HTTP, {case.size.mailboxes} mailboxes, {latency * 1000:.0f} ms per "
          f"call, {run['concurrency']} concurrent: {run['trips']} round trips, "
          f"{run['wall']:.1f} s against ideal {ideal:.1f} s (ratio {run['wall'] / ideal:.2f}); "
          f"projected to 50,000 mailboxes at 0.3 s: {per_mailbox * 50_000:.0f} round trips, "
          f"{projected / 60:.0f} min (target <= 30 min)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 and 5,000 mailboxes, one round, 500 for the HTTP read")
    parser.add_argument("--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument("--read-mailboxes", type=int, help="size of the full read over HTTP")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--drift", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, help="median of this many runs (default 3)")
    parser.add_argument("--read-only", action="store_true",
                        help="only the full read over HTTP (e.g. at --latency-ms 300)")
    parser.add_argument("--keep", metavar="DIR",
                        help="build the repositories and tenants in DIR and reuse them on later "
                             "runs (building a 50,000-mailbox tenant takes minutes)")
    args = parser.parse_args()
    small, large = args.sizes or ((2_000, 5_000) if args.quick else (10_000, 50_000))
    read_size = args.read_mailboxes or (500 if args.quick else 2_000)
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        if args.read_only:
            http_full_read(make_case(Path(tmp), read_size, args.drift, args.seed),
                           args.latency_ms / 1000)
            return
        cases = [make_case(Path(tmp), n, args.drift, args.seed) for n in (small, large)]
        every = tuple(VARIANTS)
        fulls = [full_plans(cases[0], rounds, every), full_plans(cases[1], rounds, every[:2])]
        for case in cases:
            edit_three(case.root)
        pull_request(cases[0], fulls[0]["wall"], rounds)
        for case in cases:
            http_pull_request(case)
        cases.clear()
        (Path(tmp) / "read").mkdir(exist_ok=True)
        http_full_read(make_case(Path(tmp) / "read", read_size, args.drift, args.seed),
                       args.latency_ms / 1000)


if __name__ == "__main__":
    main()
