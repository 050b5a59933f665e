"""Snapshot cost against one real Prometheus: raw batched queries, recording rules, naive per-pool queries.

Not a test. Starts a loopback exposition server generating N pools' vLLM V1 series (2 pods per pool, for
N = 10, 100, 1000 at once) and a real ``prometheus`` scraping it, then measures in two phases:

1. **raw**: ``PrometheusSource.collect`` on the raw series, with *no* recording rules loaded (what a user
   of the raw path runs: rule evaluations would otherwise compete with the raw queries for Prometheus's
   CPU);
2. **rules**: the generated recording rules are loaded (config reload, SIGHUP), and once their series
   exist ``collect`` reads the recorded series.

For each path and N it prints the wall time of one snapshot (median / p90), the requests and result rows per
snapshot, and the CPU time per snapshot of the client (this process, ``time.process_time``) and of
Prometheus (``/proc/<pid>/stat`` utime + stime, before/after each snapshot; its background scrapes and,
in phase 2, rule evaluations land in it too, so its idle rate is printed as well). CPU times are what
to compare on a shared machine, where wall time mostly measures the other jobs. ``--naive`` adds a client
that sends one query per pool per signal (8 threads, one snapshot).

    python benchmarks/bench_snapshot.py [--sizes 10,100,1000] [--repeat 10] [--eval-interval 5s]
        [--scrape-interval 2] [--window 10s] [--prom-cpus 1 --client-cpus 0] [--naive]

The defaults (2 s scrape, 10 s window) fill a rate window in seconds and load Prometheus's ingestion 7.5x
beyond a 15 s production scrape: a stress setting. ``--scrape-interval 15 --window 1m --eval-interval 15s``
measures the production-like setting (about 90 s more to fill the window).
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_api_client import PrometheusConnect
from prometheus_client.parser import text_string_to_metric_families

from mcp_autoscale.config import Settings
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolState
from mcp_autoscale.signals import PrometheusSource, dialects
from mcp_autoscale.signals.dialects.spec import Kind, MetricSpec
from mcp_autoscale.signals.promql import PoolGrouping, escape_string, regex_any
from mcp_autoscale.signals.rules import rules_file, to_yaml

WINDOW = "10s"
"""Rate window; ``--window`` sets it (the production default is Settings().rate_window, 2m)."""
SCRAPE_S = 2
"""Scrape interval; ``--scrape-interval`` sets it. 2 s ingests 7.5x what a 15 s production scrape does."""
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


def pctl(times: list[float], q: float) -> float:
    """The ``q`` quantile of the samples (inclusive method: p90 of 10 samples lies between the 9th and 10th)."""
    return statistics.quantiles(times, n=100, method="inclusive")[round(q * 100) - 1]


def rule_group_seconds(url: str) -> float:
    """Prometheus's own ``prometheus_rule_group_last_duration_seconds`` for our group (one evaluation)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name == "prometheus_rule_group_last_duration_seconds":
            for sample in family.samples:
                if sample.labels.get("rule_group", "").endswith(";mcp-autoscale"):
                    return float(sample.value)
    raise SystemExit("rule group mcp-autoscale not found in Prometheus's metrics: rules not loaded")


def rule_breakdown(url: str) -> dict[str, float]:
    """Seconds of the last evaluation per kind of rule (``/api/v1/rules`` ``evaluationTime``)."""
    out = {"bucket rates": 0.0, "counter rates": 0.0, "newest-sample times": 0.0}
    for group in httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]:
        for rule in group["rules"]:
            name = rule["name"]
            kind = "newest-sample times" if name.endswith(":max_timestamp") else "counter rates"
            kind = "bucket rates" if "_le:" in name else kind
            out[kind] += float(rule["evaluationTime"])
    return out


def wait_for(url: str, checks: dict[str, float], deadline_s: float) -> None:
    """Poll until every ``query`` returns one sample >= its threshold (a full rate window of data)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            ok = True
            for query, least in checks.items():
                r = httpx.post(f"{url}/api/v1/query", data={"query": query}, timeout=5)
                res = r.json()["data"]["result"] if r.status_code == 200 else []
                ok = ok and bool(res) and float(res[0]["value"][1]) >= least
            if ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling interval while Prometheus fills a rate window; bounded by the deadline
    raise SystemExit(f"Prometheus did not have the data within {deadline_s:g} s: {checks}")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CountingSource(PrometheusSource):
    """``PrometheusSource`` that also counts the result rows of its queries (for the table only)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.rows = 0
        self._lock = threading.Lock()

    def _query(self, promql: str) -> list[dict[str, Any]]:
        rows = super()._query(promql)
        with self._lock:
            self.rows += len(rows)
        return rows


