"""What an agent pays to read a fleet of 10, 100 and 1,000 pools: tokens and latency per read tool, memory.

Runs the MCP server in process on the twin's ``fleet-N`` scenarios (manual clock, so every N is read at
the same simulated moment) and calls each read tool with its defaults, then pages ``get_slo_snapshot``
through the whole fleet. Tokens are characters / 4 of the larger of the text and the structured content.

    .venv/bin/python benchmarks/bench_fleet.py                # 10, 100, 1000 pools
    .venv/bin/python benchmarks/bench_fleet.py --sizes 1000 --json out.json

Each size runs in its own subprocess so that peak RSS (``ru_maxrss``) belongs to that size alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio


def tokens(result: Any) -> int:
    text = sum(len(getattr(c, "text", "") or "") for c in result.content)
    structured = (
        len(json.dumps(result.structured_content, separators=(",", ":"))) if result.structured_content else 0
    )
    return max(text, structured) // 4


async def measure(n: int) -> dict[str, Any]:
    from mcp import Client

    from mcp_autoscale.app import build_app
    from mcp_autoscale.config import Settings
    from mcp_autoscale.server import create_server

    out: dict[str, Any] = {"pools": n}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        c0 = time.process_time()
        settings = Settings(
            sim_scenario=f"fleet-{n}",
            sim_clock="manual",
            state_dir=Path(tmp),
            audit_file=Path(tmp) / "a.jsonl",
        )
        app = build_app(settings)
        server = create_server(app)
        out["build_s"] = round(time.perf_counter() - t0, 2)
        out["build_cpu_s"] = round(time.process_time() - c0, 2)
        async with Client(server) as client:
            tools = (await client.list_tools()).tools
            listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
            out["tools_list_tokens"] = len(json.dumps(listed)) // 4
            first = (await client.call_tool("list_pools", {"limit": 1})).structured_content or {}
            pool = first["pools"][0]
            calls: list[tuple[str, dict[str, Any]]] = [
                ("get_slo_snapshot", {}),
                ("list_pools", {}),
                ("recommend_scaling", {}),
                ("estimate_cost", {}),
                ("explain_pool", {"namespace": pool["namespace"], "deployment": pool["deployment"]}),
            ]
            out["tools"] = {}
            for name, args in calls:
                t = time.perf_counter()
                res = await client.call_tool(name, args)
                took = time.perf_counter() - t
                if res.is_error:
                    raise SystemExit(f"{name} failed: {res.content}")
                out["tools"][name] = {"tokens": tokens(res), "seconds": round(took, 3)}
            if n >= 1000:  # the agent's view of the default answers: what a model reads
                out["first_page_slo"] = [
                    p.get("slo")
                    for p in (await client.call_tool("list_pools", {})).structured_content["pools"]
                ]  # type: ignore[index]
            for uri in ("autoscale://fleet/snapshot", "autoscale://cluster/state"):
                t = time.perf_counter()
                res = await client.read_resource(uri)
                took = time.perf_counter() - t
                chars = sum(len(getattr(c, "text", "") or "") for c in res.contents)
                out["tools"][uri] = {"tokens": chars // 4, "seconds": round(took, 3)}
            seen: list[str] = []
            cursor = None
            pages = 0
            t = time.perf_counter()
            while True:
                args: dict[str, Any] = {"limit": 200, "include_node_pools": False}
                if cursor:
                    args["cursor"] = cursor
                res = await client.call_tool("get_slo_snapshot", args)
                data = res.structured_content or {}
                seen += [f"{p['namespace']}/{p['name']}" for p in data["pools"]]
                pages += 1
                cursor = data.get("next_cursor")
                if not cursor:
                    break
            out["page_all"] = {
                "pages": pages,
                "seconds": round(time.perf_counter() - t, 3),
                "pools": len(seen),
                "distinct": len(set(seen)),
            }
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def _child_hwm_mb(marker: str) -> float | None:
    """Peak RSS (VmHWM) of our child process whose command line contains ``marker``."""
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().split()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if stat[3] != me or marker not in cmd:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except (OSError, IndexError, ValueError):
            continue
    return None


async def measure_serve(n: int) -> dict[str, Any]:
    """``mcp-autoscale serve --scenario fleet-N`` over stdio: time to a tools/list answer, then to the
    first snapshot (wall clock, as a client sees it), and the server's peak RSS."""
    from mcp import Client, StdioServerParameters

    with tempfile.TemporaryDirectory() as tmp:
        args = ["-m", "mcp_autoscale", "serve", "--scenario", f"fleet-{n}", "--audit", f"{tmp}/a.jsonl"]
        params = StdioServerParameters(command=sys.executable, args=args, env={**os.environ, "HOME": tmp})
        t0 = time.perf_counter()
        cpu0 = os.times()
        async with Client(params) as client:
            await client.list_tools()
            ready = time.perf_counter() - t0
            await client.call_tool("get_slo_snapshot", {})
            first = time.perf_counter() - t0
            hwm = _child_hwm_mb(f"fleet-{n}")
        cpu1 = os.times()
    return {
        "ready_s": round(ready, 2),
        "first_snapshot_s": round(first, 2),
        "server_cpu_s": round(
            cpu1.children_user + cpu1.children_system - cpu0.children_user - cpu0.children_system, 2
        ),
        "server_peak_rss_mb": hwm,
    }


def table(rows: list[dict[str, Any]]) -> str:
    names = list(rows[0]["tools"])
    head = "| | " + " | ".join(str(r["pools"]) + " pools" for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    lines.append("| build (s) | " + " | ".join(str(r["build_s"]) for r in rows) + " |")
    lines.append("| build CPU (s) | " + " | ".join(str(r["build_cpu_s"]) for r in rows) + " |")
    if all("serve" in r for r in rows):
        for key in ("ready_s", "first_snapshot_s", "server_cpu_s", "server_peak_rss_mb"):
            lines.append(f"| serve {key} | " + " | ".join(str(r["serve"][key]) for r in rows) + " |")
    lines.append("| peak RSS (MB) | " + " | ".join(str(r["max_rss_mb"]) for r in rows) + " |")
    lines.append("| tools/list tokens | " + " | ".join(str(r["tools_list_tokens"]) for r in rows) + " |")
    for name in names:
        cells = [f"{r['tools'][name]['tokens']} tok, {r['tools'][name]['seconds']} s" for r in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"{r['page_all']['pages']} pages, {r['page_all']['seconds']} s" for r in rows]
    lines.append("| page the whole snapshot (limit 200) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serve", action="store_true", help="also time `serve --scenario fleet-N` over stdio")
    args = ap.parse_args()
    if args.one is not None:
        row = anyio.run(measure, args.one)
        if args.serve:
            row["serve"] = anyio.run(measure_serve, args.one)
        print(json.dumps(row))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n), *(["--serve"] if args.serve else [])],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
