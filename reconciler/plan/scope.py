"""``--changed-since REF``: which resources a pull request touches.

The desired state at REF is loaded from git (``git archive``) and compared with the working
tree by identity: a resource added, edited, moved or removed is in scope, and where it was
declared at REF is its previous location (so a move shows as a move). A change to a
customer's own settings (customer.yaml, site.yaml, reconciler.yaml: templates, policy,
placement) can change any of its resources, so it puts the whole customer in scope.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import InputError, ReconcilerError
from reconciler.model import DesiredState, Location

WHOLE_CUSTOMER_FILES = ("customer.yaml", "site.yaml", "reconciler.yaml")


@dataclass
class Scope:
    """Per customer: the ids to plan (None: the whole customer), and where each in-scope
    resource was declared at the base ref."""

    ids: dict[str, set[str] | None] = field(default_factory=dict)
    previous_locations: dict[str, dict[str, Location]] = field(default_factory=dict)


def _git(root: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise ReconcilerError("--changed-since needs git, which is not installed") from e
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ReconcilerError(f"git {' '.join(args[:2])} failed: "
                              f"{message[-1] if message else 'unknown error'}")
    return done.stdout


def load_at_ref(root: Path, ref: str) -> DesiredState | None:
    """The desired state as it was at ``ref``; None when the repository did not exist there."""
    from reconciler.desired import load

    try:
        top = Path(_git(root, "rev-parse", "--show-toplevel").decode().strip())
    except ReconcilerError as e:
        raise ReconcilerError(f"--changed-since {ref}: {root} is not in a git repository, so "
                              "there is nothing to compare with; plan without --changed-since, "
                              "or run `git init` and commit first") from e
    relative = root.resolve().relative_to(top.resolve()).as_posix() or "."
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ReconcilerError as e:
        raise ReconcilerError(
            f"--changed-since {ref}: git knows no commit named '{ref}' in {top}. Give a branch, "
            "tag or commit that exists (`git branch -a` lists them); in a shallow CI checkout, "
            f"fetch it first (`git fetch origin {ref.removeprefix('origin/')}`)") from e
    try:
        archive = _git(top, "archive", "--format=tar", ref, "--", relative)
    except ReconcilerError:
        return None  # the folder did not exist at ref: everything is new
    with tempfile.TemporaryDirectory(prefix="reconciler-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            return load(Path(tmp) / relative)
        except InputError:
            return None  # an invalid base says nothing reliable: plan everything


def changed_since(root: Path, ref: str, current: DesiredState) -> Scope:
    base = load_at_ref(root, ref)
    scope = Scope()
    if base is None:
        scope.ids = dict.fromkeys(current.customers)
        return scope
    for cid, state in current.customers.items():
        before = base.customers.get(cid)
        if before is None or before.customer != state.customer:
            scope.ids[cid] = None
            continue
        ids: set[str] = set()
        previous: dict[str, Location] = {}
        for rid in set(state.resources) | set(before.resources):
            old, new = before.resources.get(rid), state.resources.get(rid)
            if old != new:
                ids.add(rid)
                if old is not None and new is not None and old.located_at != new.located_at:
                    previous[rid] = old.located_at
        scope.ids[cid] = ids
        scope.previous_locations[cid] = previous
    return scope
