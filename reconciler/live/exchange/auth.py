"""App-only sign-in to Exchange Online with a certificate, through msal.

One msal ConfidentialClientApplication per tenant and credential, kept for the life of the
process, so its in-memory token cache spares a token request per call. The certificate can be
given three ways (docs/format.md §2): a PEM private key with the SHA-1 thumbprint of the uploaded
certificate, a PEM private key with the public certificate (msal then names it by SHA-256), or a
PFX file with a passphrase. Secrets are read from ``env:VAR`` or ``file:path`` references at the
moment they are needed and are never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import msal
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from reconciler import secretref
from reconciler.live.backend import AuthenticationError, TransientError
from reconciler.model import Tenant
from reconciler.secretref import env_name_problem

log = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"

# What usually lies behind each Entra error code, in the words of someone setting up a tenant.
_HINTS: dict[str, str] = {
    "AADSTS90002": "the tenant id is wrong, or the tenant lives in another cloud "
                   "(set tenant.authority_host)",
    "AADSTS900023": "the tenant id is not a valid tenant id or domain",
    "AADSTS700016": "the app_id is wrong, or the app has not been consented in this tenant "
                    "(grant admin consent for Exchange.ManageAsApp)",
    "AADSTS700027": "the certificate is not uploaded to the app registration, or the private key "
                    "does not belong to it",
    "AADSTS700024": "the client clock is off, or the assertion was built long before it was sent",
    "AADSTS7000215": "a client secret was sent where a certificate is expected",
    "AADSTS500011": "Exchange Online is not available in this tenant, or the Exchange URL points "
                    "to another cloud",
    "AADSTS65001": "admin consent for Exchange.ManageAsApp is missing",
    "AADSTS7000112": "the application is disabled",
}
GENERIC_HINT = (
    "usual causes: admin consent for Exchange.ManageAsApp missing, the certificate not uploaded "
    "to the app registration, the wrong tenant id, or no Exchange role assigned to the app"
)


def auth_hint(description: str) -> str:
    match = re.search(r"AADSTS\d+", description or "")
    if match and match.group(0) in _HINTS:
        return _HINTS[match.group(0)]
    return GENERIC_HINT


def read_secret(reference: str, *, what: str) -> bytes:
    """The bytes an ``env:VAR`` or ``file:path`` reference points to (a bare path is a file)."""
    kind, sep, target = reference.partition(":")
    if sep and kind == "env":
        why = env_name_problem(target)
        if why:  # validate refuses it too; a tenant built in code must not slip past
            raise AuthenticationError(f"{what}: {why}")
        value = os.environ.get(target)
        if not value:
            raise AuthenticationError(f"{what}: environment variable {target} is not set")
        return value.encode()
    path = Path(target if sep and kind == "file" else reference).expanduser()
    try:
        return secretref.read_file(path)
    except OSError as e:
        raise AuthenticationError(f"{what}: cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise AuthenticationError(f"{what}: {path} is {e}; give the key's own file") from None


def _check_private_key(key_pem: bytes, passphrase: bytes | None, tenant: Tenant) -> None:
    """A key that cannot be read is the user's error, named by where it came from; neither
    its bytes nor the parser's message (which may quote them) are shown."""
    try:
        serialization.load_pem_private_key(key_pem, passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise AuthenticationError(
            f"tenant {tenant.id}: the private key in certificate_key "
            f"({tenant.certificate_key}) cannot be read: it is not a well-formed PEM private "
            "key, or its passphrase (certificate_passphrase) is wrong or missing; export it "
            "again (e.g. openssl pkcs8 -topk8 -nocrypt)") from None


def _normalise_thumbprint(thumbprint: str) -> str:
    cleaned = re.sub(r"[\s:]", "", thumbprint).upper()
    if not re.fullmatch(r"[0-9A-F]{40}", cleaned):
        raise AuthenticationError(
            "tenant.certificate_thumbprint must be the certificate's SHA-1 thumbprint "
            "(40 hexadecimal digits)")
    return cleaned


def _load_pfx(data: bytes, passphrase: bytes | None) -> tuple[bytes, bytes]:
    """(unencrypted PEM private key, PEM certificate) from PKCS#12 bytes."""
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError:
        raise AuthenticationError(
            "the PFX file could not be opened: wrong passphrase, or not a PKCS#12 file") from None
    if key is None or cert is None:
        raise AuthenticationError("the PFX file must hold both the private key and its "
                                  "certificate")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _maybe_pfx(data: bytes) -> bytes | None:
    """PKCS#12 bytes if ``data`` is a PFX (raw, or base64 as an environment variable holds it)."""
    if b"-----BEGIN" in data:
        return None
    if data[:1] == b"\x30":  # a DER SEQUENCE: raw PFX
        return data
    try:
        decoded = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded[:1] == b"\x30" else None


def client_credential(tenant: Tenant) -> dict[str, Any]:
    """msal's ``client_credential`` for the tenant's certificate settings."""
    if not tenant.certificate_key:
        raise AuthenticationError(
            f"tenant {tenant.id}: certificate_key is not set (env:VAR or file:path of the "
            "private key or PFX)")
    key_data = read_secret(tenant.certificate_key, what="certificate_key")
    passphrase = (read_secret(tenant.certificate_passphrase, what="certificate_passphrase")
                  .rstrip(b"\r\n") if tenant.certificate_passphrase else None)
    pfx = _maybe_pfx(key_data)
    cert_pem: bytes | None = None
    if pfx is not None:
        key_pem, cert_pem = _load_pfx(pfx, passphrase)
        passphrase = None
    else:
        key_pem = key_data
        if b"PRIVATE KEY-----" not in key_pem:
            raise AuthenticationError(
                "certificate_key must be a PEM private key or a PFX (PKCS#12) file")
        _check_private_key(key_pem, passphrase, tenant)
        if tenant.certificate:
            cert_pem = read_secret(tenant.certificate, what="certificate")
        elif not tenant.certificate_thumbprint and b"-----BEGIN CERTIFICATE-----" in key_pem:
            cert_pem = key_pem  # a combined PEM: key and certificate in one file
    credential: dict[str, Any] = {"private_key": key_pem.decode()}
    if passphrase:
        credential["passphrase"] = passphrase.decode()
    if cert_pem is not None:
        try:
            certificate = x509.load_pem_x509_certificate(
                re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                          cert_pem, re.S).group(0))  # type: ignore[union-attr]
        except (ValueError, AttributeError):
            raise AuthenticationError("tenant.certificate is not a PEM certificate") from None
        if tenant.certificate_thumbprint:
            expected = _normalise_thumbprint(tenant.certificate_thumbprint)
            actual = certificate.fingerprint(hashes.SHA1()).hex().upper()  # legacy thumbprint
            if actual != expected:
                raise AuthenticationError(
                    f"certificate_thumbprint {expected} does not match the certificate "
                    f"(its SHA-1 thumbprint is {actual})")
        # Without a thumbprint msal names the certificate by SHA-256 (x5t#S256, PS256).
        credential["public_certificate"] = certificate.public_bytes(
            serialization.Encoding.PEM).decode()
    elif tenant.certificate_thumbprint:
        credential["thumbprint"] = _normalise_thumbprint(tenant.certificate_thumbprint)
    else:
        raise AuthenticationError(
            "set tenant.certificate_thumbprint (SHA-1) or tenant.certificate (file:path of the "
            "public certificate), or give a PFX as certificate_key")
    return credential