@dataclass
class Samples:
    """Per-snapshot measurements of one path at one size."""

    wall_s: list[float] = field(default_factory=list)
    client_cpu_s: list[float] = field(default_factory=list)
    prom_cpu_s: list[float] = field(default_factory=list)
    queries: int = 0
    rows: int = 0


def measure(source: CountingSource, pools: list[PoolState], prom_pid: int, into: Samples) -> None:
    """One snapshot: wall time, this process's CPU, Prometheus's CPU; every pool must be complete."""
    source.rows = 0
    prom0, cpu0, t0 = process_cpu_s(prom_pid), time.process_time(), time.perf_counter()
    report = source.collect(pools)
    into.wall_s.append(time.perf_counter() - t0)
    into.client_cpu_s.append(time.process_time() - cpu0)
    into.prom_cpu_s.append(process_cpu_s(prom_pid) - prom0)
    into.queries, into.rows = report.queries, source.rows
    assert not report.errors, report.errors
    incomplete = [p.missing for p in report.pools.values() if p.missing]
    assert not incomplete, f"{len(incomplete)} of {len(pools)} pools incomplete: {incomplete[0]}"


def idle_cpu_ms_per_s(pid: int, seconds: float) -> float:
    """Prometheus's background CPU (scrapes, rule evaluations) while nothing queries it."""
    cpu0 = process_cpu_s(pid)
    time.sleep(seconds)  # a measurement interval, not a wait for a condition
    return (process_cpu_s(pid) - cpu0) / seconds * 1000


def states(pools: list[tuple[str, str]]) -> list[PoolState]:
    return [
        PoolState(
            ref=PoolRef(namespace=ns, name=name),
            model="m",
            gpu_type="L4",
            desired_replicas=2,
            ready_replicas=2,
        )
        for ns, name in pools
    ]


