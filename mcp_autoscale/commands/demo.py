"""``mcp-autoscale demo``: a short scripted MCP session against the server on the simulated fleet.

It is a real MCP client talking to a real ``mcp-autoscale serve`` subprocess over stdio, so what a new user
sees is exactly what Claude Desktop (or any client) would get.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from mcp_autoscale.commands._common import echo_out, exit_on_error, fail
from mcp_autoscale.preflight import writable_file

DEMO_POOL = {"namespace": "chat", "deployment": "llama-8b"}


def _section(title: str) -> None:
    echo_out(f"\n== {title} " + "=" * max(0, 74 - len(title)))


def _result(r: Any) -> dict[str, Any]:
    if r.is_error:
        return {"error": r.content[0].text if r.content else "error"}
    return dict(r.structured_content or {})


def _show_action(res: dict[str, Any]) -> None:
    if "error" in res:
        echo_out(f"  tool error: {res['error']}")
        return
    verdict = res["verdict"]
    echo_out(f"  status: {res['status']}   verdict: {verdict['decision']}   audit id: {res.get('audit_id')}")
    for reason in verdict.get("reasons", []):
        echo_out(f"  reason: {reason}")
    if verdict.get("hint"):
        echo_out(f"  hint:   {verdict['hint']}")
    for change in res.get("changes", []):
        echo_out(f"  change: {change['field']}: {change['before']} -> {change['after']}")
    echo_out(f"  {res['message']}")


def _pool_line(p: dict[str, Any]) -> str:
    s = p["signals"]
    ttft = "-" if s.get("ttft_p90_s") is None else f"{s['ttft_p90_s']:.2f}s"
    kv = "-" if s.get("kv_usage") is None else f"{s['kv_usage']:.2f}"
    queue = "-" if s.get("queue_depth") is None else f"{s['queue_depth']:.0f}"
    r = p["replicas"]
    return (
        f"  {p['namespace'] + '/' + p['name']:<26} {r['ready']}/{r['desired']} ready   TTFT p90 {ttft:>7}"
        f"   KV {kv:>4}   queue {queue:>4}   SLO {p['slo']}"
    )


async def run_demo(audit: Path, scenario: str) -> int:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mcp_autoscale",
            "serve",
            "--backend",
            "sim",
            "--scenario",
            scenario,
            "--sim-clock",
            "manual",
            "--audit",
            str(audit),
            "--log-level",
            "warning",
        ],
    )
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        _section("1. Connected over stdio")
        echo_out(f"  {len(tools)} tools: " + ", ".join(t.name for t in tools))

        _section("2. get_slo_snapshot: what the fleet looks like")
        snap = _result(await client.call_tool("get_slo_snapshot", {"include_node_pools": False}))
        for p in snap["pools"]:
            echo_out(_pool_line(p))
        target = next(p for p in snap["pools"] if p["namespace"] == "chat" and p["name"] == "llama-8b")
        owner = target["owner"]
        echo_out(
            f"  chat/llama-8b: {'; '.join(target['slo_breaches']) or 'within SLO'}; "
            f"replicas owned by {owner['kind']} {owner['name']} ({owner['min_replicas']}..{owner['max_replicas']})"
        )

        _section("3. Ask the planner: recommend_scaling for chat/llama-8b")
        recs = _result(await client.call_tool("recommend_scaling", DEMO_POOL))
        rec = recs["recommendations"][0] if recs.get("recommendations") else {}
        echo_out(f"  action: {rec.get('action')}   bottleneck: {rec.get('bottleneck')}")
        for reason in rec.get("reasons", [])[:6]:
            echo_out(f"  - {reason}")
        for diag in rec.get("diagnoses", [])[:2]:
            echo_out(f"  diagnosis: {diag['summary']}")
        effect = (rec.get("expected") or {}).get("slo")
        if effect:
            echo_out(f"  expected: {effect}")

        signals, r = target["signals"], target["replicas"]
        evidence = (
            f"TTFT p90 {signals.get('ttft_p90_s')} s (target {target['slo_targets']['ttft_p90_s']} s), "
            f"queue {signals.get('queue_depth')}, KV {signals.get('kv_usage')}, {r['ready']}/{r['desired']} ready"
        )
        call = rec.get("tool_call")
        if call:
            name, args = call["tool"], {**call["arguments"], "dry_run": True}
            title = f"4. The planner's proposal, as a dry run: {name}"
        else:  # capacity is already on its way: hold a higher floor so KEDA does not scale in after the burst
            name = "patch_hpa"
            floor = min(owner["max_replicas"], owner["min_replicas"] + 4)
            args = {
                **DEMO_POOL,
                "min_replicas": floor,
                "dry_run": True,
                "rationale": f"{evidence}; hold a higher KEDA floor through the burst",
            }
            title = f"4. Not the planner's call: a dry run of {name} min_replicas {owner['min_replicas']} -> {floor}"
            echo_out(
                "\n  The planner proposes no call: the replicas it would add are already ordered. The agent's\n"
                "  queue-first rule (mcp-autoscale agent) still acts on a capacity-bound breach: it raises the\n"
                "  KEDA floor so the capacity being built is held until the queue drains. That is the call\n"
                "  shown next, as a dry run."
            )
        _section(title)
        _show_action(_result(await client.call_tool(name, args)))

        _section("5. A careless call: scale the KEDA-owned Deployment directly to 40")
        res = _result(
            await client.call_tool(
                "scale_deployment",
                {
                    **DEMO_POOL,
                    "replicas": 40,
                    "rationale": "more is better",
                    "dry_run": False,
                },
            )
        )
        _show_action(res)

        _section(
            "6. An allowed change, applied: dev/granite-8b 1 -> 2 replicas, then 10 simulated minutes (node + cold start)"
        )
        res = _result(
            await client.call_tool(
                "scale_deployment",
                {
                    "namespace": "dev",
                    "deployment": "granite-8b",
                    "replicas": 2,
                    "rationale": "demo: add a replica to the dev pool to show the cold start",
                    "dry_run": False,
                },
            )
        )
        _show_action(res)
        await client.call_tool("advance_simulation", {"seconds": 600})
        after = _result(await client.call_tool("get_slo_snapshot", {"namespace": "dev"}))
        for p in after["pools"]:
            echo_out(_pool_line(p))

        _section("7. The audit trail (autoscale://audit/recent)")
        contents = (await client.read_resource("autoscale://audit/recent")).contents
        records = json.loads(contents[0].text)  # type: ignore[union-attr]
        for rec in records:
            echo_out(
                f"  #{rec['seq']} {rec['ts'][:19]} {rec['tool']:<17} {rec['target']:<22} "
                f"{rec['status']:<10} by {rec['caller']}: {rec['rationale'][:60]}"
            )
        echo_out(f"\n  audit log: {audit}  (check it: mcp-autoscale audit verify {audit})")
    return 0


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        scenario: Annotated[str, typer.Option("--scenario", help="Simulator scenario")] = "ttft-breach",
        audit: Annotated[
            Path | None, typer.Option("--audit", help="Audit log file (default: a temp file)")
        ] = None,
    ) -> None:
        """Run a scripted MCP session on the simulated fleet: snapshot, dry-run proposal, denial, audit."""
        from mcp_autoscale.sim.scenarios import check_scenario

        with exit_on_error():
            check_scenario(scenario)
            if audit is not None:
                writable_file(audit, "--audit")
        path = audit or Path(tempfile.mkdtemp(prefix="mcp-autoscale-demo-")) / "audit.jsonl"
        try:
            code = anyio.run(run_demo, path, scenario)
        except Exception as err:  # the server died or the session broke: one line, not an exception group
            fail(f"demo failed: {_innermost(err)}", 1)
            return
        raise typer.Exit(code)


def _innermost(err: BaseException) -> str:
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
