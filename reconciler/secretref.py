"""Where a secret may be referenced from: ``env:NAME`` or ``file:path``, and only safe places.

The workflow exports a customer's key into the variable the YAML names. A name that another
program reads would hand the key to it: ``PYTHONWARNINGS`` makes Python print the whole key as
an invalid warning option on every command, ``LD_PRELOAD`` makes the loader try to load it,
``SSLKEYLOGFILE`` or ``*_PROXY`` makes a TLS or HTTP client use it. So a name must be upper-case
(``[A-Z][A-Z0-9_]+``) and none of those below; ``CONTOSO_EXO_KEY`` is the intended shape.
A ``file:`` path is absolute or relative to the repository, and must be a regular file.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

NAME = re.compile(r"[A-Z][A-Z0-9_]+")
# Read by Python, the dynamic loader, the C library, shells, git, TLS and HTTP clients, MSAL,
# the CI runner, or this program itself.
REFUSED_PREFIXES = (
    "PYTHON", "PIP_", "VIRTUAL_ENV", "LD_", "DYLD_", "MALLOC_", "GLIBC_", "GCONV_", "LC_",
    "SSL", "OPENSSL_", "REQUESTS_", "CURL_", "HTTPX_", "MSAL_", "AZURE_", "KRB5", "GIT_",
    "GITHUB_", "RUNNER_", "ACTIONS_", "INPUT_", "STATE_", "BASH_", "NODE_", "NPM_", "XDG_",
    "PYTEST_", "NO_COLOR", "FORCE_COLOR", "TERM", "LESS", "PAGER", "GNUPG", "GPG_", "SSH_",
    "GCM_",
)
REFUSED_SUFFIXES = ("_PROXY",)
REFUSED_NAMES = frozenset({
    "PATH", "HOME", "CI", "SHELL", "ENV", "IFS", "PS4", "PWD", "USER", "LOGNAME", "TMPDIR",
    "TMP", "TEMP", "TZ", "LANG", "LANGUAGE", "EDITOR", "VISUAL", "HOSTALIASES", "LOCALDOMAIN",
    "RES_OPTIONS", "NLSPATH", "LOCPATH", "COLUMNS", "LINES",
    # read by requests (under MSAL), curl, wget and git's credential helpers
    "NETRC", "CURL_HOME", "WGETRC",
    # this tool's own settings
    "RECONCILER_GC", "RECONCILER_JOBS", "RECONCILER_EXCHANGE_URL", "RECONCILER_AUTHORITY_HOST",
    "RECONCILER_PENDING_MINUTES", "RECONCILER_APP_ID", "RECONCILER_CERTIFICATE_THUMBPRINT",
})
# A key, certificate or passphrase file is small; a larger one is not one of those.
MAX_SECRET_BYTES = 1024 * 1024


def env_name_problem(name: str) -> str | None:
    """Why ``name`` may not hold a secret, or None when it may."""
    if not NAME.fullmatch(name):
        return (f"the variable name '{name}' is not of the form [A-Z][A-Z0-9_]+ (upper-case "
                "letters, digits and '_'); name it after the customer, e.g. CONTOSO_EXO_KEY")
    if (name in REFUSED_NAMES or name.startswith(REFUSED_PREFIXES)
            or name.endswith(REFUSED_SUFFIXES)):
        return (f"the variable {name} is read by another program (Python, the loader, git, an "
                "HTTP or TLS client, the CI runner or this tool), which would receive the "
                "secret; use a name of your own, e.g. CONTOSO_EXO_KEY")
    return None


def file_path(target: str, root: Path) -> Path:
    """The file a ``file:`` reference names: absolute as written, else below ``root``."""
    path = Path(target)
    return path if path.is_absolute() else root / path


def outside_problem(target: str, root: Path) -> str | None:
    """Why a relative ``file:`` path is refused: through '..' or a link, its real path leaves
    the repository (the repository is a closed world; a key kept elsewhere is named by an
    absolute path, which only whoever sets up the job can make true)."""
    if Path(target).is_absolute():
        return None
    top = os.path.realpath(root)
    real = os.path.realpath(os.path.join(top, target))
    if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
        return None
    return (f"file:{target} leaves the repository; a relative path must stay inside it "
            "(write an absolute path for a key kept elsewhere)")


def file_problem(path: Path) -> str | None:
    """Why an existing ``path`` cannot be a secret file (None when it can, or does not exist
    here: the key may exist only where apply runs)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{path} cannot be read: {e.strerror}"
    if not stat.S_ISREG(mode):
        return f"{path} is not a regular file"
    return None


def read_file(path: Path) -> bytes:
    """A secret file's bytes: a regular file only (a FIFO or a device could block or never
    end), at most :data:`MAX_SECRET_BYTES`. Raises OSError or ValueError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = f.read(MAX_SECRET_BYTES + 1)
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"larger than {MAX_SECRET_BYTES // 1024} KiB")
    return data
