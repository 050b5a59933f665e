"""The agent's client-credentials token: discovered through the server's metadata, renewed before expiry."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from mcp_autoscale.agent.oauth import ClientCredentials, ClientCredentialsAuth, renew_at
from mcp_autoscale.errors import ConfigError

pytestmark = pytest.mark.anyio

MCP = "http://mcp.test/mcp"
ISSUER = "http://idp.test"


def test_renewal_happens_a_tenth_of_the_lifetime_before_expiry_at_least_30s() -> None:
    assert renew_at(1000.0, 3600.0) == 1000.0 + 3240.0
    assert renew_at(1000.0, 120.0) == 1000.0 + 90.0
    assert renew_at(1000.0, 20.0) == 1000.0  # shorter than the margin: renew every time


class FakeIdp:
    def __init__(self, expires_in: int, issuer: str = ISSUER) -> None:
        self.expires_in = expires_in
        self.issuer = issuer
        self.tokens: list[dict[str, list[str]]] = []
        self.seen: list[str | None] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url == "http://mcp.test/.well-known/oauth-protected-resource/mcp":
            return httpx2.Response(200, json={"resource": MCP, "authorization_servers": [self.issuer]})
        if url == f"{ISSUER}/.well-known/oauth-authorization-server":
            return httpx2.Response(404)
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return httpx2.Response(200, json={"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"})
        if url == f"{ISSUER}/token":
            assert request.headers["authorization"].startswith("Basic ")
            self.tokens.append(parse_qs(request.content.decode()))
            body: dict[str, Any] = {"access_token": f"t{len(self.tokens)}", "expires_in": self.expires_in}
            return httpx2.Response(
                200, content=json.dumps(body), headers={"content-type": "application/json"}
            )
        if url == MCP:
            self.seen.append(request.headers.get("authorization"))
            return httpx2.Response(200, json={})
        return httpx2.Response(404)


async def calls(idp: FakeIdp, n: int, issuer: str | None = None) -> None:
    auth = ClientCredentialsAuth(MCP, ClientCredentials("ci-agent", "s3cret", issuer=issuer))
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(idp), auth=auth) as http:
        for _ in range(n):
            assert (await http.post(MCP, json={})).status_code == 200


async def test_one_token_is_reused_while_it_is_fresh() -> None:
    idp = FakeIdp(expires_in=3600)
    await calls(idp, 3)
    assert idp.seen == ["Bearer t1"] * 3
    [request] = idp.tokens
    assert request["grant_type"] == ["client_credentials"] and request["resource"] == [MCP]
    assert request["scope"] == ["autoscale:read autoscale:write"]  # never autoscale:approve


async def test_a_token_near_its_end_is_renewed_before_it_is_used() -> None:
    idp = FakeIdp(expires_in=20)
    await calls(idp, 3)
    assert idp.seen == ["Bearer t1", "Bearer t2", "Bearer t3"]


async def test_credentials_go_only_to_the_configured_issuer() -> None:
    idp = FakeIdp(expires_in=3600, issuer="http://evil.test")
    with pytest.raises(ConfigError, match="not the configured issuer"):
        await calls(idp, 1, issuer=ISSUER)
    assert idp.tokens == []
