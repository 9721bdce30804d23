"""A content-addressed cache of parsed YAML files, so that a plan re-parses only what changed.

Each entry is one file's loaded result: its plain data and the line and column of every dict,
list, key and item (so messages keep their file:line), stored as JSON under
``<repository>/.reconciler/cache/<key>.json``. The key is the SHA-256 of the product's version
(the release plus a digest of the code and schemas that parse and check a file), of what the
file is read as (resources, customer, site, settings) and of the file's bytes. So:

- an edited file has another key: it is parsed again, never served stale;
- a renamed or copied file with the same bytes is served, under its new name (names are not
  part of an entry; messages name the file as it is now);
- another product version has other keys.

Only files that parsed and passed their schema are stored, so a cached file skips both; every
file is still opened and read by the loader each time (its checks run), and everything that
looks across files (an identity declared twice, templates, sites, principals) runs on the
loaded data as without a cache. An entry is data only (JSON, never pickle: a cache may be
restored in CI); one that cannot be read or does not fit its data counts as absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from reconciler import __version__

from .yamlfile import Row, YamlDocument, YamlError, read_bytes

log = logging.getLogger(__name__)

CACHE_DIR = Path(".reconciler") / "cache"
# /2: positions as the parser counts them, from 0 (an entry of /1, counted from 1, is absent).
# /3: two JSON lines, a header (format, key, the SHA-256 of the second line) then the data and
# its marks: an entry changed by anything but this program (a torn write, a disk's error, a
# hand edit) no longer matches its digest and is absent, never served with other data.
ENTRY_FORMAT = "reconciler-parse-cache/3"
# What decides a file's loaded result, besides its bytes: a change to any of these (relative
# to the package; secretref.py says which secret references the schema check accepts) is a new
# product version for the cache, released or not. So is another PyYAML, or its other parser.
_SOURCES = ("desired/yamlfile.py", "desired/schema.py", "desired/cache.py", "secretref.py")


@cache
def product_version() -> str:
    """The release and a digest of the parsing code, the YAML parser and the schemas."""
    digest = hashlib.sha256(__version__.encode())
    digest.update(f"\0{yaml.__version__}\0{yaml.__with_libyaml__}\0".encode())
    package = Path(__file__).resolve().parent.parent
    for name in _SOURCES:
        digest.update((package / name).read_bytes())
    for schema in sorted((package / "schemas").glob("*.schema.json")):
        digest.update(schema.name.encode() + schema.read_bytes())
    return digest.hexdigest()


class ParseCache:
    """The cache in ``directory``; ``ParseCache(None)`` caches nothing."""

    def __init__(self, directory: Path | None, version: str | None = None) -> None:
        self.directory = directory
        self.version = version
        self.hits = 0
        self.misses = 0

    @classmethod
    def of_repository(cls, root: Path) -> ParseCache:
        """The repository's cache, or none (every file parsed) when it cannot be trusted."""
        why = _untrusted(Path(root))
        if why:
            log.warning("the parse cache is not used, every file is parsed: %s", why)
            return cls(None)
        return cls(Path(root) / CACHE_DIR)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def key(self, raw: bytes, kind: str) -> str:
        return entry_key(self.version_used(), raw, kind)

    def version_used(self) -> str:
        """The product version the keys are made with."""
        return self.version or product_version()

    def get(self, key: str, display: str) -> YamlDocument | None:
        """The document stored under ``key``, named ``display``; None when absent or unusable."""
        if self.directory is None:
            return None
        try:
            doc = _document((self.directory / f"{key}.json").read_bytes(), key, display)
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            doc = None
        if doc is None:
            self.misses += 1
        else:
            self.hits += 1
        return doc

    def holds(self, path: Path, kind: str) -> bool:
        """Whether an entry for the file at ``path``, as its bytes are now, is stored (it may
        still turn out unusable when read)."""
        if self.directory is None:
            return False
        try:  # as the loader reads it: no more than a file may hold, a FIFO never waited on
            key = self.key(read_bytes(str(path), str(path)), kind)
        except YamlError:
            return False
        return (self.directory / f"{key}.json").is_file()

    def put(self, key: str, doc: YamlDocument) -> None:
        """Store ``doc``; a cache that cannot be written is skipped, never an error."""
        self.write(key, self.entry(key, doc))

    @staticmethod
    def entry(key: str, doc: YamlDocument) -> bytes:
        """``doc`` as the cache stores it, to :meth:`write` later (once the load succeeded)."""
        marks: list[list[int]] = []
        _flatten(doc.data, doc.marks, marks)
        return entry_body(key, doc.data, marks)

    def write(self, key: str, body: bytes, suffix: str = ".json") -> None:
        """Store an :meth:`entry` (or another record, named ``<key><suffix>``); a cache that
        cannot be written is skipped, never an error."""
        if self.directory is None:
            return
        try:
            if not self.directory.is_dir():
                self.directory.mkdir(parents=True, exist_ok=True)
                # Never committed by a `git add -A`, whatever the repository ignores.
                (self.directory / ".gitignore").write_text("*\n", encoding="utf-8")
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".entry-")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, self.directory / f"{key}{suffix}")
        except OSError as e:
            log.debug("parse cache not written (%s): %s", self.directory, e)


