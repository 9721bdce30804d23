"""``reconciler sandbox serve``: the sandbox behind a fake Exchange Online, reached by the real
connector from another process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.live.backend import AmbiguousWriteError
from reconciler.live.exchange import ExchangeBackend
from reconciler.model import Customer, Tenant
from tests.exchange.conftest import AppCertificate, read_serve_banner

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "desired-state"
RECONCILER = Path(sys.executable).parent / "reconciler"


@dataclass
class Served:
    repo: Path
    env: dict[str, str]  # what the connector needs to reach the server
    tenants: dict[str, str]  # customer -> tenant id
    app_id: str


@pytest.fixture
def served(tmp_path: Path, app_cert: AppCertificate) -> Iterator[Served]:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    customer_yaml = repo / "customers" / "contoso" / "customer.yaml"
    text = customer_yaml.read_text()
    thumbprint = next(line.split(":", 1)[1].split()[0] for line in text.splitlines()
                      if "certificate_thumbprint:" in line)
    app_id = next(line.split(":", 1)[1].split()[0] for line in text.splitlines()
                  if "app_id:" in line)
    customer_yaml.write_text(text.replace(thumbprint, app_cert.sha1))
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    server = subprocess.Popen(
        [str(RECONCILER), "sandbox", "serve", str(repo), "--port", "0",
         "--app", f"{app_id}={tmp_path / 'app.crt'}", "--fault-rate", "0.15", "--seed", "4",
         "--faults", "server_error,drop"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines, env = read_serve_banner(server)
        tenants = {line.split(":")[0]: line.split("tenant ")[1].strip()
                   for line in lines if ": tenant " in line}
        env["CONTOSO_EXO_KEY"] = app_cert.key_pem.decode()
        yield Served(repo, env, tenants, app_id)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_connector_reads_and_writes_a_served_sandbox(served: Served,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         app_cert: AppCertificate) -> None:
    for name, value in served.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    customer = Customer("contoso", "Contoso", Tenant(
        served.tenants["contoso"], "contoso.onmicrosoft.com", app_id=served.app_id,
        certificate_thumbprint=app_cert.sha1, certificate_key="env:CONTOSO_EXO_KEY"), ())
    with ExchangeBackend(customer) as backend:
        mailboxes = backend.invoke("Get-Mailbox", {"ResultSize": "Unlimited"}).value
        assert mailboxes
        first = mailboxes[0]["Identity"]
        for _ in range(10):  # what apply does with a write in doubt: read back, then retry
            try:
                backend.invoke("Set-Mailbox", {"Identity": first, "Office": "Served"})
                break
            except AmbiguousWriteError:
                now = backend.invoke("Get-Mailbox", {"Identity": first}, ["Office"]).value
                if now[0]["Office"] == "Served":
                    break
    saved = (served.repo / ".reconciler" / "sandbox" / "contoso.json").read_text()
    assert '"Served"' in saved  # written through the sandbox backend


def test_plan_over_exchange_equals_plan_over_the_sandbox(served: Served) -> None:
    def plan(live: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_DIR"}
        env.update(served.env)
        done = subprocess.run([str(RECONCILER), "plan", str(served.repo), "--live", live,
                               "--customer", "contoso", "--format", "json",
                               "--allow-large-changes"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    over_http, in_process = plan("exchange"), plan("sandbox")
    assert over_http["changes"]
    assert over_http["changes"] == in_process["changes"]
