"""A fake Microsoft identity platform endpoint for app-only certificate sign-in.

Serves what msal's ConfidentialClientApplication fetches (OpenID discovery, optionally instance
discovery) and the v2.0 token endpoint. The token endpoint checks the client-assertion JWT the
way Entra does: the certificate named by ``x5t`` (SHA-1, RS256) or ``x5t#S256`` (SHA-256, PS256)
must be registered on the application, the signature must verify with it, the audience must be
this token endpoint, and the assertion must be within its validity window. Failures answer with
Entra's error shape (``error``, ``error_description`` starting with an AADSTS code) so the
connector's error reporting is exercised against realistic bodies. The AADSTS codes used are the
ones Entra documents for these cases; the exact wording of descriptions is approximate.

Issued access tokens are opaque random strings, valid only for the fake Exchange service that
shares this object.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE_ROLE = "Exchange.ManageAsApp"
CLOCK_SKEW_SECONDS = 300  # Entra tolerates about five minutes of client clock skew

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class AppRegistration:
    """An application registered in a tenant, with the certificates uploaded to it."""

    tenant_id: str
    app_id: str
    certificates: list[x509.Certificate] = field(default_factory=list)
    consented: bool = True  # admin consent for Exchange.ManageAsApp
    exchange_role: bool = True  # an Exchange role assigned to the app's service principal


@dataclass(frozen=True, slots=True)
class IssuedToken:
    tenant_id: str
    app_id: str
    audience: str  # the resource origin the token was requested for
    expires_at: float
    roles: tuple[str, ...]
    exchange_role: bool


class AssertionRejected(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


def load_certificate(certificate: x509.Certificate | bytes | str) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    data = certificate.encode() if isinstance(certificate, str) else certificate
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _decode_assertion(assertion: str) -> tuple[dict[str, Any], dict[str, Any], str, bytes]:
    """A JWT's header, claims, signed part and signature; malformed is refused."""
    try:
        header_b64, payload_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(payload_b64))
        signature = _b64url_decode(signature_b64)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise AssertionRejected(
            400, "invalid_request", 50027,
            "JWT token is invalid or malformed.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected(400, "invalid_request", 50027,
                                "JWT token is invalid or malformed.")
    return header, claims, f"{header_b64}.{payload_b64}", signature