class MsalHttpAdapter:
    """msal's ``http_client`` over an httpx.Client.

    msal hands the token request's form as a dict whose client assertion is bytes; httpx would
    stringify those as ``b'…'`` and corrupt the assertion, so the form is url-encoded here.
    """

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(self, url: str, params: Mapping[str, Any] | None = None, data: Any = None,
             headers: Mapping[str, str] | None = None, **_: Any) -> httpx.Response:
        request_headers = dict(headers or {})
        content: bytes | str | None
        if isinstance(data, Mapping):
            content = urlencode({k: v for k, v in data.items() if v is not None})
            request_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            content = data
        return self.client.post(url, params=params, content=content, headers=request_headers)

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None, **_: Any) -> httpx.Response:
        return self.client.get(url, params=params, headers=headers)

    def close(self) -> None:  # msal may call it; the client belongs to the caller
        pass


@dataclass(frozen=True, slots=True)
class _AppKey:
    authority: str
    app_id: str
    credential_digest: str


@dataclass
class _Registration:
    """A cached msal application with the adapter it was built with. Backends come and go with
    their own httpx clients; the adapter is pointed at the caller's client under ``lock``."""

    app: msal.ConfidentialClientApplication
    adapter: MsalHttpAdapter
    lock: threading.Lock


_apps: dict[_AppKey, _Registration] = {}
_apps_lock = threading.Lock()


