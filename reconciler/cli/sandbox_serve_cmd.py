"""``reconciler sandbox serve``: the sandbox tenants behind a fake Exchange Online endpoint.

Serves the InvokeCommand gateway and the identity endpoint on 127.0.0.1 over TLS (a throwaway
CA is written beside the sandbox), so the real Exchange connector (``--live exchange``) can be
pointed at the sandbox, with faults and latency injected as a test or a demo needs. Writes go
through the sandbox backend and are persisted like any sandbox write.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click

from reconciler.cli.options import repository_argument
from reconciler.emulator.faults import FaultConfig, FaultKind
from reconciler.errors import ReconcilerError


@click.command("serve")
@repository_argument
@click.option("--port", type=int, default=8443, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--app", "apps", multiple=True, metavar="APP_ID=CERT.pem",
              help="Register an app and the public certificate it signs in with (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True, help="Fault schedule seed.")
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of requests that get a fault.")
@click.option("--faults", "kinds", default=",".join(FaultKind), show_default=True,
              help="Fault kinds to draw from, comma-separated.")
@click.option("--latency-ms", type=float, default=0.0, show_default=True,
              help="Latency added to every call.")
@click.option("--lag", type=float, default=0.0, show_default=True,
              help="Read-after-write lag, in seconds.")
def command(path: Path, port: int, apps: tuple[str, ...], seed: int, fault_rate: float,
            kinds: str, latency_ms: float, lag: float) -> None:
    """Serve the sandbox tenants of PATH as a fake Exchange Online (gateway + sign-in)."""
    from reconciler.emulator.service import FakeExchangeService, self_signed_tls
    from reconciler.live.sandbox import SandboxBackend, sandbox_directory, seed_sandbox

    directory = sandbox_directory(path)
    if not directory.is_dir():
        seed_sandbox(path)
    try:
        fault_kinds = tuple(FaultKind(k.strip()) for k in kinds.split(",") if k.strip())
    except ValueError:
        raise ReconcilerError(f"--faults: expected some of {', '.join(FaultKind)}") from None
    faults = FaultConfig(seed=seed, rate=fault_rate, kinds=fault_kinds,
                         latency_seconds=latency_ms / 1000)
    service = FakeExchangeService({}, faults=faults)
    served: list[str] = []
    tenant_ids: list[str] = []
    for file in sorted(directory.glob("*.json")):
        tenant = json.loads(file.read_text(encoding="utf-8")).get("tenant") or {}
        if not tenant.get("id"):
            continue
        backend = SandboxBackend(directory, file.stem, lag_seconds=lag)
        aliases = [tenant["initial_domain"]] if tenant.get("initial_domain") else []
        service.add_tenant(tenant["id"], backend, aliases)
        served.append(f"{file.stem}: tenant {tenant['id']}")
        tenant_ids.append(tenant["id"])
    if not served:
        raise ReconcilerError(f"no sandbox tenants in {directory}")
    for app in apps:
        app_id, sep, certificate = app.partition("=")
        if not sep:
            raise ReconcilerError("--app takes APP_ID=CERT.pem")
        try:
            pem = Path(certificate).read_bytes()
        except OSError as e:
            raise ReconcilerError(f"--app: cannot read {certificate}: {e.strerror}") from None
        for tenant_id in tenant_ids:
            service.identity.register(tenant_id, app_id, [pem])
    context, ca_file = self_signed_tls(directory.parent)
    service.start(port=port, ssl_context=context)
    url = service.url
    click.echo("\n".join(served))
    click.echo(f"Serving on {url} (Exchange gateway and sign-in).")
    click.echo("Point the connector at it with:")
    click.echo(f"  export SSL_CERT_FILE={ca_file}")
    click.echo(f"  export RECONCILER_EXCHANGE_URL={url} RECONCILER_AUTHORITY_HOST={url}")
    if not apps:
        click.echo("No --app registered: every sign-in will be refused (AADSTS700016).")
    click.echo("Ctrl+C to stop.", nl=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