def entry_key(version: str, raw: bytes, kind: str) -> str:
    """The key of a file's entry: its bytes, what it is read as, and the product's version."""
    digest = hashlib.sha256(version.encode())
    digest.update(b"\0" + kind.encode() + b"\0")
    digest.update(raw)
    return digest.hexdigest()


def entry_body(key: str, data: Any, marks: list[list[int]]) -> bytes:
    """An entry as stored: its header line, then the data and its marks in the order
    :func:`_flatten` gives (JSON never writes a newline of its own, so each is one line)."""
    payload = json.dumps([data, marks], ensure_ascii=False, separators=(",", ":")).encode()
    header = {"format": ENTRY_FORMAT, "key": key, "sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload


def _untrusted(root: Path) -> str | None:
    """Why the cache in ``root`` may hold entries this program did not write, or None.

    An entry is served in place of its file: one committed to git (a pull request can add it
    with ``git add -f``, or commit ``.reconciler`` as a link to a folder of entries, where
    git lists nothing under ``.reconciler/cache``) or reached through a link out of the
    repository would make the plan differ from the YAML its reviewer reads. When git cannot
    say what is committed, the cache is not trusted either."""
    real_root = os.path.realpath(root)
    for path in (root / CACHE_DIR.parent, root / CACHE_DIR):
        real = os.path.realpath(path)
        if os.path.lexists(path) and os.path.commonpath([real_root, real]) != real_root:
            return f"{path} leads outside the repository"
        if os.path.islink(path):
            return f"{path} is a link (git may hold what it leads to); make it a plain folder"
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--", CACHE_DIR.as_posix()], cwd=root,
                              capture_output=True, check=False, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return _in_work_tree(real_root, "git could not be run")
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return _in_work_tree(real_root, said[0] if said else f"git exited {done.returncode}")
    if done.stdout.strip(b"\0"):
        return (f"files in {CACHE_DIR.as_posix()} are committed to git; remove them "
                f"(git rm -r --cached {CACHE_DIR.as_posix()})")
    return None


def _in_work_tree(real_root: str, why: str) -> str | None:
    """Why git's silence leaves the cache untrusted: ``root`` lies in a git work tree (a
    ``.git`` in it or above it), so entries may be committed; None where there is no git."""
    for folder in (real_root, *map(str, Path(real_root).parents)):
        if os.path.lexists(os.path.join(folder, ".git")):
            return f"git cannot say whether files in {CACHE_DIR.as_posix()} are committed ({why})"
    return None


def _flatten(value: Any, marks: dict[int, Row], out: list[Row]) -> None:
    """Each container's row, in the order of :func:`_containers`."""
    out.extend([marks[id(container)] for container in _containers(value)])


def _document(raw: bytes, key: str, display: str) -> YamlDocument | None:
    """The document an entry's bytes hold; None unless they are the entry written for ``key``.
    Raises ValueError, TypeError... on bytes no entry has."""
    head, _, payload = raw.partition(b"\n")
    header = json.loads(head)
    if not isinstance(header, dict) or header.get("format") != ENTRY_FORMAT \
            or header.get("key") != key \
            or header.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None
    data, flat = json.loads(payload)
    doc = YamlDocument(display, data)
    if _attach(doc.data, flat, 0, doc.marks) != len(flat):
        return None
    return doc


def _attach(value: Any, flat: list[Row], at: int, marks: dict[int, Row]) -> int:
    """Give each container of ``value`` its row from ``flat[at:]``; the next unused index.
    Raises IndexError or ValueError when the rows do not fit the data."""
    containers = _containers(value)
    rows = flat[at:at + len(containers)]
    if len(rows) != len(containers):
        raise IndexError("fewer marks than containers")
    for container, row in zip(containers, rows, strict=True):
        if len(row) != 2 + (4 if container.__class__ is dict else 2) * len(container):
            raise ValueError("marks do not fit the data")
        marks[id(container)] = row
    return at + len(containers)


def _containers(value: Any) -> list[Any]:
    """Every dict and list of ``value``, itself first, breadth first."""
    todo = [value] if value.__class__ is dict or value.__class__ is list else []
    append = todo.append
    for container in todo:  # grows as it goes
        for item in container.values() if container.__class__ is dict else container:
            cls = item.__class__
            if cls is dict or cls is list:
                append(item)
    return todo
