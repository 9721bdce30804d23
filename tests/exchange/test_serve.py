"""``reconciler sandbox serve``: the sandbox behind a fake Exchange Online, reached by the real
connector in another process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.live.backend import AmbiguousWriteError
from reconciler.live.exchange import ExchangeBackend
from reconciler.model import Customer, Tenant
from tests.exchange.conftest import APP_ID, AppCertificate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "desired-state"


def test_serve_a_sandbox_to_the_connector(tmp_path: Path, app_cert: AppCertificate,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    (tmp_path / "app.crt").write_bytes(app_cert.cert_pem)
    reconciler = Path(sys.executable).parent / "reconciler"
    server = subprocess.Popen(
        [str(reconciler), "sandbox", "serve", str(repo), "--port", "0",
         "--app", f"{APP_ID}={tmp_path / 'app.crt'}", "--fault-rate", "0.3", "--seed", "4",
         "--faults", "server_error,drop"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        assert server.stdout is not None
        for line in server.stdout:
            lines.append(line)
            if line.startswith("Ctrl+C") or server.poll() is not None:
                break
        output = "".join(lines)
        url = next(line.split()[2] for line in lines if line.startswith("Serving on"))
        ca_file = next(line.split("=", 1)[1].strip() for line in lines if "SSL_CERT_FILE" in line)
        assert "contoso: tenant" in output
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        monkeypatch.setenv("RECONCILER_EXCHANGE_URL", url)
        monkeypatch.setenv("RECONCILER_AUTHORITY_HOST", url)
        monkeypatch.setenv("SERVE_TEST_KEY", app_cert.key_pem.decode())
        tenant_id = next(line.split("tenant ")[1].strip() for line in lines
                         if line.startswith("contoso:"))
        customer = Customer("contoso", "Contoso", Tenant(
            tenant_id, "contoso.onmicrosoft.com", app_id=APP_ID,
            certificate_thumbprint=app_cert.sha1, certificate_key="env:SERVE_TEST_KEY"), ())
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
        saved = (repo / ".reconciler" / "sandbox" / "contoso.json").read_text()
        assert '"Served"' in saved  # written through the sandbox backend
    finally:
        server.terminate()
        server.wait(timeout=10)
