"""Two server processes on one PostgreSQL: one unbroken chain, one apply per idempotency key, a budget
neither can overspend, fail-closed through a database restart, nothing acknowledged lost to kill -9."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pg_server import TempPostgres

from mcp_autoscale.audit.verify import verify_records
from mcp_autoscale.state.postgres import PostgresStateStore

POLICY = """
version: 1
name: replicas
tools: [scale_deployment, request_gpu_nodes]
namespaces: [dev, batch]
node_pools: ["gpu-*"]
rules:
  - name: pools
    match: {namespaces: [dev, batch]}
    replicas: {min: 0, max: 50}
  - name: gpus
    match: {tools: [request_gpu_nodes]}
    budget: {max_added_usd_per_day: 3}
"""
BUDGET = 3.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(eq=False)
class Server:
    url: str
    proc: subprocess.Popen[bytes]


def spawn(tmp: Path, state_url: str, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "MCP_AUTOSCALE_STATE_URL": state_url,
        "MCP_AUTOSCALE_AUDIT_RATE_PER_S": "0",
        "MCP_AUTOSCALE_STATE_DIR": str(tmp / f"state-{name}"),
        "MCP_AUTOSCALE_STATE_TIMEOUT_S": "2",
    }
    env.pop("MCP_AUTOSCALE_AUDIT_HMAC_KEY", None)
    args = ["serve", "--transport", "http", "--port", str(port), "--sim-clock", "manual"]
    args += ["--policy", str(tmp / "policy.yaml"), "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_autoscale", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen[bytes], base: str, name: str) -> Server:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(
                f"server {name} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return Server(url=f"{base}/mcp", proc=proc)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"server {name} not healthy in 60 s"
        time.sleep(0.05)  # polling interval while the server starts, not a timing assumption


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="module")
def cluster(postgres: TempPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("replicas")
    (tmp / "policy.yaml").write_text(POLICY)
    url = postgres.new_database()
    PostgresStateStore(url).close()  # migrate once, before both start
    spawned = [(spawn(tmp, url, name), name) for name in ("a", "b")]  # both start at once
    servers = [wait_ready(proc, base, name) for (proc, base), name in spawned]
    try:
        yield {"url": url, "servers": servers, "tmp": tmp}
    finally:
        for s in servers:
            stop(s)


@dataclass
class Outcome:
    ok: bool
    text: str
    data: dict[str, Any]


async def burst(
    server: Server, calls: list[tuple[str, dict[str, Any]]], on_result: Any = None
) -> list[Outcome]:
    """All ``calls`` at once on one MCP session; transport errors are outcomes too (not acknowledged)."""
    out: list[Outcome] = []

    async def one(c: Client, tool: str, args: dict[str, Any]) -> None:
        try:
            r = await c.call_tool(tool, args)
            text = r.content[0].text if r.content else ""  # type: ignore[union-attr]
            out.append(Outcome(ok=not r.is_error, text=text, data=dict(r.structured_content or {})))
        except Exception as err:
            out.append(Outcome(ok=False, text=f"transport: {err!r}", data={}))
        if on_result is not None:
            on_result(out)

    try:
        async with (
            httpx.AsyncClient(timeout=60) as http,
            Client(streamable_http_client(server.url, http_client=http)) as c,  # type: ignore[arg-type]
            anyio.create_task_group() as tg,
        ):
            for tool, args in calls:
                tg.start_soon(one, c, tool, args)
    except Exception as err:  # the session itself died (kill -9): what was acknowledged is in ``out``
        out.append(Outcome(ok=False, text=f"session: {err!r}", data={}))
    return out


def dry_scales(n: int, tag: str, pool: str = "dev/granite-8b") -> list[tuple[str, dict[str, Any]]]:
    """Dry runs: one record each. Each replica gets its own pool, so its calls queue on its own pool lock
    and the two meet only where they must: the chain head."""
    namespace, name = pool.split("/")
    return [
        ("scale_deployment", {"namespace": namespace, "deployment": name, "replicas": 2,
                              "rationale": f"{tag} {i}", "dry_run": True})
        for i in range(n)
    ]  # fmt: skip


def chain(url: str) -> tuple[list[dict[str, Any]], Any]:
    import json

    store = PostgresStateStore(url)
    try:
        with store.snapshot() as (head, lines):
            raw = list(lines)
        report = verify_records(((line[:-1], True) for line in raw), marker=head)
    finally:
        store.close()
    return [json.loads(x) for x in raw], report


def audited_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM audit_records").fetchall()}


def test_two_replicas_one_unbroken_chain(cluster: dict[str, Any]) -> None:
    a, b = cluster["servers"]
    before = len(chain(cluster["url"])[0])

    async def both() -> list[list[Outcome]]:
        results: list[list[Outcome]] = []
        async with anyio.create_task_group() as tg:
            for server, tag, pool in ((a, "a", "dev/granite-8b"), (b, "b", "batch/qwen-7b")):

                async def go(server: Server = server, tag: str = tag, pool: str = pool) -> None:
                    results.append(await burst(server, dry_scales(60, f"chain-{tag}", pool)))

                tg.start_soon(go)
        return results

    results = anyio.run(both)
    assert all(o.ok for r in results for o in r), [o.text for r in results for o in r if not o.ok][:3]
    records, report = chain(cluster["url"])
    assert report.ok, report
    assert len(records) == before + 120 and [r["seq"] for r in records] == list(range(1, before + 121))
    tags = {r["rationale"].split()[0] for r in records[before:]}
    assert tags == {"chain-a", "chain-b"}  # both replicas wrote into the one chain


def test_one_idempotency_key_applies_once(cluster: dict[str, Any]) -> None:
    a, b = cluster["servers"]
    call = ("scale_deployment", {"namespace": "batch", "deployment": "qwen-7b", "replicas": 3,
                                 "rationale": "once", "idempotency_key": "the-one-key", "dry_run": False})  # fmt: skip

    async def both() -> list[Outcome]:
        out: list[Outcome] = []
        async with anyio.create_task_group() as tg:
            for server in (a, b):

                async def go(server: Server = server) -> None:
                    out.extend(await burst(server, [call]))

                tg.start_soon(go)
        return out

    outs = anyio.run(both)
    assert all(o.ok for o in outs), [o.text for o in outs]
    records, report = chain(cluster["url"])
    keyed = [r for r in records if r["idempotency_key"] == "the-one-key"]
    assert [r["status"] for r in keyed] == ["intent", "applied"], keyed  # one apply, whoever came first
    assert {o.data["audit_id"] for o in outs} == {keyed[1]["id"]}  # the other replica returned that outcome
    assert report.ok


def test_a_budget_shared_by_two_replicas_cannot_be_exceeded(cluster: dict[str, Any]) -> None:
    a, b = cluster["servers"]
    asks = {
        a: [("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 1, "rationale": f"l4 {i}", "dry_run": False}) for i in range(6)],
        b: [("request_gpu_nodes", {"node_pool": "gpu-a10g", "gpus": 2, "rationale": f"a10g {i}", "dry_run": False}) for i in range(6)],
    }  # fmt: skip

    async def both() -> list[Outcome]:
        out: list[Outcome] = []
        async with anyio.create_task_group() as tg:
            for server, calls in asks.items():

                async def go(server: Server = server, calls: list[Any] = calls) -> None:
                    out.extend(await burst(server, calls))

                tg.start_soon(go)
        return out

    outs = anyio.run(both)
    records, report = chain(cluster["url"])
    applied = [r for r in records if r["tool"] == "request_gpu_nodes" and r["status"] == "applied"]
    spent = sum(r["cost_delta_per_hour"] or 0.0 for r in applied)
    assert applied and spent <= BUDGET + 1e-9, (spent, [r["target"] for r in applied])
    assert any("max_added_usd_per_day" in o.text for o in outs)  # the budget did bind
    assert {r["target"] for r in applied} <= {"nodepool/gpu-l4", "nodepool/gpu-a10g"}
    assert report.ok


def test_database_restart_under_load_fails_closed_then_recovers(
    cluster: dict[str, Any], postgres: TempPostgres
) -> None:
    a, _ = cluster["servers"]
    outcomes: list[Outcome] = []

    async def load() -> None:
        restarted = anyio.Event()

        async def restart() -> None:
            await anyio.to_thread.run_sync(postgres.stop, "immediate")
            async with (  # calls while the database is down must fail closed
                httpx.AsyncClient(timeout=60) as http,
                Client(streamable_http_client(a.url, http_client=http)) as c,  # type: ignore[arg-type]
            ):
                for i in range(2):
                    r = await c.call_tool("scale_deployment", dry_scales(1, f"down {i}")[0][1])
                    text = r.content[0].text if r.content else ""  # type: ignore[union-attr]
                    outcomes.append(
                        Outcome(ok=not r.is_error, text=text, data=dict(r.structured_content or {}))
                    )
            await anyio.to_thread.run_sync(postgres.start)
            restarted.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(restart)
            await restarted.wait()
        deadline = time.monotonic() + 30
        while True:  # and recover once it is back (the pool reconnects)
            [after] = await burst(a, dry_scales(1, "after"))
            outcomes.append(after)
            if after.ok or time.monotonic() > deadline:
                break
            await anyio.sleep(0.2)  # retry interval while the pool reconnects, not a timing assumption

    anyio.run(load)
    down = outcomes[:2]
    assert all(
        not o.ok and "state store unavailable" in o.text and "nothing was changed" in o.text for o in down
    ), [o.text for o in down]
    assert outcomes[-1].ok, outcomes[-1].text
    ids = audited_ids(cluster["url"])
    assert all(o.data["audit_id"] in ids for o in outcomes if o.ok)
    assert chain(cluster["url"])[1].ok


def test_kill_9_mid_burst_loses_nothing_acknowledged(cluster: dict[str, Any]) -> None:
    a, b = cluster["servers"]
    before = len(chain(cluster["url"])[0])

    def kill_after_some(out: list[Outcome]) -> None:
        if sum(o.ok for o in out) >= 10 and a.proc.poll() is None:
            a.proc.kill()  # SIGKILL, mid-burst

    async def both() -> list[Outcome]:
        out: list[Outcome] = []
        async with anyio.create_task_group() as tg:

            async def go_a() -> None:
                out.extend(await burst(a, dry_scales(60, "kill-a"), on_result=kill_after_some))

            async def go_b() -> None:
                out.extend(await burst(b, dry_scales(60, "kill-b", "batch/qwen-7b")))

            tg.start_soon(go_a)
            tg.start_soon(go_b)
        return out

    outs = anyio.run(both)
    a.proc.wait(timeout=10)
    assert a.proc.returncode == -9
    acknowledged = [o.data["audit_id"] for o in outs if o.ok]
    assert 70 <= len(acknowledged) < 120  # b's 60 and at least a's first 10; a's last ones never answered
    ids = audited_ids(cluster["url"])
    assert set(acknowledged) <= ids  # nothing acknowledged was lost
    records, report = chain(cluster["url"])
    assert report.ok and len(records) >= before + len(acknowledged)