def run_phase(
    sets: dict[str, list[tuple[str, str]]],
    sources: dict[str, CountingSource],
    prom_pid: int,
    repeat: int,
    between: Callable[[], None] = lambda: None,
) -> dict[tuple[int, str], Samples]:
    """``repeat`` snapshots per size and path (paths interleaved, alternating order)."""
    out: dict[tuple[int, str], Samples] = {}
    for n_str, names in sets.items():
        pools = states(names)
        for key in sources:
            out[(int(n_str), key)] = Samples()
        for i in range(repeat):
            order = list(sources) if i % 2 == 0 else list(reversed(sources))
            for key in order:
                measure(sources[key], pools, prom_pid, out[(int(n_str), key)])
            between()
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def print_table(results: dict[tuple[int, str], Samples], labels: dict[str, str]) -> None:
    print(
        "| pools | path | requests / snapshot | rows / snapshot | wall median / p90 "
        "| client CPU / snapshot (median) | Prometheus CPU / snapshot (median / p90) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for (n, key), m in results.items():
        cells = (
            n,
            labels[key],
            m.queries,
            f"{m.rows:,}",
            f"{ms(statistics.median(m.wall_s))} / {ms(pctl(m.wall_s, 0.9))}",
            ms(statistics.median(m.client_cpu_s)),
            f"{ms(statistics.median(m.prom_cpu_s))} / {ms(pctl(m.prom_cpu_s, 0.9))}",
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")


def write_config(tmp: Path, sizes: list[int], target: str, eval_interval: str, with_rules: bool) -> Path:
    jobs = "".join(
        f"  - job_name: b{n}\n    honor_labels: true\n    metrics_path: /{n}/metrics\n"
        f'    static_configs:\n      - targets: ["{target}"]\n'
        for n in sizes
    )
    rules = f"rule_files:\n  - {tmp / 'rules.yaml'}\n" if with_rules else ""
    path = tmp / "prometheus.yml"
    path.write_text(
        f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {eval_interval}\n"
        f"{rules}scrape_configs:\n{jobs}"
    )
    return path


def main() -> None:
    global WINDOW, SCRAPE_S  # the naive client's queries read them too
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--naive", action="store_true", help="also time a naive one-query-per-pool client")
    ap.add_argument("--workers", type=int, default=8, help="threads for the naive client")
    ap.add_argument("--eval-interval", default="5s", help="evaluation interval of the recording rules")
    ap.add_argument("--scrape-interval", type=int, default=SCRAPE_S, help="seconds between scrapes")
    ap.add_argument("--window", default=WINDOW, help="PromQL rate window, e.g. 10s, 1m")
    ap.add_argument("--prom-cpus", default="", help="pin Prometheus to these CPUs (taskset -c list, e.g. 1)")
    ap.add_argument(
        "--client-cpus",
        default="",
        help="pin this client and the exposition server to these CPUs (e.g. 0): the client's share is "
        "then what is measured, not Prometheus competing with it for a core",
    )
    args = ap.parse_args()
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    WINDOW, SCRAPE_S = args.window, args.scrape_interval
    sizes = [int(x) for x in args.sizes.split(",")]
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus not found: sudo apt-get install prometheus")

    sets = {str(n): pool_names(n) for n in sizes}
    server, target = serve(sets)
    tmp = Path(tempfile.mkdtemp(prefix="bench-prom-"))
    port = free_port()
    rules = rules_file(dialects.DIALECTS.values(), PoolGrouping(), WINDOW, args.eval_interval)
    (tmp / "rules.yaml").write_text(to_yaml(rules))
    config = write_config(tmp, sizes, target, args.eval_interval, with_rules=False)
    pin = ["taskset", "-c", args.prom_cpus] if args.prom_cpus else []
    # taskset execs Prometheus: proc.pid is Prometheus's own pid (for /proc/<pid>/stat)
    proc = subprocess.Popen(
        [
            *pin,
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    total = sum(sizes)
    load_before = os.getloadavg()
    naive: dict[int, tuple[int, float]] = {}
    try:
        wait_for(
            url,
            {
                f"min(count_over_time(vllm:num_requests_waiting[{WINDOW}]))": 4,
                "count(vllm:num_requests_waiting)": 2 * total,
            },
            240,
        )
        settings = Settings(
            prometheus_url=url, rate_window=WINDOW, scrape_interval_s=SCRAPE_S, prometheus_timeout_s=30
        )
        idle_raw = idle_cpu_ms_per_s(proc.pid, 2 * SCRAPE_S)
        raw = run_phase(sets, {"raw": CountingSource(settings)}, proc.pid, args.repeat)
        if args.naive:
            naive = {n: naive_snapshot(url, sets[str(n)], args.workers) for n in sizes}

        # phase 2: load the rules (SIGHUP reloads the configuration) and wait for their series
        write_config(tmp, sizes, target, args.eval_interval, with_rules=True)
        proc.send_signal(signal.SIGHUP)
        wait_for(
            url,
            {
                f"count(namespace_pool_le:vllm:time_to_first_token_seconds_bucket:rate{WINDOW})": 6 * total,
                f"count(namespace_pool:vllm:request_success:rate{WINDOW})": total,
            },
            240,
        )
        idle_rules = idle_cpu_ms_per_s(proc.pid, 2 * SCRAPE_S)
        rule_seconds: list[float] = []
        recorded = CountingSource(settings.model_copy(update={"prometheus_recording_rules": True}))
        rec = run_phase(
            sets,
            {"rules": recorded},
            proc.pid,
            args.repeat,
            between=lambda: rule_seconds.append(rule_group_seconds(url)),
        )
        rule_seconds.append(rule_group_seconds(url))
        breakdown = rule_breakdown(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    n_rules = sum(len(g["rules"]) for g in rules["groups"])
    pinning = (f"Prometheus on CPU {args.prom_cpus}" if args.prom_cpus else "Prometheus unpinned") + (
        f", client and exposition server on CPU {args.client_cpus}" if args.client_cpus else ""
    )
    print(
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}), {version}; {pinning}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. 2 pods per pool, {total} pools scraped in "
        f"all, scrape {SCRAPE_S}s, rate window {WINDOW}; {args.repeat} snapshots per path and size, all "
        f"queries of a snapshot in flight at once.\n"
    )
    print_table(
        {**raw, **rec},
        {
            "raw": "raw (no rules loaded)",
            "rules": f"recording rules ({n_rules} rules every {args.eval_interval})",
        },
    )
    print(
        f"\nPrometheus idle CPU (scrapes only): {idle_raw:.0f} ms/s; with the rules loaded: "
        f"{idle_rules:.0f} ms/s. Rule group evaluation ({total} pools, "
        f"prometheus_rule_group_last_duration_seconds, {len(rule_seconds)} samples): median "
        f"{ms(statistics.median(rule_seconds))}, max {ms(max(rule_seconds))}, every {args.eval_interval}; "
        "last evaluation by kind: " + ", ".join(f"{k} {ms(v)}" for k, v in breakdown.items()) + "."
    )
    for n, (nq, ns) in naive.items():
        print(f"Naive client, {n} pools: {nq} queries, {ms(ns)} ({args.workers} threads, one snapshot).")


if __name__ == "__main__":
    main()
