"""Audit appends per second on the shared PostgreSQL store, with one and with two replicas (processes).

Not a test. Starts a throwaway PostgreSQL (``initdb`` in a temp dir on a loopback port, as the tests do;
as root it runs as the ``postgres`` user), then for 1 and 2 processes, each with ``--threads`` writers,
appends records for ``--seconds`` and reports appends/s, the latency of one append (p50/p99) and whether
the chain verifies afterwards. The embedded JSONL store is measured the same way for comparison (one
host; processes share the file lock). Every append is durable when it returns: a committed transaction
(PostgreSQL, ``synchronous_commit=on``) or an fsynced line (file).

    python benchmarks/bench_state.py [--seconds 10] [--threads 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "state"))

from pg_server import TempPostgres

from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.audit.verify import verify_records
from mcp_autoscale.state.postgres import PostgresStateStore


def record(i: int, who: str) -> dict[str, Any]:
    return {
        "action_id": f"act-{who}-{i}",
        "tool": "scale_deployment",
        "target": "dev/granite-8b",
        "arguments": {"namespace": "dev", "deployment": "granite-8b", "replicas": 1 + i % 8},
        "rationale": "benchmark: queue depth above target",
        "caller": who,
        "dry_run": True,
        "verdict": {"decision": "allow", "rules": ["bench"]},
        "status": "dry_run",
    }


def replica(kind: str, target: str, seconds: float, threads: int, name: str, out: Any) -> None:
    """One process: ``threads`` writers append for ``seconds``; sends (count, latencies in ms)."""
    store: Any = PostgresStateStore(target, pool_size=threads + 2) if kind == "postgres" else None
    audit = store.audit if store is not None else AuditLog(Path(target))
    latencies: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def writer(w: int) -> None:
        i = 0
        mine = []
        while time.monotonic() < end:
            t = time.perf_counter()
            audit.append(**record(i, f"{name}-{w}"))
            mine.append((time.perf_counter() - t) * 1000)
            i += 1
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=writer, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if store is not None:
        store.close()
    out.put((len(latencies), latencies))


def run(kind: str, target: str, replicas: int, seconds: float, threads: int) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=replica, args=(kind, target, seconds, threads, f"r{r}", out))
        for r in range(replicas)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    count = sum(c for c, _ in results)
    lat = sorted(x for _, ls in results for x in ls)
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0.0
    return count / seconds, statistics.median(lat) if lat else 0.0, p99


def verified(kind: str, target: str) -> str:
    if kind == "postgres":
        store = PostgresStateStore(target)
        with store.snapshot() as (head, lines):
            report = verify_records(((x[:-1], True) for x in lines), marker=head)
        store.close()
    else:
        report = verify_file(Path(target))
    return f"{'OK' if report.ok else 'BROKEN'} ({report.records} records)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=4, help="writer threads per replica")
    args = ap.parse_args()
    pg = TempPostgres()
    rows = []
    try:
        for replicas in (1, 2):
            url = pg.new_database()
            PostgresStateStore(url).close()  # migrated before the writers start
            rate, p50, p99 = run("postgres", url, replicas, args.seconds, args.threads)
            rows.append(("PostgreSQL", replicas, rate, p50, p99, verified("postgres", url)))
        tmp = Path(tempfile.mkdtemp(prefix="bench-state-"))
        for replicas in (1, 2):
            path = tmp / f"audit-{replicas}.jsonl"
            rate, p50, p99 = run("file", str(path), replicas, args.seconds, args.threads)
            rows.append(("JSONL file", replicas, rate, p50, p99, verified("file", str(path))))
    finally:
        pg.close()
    print(f"\n{args.threads} writer threads per replica, {args.seconds:g} s each\n")
    print("| store | replicas | appends/s | append p50 | append p99 | chain |\n|---|---|---|---|---|---|")
    for store, n, rate, p50, p99, chain in rows:
        print(f"| {store} | {n} | {rate:,.0f} | {p50:.1f} ms | {p99:.1f} ms | {chain} |")


if __name__ == "__main__":
    main()
