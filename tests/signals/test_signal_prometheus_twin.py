"""A REAL Prometheus scrapes the twin's /metrics; the Prometheus snapshot must agree with the twin's truth.

The twin runs on the wall clock at 10x speed, so Prometheus's 1 s scrapes are 10 sim-seconds apart and a
6 s rate window covers the 60 sim-seconds over which ``Twin.ground_truth`` measures rates and quantiles.
Rates read from Prometheus are per wall second, hence divided by the speed.

Tolerances: KV usage within 0.1 absolute, queue and running within 30 % (+3 requests) because the gauges
move between the scrape and the ground-truth read; token and request rates within 15 %; TTFT/ITL p90
inside the histogram bucket that holds the true p90.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from signals_helpers import RealPrometheus, poll, start_prometheus, stop_prometheus

from mcp_autoscale.config import Settings
from mcp_autoscale.models import PoolRef, PoolState
from mcp_autoscale.signals import PrometheusSource
from mcp_autoscale.signals.exposition import parse
from mcp_autoscale.sim import Twin, serve_metrics

pytestmark = pytest.mark.integration

SPEED = 10.0
REFS = [PoolRef(namespace="chat", name="llama-8b"), PoolRef(namespace="chat", name="llama-70b-decode")]


@pytest.fixture(scope="module")
def twin_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Twin, RealPrometheus]]:
    twin = Twin("default", seed=7, clock="wall", speed=SPEED)
    server = serve_metrics(twin)
    tmp: Path = tmp_path_factory.mktemp("prom-twin")
    prom = start_prometheus(tmp, [server.url.removeprefix("http://")])
    try:

        def enough() -> bool:
            rows = prom.query('min(count_over_time(vllm:num_requests_waiting{namespace="chat"}[6s]))')
            return bool(rows) and float(rows[0]["value"][1]) >= 6  # type: ignore[index]

        poll(enough, 40.0, "6 scrapes of the twin in Prometheus")
        yield twin, prom
    finally:
        stop_prometheus(prom)
        server.close()


def bucket_bounds(twin: Twin, name: str) -> list[float]:
    return sorted({float(s.labels["le"]) for s in parse(twin.exposition()) if s.name == f"{name}_bucket"})


def same_bucket(bounds: list[float], value: float, truth: float) -> bool:
    return bisect.bisect_left(bounds, value) == bisect.bisect_left(bounds, truth)


@pytest.mark.parametrize("ref", REFS, ids=str)
def test_prometheus_snapshot_agrees_with_twin_ground_truth(
    twin_stack: tuple[Twin, RealPrometheus], ref: PoolRef
) -> None:
    twin, prom = twin_stack
    settings = Settings(
        prometheus_url=prom.url, rate_window="6s", scrape_interval_s=1.0, stale_after_intervals=3.0
    )
    pool = PoolState(ref=ref, model="m", gpu_type="L4", desired_replicas=4, ready_replicas=4)
    t0 = time.monotonic()
    report = PrometheusSource(settings).collect([pool])
    truth = twin.ground_truth(ref)
    assert time.monotonic() - t0 < 5.0
    got = report.pools[ref.key]
    assert got.dialect == "vllm"
    assert not report.errors
    for name in ("queue_depth", "running", "kv_usage", "gen_tps", "request_rps", "ttft_p90_s", "itl_p90_s"):
        assert got.value(name) is not None, got.missing
        assert name not in got.stale, got.age_s

    def close(name: str, rel: float, abs_: float = 0.0, scale: float = 1.0) -> None:
        g, t = got.value(name), truth.value(name)
        assert g is not None and t is not None
        assert abs(g / scale - t) <= rel * abs(t) + abs_, (
            f"{name}: prometheus {g / scale:.4g} vs truth {t:.4g}"
        )

    close("kv_usage", 0.0, 0.1)
    close("queue_depth", 0.3, 3.0)
    close("running", 0.3, 3.0)
    close("gen_tps", 0.15, scale=SPEED)
    close("prompt_tps", 0.15, 1.0, scale=SPEED)
    close("request_rps", 0.15, scale=SPEED)

    hists = (
        ("ttft_p90_s", "vllm:time_to_first_token_seconds"),
        ("itl_p90_s", "vllm:inter_token_latency_seconds"),
    )
    for name, hist in hists:
        g, t = got.value(name), truth.value(name)
        assert g is not None and t is not None
        assert same_bucket(bucket_bounds(twin, hist), g, t), f"{name}: {g} vs truth {t}"