class TokenProvider:
    """Access tokens for one tenant's Exchange resource, from a cached msal application."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        authority_host: str,
        resource: str,
        http_client: httpx.Client,
        attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not tenant.app_id:
            raise AuthenticationError(f"tenant {tenant.id}: app_id is not set")
        self.tenant = tenant
        self.authority = f"{authority_host.rstrip('/')}/{tenant.id}"
        self.scopes = [f"{resource.rstrip('/')}/.default"]
        self._client = http_client
        self._attempts = attempts
        self._sleep = sleep
        self._registration: _Registration | None = None

    def _registered(self) -> _Registration:
        if self._registration is not None:
            return self._registration
        credential = client_credential(self.tenant)
        digest = sha256(repr(sorted(credential.items())).encode()).hexdigest()
        key = _AppKey(self.authority, (self.tenant.app_id or "").lower(), digest)
        with _apps_lock:
            registration = _apps.get(key)
            if registration is None:
                adapter = MsalHttpAdapter(self._client)
                try:
                    app = msal.ConfidentialClientApplication(
                        self.tenant.app_id,
                        authority=self.authority,
                        client_credential=credential,
                        http_client=adapter,
                        # Discovery goes straight to <authority>/v2.0/.well-known/...: works
                        # for every cloud and never calls login.microsoftonline.com behind
                        # the configured authority's back.
                        instance_discovery=False,
                    )
                except ValueError as e:
                    raise AuthenticationError(
                        f"sign-in to {self.authority} failed: {_first_line(e)} "
                        f"(hint: {_HINTS['AADSTS90002']})") from None
                except httpx.HTTPError as e:
                    raise AuthenticationError(
                        f"sign-in to {self.authority} failed: cannot reach the identity "
                        f"endpoint ({type(e).__name__}: {e})") from None
                registration = _apps[key] = _Registration(app, adapter, threading.Lock())
        self._registration = registration
        return registration

    def token(self) -> str:
        registration = self._registered()
        with registration.lock:
            registration.adapter.client = self._client
            for attempt in range(1, self._attempts + 1):
                try:
                    result = registration.app.acquire_token_for_client(scopes=self.scopes)
                    break
                except (httpx.TransportError, msal.exceptions.MsalServiceError) as e:
                    # msal raises on 5xx and lets transport errors through: both transient.
                    if attempt == self._attempts:
                        raise TransientError(
                            f"token request to {self.authority} failed: {type(e).__name__}"
                        ) from None
                    log.debug("token request failed (%s); retrying", type(e).__name__)
                    self._sleep(0.5 * attempt)
        if "access_token" not in result:
            error = result.get("error", "unknown_error")
            description = _first_line(result.get("error_description", ""))
            raise AuthenticationError(
                f"sign-in of app {self.tenant.app_id} to tenant {self.tenant.id} failed: "
                f"{error}: {description} (hint: {auth_hint(description)})",
                error_id=error)
        if result.get("token_source") == "identity_provider":
            log.info("signed in to tenant %s as app %s (%s)", self.tenant.id,
                     self.tenant.app_id, self.authority)
        else:
            log.debug("token for tenant %s from msal's cache", self.tenant.id)
        return str(result["access_token"])

    def refresh(self, rejected: str) -> str:
        """A new token after Exchange refused ``rejected`` (401): drop it from msal's cache."""
        registration = self._registered()
        with registration.lock:
            cache = registration.app.token_cache
            stale = [item for item in cache.search(cache.CredentialType.ACCESS_TOKEN,
                                                   target=self.scopes)
                     if item.get("secret") == rejected]
            for item in stale:
                cache.remove_at(item)
        return self.token()


def _first_line(value: object) -> str:
    text = str(value).strip()
    # Entra appends trace and correlation ids: useful to support, noise to the user.
    return re.split(r"\s+Trace ID:|\r?\n", text, maxsplit=1)[0]
