"""Benchmark: validating a large repository, against PyYAML merely parsing the same files.

    python bench/bench_validate.py [--mailboxes 10000] [--grants 100000] [--files 100]

Generates a synthetic repository (bench/gen_repo.py), then alternates, in one process, between
PyYAML's CSafeLoader parsing every YAML file of it and `reconciler.desired.load` (parsing,
schema validation, meaning checks and the model), so that both see the same machine state.
Prints the best wall time of each, their ratio, and the peak memory of one load: the maximum
resident set size of a fresh process that only loads the repository, and what Python itself
allocated at the peak (tracemalloc, in that process, in a second untimed pass).
"""

from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_repo import generate

from reconciler.desired import load


def parse_only(files: list[Path]) -> None:
    for f in files:
        yaml.load(f.read_bytes(), Loader=yaml.CSafeLoader)


def validate(root: Path) -> int:
    state = load(root)
    return sum(len(c.resources) for c in state.customers.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        size = generate(Path(tmp) / "repo", args.mailboxes, args.grants, args.files)
        files = sorted(p for p in size.root.rglob("*.yaml"))
        print(f"repository: {size.mailboxes} mailboxes, {size.grants} grants, "
              f"{len(files)} YAML files ({size.files} resource files), {size.bytes / 1e6:.1f} MB")

        parse_times, load_times = [], []
        resources = 0
        for _ in range(args.rounds):
            gc.collect()
            t0 = time.perf_counter()
            parse_only(files)
            parse_times.append(time.perf_counter() - t0)
            gc.collect()
            t0 = time.perf_counter()
            resources = validate(size.root)
            load_times.append(time.perf_counter() - t0)
        assert resources == size.mailboxes, resources

        child = subprocess.run([sys.executable, __file__, "--measure-memory", str(size.root)],
                               check=True, capture_output=True, text=True)
        maxrss_kib, peak = (int(x) for x in child.stdout.split())

    best_parse, best_load = min(parse_times), min(load_times)
    print(f"CSafeLoader parse only : {best_parse:6.2f} s  (rounds: "
          f"{', '.join(f'{t:.2f}' for t in parse_times)})")
    print(f"reconciler validate    : {best_load:6.2f} s  (rounds: "
          f"{', '.join(f'{t:.2f}' for t in load_times)})")
    print(f"ratio validate / parse : {best_load / best_parse:6.2f}  (target <= 1.5)")
    print(f"peak memory of one load: {maxrss_kib / 1024:6.0f} MiB max RSS of the process "
          f"(Python allocations at the peak: {peak / 2**20:.0f} MiB; target <= 1024 MiB)")


def measure_memory(root: Path) -> None:
    """Run in a fresh process: one plain load for the RSS, one traced load for allocations."""
    validate(root)
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    validate(root)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(maxrss_kib, peak)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure-memory":
        measure_memory(Path(sys.argv[2]))
    else:
        main()
