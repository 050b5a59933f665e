"""#16: the HTTP transport as an OAuth 2.1 resource server, against a real OpenID provider (oidc-provider).

One provider and one server for the module; every case is an HTTP exchange a real client (or attacker)
could make. Tokens come from the provider's client-credentials grant; the attack tokens are forged here.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from http_helpers import INIT, MCP_HEADERS, Served, free_port, initialize, ping, serve_http
from mcp import Client as McpClient
from mcp.client.streamable_http import streamable_http_client
from oidc_helpers import Client, Idp, rsa_key

pytestmark = pytest.mark.integration

READ, WRITE, APPROVE = "autoscale:read", "autoscale:write", "autoscale:approve"
CAP = 8
"""Sessions per credential on the module's server (a flood needs only CAP + 1 calls)."""
AGENT = Client("ci-agent", "agent-secret", f"{READ} {WRITE}", groups=["bots"], name="CI agent")
ALICE = Client("alice", "alice-secret", f"{READ} {WRITE} {APPROVE}", groups=["sre"], name="Alice Admin")
BOB = Client("bob", "bob-secret", f"{READ} {APPROVE}", groups=["sre"], name="Bob")
READER = Client("reader", "reader-secret", READ, groups=["viewers"])
WRITER_ONLY = Client("writer", "writer-secret", WRITE)

POLICY = """\
version: 1
tools: [scale_deployment, patch_hpa, request_gpu_nodes]
namespaces: [dev, chat]
node_pools: ["*"]
rules:
  - name: dev-pools
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 16}
  - name: bots-need-four-eyes
    effect: limit
    match: {namespaces: [dev], groups: [bots]}
    approval: {four_eyes: true, approver_groups: [sre], via: [cli]}
  - name: sre-self-service-needs-four-eyes
    effect: limit
    match: {namespaces: [dev], callers: ["oidc:alice"]}
    approval: {four_eyes: true, via: [cli]}
"""


class Env:
    def __init__(self, idp: Idp, srv: Served, keys: list[tuple[dict[str, Any], Any]]) -> None:
        self.idp, self.srv, self.keys = idp, srv, keys

    @property
    def resource(self) -> str:
        return f"{self.srv.base}/mcp"

    def token(self, client: Client, scope: str | None = None) -> str:
        return self.idp.token(client, self.resource, scope)

    def post(self, token: str | None, body: dict[str, Any] = INIT) -> httpx.Response:
        headers = dict(MCP_HEADERS)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.resource, json=body, headers=headers, timeout=30)

    def forge(self, key: Any, kid: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.idp.issuer, "aud": self.resource, "sub": "mallory", "client_id": "mallory",
            "scope": f"{READ} {WRITE} {APPROVE}", "iat": now, "exp": now + 300, **claims,
        }  # fmt: skip
        return jwt.encode(
            {k: v for k, v in payload.items() if v is not None}, key, "RS256", headers={"kid": kid}
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("oauth")
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    idp = Idp(
        tmp,
        [AGENT, ALICE, BOB, READER, WRITER_ONLY],
        {resource: f"{READ} {WRITE} {APPROVE}", f"http://127.0.0.1:{port}/other": f"{READ} {WRITE}"},
    )
    keys = [rsa_key("k1")]
    idp.start([keys[0][0]])
    (tmp / "policy.yaml").write_text(POLICY)
    server_env = {
        "MCP_AUTOSCALE_OAUTH_ISSUER": idp.issuer,
        "MCP_AUTOSCALE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "MCP_AUTOSCALE_OAUTH_JWKS_MIN_REFRESH_S": "0",
        "MCP_AUTOSCALE_HTTP_MAX_SESSIONS_PER_CALLER": str(CAP),
    }
    try:
        with serve_http(tmp, server_env, "--policy", str(tmp / "policy.yaml"), port=port) as srv:
            yield Env(idp, srv, keys)
    finally:
        idp.stop()


def audit(env: Env) -> list[dict[str, Any]]:
    if not env.srv.audit.exists():
        return []
    return [json.loads(line) for line in env.srv.audit.read_text().splitlines() if line.strip()]


async def call(env: Env, token: str, tool: str, args: dict[str, Any]) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        McpClient(streamable_http_client(env.resource, http_client=http), mode="legacy") as c,
    ):
        return await c.call_tool(tool, args)


SCALE = {
    "namespace": "dev",
    "deployment": "granite-8b",
    "replicas": 2,
    "rationale": "oauth test",
    "dry_run": True,
}


