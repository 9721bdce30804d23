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
from typing import Any

import click

from reconciler import collector
from reconciler.cli.options import repository_argument
from reconciler.cli.output import echo
from reconciler.emulator.faults import ALL_KINDS, FaultConfig, FaultKind
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
@click.option("--faults", "kinds", default=",".join(ALL_KINDS), show_default=True,
              help="Fault kinds to draw from, comma-separated: also "
                   f"{', '.join(k for k in FaultKind if k not in ALL_KINDS)}.")
@click.option("--latency-ms", type=float, default=0.0, show_default=True,
              help="Latency added to every call.")
@click.option("--lag", type=float, default=0.0, show_default=True,
              help="Read-after-write lag, in seconds.")
@click.option("--replay", "replay_dir", metavar="DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Answer from the trace in DIR (--trace DIR) instead of the sandbox: each "
                   "recorded request gets its recorded answer, any other a 400 naming it.")
@click.option("--replay-timing", is_flag=True,
              help="With --replay: answer as slowly as the recording did.")
def command(path: Path, port: int, apps: tuple[str, ...], seed: int, fault_rate: float,
            kinds: str, latency_ms: float, lag: float, replay_dir: Path | None,
            replay_timing: bool) -> None:
    """Serve the sandbox tenants of PATH as a fake Exchange Online (gateway + sign-in), or
    with --replay the answers of a recorded trace."""
    from reconciler.emulator.sandbox_backend import SandboxBackend, sandbox_directory, seed_sandbox
    from reconciler.emulator.service import FakeExchangeService

    directory = sandbox_directory(path)
    if replay_dir is not None:
        _serve_replay(replay_dir, replay_timing, apps, port, directory)
        return
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
    _register(service, apps, tenant_ids)
    _run(service, served, port, directory, bool(apps))


def _serve_replay(replay_dir: Path, timing: bool, apps: tuple[str, ...], port: int,
                  directory: Path) -> None:
    from reconciler.emulator.replay import ReplayService, TraceAnswers

    answers = TraceAnswers.load(replay_dir)
    if not answers.tenants:
        raise ReconcilerError(f"the trace in {replay_dir} holds no request")
    service = ReplayService(answers, timing=timing)
    _register(service, apps, answers.tenants)
    served = [f"{replay_dir.name}: tenant {tenant}" for tenant in answers.tenants]
    _run(service, served, port, directory, bool(apps))  # each unrecorded request is logged


def _register(service: Any, apps: tuple[str, ...], tenant_ids: list[str]) -> None:
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


def _run(service: Any, served: list[str], port: int, directory: Path, apps: bool) -> None:
    """Serve over TLS until Ctrl+C (or a termination signal), saying how to connect."""
    from reconciler.emulator.service import self_signed_tls

    context, ca_file = self_signed_tls(directory.parent)
    service.start(port=port, ssl_context=context)
    url = service.url
    echo("\n".join(served))
    echo(f"Serving on {url} (Exchange gateway and sign-in).")
    echo("Point the connector at it with:")
    echo(f"  export SSL_CERT_FILE={ca_file}")
    echo(f"  export RECONCILER_EXCHANGE_URL={url} RECONCILER_AUTHORITY_HOST={url}")
    if not apps:
        echo("No --app registered: every sign-in will be refused (AADSTS700016).")
    echo("Ctrl+C to stop.", nl=True)
    try:
        with collector.resumed():  # a server runs until stopped, making garbage as it goes
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
