"""``--trace DIR`` on the command line, ``sandbox serve --replay DIR`` and ``sandbox
from-trace``: recorded against a served sandbox, replayed from another process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.live.exchange import trace
from reconciler.live.exchange.redact import Pseudonyms
from tests.exchange.conftest import AppCertificate, read_serve_banner
from tests.exchange.test_serve import Served, served  # noqa: F401  (the fixture)

RECONCILER = Path(sys.executable).parent / "reconciler"


def run(target: Served, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_DIR"}
    env.update(target.env)
    return subprocess.run([str(RECONCILER), *args], capture_output=True, text=True, env=env,
                          timeout=120)


def plan_json(target: Served, *extra: str) -> dict:
    done = run(target, "plan", str(target.repo), "--live", "exchange", "--customer", "contoso",
               "--format", "json", "--allow-large-changes", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@contextlib.contextmanager
def serving_replay(served: Served, trace_dir: Path, cert: Path,  # noqa: F811
                   repo: Path | None = None) -> Iterator[Served]:
    """``sandbox serve --replay trace_dir`` in its own process; where to reach it."""
    server = subprocess.Popen(
        [str(RECONCILER), "sandbox", "serve", str(trace_dir.parent / "elsewhere"), "--port",
         "0", "--replay", str(trace_dir), "--app", f"{served.app_id}={cert}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        env = {**served.env, **read_serve_banner(server)[1]}
        yield Served(repo or served.repo, env, served.tenants, served.app_id)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def replayed(served: Served, tmp_path: Path,  # noqa: F811
             app_cert: AppCertificate) -> Iterator[Served]:
    """The raw plan trace of the served sandbox, served again by ``sandbox serve --replay``."""
    plan_json(served, "--trace", str(tmp_path / "plan-trace"), "--no-trace-redact")
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    with serving_replay(served, tmp_path / "plan-trace", tmp_path / "app.crt") as replay:
        yield replay


def test_a_plan_replayed_by_sandbox_serve_is_the_recorded_plan(served: Served,  # noqa: F811
                                                               replayed: Served) -> None:
    recorded = plan_json(served)
    assert plan_json(replayed) == recorded
    # The replay is not the sandbox: a request it did not record fails, naming the call.
    done = run(replayed, "access", str(served.repo), "--live", "exchange", "--customer",
               "contoso", "--user", "alice@contoso.com")
    assert done.returncode == 1
    assert "Exchange answer not recorded: POST /adminapi/beta/" in done.stderr


def test_an_export_trace_becomes_the_exported_snapshot(served: Served,  # noqa: F811
                                                       tmp_path: Path) -> None:
    done = run(served, "export", "--customer", "contoso", str(served.repo), "--live",
               "exchange", "--out", str(tmp_path / "exported.json"),
               "--trace", str(tmp_path / "export-trace"), "--no-trace-redact")
    assert done.returncode == 0, done.stderr
    done = run(served, "sandbox", "from-trace", str(tmp_path / "export-trace"),
               "--out", str(tmp_path / "from-trace.json"))
    assert done.returncode == 0, done.stderr
    exported = json.loads((tmp_path / "exported.json").read_text())
    assert json.loads((tmp_path / "from-trace.json").read_text()) == exported

    # A redacted plan trace holds only what the plan read: no snapshot, and the reason.
    plan_json(served, "--trace", str(tmp_path / "plan-trace"))
    assert trace.pseudonyms_path(tmp_path / "plan-trace").exists()
    done = run(served, "sandbox", "from-trace", str(tmp_path / "plan-trace"),
               "--out", str(tmp_path / "partial.json"))
    assert done.returncode == 1
    assert "does not hold a whole tenant" in done.stderr and "Traceback" not in done.stderr


def test_a_redacted_trace_and_repository_plan_as_the_original(served: Served,  # noqa: F811
                                                              tmp_path: Path,
                                                              app_cert: AppCertificate) -> None:
    original = plan_json(served, "--trace", str(tmp_path / "t"))  # redacted: the default
    done = run(served, "sandbox", "redact", str(served.repo), "--trace", str(tmp_path / "t"),
               "--out", str(tmp_path / "shared"))
    assert done.returncode == 0, done.stderr
    shared_text = "\n".join(p.read_text() for p in (tmp_path / "shared").rglob("*.yaml"))
    assert "contoso.com" not in shared_text and "alice" not in shared_text
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    with serving_replay(served, tmp_path / "t", tmp_path / "app.crt",
                        tmp_path / "shared") as replay:
        redacted = plan_json(replay)
    pseudonyms = Pseudonyms.load(trace.pseudonyms_path(tmp_path / "t"))
    assert redacted["summary"] == original["summary"]
    assert sorted(c["id"] for c in redacted["changes"]) == sorted(
        pseudonyms.string(c["id"], "Identity") for c in original["changes"])