# ------------------------------------------------------------------ discovery and challenges
def test_protected_resource_metadata_names_the_issuer_and_scopes(env: Env) -> None:
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
        r = httpx.get(env.srv.base + path)
        assert r.status_code == 200, path
        meta = r.json()
        assert meta["resource"] == env.resource
        assert [s.rstrip("/") for s in meta["authorization_servers"]] == [env.idp.issuer]
        assert set(meta["scopes_supported"]) == {READ, WRITE, APPROVE}


def test_no_token_is_401_with_the_metadata_url(env: Env) -> None:
    r = env.post(None)
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{env.srv.base}/.well-known/oauth-protected-resource/mcp"' in challenge


def test_a_valid_token_opens_a_session(env: Env) -> None:
    assert env.post(env.token(READER)).status_code == 200


# ------------------------------------------------------------------ tokens that must be refused
def test_expired_token_is_refused(env: Env) -> None:
    key = env.keys[0][1]
    long_ago = int(time.time()) - 3600
    assert env.post(env.forge(key, "k1", iat=long_ago, exp=long_ago + 300)).status_code == 401
    assert env.post(env.forge(key, "k1")).status_code == 200  # the same key, in date: accepted


def test_not_yet_valid_token_is_refused(env: Env) -> None:
    later = int(time.time()) + 3600
    assert env.post(env.forge(env.keys[0][1], "k1", nbf=later)).status_code == 401


def test_token_for_another_audience_is_refused(env: Env) -> None:
    other = env.idp.token(AGENT, f"{env.srv.base}/other")
    assert jwt.decode(other, options={"verify_signature": False})["aud"] == f"{env.srv.base}/other"
    assert env.post(other).status_code == 401


def test_token_from_another_issuer_is_refused(env: Env) -> None:
    assert env.post(env.forge(env.keys[0][1], "k1", iss="http://127.0.0.1:1/evil")).status_code == 401


def test_forged_signature_is_refused(env: Env) -> None:
    real = env.token(AGENT)
    head, _body, sig = real.split(".")
    claims = jwt.decode(real, options={"verify_signature": False})
    claims["sub"] = "admin"
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert env.post(f"{head}.{tampered}.{sig}").status_code == 401  # payload changed, signature kept
    _, attacker = rsa_key("k1")
    assert env.post(env.forge(attacker, "k1")).status_code == 401  # signed by another key, same kid


def test_alg_none_and_hmac_with_the_public_key_are_refused(env: Env) -> None:
    now = int(time.time())
    claims = {"iss": env.idp.issuer, "aud": env.resource, "sub": "mallory", "scope": READ, "exp": now + 300}
    unsigned = jwt.encode(claims, None, "none", headers={"kid": "k1"})  # type: ignore[arg-type]
    assert env.post(unsigned).status_code == 401
    jwks = httpx.get(f"{env.idp.issuer}/jwks").json()
    public_key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwks["keys"][0]))
    public_pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    confused = _hs256(claims, public_pem)
    assert env.post(confused).status_code == 401


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 keyed with the issuer's public key (PyJWT itself refuses to; a classic key-confusion attack)."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


# ------------------------------------------------------------------ scopes
def test_a_token_without_read_scope_gets_403_insufficient_scope(env: Env) -> None:
    r = env.post(env.token(WRITER_ONLY))
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


@pytest.mark.anyio
async def test_a_read_only_token_reads_but_cannot_mutate(env: Env) -> None:
    token = env.token(READER)
    snap = await call(env, token, "get_slo_snapshot", {"namespace": "dev"})
    assert not snap.is_error
    before = len(audit(env))
    r = await call(env, token, "scale_deployment", SCALE)
    assert r.is_error and "autoscale:write" in r.content[0].text
    assert len(audit(env)) == before  # refused before the gate: nothing recorded, nothing changed


# ------------------------------------------------------------------ identity and four eyes
@pytest.mark.anyio
async def test_identity_in_the_audit_is_the_subject_with_name_and_groups_never_the_token(env: Env) -> None:
    token = env.token(AGENT)
    r = await call(env, token, "scale_deployment", SCALE)
    assert not r.is_error, r.content
    last = audit(env)[-1]
    assert last["caller"] == "oidc:ci-agent"
    assert last["caller_name"] == "CI agent" and last["caller_groups"] == ["bots"]
    assert token not in env.srv.audit.read_text()


