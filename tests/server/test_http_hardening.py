"""#13 items 6, 10 and 13 (transport): attacks on the HTTP and stdio transports, reproduced."""

from __future__ import annotations

import hashlib
import json
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import httpx2
import pytest
from http_helpers import INIT, MCP_HEADERS, initialize, ping, serve_http
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.server import http_protection

TOKEN = "hardening-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def audit_callers(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line).get("caller", "") for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- 6: one credential, one identity
@pytest.mark.anyio
async def test_two_authorization_headers_are_refused_and_identity_is_the_verified_token(
    tmp_path: Path,
) -> None:
    with serve_http(tmp_path, {"MCP_AUTOSCALE_HTTP_TOKEN": TOKEN}) as srv:
        forged = [
            [("Authorization", "Bearer forged-identity"), ("Authorization", f"Bearer {TOKEN}")],
            [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer forged-identity")],
            [("Authorization", "Basic Zm9vOmJhcg=="), ("Authorization", f"Bearer {TOKEN}")],
        ]
        for headers in forged:
            r = httpx.post(f"{srv.base}/mcp", json=INIT, headers=[*MCP_HEADERS.items(), *headers])
            assert r.status_code == 400, (headers[0][1], r.status_code)
            assert "Authorization" in r.json()["error_description"]
        # a session opened properly cannot be used with a second, forged header either
        sid = initialize(srv.base, AUTH)
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "scale_deployment",
                "arguments": {"namespace": "dev", "deployment": "granite-8b", "replicas": 2,
                              "rationale": "forged", "dry_run": True},
            },
        }  # fmt: skip
        session = [("mcp-session-id", sid), ("mcp-protocol-version", "2025-11-25")]
        headers = [*MCP_HEADERS.items(), *session, ("Authorization", "Bearer x"), *AUTH.items()]
        assert httpx.post(f"{srv.base}/mcp", json=call, headers=headers).status_code == 400
        assert audit_callers(srv.audit) == []
        # the audit names the verified token (its fingerprint), in both protocol eras
        expected = "http:token-" + hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
        for mode in ("auto", "legacy"):
            async with (
                httpx2.AsyncClient(headers=AUTH) as http,
                Client(streamable_http_client(f"{srv.base}/mcp", http_client=http), mode=mode) as c,  # type: ignore[arg-type]
            ):
                r2 = await c.call_tool(
                    "scale_deployment",
                    {"namespace": "dev", "deployment": "granite-8b", "replicas": 2, "rationale": mode,
                     "dry_run": True},
                )  # fmt: skip
                assert not r2.is_error, r2.content
        assert audit_callers(srv.audit) == [expected, expected]


# ---------------------------------------------------------------- 10: session flood
@pytest.mark.anyio
async def test_a_session_flood_evicts_the_floods_oldest_idle_sessions_and_new_clients_get_in(
    tmp_path: Path,
) -> None:
    env = {
        "MCP_AUTOSCALE_HTTP_TOKEN": TOKEN,
        "MCP_AUTOSCALE_HTTP_MAX_SESSIONS_PER_CALLER": "4",
        "MCP_AUTOSCALE_HTTP_MAX_SESSIONS": "6",
    }
    with serve_http(tmp_path, env) as srv:
        flood = [initialize(srv.base, AUTH) for _ in range(15)]  # never a 503
        alive = [sid for sid in flood if ping(srv.base, AUTH, sid) == 200]
        assert alive == flood[-4:], "the cap keeps the newest sessions of the credential"
        assert ping(srv.base, AUTH, flood[0]) == 404
        async with (
            httpx2.AsyncClient(headers=AUTH) as http,
            Client(streamable_http_client(f"{srv.base}/mcp", http_client=http), mode="legacy") as c,
        ):
            assert {t.name for t in (await c.list_tools()).tools} >= {"get_slo_snapshot"}
        # open streams on every live session, then SIGTERM: the server ends promptly anyway
        streams = [_open_sse_stream(srv.port, sid) for sid in flood[-4:] if ping(srv.base, AUTH, sid) == 200]
        assert streams, "no session left to hold a stream open"
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(timeout=15)
        elapsed = time.monotonic() - started
        for s in streams:
            s.close()
        assert elapsed < 5.0, f"SIGTERM took {elapsed:.1f}s"


