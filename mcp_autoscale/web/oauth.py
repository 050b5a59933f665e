"""OAuth 2.1 resource server: JWT access tokens checked against the issuer's keys (MCP authorization spec).

The issuer's signing keys are found through its discovery metadata (OpenID Connect, or RFC 8414), cached,
and fetched again once when a token names a key id the cache does not know (key rotation). A token is
accepted only when its algorithm is on the allow-list (asymmetric only: never ``none``, never ``HS*``
with a public key as the secret), its signature verifies with the issuer's key, and ``iss``, ``aud``
(this server's resource URL, RFC 8707), ``exp`` and ``nbf`` hold, with a small leeway. Every refusal is
``None`` (the SDK answers 401) and a log line that says why, never the token.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.logs import get_logger

log = get_logger(__name__)

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


def check_algorithms(algorithms: Sequence[str]) -> list[str]:
    """The allow-list, refusing anything that is not an asymmetric signature algorithm."""
    bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if bad or not algorithms:
        raise ConfigError(
            f"MCP_AUTOSCALE_OAUTH_ALGORITHMS: {', '.join(bad) or 'empty'} not allowed; "
            f"use asymmetric algorithms only ({', '.join(ASYMMETRIC_ALGORITHMS)})"
        )
    return list(algorithms)


@dataclass(frozen=True)
class OAuthConfig:
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")
    leeway_s: float = 30.0
    user_claim: str = "sub"
    name_claim: str = "name"
    groups_claim: str = "groups"
    http_timeout_s: float = 5.0
    jwks_ttl_s: float = 3600.0
    min_refresh_interval_s: float = 10.0
    """An unknown ``kid`` refreshes the keys at most this often: random key ids cannot hammer the issuer."""


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class JwtVerifier(TokenVerifier):
    def __init__(self, config: OAuthConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        check_algorithms(config.algorithms)
        self.config = config
        self._transport = transport
        self._jwks_uri: str | None = None
        self._keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        """kid -> (key, the algorithm the issuer declared for it, if any)"""
        self._fetched_at = -float("inf")
        self._lock = anyio.Lock()

    # ------------------------------------------------------------------ keys
    async def _get_json(self, url: str) -> Any:
        async with httpx.AsyncClient(timeout=self.config.http_timeout_s, transport=self._transport) as http:
            r = await http.get(url, headers={"Accept": "application/json"})
            r.raise_for_status()
            return r.json()

    async def discover(self) -> str:
        """The issuer's ``jwks_uri`` from its metadata; the metadata must name the same issuer."""
        if self._jwks_uri is not None:
            return self._jwks_uri
        base = self.config.issuer.rstrip("/")
        last: Exception | None = None
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            try:
                meta = await self._get_json(base + path)
            except (httpx.HTTPError, ValueError) as err:
                last = err
                continue
            if not isinstance(meta, dict) or not _same_url(str(meta.get("issuer", "")), self.config.issuer):
                raise ConfigError(
                    f"{base}{path} names issuer {meta.get('issuer')!r}, not {self.config.issuer!r}"
                )
            if not meta.get("jwks_uri"):
                raise ConfigError(f"{base}{path} has no jwks_uri")
            self._jwks_uri = str(meta["jwks_uri"])
            return self._jwks_uri
        raise ConfigError(f"cannot read the discovery metadata of {self.config.issuer}: {last}")

    async def _refresh(self) -> None:
        jwks = await self._get_json(await self.discover())
        keys: dict[str, tuple[jwt.PyJWK, str | None]] = {}
        for data in jwks.get("keys", []) if isinstance(jwks, dict) else []:
            if data.get("use", "sig") != "sig" or data.get("kty") == "oct":
                continue  # encryption keys and shared secrets never verify an access token
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue
            keys[str(data.get("kid", ""))] = (key, data.get("alg"))
        self._keys, self._fetched_at = keys, time.monotonic()
        log.info("oauth.jwks_fetched", issuer=self.config.issuer, keys=len(keys))

    async def _key(self, kid: str) -> tuple[jwt.PyJWK, str | None] | None:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > self.config.jwks_ttl_s
            unknown = kid not in self._keys and (
                time.monotonic() - self._fetched_at >= self.config.min_refresh_interval_s
            )
            if stale or unknown:
                await self._refresh()
            if kid in self._keys:
                return self._keys[kid]
            if not kid and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            return None

    # ------------------------------------------------------------------ tokens
    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            return await self._verify(token)
        except (jwt.PyJWTError, ConfigError, httpx.HTTPError, ValueError) as err:
            log.info("oauth.token_refused", reason=f"{type(err).__name__}: {err}")
            return None

    async def _verify(self, token: str) -> AccessToken | None:
        cfg = self.config
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg not in cfg.algorithms:
            log.info("oauth.token_refused", reason=f"algorithm {alg!r} not allowed")
            return None
        found = await self._key(str(header.get("kid", "")))
        if found is None:
            log.info("oauth.token_refused", reason=f"no key {header.get('kid')!r} at the issuer")
            return None
        key, declared = found
        if declared is not None and declared != alg:
            log.info("oauth.token_refused", reason=f"key {header.get('kid')!r} is for {declared}, not {alg}")
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=cfg.audience,
            issuer=cfg.issuer,
            leeway=cfg.leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )
        return self._access_token(token, claims)

    def _access_token(self, token: str, claims: dict[str, Any]) -> AccessToken:
        cfg = self.config
        scope = claims.get("scope", "")
        scopes = scope.split() if isinstance(scope, str) else [str(s) for s in claims.get("scp", []) or []]
        client_id = str(claims.get("client_id") or claims.get("azp") or claims.get("sub") or "unknown")
        subject = str(claims.get(cfg.user_claim) or claims.get("sub") or client_id)
        groups = claims.get(cfg.groups_claim) or []
        if isinstance(groups, str):
            groups = groups.split()
        name = claims.get(cfg.name_claim)
        return AccessToken(
            token=token,
            client_id=client_id,
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=cfg.audience,
            subject=subject,
            # curated, never the raw claims: identity.py trusts these keys
            claims={
                "iss": cfg.issuer,
                "kind": "oauth",
                "name": str(name) if name else None,
                "groups": [str(g) for g in groups],
            },
        )


class ChainVerifier(TokenVerifier):
    """The static token (one user or a pipeline) beside OAuth: the first verifier that accepts wins."""

    def __init__(self, verifiers: Sequence[TokenVerifier]) -> None:
        self.verifiers = list(verifiers)

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self.verifiers:
            found = await verifier.verify_token(token)
            if found is not None:
                return found
        return None
