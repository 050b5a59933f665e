"""PrometheusSource against a REAL Prometheus scraping a loopback vLLM exposition every second.

The pods' counters grow linearly with wall time, so rates and percentiles have exact expected values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect
from signals_helpers import (
    TTFT_FRACTIONS,
    RealPrometheus,
    SyntheticVllmPod,
    poll,
    render_pods,
    serving,
    start_prometheus,
    stop_prometheus,
)

from mcp_autoscale.config import Settings
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolState
from mcp_autoscale.signals import PrometheusSource
from mcp_autoscale.signals.histogram import bucket_quantile
from mcp_autoscale.signals.prometheus import failure_reason
from mcp_autoscale.signals.promql import selector

pytestmark = pytest.mark.integration

WINDOW = "5s"


@dataclass
class Stack:
    prom: RealPrometheus
    pods: list[SyntheticVllmPod]


def pool(ns: str, name: str) -> PoolState:
    return PoolState(
        ref=PoolRef(namespace=ns, name=name), model="m", gpu_type="L4", desired_replicas=2, ready_replicas=2
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    old_ms = int((time.time() - 60) * 1000)
    pods = [
        SyntheticVllmPod("chat", "llama-8b-5d8f7c6b9a-x7k2p", queue=3, running=5, kv=0.4),
        SyntheticVllmPod("chat", "llama-8b-5d8f7c6b9a-q9z4m", queue=4, running=6, kv=0.6),
        SyntheticVllmPod("batch", "qwen-7b-7c9d8e6f5a-abcde", queue=1, running=2, kv=0.2, gen_tps=250.0),
        # a pod whose samples carry a timestamp a minute old: its pool's data is stale
        SyntheticVllmPod("dev", "granite-8b-6b7c8d9e0f-zzzzz", fixed_timestamp_ms=old_ms),
        # short pod-template-hashes (Kubernetes' encoding can give fewer than 8 characters)
        SyntheticVllmPod("short", "tiny-llm-7c9-k2p4x", queue=2, running=1, kv=0.3),
        SyntheticVllmPod("short", "tiny-llm-b-q9z4m", queue=5, running=2, kv=0.5),
        # a pod in a namespace we do not ask for: must not leak into the answer
        SyntheticVllmPod("other", "llama-8b-5d8f7c6b9a-aaaaa", queue=100),
    ]
    tmp: Path = tmp_path_factory.mktemp("prom")
    with serving() as server:
        server.set("/metrics", render_pods(pods))
        prom = start_prometheus(tmp, [server.url.removeprefix("http://")])
        try:
            # enough samples for a 5 s rate window: wait until the TSDB holds >= 5 scrapes of the live pods
            def enough() -> bool:
                rows = prom.query('count_over_time(vllm:num_requests_waiting{namespace="chat"}[5s])')
                return len(rows) == 2 and all(float(r["value"][1]) >= 5 for r in rows)  # type: ignore[index]

            poll(enough, 30.0, "5 scrapes of the synthetic pods in Prometheus")
            yield Stack(prom=prom, pods=pods)
        finally:
            stop_prometheus(prom)


def source(stack: Stack, **kw: object) -> PrometheusSource:
    s = Settings(
        prometheus_url=stack.prom.url,
        prometheus_timeout_s=5.0,
        rate_window=WINDOW,
        scrape_interval_s=1.0,
        stale_after_intervals=5.0,
    )
    return PrometheusSource(s, **kw)  # type: ignore[arg-type]


def test_snapshot_matches_the_known_truth(stack: Stack) -> None:
    pools = [pool("chat", "llama-8b"), pool("batch", "qwen-7b")]
    report = source(stack).collect(pools)
    assert report.queries == 10  # detection + 7 gauge/counter signals + TTFT and ITL histograms
    assert not report.errors
    chat = report.pools["chat/llama-8b"]
    assert chat.dialect == "vllm"
    assert not chat.missing, chat.missing
    assert chat.queue_depth == 7.0 and chat.running == 11.0  # summed over the two pods, not "other"
    assert chat.kv_usage == pytest.approx(0.5)  # averaged
    # rates: two pods at 500 tok/s; Prometheus extrapolates inside the window, hence the tolerance
    assert chat.gen_tps == pytest.approx(1000.0, rel=0.05)
    assert chat.prompt_tps == pytest.approx(2000.0, rel=0.05)
    assert chat.request_rps == pytest.approx(8.0, rel=0.05)
    assert chat.preemptions_per_min == pytest.approx(60.0, rel=0.05)
    # percentiles are ratios of rates: exact up to float rounding, and equal to our own maths
    expect_p90 = bucket_quantile(0.9, TTFT_FRACTIONS)
    assert expect_p90 == pytest.approx(2.0)
    assert chat.ttft_p90_s == pytest.approx(expect_p90, rel=1e-6)
    assert chat.ttft_p50_s == pytest.approx(bucket_quantile(0.5, TTFT_FRACTIONS), rel=1e-6)
    assert chat.itl_p90_s == pytest.approx(0.05 * expect_p90, rel=1e-6)
    # ages: fresh (scraped every second)
    assert set(chat.age_s) == set(SIGNAL_NAMES)
    assert all(0.0 <= a < 5.0 for a in chat.age_s.values()), chat.age_s
    assert not chat.stale
    batch = report.pools["batch/qwen-7b"]
    assert batch.gen_tps == pytest.approx(250.0, rel=0.05) and batch.queue_depth == 1.0


def test_stale_series_are_flagged_with_their_age(stack: Stack) -> None:
    report = source(stack).collect([pool("dev", "granite-8b")])
    sig = report.pools["dev/granite-8b"]
    assert sig.queue_depth == 3.0  # the value is still reported...
    assert "queue_depth" in sig.stale  # ...but flagged
    assert sig.age_s["queue_depth"] >= 55.0
    # a counter frozen in time has no rate: missing with a reason, never zero
    assert sig.gen_tps is None and sig.missing["gen_tps"].startswith("not enough samples")


def test_absent_pool_and_unexposed_signal_reasons(stack: Stack) -> None:
    s = source(stack, dialect_overrides={"chat/llama-8b": "tgi"})
    report = s.collect([pool("chat", "llama-8b"), pool("chat", "missing-pool")])
    assert report.pools["chat/missing-pool"].missing["queue_depth"].startswith("series absent")
    tgi = report.pools["chat/llama-8b"]
    assert tgi.dialect == "tgi"
    assert tgi.missing["kv_usage"] == "not exposed by tgi metrics"
    assert tgi.missing["queue_depth"] == "series absent"


def test_configured_pool_label(stack: Stack) -> None:
    s = Settings(prometheus_url=stack.prom.url, rate_window=WINDOW, pool_label="pod", scrape_interval_s=1.0)
    report = PrometheusSource(s).collect([pool("chat", "llama-8b-5d8f7c6b9a-x7k2p")])
    sig = report.pools["chat/llama-8b-5d8f7c6b9a-x7k2p"]
    assert sig.queue_depth == 3.0 and sig.kv_usage == pytest.approx(0.4)


def test_malicious_label_value_cannot_break_out(stack: Stack) -> None:
    evil = 'chat"} or vector(1) or up{x=~".*'
    assert stack.prom.query(f'vllm:num_requests_waiting{{namespace=~"{evil}"}} ') != []  # the naive way leaks
    assert stack.prom.query(selector("vllm:num_requests_waiting", [evil])) == []
    assert stack.prom.query(selector("vllm:num_requests_waiting", ["ch.t"])) == []  # '.' is literal
    assert len(stack.prom.query(selector("vllm:num_requests_waiting", ["chat"]))) == 2


def test_promql_error_comes_back_as_prometheus_message(stack: Stack) -> None:
    client = PrometheusConnect(url=stack.prom.url)
    with pytest.raises(Exception) as info:
        client.custom_query("sum(rate(vllm:generation_tokens_total[5s])")
    reason = failure_reason(info.value, 5.0)
    assert reason.startswith("query error: bad_data: ") and "parse error" in reason


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.95, 0.99])
def test_bucket_quantile_equals_prometheus_histogram_quantile(stack: Stack, q: float) -> None:
    sel = 'vllm:time_to_first_token_seconds_bucket{pod="llama-8b-5d8f7c6b9a-x7k2p"}'
    rows = stack.prom.query(f"{sel} @ {int(time.time()) - 1}")
    buckets = [(float(r["metric"]["le"]), float(r["value"][1])) for r in rows]  # type: ignore[index]
    theirs = stack.prom.query(f"histogram_quantile({q}, {sel} @ {int(time.time()) - 1})")
    assert len(theirs) == 1
    assert bucket_quantile(q, buckets) == pytest.approx(float(theirs[0]["value"][1]), rel=1e-12)  # type: ignore[index]


def test_short_hash_pods_are_grouped_and_unseen_pods_reported(stack: Stack) -> None:
    """Pods with a 3- and a 1-character pod-template-hash belong to their pool; a ready pod that no series
    carries is named as missing instead of vanishing."""
    ref = PoolRef(namespace="short", name="tiny-llm")
    two = PoolState(ref=ref, model="m", gpu_type="L4", desired_replicas=2, ready_replicas=2)
    sig = source(stack).collect([two]).pools[ref.key]
    assert sig.queue_depth == 7.0 and sig.running == 3.0  # both pods, whatever their hash length
    assert "pods" not in sig.missing
    three = two.model_copy(update={"desired_replicas": 3, "ready_replicas": 3})
    sig = source(stack).collect([three]).pools[ref.key]
    assert sig.queue_depth == 7.0
    assert sig.missing["pods"].startswith("1 of 3 ready pods have no series in Prometheus")
