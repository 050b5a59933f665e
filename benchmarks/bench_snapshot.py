"""Snapshot cost against one real Prometheus: raw batched queries, recording rules, naive per-pool queries.

Not a test. Starts a loopback exposition server generating N pools' vLLM V1 series (2 pods per pool, for
N = 10, 100, 1000 at once), a real ``prometheus`` scraping it and evaluating the recording rules of
``mcp-autoscale signals rules`` in the background, then measures for each N the queries issued and the wall
time of one snapshot: ``PrometheusSource.collect`` on raw series and on the recorded series (interleaved,
so background load hits both alike), and a naive client that sends one query per pool per signal (8
threads). Also reports what the rules cost Prometheus: ``prometheus_rule_group_last_duration_seconds``
sampled over the run. Prints markdown tables.

    python benchmarks/bench_snapshot.py [--sizes 10,100,1000] [--repeat 10] [--eval-interval 5s]
        [--scrape-interval 2] [--window 10s] [--prom-cpus 1 --client-cpus 0]

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


def main() -> None:
    global WINDOW, SCRAPE_S  # the naive client's queries read them too
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--repeat", type=int, default=10)
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
    jobs = "".join(
        f"  - job_name: b{n}\n    honor_labels: true\n    metrics_path: /{n}/metrics\n"
        f'    static_configs:\n      - targets: ["{target}"]\n'
        for n in sizes
    )
    rules = rules_file(dialects.DIALECTS.values(), PoolGrouping(), WINDOW, args.eval_interval)
    (tmp / "rules.yaml").write_text(to_yaml(rules))
    (tmp / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {args.eval_interval}\n"
        f"rule_files:\n  - {tmp / 'rules.yaml'}\nscrape_configs:\n{jobs}"
    )
    pin = ["taskset", "-c", args.prom_cpus] if args.prom_cpus else []
    proc = subprocess.Popen(
        [
            *pin,
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
    total = sum(sizes)
    try:
        wait_for(
            url,
            {
                f"min(count_over_time(vllm:num_requests_waiting[{WINDOW}]))": 4,
                "count(vllm:num_requests_waiting)": 2 * total,
                f"count(namespace_pool_le:vllm:time_to_first_token_seconds_bucket:rate{WINDOW})": 6 * total,
                f"count(namespace_pool:vllm:request_success:rate{WINDOW})": total,
            },
            240,
        )
        settings = Settings(
            prometheus_url=url, rate_window=WINDOW, scrape_interval_s=SCRAPE_S, prometheus_timeout_s=30
        )
        variants = {
            "raw": PrometheusSource(settings),
            "rules": PrometheusSource(settings.model_copy(update={"prometheus_recording_rules": True})),
        }
        rows = []
        rule_seconds: list[float] = []
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
            times: dict[str, list[float]] = {k: [] for k in variants}
            queries: dict[str, int] = {}
            for i in range(args.repeat):
                order = list(variants) if i % 2 == 0 else list(reversed(variants))
                for key in order:
                    t = time.perf_counter()
                    report = variants[key].collect(pools)
                    times[key].append(time.perf_counter() - t)
                    complete = sum(1 for p in report.pools.values() if not p.missing)
                    assert not report.errors, report.errors
                    assert complete == n, (
                        f"{key}: {n - complete} of {n} pools incomplete: "
                        f"{next(p.missing for p in report.pools.values() if p.missing)}"
                    )
                    queries[key] = report.queries
                rule_seconds.append(rule_group_seconds(url))
            naive_q, naive_s = naive_snapshot(url, sets[str(n)], args.workers)
            rows.append((n, queries, times, naive_q, naive_s))
        rule_seconds.append(rule_group_seconds(url))
        breakdown = rule_breakdown(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    n_rules = sum(len(g["rules"]) for g in rules["groups"])
    print(
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine}), {version}; 2 pods per pool, "
        f"{total} pools scraped in all, scrape {SCRAPE_S}s, rate window {WINDOW}, {n_rules} recording rules "
        f"{'Prometheus on CPU ' + args.prom_cpus + ', ' if args.prom_cpus else ''}"
        f"{'client on CPU ' + args.client_cpus + ', ' if args.client_cpus else ''}"
        f"every {args.eval_interval}; raw and rules: all queries at once, interleaved, {args.repeat} "
        f"snapshots each; naive: {args.workers} threads, one snapshot.\n"
    )
    print(
        "| pools | queries (raw / rules) | raw median / p90 | rules median / p90 | pools complete "
        "| naive queries | naive snapshot | rules vs raw (median) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, queries, times, nq, ns in rows:
        raw, rec = times["raw"], times["rules"]
        cells = (
            n,
            f"{queries['raw']} / {queries['rules']}",
            f"{statistics.median(raw) * 1000:.0f} ms / {pctl(raw, 0.9) * 1000:.0f} ms",
            f"{statistics.median(rec) * 1000:.0f} ms / {pctl(rec, 0.9) * 1000:.0f} ms",
            f"{n}/{n}",
            nq,
            f"{ns * 1000:.0f} ms",
            f"{statistics.median(rec) / statistics.median(raw):.2f}x",
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(
        f"\nRule group evaluation ({total} pools, prometheus_rule_group_last_duration_seconds, "
        f"{len(rule_seconds)} samples): median {statistics.median(rule_seconds) * 1000:.0f} ms, "
        f"max {max(rule_seconds) * 1000:.0f} ms, every {args.eval_interval}; last evaluation by kind: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in breakdown.items())
        + "."
    )


if __name__ == "__main__":
    main()
