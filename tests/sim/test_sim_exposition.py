"""The twin's vLLM exposition: names, types, labels, buckets, monotonic counters, agreement with ground truth,
and the loopback metrics server; plus the 24 h speed bound."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mcp_autoscale.models import PoolRef
from mcp_autoscale.sim import Twin, serve_metrics
from mcp_autoscale.sim.serving import ITL_BUCKETS, TTFT_BUCKETS

LLAMA8B = PoolRef(namespace="chat", name="llama-8b")
VLLM_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
             40.0, 80.0, 160.0, 640.0, 2560.0]  # fmt: skip
VLLM_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
            40.0, 80.0]  # fmt: skip
POD_RE = re.compile(r"^(?P<dep>[a-z0-9-]+)-[0-9a-f]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> tuple[dict[str, str], Samples]:
    types: dict[str, str] = {}
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, out


def _pool_of(pod: str) -> str:
    m = POD_RE.match(pod)
    assert m, pod
    return m.group("dep")


def test_names_types_labels_and_buckets() -> None:
    text = Twin("kv-pressure").exposition()
    types, samples = _samples(text)
    assert types == {
        "vllm:num_requests_waiting": "gauge",
        "vllm:num_requests_running": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:prompt_tokens": "counter",
        "vllm:generation_tokens": "counter",
        "vllm:num_preemptions": "counter",
        "vllm:request_success": "counter",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:inter_token_latency_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
        "vllm:cache_config_info": "gauge",  # an info metric is a gauge of 1 in the text format (as in vLLM)
    }
    assert list(TTFT_BUCKETS) == VLLM_TTFT and list(ITL_BUCKETS) == VLLM_ITL
    names = {name for name, _ in samples}
    assert {"vllm:prompt_tokens_total", "vllm:num_preemptions_total", "vllm:cache_config_info"} <= names
    pods: set[str] = set()
    for name, labels in samples:
        lab = dict(labels)
        assert {"namespace", "pod", "model_name", "engine"} <= set(lab), name
        assert lab["engine"] == "0"
        pods.add(lab["pod"])
        if name == "vllm:request_success_total":
            assert lab["finished_reason"] == "stop"
    assert {_pool_of(p) for p in pods} == {
        "llama-8b",
        "llama-70b-prefill",
        "llama-70b-decode",
        "qwen-7b",
        "granite-8b",
    }
    one = next(iter(pods))
    les = sorted(
        float(dict(lab)["le"])
        for name, lab in samples
        if name == "vllm:time_to_first_token_seconds_bucket" and dict(lab)["pod"] == one
    )
    assert les[:-1] == VLLM_TTFT and math.isinf(les[-1])


def test_counters_and_histograms_are_monotonic_and_consistent() -> None:
    tw = Twin("burst", seed=8)
    _, first = _samples(tw.exposition())
    tw.advance(240)
    _, second = _samples(tw.exposition())
    checked = 0
    for key, v1 in first.items():
        name = key[0]
        if key in second and (name.endswith(("_total", "_bucket", "_count", "_sum"))):
            assert second[key] >= v1, key
            checked += 1
    assert checked > 100
    # cumulative buckets grow with le, and +Inf == _count
    by_series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = defaultdict(list)
    for (name, labels), v in second.items():
        if name.endswith("_bucket"):
            lab = dict(labels)
            le = float(lab.pop("le"))
            by_series[(name[: -len("_bucket")], tuple(sorted(lab.items())))].append((le, v))
    for (base, labels), pts in by_series.items():
        pts.sort()
        counts = [c for _, c in pts]
        assert counts == sorted(counts)
        assert counts[-1] == second[(base + "_count", labels)]


def test_gauges_encode_the_ground_truth() -> None:
    tw = Twin("ttft-breach")
    _, samples = _samples(tw.exposition())
    truth = tw.ground_truth(LLAMA8B)
    waiting = [
        v for (n, lab), v in samples.items() if n == "vllm:num_requests_waiting" and _pod(lab) == "llama-8b"
    ]
    running = [
        v for (n, lab), v in samples.items() if n == "vllm:num_requests_running" and _pod(lab) == "llama-8b"
    ]
    kv = [v for (n, lab), v in samples.items() if n == "vllm:kv_cache_usage_perc" and _pod(lab) == "llama-8b"]
    assert len(waiting) == tw.backend.get_pool(LLAMA8B).ready_replicas
    assert sum(waiting) == truth.queue_depth and sum(running) == truth.running
    assert sum(kv) / len(kv) == truth.kv_usage


def _pod(labels: tuple[tuple[str, str], ...]) -> str:
    return _pool_of(dict(labels)["pod"])


def _histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def _ttft_increase(before: Samples, after: Samples, pool: str) -> list[tuple[float, float]]:
    inc: dict[float, float] = defaultdict(float)
    for key, v in after.items():
        name, labels = key
        if name == "vllm:time_to_first_token_seconds_bucket" and _pod(labels) == pool:
            inc[float(dict(labels)["le"])] += v - before.get(key, 0.0)
    return list(inc.items())


def test_histogram_quantile_over_one_minute_approximates_ground_truth() -> None:
    bounds = [0.0, *VLLM_TTFT, math.inf]
    for scenario in ("default", "ttft-breach"):
        tw = Twin(scenario, seed=21)
        _, before = _samples(tw.exposition())
        tw.advance(60)
        _, after = _samples(tw.exposition())
        estimate = _histogram_quantile(0.9, _ttft_increase(before, after, "llama-8b"))
        truth = tw.ground_truth(LLAMA8B).ttft_p90_s
        assert truth is not None
        # the estimate is interpolated inside a bucket: it lands in the truth's bucket or a neighbour
        i_est = next(i for i in range(1, len(bounds)) if estimate <= bounds[i])
        i_true = next(i for i in range(1, len(bounds)) if truth <= bounds[i])
        assert abs(i_est - i_true) <= 1, (scenario, estimate, truth)


def test_serve_metrics_over_loopback() -> None:
    tw = Twin()
    with serve_metrics(tw) as srv:
        assert srv.url.startswith("http://127.0.0.1:") and srv.port > 0
        r = httpx.get(f"{srv.url}/metrics", timeout=5)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        fams = {f.name for f in text_string_to_metric_families(r.text)}
        assert "vllm:time_to_first_token_seconds" in fams
        assert httpx.get(f"{srv.url}/healthz", timeout=5).text.strip() == "ok"
        assert httpx.get(f"{srv.url}/nope", timeout=5).status_code == 404
        assert tw.backend.get_pool(LLAMA8B).metrics_urls == [f"{srv.url}/metrics"]
    assert tw.backend.get_pool(LLAMA8B).metrics_urls == []


def test_a_day_of_the_default_fleet_runs_fast() -> None:
    tw = Twin("default", tick_s=5.0)
    t0 = time.process_time()
    tw.advance(24 * 3600)
    cpu = time.process_time() - t0
    print(f"24 h default fleet, tick 5 s: {cpu:.1f} s CPU ({24 * 3600 / cpu:.0f} simulated s per CPU s)")
    assert cpu < 60.0
    assert tw.now.day == 25
