"""Which backend a customer's live state comes from (``--live SOURCE``, docs/format.md §10).

``SOURCE`` is ``exchange`` (Exchange Online), ``sandbox`` (the repository's own simulated
tenants in ``<repo>/.reconciler/sandbox/``, seeded from ``<repo>/sandbox/`` on first use),
``sandbox:DIR`` (read-write, ``DIR/<customer>.json``) or ``snapshot:DIR`` (read-only, same
layout). Without ``--live``, the customer's ``tenant.connection`` decides.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path

from reconciler.desired.cache import ParseCache
from reconciler.emulator.sandbox_backend import (
    SandboxBackend,
    sandbox_directory,
    seed_directory,
    seed_sandbox,
)
from reconciler.emulator.snapshot_backend import Preloaded, SnapshotBackend, preload, snapshot_path
from reconciler.errors import ReconcilerError
from reconciler.live.backend import Backend
from reconciler.model import Customer

SOURCES_HELP = "exchange, sandbox, sandbox:DIR or snapshot:DIR"


def parse_source(source: str) -> tuple[str, Path | None]:
    """``(kind, directory)`` of a SOURCE string; :class:`ReconcilerError` if malformed."""
    kind, sep, rest = source.strip().partition(":")
    kind = kind.lower()
    if kind == "exchange" and not sep:
        return kind, None
    if kind == "sandbox":
        if sep and not rest:
            raise ReconcilerError("--live sandbox:DIR needs a directory after the colon")
        return kind, Path(rest) if sep else None
    if kind == "snapshot":
        if not rest:
            raise ReconcilerError(
                "--live snapshot needs a directory: snapshot:DIR (DIR holds <customer>.json)")
        return kind, Path(rest)
    raise ReconcilerError(f"unknown live source '{source}': expected {SOURCES_HELP}")


# A second app registration for jobs that only read (docs/gitops.md): its id and certificate
# thumbprint, set where its key is (a pull request's plan, drift), never in the apply job.
APP_ID_VARIABLE = "RECONCILER_APP_ID"
THUMBPRINT_VARIABLE = "RECONCILER_CERTIFICATE_THUMBPRINT"


def with_registration(customer: Customer, environ: Mapping[str, str]) -> Customer:
    """``customer`` signing in as the app registration the environment names, if it names one;
    else as the tenant's own (``tenant.app_id`` in customer.yaml)."""
    app_id = environ.get(APP_ID_VARIABLE, "").strip()
    thumbprint = environ.get(THUMBPRINT_VARIABLE, "").strip()
    if not app_id and not thumbprint:
        return customer
    if not (app_id and thumbprint):
        raise ReconcilerError(f"{APP_ID_VARIABLE} and {THUMBPRINT_VARIABLE} name another app "
                              "registration together: set both, or neither")
    tenant = replace(customer.tenant, app_id=app_id, certificate_thumbprint=thumbprint,
                     certificate=None)
    return replace(customer, tenant=tenant)


def open_backend(source: str | None, customer: Customer, repo_root: Path) -> Backend:
    """The backend for ``customer``: ``source`` if given, else ``customer.tenant.connection``.

    ``sandbox`` with no directory uses ``<repo_root>/.reconciler/sandbox`` and seeds a missing
    tenant from ``<repo_root>/sandbox/<customer>.json``."""
    kind, directory = parse_source(source if source is not None else customer.tenant.connection)
    if kind == "exchange":
        customer = with_registration(customer, os.environ)
        try:
            connector = importlib.import_module("reconciler.live.exchange")
        except ModuleNotFoundError as e:
            if e.name not in ("reconciler.live.exchange",):
                raise
            raise ReconcilerError(
                "the Exchange Online connector is not available in this installation; use "
                "--live sandbox or --live snapshot:DIR") from e
        opener = getattr(connector, "open_exchange_backend", None)
        if opener is None:
            raise ReconcilerError("the Exchange Online connector is not available in this "
                                  "installation (no open_exchange_backend)")
        backend: Backend = opener(customer)
        return backend
    if kind == "snapshot":
        assert directory is not None
        return SnapshotBackend(directory, customer.id)
    if directory is None:
        directory = sandbox_directory(repo_root)
        if not snapshot_path(directory, customer.id).exists() and snapshot_path(
                seed_directory(repo_root), customer.id).exists():
            seed_sandbox(repo_root, customers=[customer.id])
    return SandboxBackend(directory, customer.id)


def preloads(source: str | None, customer_ids: Collection[str], into: dict[str, Preloaded],
             cache: ParseCache | None = None) -> list[Callable[[], object]]:
    """For ``snapshot:DIR``: work that reads each customer's snapshot ahead into ``into`` (by
    customer id), to be done while the command would otherwise wait; nothing for other
    sources. :meth:`SnapshotBackend.adopt` serves what was read, if its file is still the same."""
    if source is None:
        return []
    try:
        kind, directory = parse_source(source)
    except ReconcilerError:
        return []  # open_backend says why
    if kind != "snapshot" or directory is None:
        return []

    def read(cid: str) -> Callable[[], object]:
        def work() -> None:
            found = preload(directory, cid, cache)
            if found is not None:
                into[cid] = found
        return work

    return [read(cid) for cid in sorted(customer_ids)
            if snapshot_path(directory, cid).is_file()]
