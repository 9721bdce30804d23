"""A DEBUG-level run of every command, with the key in the environment and the connector
signing in for real: neither the key nor a token appears in any output, journal, state or
report, whatever the key's variable is called."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exchange.conftest import AppCertificate, read_serve_banner
from tests.hostile.harness import CONTROL, EXAMPLE

RECONCILER = Path(sys.executable).parent / "reconciler"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def _serve(repo: Path, app_id: str, cert: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    server = subprocess.Popen(
        [str(RECONCILER), "sandbox", "serve", str(repo), "--port", "0", "--app",
         f"{app_id}={cert}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return server, read_serve_banner(server)[1]


# Every command under the usual name; the run that signs in and writes under two odd ones.
VARIABLES = {"CONTOSO_EXO_KEY": None, "K9": {"plan", "apply"}, "DEBUG_LOG_TOKEN": {"plan", "apply"}}


@pytest.fixture(params=list(VARIABLES))
def served(request: pytest.FixtureRequest, tmp_path: Path,
           app_cert: AppCertificate) -> Iterator[tuple[Path, dict[str, str], str]]:
    variable = request.param
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    path = repo / "customers" / "contoso" / "customer.yaml"
    text = path.read_text()
    thumbprint = re.search(r"certificate_thumbprint: (\S+)", text).group(1)  # type: ignore
    app_id = re.search(r"app_id: (\S+)", text).group(1)  # type: ignore[union-attr]
    path.write_text(text.replace(thumbprint, app_cert.sha1)
                    .replace("env:CONTOSO_EXO_KEY", f"env:{variable}"))
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    server, env = _serve(repo, app_id, tmp_path / "app.crt")
    env = {**{k: v for k, v in os.environ.items() if k != "SSL_CERT_DIR"}, **env,
           variable: app_cert.key_pem.decode(), "GITHUB_ACTIONS": "true"}
    try:
        yield repo, env, variable
    finally:
        server.terminate()
        server.wait(timeout=10)


def _commands(repo: Path, out: Path) -> list[list[str]]:
    r = str(repo)
    # Every command that talks to Exchange also records a trace: redacted, and raw for the
    # runs that sign in and write (a raw trace keeps everything but what must never be kept).
    live = ["--live", "exchange", "--trace", str(out / "trace")]
    raw = ["--live", "exchange", "--trace", str(out / "trace-raw"), "--no-trace-redact"]
    return [
        ["validate", r],
        ["customers", r, "--key-variable", "contoso"],
        ["plan", r, *live, "--customer", "contoso", "--allow-large-changes"],
        ["plan", r, *live, "--customer", "contoso", "--format", "markdown"],
        ["plan", r, *raw, "--customer", "contoso", "--format", "json",
         "--allow-large-changes", "--out", str(out / "plan.json")],
        ["apply", str(out / "plan.json"), "--path", r, *raw, "--allow-large-changes",
         "--verify-wait", "0"],
        *[["drift", r, *live, "--customer", "contoso", "--format", f,
           "--out", str(out / f"drift.{f}")] for f in ("text", "markdown", "json", "html")],
        ["export", r, *live, "--customer", "contoso", "--out", str(out / "export.json")],
        ["import", r, *live, "--customer", "contoso"],
        ["access", r, *live, "--customer", "contoso", "--mailbox", "ceo-office@contoso.com"],
    ]


def _files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_debug_run_of_every_command_leaks_neither_key_nor_token(
        served: tuple[Path, dict[str, str], str], tmp_path: Path,
        app_cert: AppCertificate) -> None:
    repo, env, variable = served
    wanted = VARIABLES[variable]
    out = tmp_path / "out"
    out.mkdir()
    key_lines = [line for line in app_cert.key_pem.decode().splitlines()
                 if len(line) >= 16 and "PRIVATE KEY" not in line]
    assert key_lines
    texts: dict[str, str] = {}
    for args in _commands(repo, out):
        if wanted is not None and args[0] not in wanted:
            continue
        done = subprocess.run([str(RECONCILER), "-vv", *args], capture_output=True, text=True,
                              env=env, timeout=300, cwd=tmp_path)
        name = " ".join(args[:1] + args[2:6])
        assert done.returncode in (0, 2), (name, done.stderr[-3000:])
        if "--live" in args:
            assert "DEBUG" in done.stderr, name  # the run really logged at DEBUG
        assert CONTROL.search(done.stdout + done.stderr) is None, name
        texts[name] = done.stdout + done.stderr
    assert (repo / ".reconciler" / "journal").is_dir() and any(out.iterdir())
    traces = [out / name / "trace.jsonl" for name in ("trace", "trace-raw")]
    assert any(t.is_file() and t.read_text() for t in traces)
    for trace in filter(Path.is_file, traces):
        text = trace.read_text()
        assert "Bearer" not in text and "authorization" not in text.lower(), trace
    for path in _files(repo / ".reconciler", out, repo / "customers"):
        texts[str(path)] = path.read_text(errors="replace")
    signed_in = False
    for where, text in texts.items():
        for line in key_lines:
            assert line not in text, f"a line of the key is in {where}"
        assert JWT.search(text) is None, f"a token is in {where}"
        signed_in = signed_in or "token" in text.lower()
    assert signed_in, "the runs should have signed in and said so at DEBUG"


def test_a_read_only_registration_signs_in_instead_of_the_tenants_own(
        tmp_path: Path, app_cert: AppCertificate, other_cert: AppCertificate) -> None:
    """Jobs that only read sign in as a second app registration (a read-only role) named by
    the environment; the YAML's own registration (the write role) is left to apply."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".reconciler"))
    path = repo / "customers" / "contoso" / "customer.yaml"
    text = path.read_text()
    thumbprint = re.search(r"certificate_thumbprint: (\S+)", text).group(1)  # type: ignore
    path.write_text(text.replace(thumbprint, app_cert.sha1))
    read_app = "7e57e57e-0000-4000-8000-00000000000d"
    (tmp_path / "read.crt").write_bytes(other_cert.cert_pem)
    # Only the read registration exists on this tenant: the YAML's app cannot sign in.
    server, env = _serve(repo, read_app, tmp_path / "read.crt")
    env = {**{k: v for k, v in os.environ.items() if k != "SSL_CERT_DIR"}, **env,
           "CONTOSO_EXO_KEY": other_cert.key_pem.decode()}
    plan = [str(RECONCILER), "plan", str(repo), "--live", "exchange", "--customer", "contoso",
            "--format", "json", "--allow-large-changes"]
    try:
        refused = subprocess.run(plan, capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 1
        read = subprocess.run(plan, capture_output=True, text=True, timeout=120, env={
            **env, "RECONCILER_APP_ID": read_app,
            "RECONCILER_CERTIFICATE_THUMBPRINT": other_cert.sha1})
        assert read.returncode == 0, read.stderr[-2000:]
        assert '"changes"' in read.stdout
        half = subprocess.run(plan, capture_output=True, text=True, timeout=120,
                              env={**env, "RECONCILER_APP_ID": read_app})
        assert half.returncode == 1 and "set both, or neither" in half.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
