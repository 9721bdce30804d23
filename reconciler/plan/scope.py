"""``--changed-since REF``: which resources a pull request touches.

The files git reports as changed since REF are loaded as they were at REF (``git archive``),
with the customer, site and settings files they depend on, and compared with the working tree
by identity: a resource added, edited, moved or removed is in scope, and where it was declared
at REF is its previous location (so a move shows as a move). A change to a
customer's own settings (customer.yaml, site.yaml, reconciler.yaml: templates, policy,
placement) can change any of its resources, so it puts the whole customer in scope.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.desired.cache import ParseCache
from reconciler.desired.loader import YAML_SUFFIXES
from reconciler.errors import InputError, ReconcilerError
from reconciler.live.targeted import principals_named
from reconciler.model import CustomerState, DesiredState, Location

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


def _toplevel(root: Path, ref: str) -> tuple[Path, str]:
    """The git work tree holding ``root``, and ``root`` relative to it (posix, "." for itself);
    an error a user can act on when there is none or it knows no commit ``ref``."""
    try:
        top = Path(_git(root, "rev-parse", "--show-toplevel").decode().strip())
    except ReconcilerError as e:
        raise ReconcilerError(f"--changed-since {ref}: {root} is not in a git repository, so "
                              "there is nothing to compare with; plan without --changed-since, "
                              "or run `git init` and commit first") from e
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ReconcilerError as e:
        raise ReconcilerError(
            f"--changed-since {ref}: git knows no commit named '{ref}' in {top}. Give a branch, "
            "tag or commit that exists (`git branch -a` lists them); in a shallow CI checkout, "
            f"fetch it first (`git fetch origin {ref.removeprefix('origin/')}`)") from e
    return top, root.resolve().relative_to(top.resolve()).as_posix() or "."


def _names(output: bytes) -> list[str]:
    return [name for name in output.decode("utf-8", "surrogateescape").split("\0") if name]


def changed_files(root: Path, ref: str) -> set[str]:
    """The files under ``root`` (relative to it, posix) that differ between ``ref`` and the
    working tree: committed since, staged, edited, removed, or new and not ignored."""
    top, relative = _toplevel(root, ref)
    names = _names(_git(top, "diff", "--name-only", "--no-renames", "-z", ref, "--", relative))
    names += _names(_git(top, "ls-files", "--others", "--exclude-standard", "-z", "--",
                         relative))
    prefix = "" if relative == "." else f"{relative}/"
    changed = {name[len(prefix):] for name in names if name.startswith(prefix)}
    return changed | _through_links(root, changed)


# Where the loader finds YAML files (desired.loader): the settings, a customer's own folder, a
# site's folder.
_READ_FROM = ("*", "customers/*/*", "customers/*/sites/*/*")


def _through_links(root: Path, changed: set[str]) -> set[str]:
    """The YAML files the loader reads through a link inside the repository (the file or a
    folder on its way) that leads to one of ``changed``: git names only the file it leads
    to, yet what the loader reads under the link's name changed too."""
    real_root = Path(os.path.realpath(root))
    found = set()
    for pattern in _READ_FROM:
        for path in root.glob(pattern):
            name = path.relative_to(root).as_posix()
            if path.suffix not in YAML_SUFFIXES or name in changed:
                continue
            real = Path(os.path.realpath(path))
            if real != real_root / name and real_root in real.parents and \
                    real.relative_to(real_root).as_posix() in changed:
                found.add(name)
    return found


def _is_settings(name: str) -> bool:
    """A file that the resources of its folder depend on (customer, site, provider settings)."""
    stem, _, suffix = name.rpartition("/")[2].rpartition(".")
    return f"{stem}.yaml" in WHOLE_CUSTOMER_FILES and f".{suffix}" in YAML_SUFFIXES


def load_at_ref(root: Path, ref: str, *, only: set[str] | None = None,
                cache: ParseCache | None = None) -> DesiredState | None:
    """The desired state as it was at ``ref``; None when the repository did not exist there.

    With ``only`` (paths relative to ``root``), just those files are loaded, with the
    customer, site and settings files every resource depends on: what a pull request's scope
    needs, at the cost of what it changed."""
    from reconciler.desired import load

    top, relative = _toplevel(root, ref)
    paths = [relative]
    if only is not None:
        prefix = "" if relative == "." else f"{relative}/"
        try:
            listed = _names(_git(top, "ls-tree", "-r", "-z", "--name-only", ref, "--",
                                 relative))
        except ReconcilerError:
            return None
        if not listed:
            return None  # the folder did not exist at ref: everything is new
        paths = [name for name in listed
                 if _is_settings(name[len(prefix):]) or name[len(prefix):] in only]
    try:
        archive = _git(top, "archive", "--format=tar", ref, "--", *paths)
    except ReconcilerError:
        return None  # the folder did not exist at ref: everything is new
    with tempfile.TemporaryDirectory(prefix="reconciler-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            return load(Path(tmp) / relative, cache=cache)
        except InputError:
            return None  # an invalid base says nothing reliable: plan everything


def _declared_in(state: CustomerState, root: Path, files: set[str]) -> set[str]:
    """The ids of ``state``'s resources declared in one of ``files`` (relative to ``root``)."""
    found = set()
    for rid, resource in state.resources.items():
        source = resource.source
        if source is not None and \
                Path(os.path.relpath(source.file, root)).as_posix() in files:
            found.add(rid)
    return found


def changed_since(root: Path, ref: str, current: DesiredState,
                  cache: ParseCache | None = None) -> Scope:
    """What differs between ``ref`` and the working tree. Only the files git reports as changed
    are loaded at ``ref`` (with the settings they depend on): a resource in an unchanged file
    is unchanged, unless its customer's settings changed, which puts the whole customer in
    scope."""
    files = changed_files(root, ref)
    base = load_at_ref(root, ref, only=files, cache=cache)
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
        for rid in _declared_in(state, root, files) | set(before.resources):
            old, new = before.resources.get(rid), state.resources.get(rid)
            if old != new:
                ids.add(rid)
                if old is not None and new is not None and old.located_at != new.located_at:
                    previous[rid] = old.located_at
        scope.ids[cid] = ids | _naming(state, _moved_or_gone(before, state, ids))
        scope.previous_locations[cid] = previous
    return scope


def _moved_or_gone(before: CustomerState, after: CustomerState, ids: set[str]) -> set[str]:
    """The ids among ``ids`` declared only on one side, or at another place."""
    moved = set()
    for rid in ids:
        old, new = before.resources.get(rid), after.resources.get(rid)
        if old is None or new is None or old.located_at != new.located_at:
            moved.add(rid)
    return moved


def _naming(state: CustomerState, ids: set[str]) -> set[str]:
    """The resources of ``state`` that name one of ``ids`` as a principal: their checks (that
    it exists, that it is at the same site) depend on it, so they are planned too, as a full
    plan would check them, though their own YAML did not change."""
    if not ids:
        return set()
    return {rid for rid, resource in state.resources.items()
            if any(name.lower() in ids for name in principals_named(resource))}
