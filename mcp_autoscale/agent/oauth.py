"""The agent's own OAuth identity: the client-credentials grant, renewed before the token expires.

Discovery follows the MCP authorization spec: the server's protected-resource metadata (RFC 9728) names
the authorization server; its metadata (RFC 8414, or OpenID discovery) names the token endpoint. The
token is requested for the server's resource URL (RFC 8707) with the scopes the agent needs, and renewed
when less than a tenth of its life (at least 30 s) is left, so no call goes out with a token about to
expire. A 401 anyway (the token was revoked, keys rotated) gets one new token and one retry.

The SDK's ``ClientCredentialsOAuthProvider`` only renews after a 401, which resends each MCP request;
this is the small part of it the agent needs, with renewal ahead of expiry.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx2
from mcp.server.auth.routes import build_resource_metadata_url
from pydantic import AnyHttpUrl

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.logs import get_logger

log = get_logger(__name__)

AGENT_SCOPES = "autoscale:read autoscale:write"
"""What the agent asks for: never ``autoscale:approve`` (it proposes; people approve)."""


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    scope: str = AGENT_SCOPES
    issuer: str | None = None
    """Expected authorization server; when set, the server's metadata must name it (credentials go
    nowhere else)."""

    @classmethod
    def from_file(cls, client_id: str, secret_file: Path, issuer: str | None = None) -> ClientCredentials:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"--client-secret-file {secret_file}: {err.strerror}") from err
        if not secret:
            raise ConfigError(f"--client-secret-file {secret_file} is empty")
        return cls(client_id=client_id, client_secret=secret, issuer=issuer)


def basic_auth(client_id: str, secret: str) -> str:
    """``client_secret_basic`` (RFC 6749 §2.3.1: both parts form-encoded first)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def renew_at(issued: float, expires_in: float) -> float:
    """When to get a new token: a tenth of its life before it ends, at least 30 s, never before it starts."""
    margin = max(30.0, expires_in / 10.0)
    return issued + max(expires_in - margin, 0.0)


class ClientCredentialsAuth(httpx2.Auth):
    def __init__(self, resource_url: str, credentials: ClientCredentials) -> None:
        self.resource_url = resource_url
        self.credentials = credentials
        self._token: str | None = None
        self._renew_at = 0.0
        self._token_endpoint: str | None = None

    # ------------------------------------------------------------------ discovery

    @staticmethod
    def _as_metadata_urls(issuer: str) -> list[str]:
        parsed = urlparse(issuer)
        path = parsed.path.rstrip("/")
        base = f"{parsed.scheme}://{parsed.netloc}"
        return [
            f"{base}/.well-known/oauth-authorization-server{path}",
            f"{base}{path}/.well-known/openid-configuration",
        ]

    async def _discover(self) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        prm = yield httpx2.Request("GET", str(build_resource_metadata_url(AnyHttpUrl(self.resource_url))))
        if prm.status_code != 200:
            raise ConfigError(f"{prm.request.url}: no protected-resource metadata (HTTP {prm.status_code})")
        await prm.aread()
        servers = [str(s) for s in prm.json().get("authorization_servers", [])]
        wanted = self.credentials.issuer
        if wanted is not None and not any(s.rstrip("/") == wanted.rstrip("/") for s in servers):
            raise ConfigError(f"{self.resource_url} trusts {servers}, not the configured issuer {wanted}")
        issuer = wanted or (servers[0] if servers else None)
        if not issuer:
            raise ConfigError(f"{self.resource_url} names no authorization server")
        for url in self._as_metadata_urls(issuer):
            meta = yield httpx2.Request("GET", url)
            if meta.status_code != 200:
                continue
            await meta.aread()
            body = meta.json()
            if str(body.get("issuer", "")).rstrip("/") != issuer.rstrip("/") or not body.get(
                "token_endpoint"
            ):
                raise ConfigError(f"{url} does not describe issuer {issuer} (or has no token endpoint)")
            self._token_endpoint = str(body["token_endpoint"])
            return
        raise ConfigError(f"no authorization server metadata for {issuer}")

    # ------------------------------------------------------------------ tokens
    async def _renew(self) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if self._token_endpoint is None:
            discovery = self._discover()
            try:
                request = await discovery.__anext__()
                while True:
                    response = yield request
                    request = await discovery.asend(response)
            except StopAsyncIteration:
                pass
        assert self._token_endpoint is not None
        c = self.credentials
        issued = time.time()
        reply = yield httpx2.Request(
            "POST",
            self._token_endpoint,
            data={"grant_type": "client_credentials", "scope": c.scope, "resource": self.resource_url},
            headers={"Authorization": basic_auth(c.client_id, c.client_secret)},
        )
        await reply.aread()
        if reply.status_code != 200:
            raise ConfigError(
                f"token endpoint refused client {c.client_id}: HTTP {reply.status_code} {reply.text[:200]}"
            )
        body = reply.json()
        self._token = str(body["access_token"])
        self._renew_at = renew_at(issued, float(body.get("expires_in") or 300))
        log.info(
            "agent.token", client_id=c.client_id, expires_in=body.get("expires_in"), scope=body.get("scope")
        )

    async def _ensure_token(self, force: bool) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if force or self._token is None or time.time() >= self._renew_at:
            renewal = self._renew()
            try:
                request = await renewal.__anext__()
                while True:
                    response = yield request
                    request = await renewal.asend(response)
            except StopAsyncIteration:
                pass

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        for attempt in (0, 1):
            steps = self._ensure_token(force=attempt == 1)
            try:
                step = await steps.__anext__()
                while True:
                    reply = yield step
                    step = await steps.asend(reply)
            except StopAsyncIteration:
                pass
            request.headers["Authorization"] = f"Bearer {self._token}"
            response = yield request
            if response.status_code != 401:
                return