def _open_sse_stream(port: int, sid: str) -> socket.socket:
    """A standalone GET stream (held open by the server until the session ends)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        (
            f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {TOKEN}\r\nmcp-session-id: {sid}\r\n"
            "mcp-protocol-version: 2025-11-25\r\n\r\n"
        ).encode()
    )
    assert s.recv(12) == b"HTTP/1.1 200"
    return s


# ---------------------------------------------------------------- 13: half-open connections
def _closed_within(s: socket.socket, limit_s: float) -> float:
    """Seconds until the server closed ``s`` (reading and discarding what it sends first)."""
    started = time.monotonic()
    s.settimeout(limit_s)
    try:
        while s.recv(4096):
            pass
    except TimeoutError:
        raise AssertionError(f"connection still open after {limit_s}s") from None
    return time.monotonic() - started


def test_half_open_http_connections_are_closed(tmp_path: Path) -> None:
    env = {"MCP_AUTOSCALE_HTTP_HEADER_TIMEOUT_S": "1", "MCP_AUTOSCALE_HTTP_BODY_TIMEOUT_S": "1"}
    with serve_http(tmp_path, env) as srv:
        silent = socket.create_connection(("127.0.0.1", srv.port))
        half_head = socket.create_connection(("127.0.0.1", srv.port))
        half_head.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        half_body = socket.create_connection(("127.0.0.1", srv.port))
        body = json.dumps(INIT).encode()
        half_body.sendall(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:20]
        )
        for s in (silent, half_head, half_body):
            with s:
                assert _closed_within(s, 15.0) < 10.0
        # a whole request is still served
        assert httpx.post(f"{srv.base}/mcp", json=INIT, headers=MCP_HEADERS).status_code == 200


# ---------------------------------------------------------------- 13: stdio answers every line
def test_stdio_answers_a_lone_surrogate_and_garbage_with_json_rpc_errors(tmp_path: Path) -> None:
    args = ["-m", "mcp_autoscale", "serve", "--sim-clock", "manual", "--audit", str(tmp_path / "a.jsonl")]
    proc = subprocess.Popen(
        [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None

    def exchange(line: bytes) -> dict[str, object]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, f"no answer to {line!r}"
        return json.loads(proc.stdout.readline())  # type: ignore[no-any-return]

    try:
        assert "result" in exchange(json.dumps(INIT).encode())
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        lone = exchange(
            b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"\\ud800","arguments":{}}}'
        )
        assert lone["id"] == 7 and lone["error"]["code"] == -32700  # type: ignore[index]
        garbage = exchange(b"this is not json")
        assert garbage["id"] is None and garbage["error"]["code"] == -32700  # type: ignore[index]
        not_rpc = exchange(b'{"id": 8, "hello": "world"}')
        assert not_rpc["id"] == 8 and not_rpc["error"]["code"] == -32600  # type: ignore[index]
        assert exchange(b'{"jsonrpc":"2.0","id":9,"method":"ping"}') == {
            "jsonrpc": "2.0",
            "id": 9,
            "result": {},
        }
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# ---------------------------------------------------------------- OAuth settings are checked at start-up
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MCP_AUTOSCALE_OAUTH_ISSUER": "http://idp.example.com", "MCP_AUTOSCALE_PUBLIC_URL": "https://x"}, "https"),
        ({"MCP_AUTOSCALE_OAUTH_ISSUER": "https://idp.example.com"}, "MCP_AUTOSCALE_PUBLIC_URL"),
        (
            {"MCP_AUTOSCALE_OAUTH_ISSUER": "https://idp.example.com", "MCP_AUTOSCALE_PUBLIC_URL": "https://x",
             "MCP_AUTOSCALE_OAUTH_ALGORITHMS": '["RS256", "HS256"]'},
            "HS256",
        ),
    ],
)  # fmt: skip
def test_bad_oauth_settings_stop_the_server_at_start_up(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:

    settings = Settings(
        audit_file=tmp_path / "a.jsonl",
        **{
            k.removeprefix("MCP_AUTOSCALE_").lower(): json.loads(v) if v.startswith("[") else v
            for k, v in env.items()
        },
    )
    with pytest.raises(ConfigError, match=message):
        http_protection(settings)
