"""Snapshot cost against one real Prometheus: batched PrometheusSource vs naive per-pool-per-metric queries.

Not a test. Starts a loopback exposition server generating N pools' vLLM V1 series (2 pods per pool, for
N = 10, 100, 1000 at once), a real ``prometheus`` scraping it, then measures for each N the queries issued
and the wall time of one snapshot: ``PrometheusSource.collect`` (constant query set, run concurrently)
and a naive client that sends one query per pool per signal (same thread-pool width). Prints a markdown
table.

    python benchmarks/bench_snapshot.py [--sizes 10,100,1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_api_client import PrometheusConnect

from mcp_autoscale.config import Settings
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolState
from mcp_autoscale.signals import PrometheusSource, dialects
from mcp_autoscale.signals.dialects.spec import Kind, MetricSpec
from mcp_autoscale.signals.promql import escape_string, regex_any

WINDOW = "10s"
SCRAPE_S = 2
BUCKETS = ("0.25", "0.5", "1.0", "2.5", "5.0", "+Inf")
FRACTIONS = (0.1, 0.5, 0.8, 0.95, 1.0, 1.0)


def pool_names(n: int) -> list[tuple[str, str]]:
    """N pools spread over 10 namespaces, named like Deployments."""
    return [(f"b{n}-ns{i % 10}", f"model-{i}") for i in range(n)]


def render(pools: list[tuple[str, str]], t0: float) -> str:
    dt = time.time() - t0
    out: list[str] = []
    for ns, name in pools:
        for pod in (f"{name}-5d8f7c6b9a-aaaaa", f"{name}-5d8f7c6b9a-bbbbb"):
            # `deployment` is what a scrape-time relabel rule (e.g. from app.kubernetes.io/name) adds
            lab = f'namespace="{ns}",pod="{pod}",deployment="{name}",model_name="m",engine="0"'
            n = 4.0 * dt
            out += [
                f"vllm:num_requests_waiting{{{lab}}} 3",
                f"vllm:num_requests_running{{{lab}}} 5",
                f"vllm:kv_cache_usage_perc{{{lab}}} 0.5",
                f"vllm:prompt_tokens_total{{{lab}}} {1000 * dt}",
                f"vllm:generation_tokens_total{{{lab}}} {500 * dt}",
                f"vllm:num_preemptions_total{{{lab}}} {0.5 * dt}",
                f'vllm:request_success_total{{{lab},finished_reason="stop"}} {n}',
            ]
            for hist in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"):
                out += [
                    f'{hist}_bucket{{{lab},le="{le}"}} {f * n}'
                    for le, f in zip(BUCKETS, FRACTIONS, strict=True)
                ]
                out += [f"{hist}_count{{{lab}}} {n}", f"{hist}_sum{{{lab}}} {n}"]
    return "\n".join(out) + "\n"


def _serve_forever(sets: dict[str, list[tuple[str, str]]], port: int) -> None:
    t0 = time.time()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            pools = sets.get(self.path.removeprefix("/").removesuffix("/metrics"))
            if pools is None:
                self.send_error(404)
                return
            data = render(pools, t0).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def serve(sets: dict[str, list[tuple[str, str]]]) -> tuple[multiprocessing.Process, str]:
    """The exposition server runs in its own process so that rendering does not hold our GIL."""
    port = free_port()
    proc = multiprocessing.Process(target=_serve_forever, args=(sets, port), daemon=True)
    proc.start()
    return proc, f"127.0.0.1:{port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def naive_expr(spec: MetricSpec, ns: str, name: str) -> str:
    """What a per-pool client sends: one query per pool per signal, pods matched by name prefix."""
    m = f'namespace={escape_string(ns)}, pod=~{regex_any([name])[:-1]}-.*"'
    m += "".join(f", {k}={escape_string(v)}" for k, v in spec.matchers)
    if spec.kind is Kind.GAUGE:
        return f"{spec.agg}({spec.metric}{{{m}}})"
    if spec.kind is Kind.RATE:
        return f"{spec.scale:g} * sum(rate({spec.metric}{{{m}}}[{WINDOW}]))"
    return f"histogram_quantile({spec.quantile:g}, sum by (le) (rate({spec.metric}_bucket{{{m}}}[{WINDOW}])))"


def naive_snapshot(url: str, pools: list[tuple[str, str]], workers: int) -> tuple[int, float]:
    client = PrometheusConnect(url=url)
    vllm = dialects.get("vllm")
    queries = [naive_expr(vllm.signals[s], ns, name) for ns, name in pools for s in SIGNAL_NAMES]
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = list(ex.map(client.custom_query, queries))
    elapsed = time.perf_counter() - t
    assert all(results), "naive query returned nothing: Prometheus not warmed up"
    return len(queries), elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=8, help="threads for the naive client")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus not found: sudo apt-get install prometheus")

    sets = {str(n): pool_names(n) for n in sizes}
    server, target = serve(sets)
    tmp = Path(tempfile.mkdtemp(prefix="bench-prom-"))
    port = free_port()
    jobs = "".join(
        f"  - job_name: b{n}\n    honor_labels: true\n    metrics_path: /{n}/metrics\n"
        f'    static_configs:\n      - targets: ["{target}"]\n'
        for n in sizes
    )
    (tmp / "prometheus.yml").write_text(f"global:\n  scrape_interval: {SCRAPE_S}s\nscrape_configs:\n{jobs}")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                r = httpx.post(
                    f"{url}/api/v1/query",
                    data={"query": f"min(count_over_time(vllm:num_requests_waiting[{WINDOW}]))"},
                    timeout=5,
                )
                res = r.json()["data"]["result"] if r.status_code == 200 else []
                series = httpx.post(
                    f"{url}/api/v1/query", data={"query": "count(vllm:num_requests_waiting)"}, timeout=5
                ).json()["data"]["result"]
                if (
                    res
                    and float(res[0]["value"][1]) >= 4
                    and series
                    and int(series[0]["value"][1]) == 2 * sum(sizes)
                ):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)  # waiting for Prometheus to collect a full rate window; bounded by the deadline
        else:
            raise SystemExit("Prometheus did not collect enough samples within 180 s")

        settings = Settings(
            prometheus_url=url, rate_window=WINDOW, scrape_interval_s=SCRAPE_S, prometheus_timeout_s=30
        )
        rows = []
        for n in sizes:
            pools = [
                PoolState(
                    ref=PoolRef(namespace=ns, name=name),
                    model="m",
                    gpu_type="L4",
                    desired_replicas=2,
                    ready_replicas=2,
                )
                for ns, name in sets[str(n)]
            ]
            measured = []
            for pool_label in (
                "",
                "deployment",
            ):  # pool derived from the pod name, or labelled at scrape time
                source = PrometheusSource(settings.model_copy(update={"pool_label": pool_label}))
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    report = source.collect(pools)
                    times.append(time.perf_counter() - t)
                complete = sum(1 for p in report.pools.values() if not p.missing)
                assert not report.errors, report.errors
                assert complete == n, f"{n - complete} pools incomplete with pool_label={pool_label!r}"
                measured.append((report.queries, statistics.median(times), max(times)))
            naive_q, naive_s = naive_snapshot(url, sets[str(n)], args.workers)
            (q, med, mx), (_, med_l, mx_l) = measured
            rows.append((n, q, med, mx, med_l, mx_l, complete, naive_q, naive_s))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}), {version}; 2 pods per pool, "
        f"scrape {SCRAPE_S}s, rate window {WINDOW}, batched: all queries at once, naive: {args.workers} threads, "
        f"batched = median of {args.repeat}.\n"
    )
    head = (
        "pools",
        "batched queries",
        "batched, pool from pod name (median / max)",
        "batched, pool label (median / max)",
        "pools complete",
        "naive queries",
    )
    print("| " + " | ".join(head) + " | naive snapshot | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, q, med, mx, med_l, mx_l, complete, nq, ns in rows:
        cells = (
            n,
            q,
            f"{med * 1000:.0f} ms / {mx * 1000:.0f} ms",
            f"{med_l * 1000:.0f} ms / {mx_l * 1000:.0f} ms",
            f"{complete}/{n}",
            nq,
            f"{ns * 1000:.0f} ms",
        )
        print("| " + " | ".join(str(c) for c in cells) + f" | {ns / med:.0f}x |")


if __name__ == "__main__":
    main()
