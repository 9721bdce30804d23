"""Apply harness: a tiny desired-state repository per test, in-process emulated tenants, and
backends that inject the failures apply must survive, with counters of what reached Exchange.

The CLI is exercised in-process with ``reconciler.sources.backends.open_backend`` pointed at these
backends, so a test sees exactly which writes ran and how often.
"""

from __future__ import annotations

import copy
import json
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.live.backend import CmdletResult, ExchangeError, is_write

# The fake Exchange Online service's fixtures (TLS, app certificate, service lifecycle).
from tests.exchange.conftest import app_cert, key_env, pki, start_service  # noqa: F401
from tests.trees import write_customer_tree

# The example repository's seed tenant, as of when these tests were written (a copy, so that
# changes to the example do not move these tests).
BASE_SNAPSHOT: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "contoso.json").read_text())

CUSTOMER_YAML = """\
customer:
  name: Contoso Ltd
  tenant:
    id: 6f1c1f2e-0000-4000-8000-000000000001
    initial_domain: contoso.onmicrosoft.com
    exchange: enabled
    connection: sandbox
    concurrency: {concurrency}
  mail_domains: [contoso.com]
"""
SITES = {
    "london": "site:\n  name: London HQ\n  placement:\n    office: [London, London HQ]\n",
    "paris": "site:\n  name: Paris\n  placement:\n    office: [Paris]\n",
}
LONDON = "sites/london/mailboxes.yaml"


def key(cmdlet: str, parameters: Mapping[str, Any] | None) -> str:
    return cmdlet + " " + json.dumps(parameters or {}, sort_keys=True)


@dataclass
class Fault:
    """Make the calls ``matches`` selects fail: ``error`` raised, before or after the call
    reaches the tenant, for the first ``times`` matching calls."""

    matches: Callable[[str, Mapping[str, Any]], bool]
    error: Callable[[], ExchangeError]
    after_commit: bool = False
    times: int = 1
    hits: int = 0


@dataclass
class FaultyBackend:
    """The emulator as a backend, with scripted faults and a record of every write it ran.
    The planner closes backends; the tenant lives on in the emulator."""

    emulator: Emulator
    faults: list[Fault] = field(default_factory=list)
    read_only: bool = False
    writes: Counter[str] = field(default_factory=Counter)  # writes that reached the tenant
    order: list[str] = field(default_factory=list)  # the same, in the order they arrived

    def invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None = None,
               select: Any = None) -> CmdletResult:
        params = dict(parameters or {})
        fault = next((f for f in self.faults if f.hits < f.times and f.matches(cmdlet, params)),
                     None)
        if fault is not None and not fault.after_commit:
            fault.hits += 1
            raise fault.error()
        if is_write(cmdlet):
            self.writes[key(cmdlet, params)] += 1
            self.order.append(key(cmdlet, params))
        result = self.emulator.invoke(cmdlet, params, select)
        if fault is not None:
            fault.hits += 1
            raise fault.error()
        return result

    def close(self) -> None:
        pass

    @property
    def write_count(self) -> int:
        return sum(self.writes.values())


class Repo:
    """A desired-state repository in a temporary directory, and its tenant."""

    def __init__(self, root: Path, *, lag_seconds: float = 0.0,
                 clock: Callable[[], float] | None = None,
                 lag_applies_to_writes: bool = False) -> None:
        self.root = root
        kw: dict[str, Any] = {"lag_seconds": lag_seconds,
                              "lag_applies_to_writes": lag_applies_to_writes}
        if clock is not None:
            kw["clock"] = clock
        self.backend = FaultyBackend(Emulator(copy.deepcopy(BASE_SNAPSHOT), **kw))
        self.concurrency = 4
        self.customer_extra = ""  # e.g. a policy block, appended to customer.yaml
        self.files: dict[str, str] = {}

    def yaml(self, relative: str, text: str) -> Repo:
        self.files[relative] = textwrap.dedent(text)
        return self.write()

    def write(self) -> Repo:
        write_customer_tree(
            self.root, "contoso",
            CUSTOMER_YAML.format(concurrency=self.concurrency) + self.customer_extra, SITES,
            self.files)
        return self

    def live(self, cmdlet: str, **parameters: Any) -> Repo:
        """Change the tenant behind the reconciler's back."""
        self.backend.emulator.invoke(cmdlet, parameters)
        return self

    def backend_for(self, state: Any) -> FaultyBackend:
        return self.backend

    def fail(self, cmdlet: str, error: Callable[[], ExchangeError], *, after_commit: bool = False,
             times: int = 1, **where: Any) -> Fault:
        def matches(name: str, params: Mapping[str, Any]) -> bool:
            return name == cmdlet and all(
                str(params.get(k, "")).lower() == str(v).lower() for k, v in where.items())
        fault = Fault(matches, error, after_commit, times)
        self.backend.faults.append(fault)
        return fault


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    r = Repo(tmp_path / "repo")
    r.write()
    monkeypatch.setattr("reconciler.sources.backends.open_backend",
                        lambda source, customer, root: r.backend)
    return r


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Run]:
    """Run ``reconciler ARGS`` in-process, as a user would, with stdin not a terminal."""
    from reconciler.cli import main

    # Waits (backoff, lag allowances) pass instantly: tests never sleep.
    monkeypatch.setattr("reconciler.apply.executor.pause", lambda seconds: None)

    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["reconciler", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
