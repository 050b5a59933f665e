"""The audit at scale: what a mutating call, `audit show` and `audit verify` cost on a long log.

Not a test. Writes a valid log of N records directly (``mcp_autoscale.audit.synthetic``: 48 h of mostly
dry runs, an applied change every 50th record, an idempotency key every 10th), then measures:

* the first open (the SQLite index built from the log) and a re-open (index fresh);
* one applied ``scale_deployment`` through the real gate on the simulator: the time spent in the audit
  (decision reads, the intent and outcome appends, each fsynced) and the whole call;
* ``audit show --limit 20`` in-process and as a command (Python start-up included);
* ``audit verify`` as a command: wall time and peak RSS, at N/10 and N records (constant memory: the two
  peaks should match).

    python benchmarks/bench_audit.py [--records 1000000] [--dir /tmp/audit-bench]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.actions.gate import HISTORY
from mcp_autoscale.app import build_app
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.audit.index import index_path
from mcp_autoscale.audit.synthetic import write_synthetic_log
from mcp_autoscale.config import Settings


class Timed:
    """Wraps the audit methods the gate calls and adds up their time."""

    def __init__(self, log: AuditLog) -> None:
        self.total = 0.0
        for name in ("append", "recent_applied", "find_idempotent", "get", "records"):
            setattr(log, name, self._wrap(getattr(log, name)))

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.total += time.perf_counter() - t

        return timed


RUN_CLI = """
import resource, runpy, sys
sys.argv = ["mcp-autoscale", *sys.argv[1:]]
try:
    runpy.run_module("mcp_autoscale", run_name="__main__")
finally:
    print(f"maxrss={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
"""


def cli(*args: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in MB, stdout) of one `mcp-autoscale` command in its own process."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN_CLI, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{args}: exit {proc.returncode}: {proc.stderr[-500:]}")
    rss_kb = int(proc.stderr.rsplit("maxrss=", 1)[1].split()[0])
    return wall, rss_kb // 1024, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--calls", type=int, default=5, help="applied calls measured (median reported)")
    ap.add_argument("--reuse", action="store_true", help="keep the logs already in --dir (skip writing)")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="audit-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    n = args.records
    rows: list[tuple[str, str]] = []

    small = base / "small.jsonl"
    path = base / "audit.jsonl"
    if not (args.reuse and small.exists() and path.exists()):
        write_synthetic_log(small, max(1, n // 10), end=datetime.now(UTC))
        t = time.perf_counter()
        write_synthetic_log(path, n, end=datetime.now(UTC))
        rows.append((f"write {n:,} records directly", f"{time.perf_counter() - t:.1f} s"))
    rows.append(("log size", f"{path.stat().st_size / 1e6:,.0f} MB"))

    index_path(path).unlink(missing_ok=True)
    t = time.perf_counter()
    AuditLog(path).index.close()
    rows.append(("first open: index built from the log", f"{time.perf_counter() - t:.1f} s"))
    t = time.perf_counter()
    AuditLog(path).index.close()
    rows.append(("re-open: index fresh", f"{(time.perf_counter() - t) * 1000:.1f} ms"))

    fsync_s = [0.0]
    real_fsync = os.fsync

    def timed_fsync(fd: int) -> None:
        t = time.perf_counter()
        try:
            real_fsync(fd)
        finally:
            fsync_s[0] += time.perf_counter() - t

    os.fsync = timed_fsync  # the disk's share of the audit work, reported apart
    settings = Settings(backend="sim", audit_file=path, state_dir=base / "state", audit_rate_per_s=0)
    app = build_app(settings)
    timer = Timed(app.audit)
    pools = [p for p in app.backend.list_pools() if p.autoscaler is None]
    audit_ms, call_ms, sync_ms = [], [], []
    for i in range(args.calls):
        pool = app.backend.get_pool(pools[i % len(pools)].ref)  # fresh: a repeat of the last ask is a no-op
        action = action_from_call(
            "scale_deployment",
            {
                "namespace": pool.ref.namespace,
                "deployment": pool.ref.name,
                "replicas": pool.desired_replicas + 1,
            },
            "benchmark",
            caller="bench",
            idempotency_key=f"bench-{time.time_ns()}",
        )
        timer.total, fsync_s[0] = 0.0, 0.0
        t = time.perf_counter()
        result = app.gate.submit(action)
        call_ms.append((time.perf_counter() - t) * 1000)
        audit_ms.append(timer.total * 1000)
        sync_ms.append(fsync_s[0] * 1000)
        if result.status.value not in ("applied", "denied"):
            raise SystemExit(f"unexpected result: {result.status} {result.message}")
    rows.append(
        (
            "mutating call: audit work (decision reads + intent + outcome)",
            f"median {statistics.median(audit_ms):.1f} ms, max {max(audit_ms):.1f} ms",
        )
    )
    rows.append(("  of which fsync (2 records made durable)", f"median {statistics.median(sync_ms):.1f} ms"))
    rows.append(("mutating call: whole gate.submit", f"median {statistics.median(call_ms):.1f} ms"))
    window = app.audit.recent_applied(app.gate.clock() - HISTORY)
    rows.append(("decision window: applied changes of the last 24 h", f"{len(window):,} records"))

    t = time.perf_counter()
    shown = AuditLog(path, recover=False).records(limit=20)
    rows.append(
        ("show --limit 20 (in-process)", f"{(time.perf_counter() - t) * 1000:.1f} ms ({len(shown)} records)")
    )
    wall, _, out = cli("audit", "show", "--file", str(path), "--limit", "20")
    bare, _, _ = cli("--version")
    rows.append(
        ("show --limit 20 (command)", f"{wall:.2f} s, of which CLI start-up (`--version`) {bare:.2f} s")
    )

    wall_s, rss_s, _ = cli("audit", "verify", str(small))
    wall, rss, out = cli("audit", "verify", str(path))
    rows.append((f"verify {n // 10:,} records (command)", f"{wall_s:.1f} s, peak RSS {rss_s} MB"))
    rows.append((f"verify {n:,} records (command)", f"{wall:.1f} s, peak RSS {rss} MB: {out.strip()[-60:]}"))

    print(f"\n| measure ({n:,} records) | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