def _check_lifetime(claims: Mapping[str, Any], now: float) -> None:
    """That ``now`` lies between the assertion's not-before and expiry, within the skew."""
    try:
        exp = float(claims["exp"])
        nbf = float(claims.get("nbf", claims.get("iat", 0)))
    except (KeyError, TypeError, ValueError):
        raise AssertionRejected(400, "invalid_request", 50027,
                                "JWT token is invalid or malformed: no expiry.") from None
    if exp + CLOCK_SKEW_SECONDS < now or nbf - CLOCK_SKEW_SECONDS > now:
        raise AssertionRejected(
            401, "invalid_client", 700024,
            "Client assertion is not within its valid time range. Current time: "
            f"{_iso(now)}, assertion valid from {_iso(nbf)}, expiry time of assertion "
            f"{_iso(exp)}.")


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeIdentity:
    """The identity platform for any number of fake tenants. Thread-safe."""

    def __init__(
        self,
        *,
        token_lifetime: int = 3599,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.token_requests = 0
        self.tokens_issued = 0
        self.rejections: list[str] = []  # "AADSTS<code>" per refused token request
        self.assertions: list[tuple[str, str]] = []  # (alg, "x5t" | "x5t#S256") per accepted
        self.issued: list[str] = []  # every token handed out (tests search logs for them)
        self._tenants: dict[str, str] = {}  # any alias (id, domain) -> canonical tenant id
        self._apps: dict[tuple[str, str], AppRegistration] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()

    # --- setup ---------------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str, aliases: Iterable[str] = ()) -> None:
        with self._lock:
            for name in (tenant_id, *aliases):
                self._tenants[name.lower()] = tenant_id

    def register(
        self,
        tenant_id: str,
        app_id: str,
        certificates: Iterable[x509.Certificate | bytes | str] = (),
        *,
        consented: bool = True,
        exchange_role: bool = True,
    ) -> AppRegistration:
        """Register an app in ``tenant_id`` (created if new) with its uploaded certificates."""
        if tenant_id.lower() not in self._tenants:
            self.add_tenant(tenant_id)
        app = AppRegistration(
            tenant_id,
            app_id,
            [load_certificate(c) for c in certificates],
            consented=consented,
            exchange_role=exchange_role,
        )
        with self._lock:
            self._apps[(tenant_id, app_id.lower())] = app
        return app

    def canonical_tenant(self, name: str) -> str | None:
        with self._lock:
            return self._tenants.get(name.lower())

    # --- tokens --------------------------------------------------------------------------------

    def validate(self, token: str) -> IssuedToken | None:
        """The token's grant if it was issued here, is unexpired and not revoked."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= self.clock():
            return None
        return issued

    def issue_token(self, tenant_id: str, app_id: str, audience: str) -> str:
        """A token as the token endpoint would issue it, for clients that do not sign in
        (protocol tests with a plain HTTP client)."""
        app = self._apps[(tenant_id, app_id.lower())]
        return self._store(IssuedToken(tenant_id, app.app_id, audience.rstrip("/"),
                                       self.clock() + self.token_lifetime,
                                       (EXCHANGE_ROLE,) if app.consented else (),
                                       app.exchange_role))

    def _store(self, issued: IssuedToken) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = issued
            self.issued.append(token)
            self.tokens_issued += 1
        return token

    def revoke_all(self) -> None:
        """Forget every issued token, as if they had expired: the next Exchange call gets 401."""
        with self._lock:
            self._tokens.clear()

    # --- HTTP ----------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, body: bytes, origin: str
    ) -> Reply | None:
        """Answer an identity request, or ``None`` if the path is not an identity path.
        ``origin`` is ``scheme://host:port`` as the client addressed this server."""
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["common", "discovery", "instance"]:
            return self._instance_discovery(query, origin)
        if method == "GET" and len(parts) == 4 and parts[1:] == [
            "v2.0", ".well-known", "openid-configuration"
        ]:
            return self._openid_configuration(parts[0], origin)
        if method == "POST" and len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self._token(parts[0], body, origin)
        return None

    def _instance_discovery(self, query: str, origin: str) -> Reply:
        endpoint = parse_qs(query).get("authorization_endpoint", [""])[0]
        segments = [p for p in urlsplit(endpoint).path.split("/") if p]
        tenant = segments[0] if segments else "common"
        return _json(200, {
            "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [],
        })

    def _openid_configuration(self, tenant: str, origin: str) -> Reply:
        canonical = self.canonical_tenant(tenant)
        if canonical is None:
            return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. "
                              "Check to make sure you have the correct tenant ID and are signing "
                              "into the correct cloud.")
        base = f"{origin}/{canonical}"
        return _json(200, {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{origin}/{canonical}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "tenant_region_scope": "EU",
        })

    def _token(self, tenant: str, body: bytes, origin: str) -> Reply:
        with self._lock:
            self.token_requests += 1
        try:
            token = self._issue(tenant, body, origin)
        except AssertionRejected as e:
            with self._lock:
                self.rejections.append(f"AADSTS{e.code}")
            return _aad_error(e.status, e.error, e.code, e.description)
        return _json(200, {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        })

    def _issue(self, tenant: str, body: bytes, origin: str) -> str:
        canonical = self.canonical_tenant(tenant)
        if canonical is None:
            raise AssertionRejected(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise AssertionRejected(400, "unsupported_grant_type", 70003,
                                    "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        with self._lock:
            app = self._apps.get((canonical, client_id.lower()))
        if app is None:
            raise AssertionRejected(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{canonical}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may "
                "have sent your authentication request to the wrong tenant.")
        if form.get("client_assertion_type") != ASSERTION_TYPE or "client_assertion" not in form:
            raise AssertionRejected(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.")
        token_endpoint = f"{origin}/{tenant}/oauth2/v2.0/token"
        canonical_endpoint = f"{origin}/{canonical}/oauth2/v2.0/token"
        self._verify_assertion(app, form["client_assertion"], {token_endpoint, canonical_endpoint})
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope.strip():
            raise AssertionRejected(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).")
        return self._store(IssuedToken(
            tenant_id=canonical,
            app_id=app.app_id,
            audience=scope[: -len("/.default")].rstrip("/"),
            expires_at=self.clock() + self.token_lifetime,
            roles=(EXCHANGE_ROLE,) if app.consented else (),
            exchange_role=app.exchange_role,
        ))

    def _verify_assertion(self, app: AppRegistration, assertion: str,
                          audiences: set[str]) -> None:
        header, claims, signed, signature = _decode_assertion(assertion)
        alg = self._check_signature(app, header, signed, signature)
        if claims.get("aud") not in audiences:
            raise AssertionRejected(
                401, "invalid_client", 700212,
                f"The audience claim '{claims.get('aud')}' of the client assertion is not this "
                "tenant's token endpoint.")
        if claims.get("iss") != app.app_id or claims.get("sub") != app.app_id:
            raise AssertionRejected(
                401, "invalid_client", 700023,
                "Client assertion audience claim does not match Realm issuer, or its issuer "
                "and subject are not the application id.")
        now = self.clock()
        with self._lock:
            self.assertions.append((str(alg), "x5t#S256" if "x5t#S256" in header else "x5t"))
        _check_lifetime(claims, now)

    def _check_signature(self, app: AppRegistration, header: Mapping[str, Any], signed: str,
                         signature: bytes) -> Any:
        """That a certificate of ``app`` signed the assertion; the algorithm it names."""
        certificate = self._find_certificate(app, header)
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise AssertionRejected(401, "invalid_client", 700027,
                                    "Client assertion contains an unsupported key type.")
        signing_input = signed.encode("ascii")
        alg = header.get("alg")
        if alg == "RS256":
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
        elif alg == "PS256":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                              salt_length=padding.PSS.DIGEST_LENGTH)
        else:
            raise AssertionRejected(401, "invalid_client", 5002738,
                                    f"Invalid JWT token. '{alg}' is not a supported signature "
                                    "algorithm.")
        try:
            key.verify(signature, signing_input, pad, hashes.SHA256())
        except InvalidSignature:
            raise AssertionRejected(
                401, "invalid_client", 700027,
                "Client assertion failed signature validation. [Reason - The key used to sign "
                "the assertion does not match the certificate it names.]") from None
        return alg

    def _find_certificate(self, app: AppRegistration,
                          header: Mapping[str, Any]) -> x509.Certificate:
        if "x5t#S256" in header:
            wanted, algorithm = str(header["x5t#S256"]), hashes.SHA256()
        elif "x5t" in header:
            wanted, algorithm = str(header["x5t"]), hashes.SHA1()  # legacy x5t
        else:
            raise AssertionRejected(401, "invalid_client", 700027,
                                    "Client assertion names no certificate (no x5t).")
        try:
            thumbprint = _b64url_decode(wanted.rstrip("="))
        except (ValueError, binascii.Error):
            thumbprint = b""
        for certificate in app.certificates:
            if certificate.fingerprint(algorithm) == thumbprint:
                return certificate
        raise AssertionRejected(
            401, "invalid_client", 700027,
            "The certificate with identifier used to sign the client assertion is not registered "
            f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{thumbprint.hex().upper()}', Please visit the Azure Portal, Graph Explorer or "
            f"directly use MS Graph to see configured keys for app Id '{app.app_id}'.]")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%m/%d/%Y %H:%M:%S")


def _json(status: int, payload: Mapping[str, Any]) -> Reply:
    body = json.dumps(payload).encode()
    return status, {"Content-Type": "application/json; charset=utf-8"}, body


def _aad_error(status: int, error: str, code: int, description: str) -> Reply:
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return _json(status, {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: "
                             f"{correlation} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    })