def _pending(env: Env, token: str) -> httpx.Response:
    return httpx.get(f"{env.srv.base}/approvals", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _decide(env: Env, token: str, proposal: str, digest: str, verb: str = "approve") -> httpx.Response:
    return httpx.post(
        f"{env.srv.base}/approvals/{proposal}/{verb}",
        json={"digest": digest},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


@pytest.mark.anyio
async def test_four_eyes_the_proposer_cannot_approve_another_sre_can(env: Env) -> None:
    alice, bob = env.token(ALICE), env.token(BOB)
    r = await call(env, alice, "scale_deployment", {**SCALE, "replicas": 3, "dry_run": False})
    assert r.structured_content["status"] == "pending_approval", r.content
    proposal = r.structured_content["proposal_id"]
    listed = {p["id"]: p for p in _pending(env, bob).json()["proposals"]}
    digest = listed[proposal]["digest"]
    assert listed[proposal]["proposed_by"] == "oidc:alice" and listed[proposal]["four_eyes"] is True
    refused = _decide(env, alice, proposal, digest)  # alice holds autoscale:approve, but proposed it
    assert refused.status_code == 403 and "four eyes" in refused.json()["error_description"]
    assert _decide(env, bob, proposal, "0" * 64).status_code == 403  # not the action bob reviewed
    done = _decide(env, bob, proposal, digest)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "applied"
    record = audit(env)[-1]
    assert record["approver"] == "oidc:bob" and record["caller"] == "oidc:alice"


@pytest.mark.anyio
async def test_approving_needs_the_approve_scope_and_the_approver_group(env: Env) -> None:
    agent = env.token(AGENT)
    r = await call(env, agent, "scale_deployment", {**SCALE, "replicas": 4, "dry_run": False})
    proposal = r.structured_content["proposal_id"]
    assert _pending(env, agent).status_code == 403  # no autoscale:approve: cannot even list
    assert _pending(env, env.token(READER)).status_code == 403
    digest = {p["id"]: p for p in _pending(env, env.token(BOB)).json()["proposals"]}[proposal]["digest"]
    assert _decide(env, agent, proposal, digest).status_code == 403
    assert _decide(env, env.token(BOB), proposal, digest).json()["status"] == "applied"
    assert not [t for t in (await _tools(env, agent)) if "approv" in t and t != "list_pending_approvals"]


async def _tools(env: Env, token: str) -> list[str]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        McpClient(streamable_http_client(env.resource, http_client=http), mode="legacy") as c,
    ):
        return [t.name for t in (await c.list_tools()).tools]


def test_a_session_flood_by_one_credential_leaves_other_credentials_sessions_alone(env: Env) -> None:
    reader = {"Authorization": f"Bearer {env.token(READER)}"}
    theirs = initialize(env.srv.base, reader)
    agent = {"Authorization": f"Bearer {env.token(AGENT)}"}
    flood = [initialize(env.srv.base, agent) for _ in range(CAP + 1)]
    assert ping(env.srv.base, agent, flood[0]) == 404  # the flood evicted its own oldest idle session
    assert ping(env.srv.base, agent, flood[-1]) == 200
    assert ping(env.srv.base, reader, theirs) == 200  # and nobody else's
    assert ping(env.srv.base, agent, theirs) == 404  # a session answers only its own credential


# ------------------------------------------------------------------ key rotation (last: restarts the provider)
def test_key_rotation_an_unknown_kid_refreshes_the_keys_once(env: Env) -> None:
    assert env.post(env.token(READER)).status_code == 200  # k1 is cached
    new = rsa_key("k2")
    env.keys.append(new)
    env.idp.stop()
    env.idp.start([new[0], env.keys[0][0]])  # k2 signs now; k1 is still published
    token = env.token(READER)
    assert jwt.get_unverified_header(token)["kid"] == "k2"
    assert env.post(token).status_code == 200
    assert env.post(env.forge(new[1], "k3")).status_code == 401  # a kid the issuer does not publish


# ------------------------------------------------------------------ the CI agent's own token
def test_the_agent_gets_its_own_token_with_client_credentials(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "agent-secret"
    secret.write_text(AGENT.secret + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCP_AUTOSCALE_")}

    def run(secret_file: Path) -> tuple[int, dict[str, Any]]:
        js = tmp_path / "r.json"
        proc = subprocess.run(
            [sys.executable, "-m", "mcp_autoscale", "agent", "--once", "--quiet", "--json", str(js),
             "--url", env.resource, "--client-id", AGENT.client_id, "--client-secret-file", str(secret_file)],
            env={**clean, "MCP_AUTOSCALE_OAUTH_ISSUER": env.idp.issuer},
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        return proc.returncode, json.loads(js.read_text())

    code, report = run(secret)
    assert code in (0, 3) and not report["errors"], report["errors"]
    assert "OAuth client ci-agent" in report["server"]
    assert AGENT.secret not in json.dumps(report)
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-secret")
    code, report = run(wrong)
    assert code == 1 and "server connection failed" in report["errors"][0]
