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
        settings = Settings(
            sim_scenario=f"fleet-{n}",
            sim_clock="manual",
            state_dir=Path(tmp),
            audit_file=Path(tmp) / "a.jsonl",
        )
        app = build_app(settings)
        server = create_server(app)
        out["build_s"] = round(time.perf_counter() - t0, 2)
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


def table(rows: list[dict[str, Any]]) -> str:
    names = list(rows[0]["tools"])
    head = "| | " + " | ".join(str(r["pools"]) + " pools" for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]
    lines.append("| build (s) | " + " | ".join(str(r["build_s"]) for r in rows) + " |")
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
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(anyio.run(measure, args.one)))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
