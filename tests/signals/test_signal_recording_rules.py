"""Recording rules in a REAL Prometheus: the generated rules load and evaluate cleanly, and a snapshot read
from the recorded series agrees with the raw-query snapshot.

One Prometheus scrapes the twin (wall clock, 10x speed) and synthetic vLLM pods with exactly linear counters
(namespace ``rr``), loads ``rules.render`` for a 10 s window and evaluates it every second.

Tolerances, raw vs recorded (two snapshots taken one after the other, the recorded one computed at the last
rule evaluation, up to 1 s = 10 twin seconds earlier): gauges are raw queries in both modes, so equal to
10 % (+1) (a scrape may land between the two snapshots); rates within 15 % (+0.5/s); TTFT p50/p90 and
ITL p90 in the same or an adjacent histogram bucket (a value on a bucket bound may round to either side). On the synthetic pods (rates constant in time) rates agree within 5 % and
percentiles to 1e-6. Ages: the recorded age is at least the raw age and at most one rule evaluation interval
plus one scrape interval (+0.5 s slack) above it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
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
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolSignals, PoolState, SignalReport
from mcp_autoscale.signals import PrometheusSource
from mcp_autoscale.signals.exposition import parse
from mcp_autoscale.signals.histogram import bucket_quantile
from mcp_autoscale.signals.rules import render
from mcp_autoscale.sim import Twin, serve_metrics

pytestmark = pytest.mark.integration

WINDOW_S = 10.0
WINDOW = f"{WINDOW_S:g}s"
SPEED = 10.0
EVAL_S = 1.0
SCRAPE_S = 1.0
SYNTH = PoolRef(namespace="rr", name="synth-llm")
GAUGES = ("queue_depth", "running", "kv_usage")
RATES = ("prompt_tps", "gen_tps", "request_rps", "preemptions_per_min")


@dataclass
class RulesStack:
    twin: Twin
    prom: RealPrometheus
    refs: list[PoolRef]


def pool(ref: PoolRef) -> PoolState:
    # one ready pod: every pool here has at least one, so none is reported with pods missing
    return PoolState(ref=ref, model="m", gpu_type="L4", desired_replicas=1, ready_replicas=1)


def settings(prom: RealPrometheus, recorded: bool, window: str = WINDOW) -> Settings:
    return Settings(
        prometheus_url=prom.url,
        prometheus_timeout_s=5.0,
        rate_window=window,
        scrape_interval_s=SCRAPE_S,
        stale_after_intervals=3.0,
        prometheus_recording_rules=recorded,
    )


def collect(prom: RealPrometheus, refs: list[PoolRef], recorded: bool) -> SignalReport:
    return PrometheusSource(settings(prom, recorded)).collect([pool(r) for r in refs])


@pytest.fixture(scope="module")
def rules_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RulesStack]:
    twin = Twin("default", seed=7, clock="wall", speed=SPEED)
    metrics = serve_metrics(twin)
    synth = [
        SyntheticVllmPod("rr", "synth-llm-5d8f7c6b9a-x7k2p", queue=3, running=5, kv=0.4),
        SyntheticVllmPod("rr", "synth-llm-5d8f7c6b9a-q9z4m", queue=4, running=6, kv=0.6),
    ]
    tmp: Path = tmp_path_factory.mktemp("prom-rules")
    with serving() as server:
        server.set("/metrics", render_pods(synth))
        targets = [metrics.url.removeprefix("http://"), server.url.removeprefix("http://")]
        prom = start_prometheus(tmp, targets, rules=render(WINDOW, interval=f"{EVAL_S:g}s"))
        refs = [*twin.pools(), SYNTH]
        try:

            def complete() -> bool:
                # a full rate window of scrapes and of rule evaluations, for every pool, both ways: every
                # signal present except what the pool has no data for (a prefill pool has no ITL), and
                # the same missing set both ways
                raw, rec = (collect(prom, refs, recorded) for recorded in (False, True))
                return all(
                    raw.pools[r.key].missing.keys()
                    == rec.pools[r.key].missing.keys()
                    <= {"itl_p50_s", "itl_p90_s"}
                    for r in refs
                )

            def window_full() -> bool:
                q = f"min(count_over_time(vllm:num_requests_waiting[{WINDOW}]))"
                rows = prom.query(q)
                return bool(rows) and float(rows[0]["value"][1]) >= WINDOW_S  # type: ignore[index]

            poll(window_full, 60.0, f"{WINDOW_S:g} scrapes of every pod in Prometheus")
            poll(complete, 30.0, "complete raw and recorded snapshots of the twin and synthetic pods", 0.5)
            yield RulesStack(twin=twin, prom=prom, refs=refs)
        finally:
            stop_prometheus(prom)
            metrics.close()


def test_every_generated_rule_evaluates_cleanly(rules_stack: RulesStack) -> None:
    def evaluated() -> list[dict[str, object]]:
        groups = httpx.get(f"{rules_stack.prom.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert [g["name"] for g in groups] == ["mcp-autoscale"]
        return list(groups[0]["rules"])

    poll(lambda: all(r["health"] != "unknown" for r in evaluated()), 10.0, "a first evaluation of every rule")
    rules = evaluated()
    assert len(rules) >= 40  # every dialect's histograms and counters, each with its timestamp rule
    bad = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not bad, bad


def test_recorded_snapshot_agrees_with_raw_snapshot(rules_stack: RulesStack) -> None:
    refs = rules_stack.refs
    raw = collect(rules_stack.prom, refs, recorded=False)
    rec = collect(rules_stack.prom, refs, recorded=True)
    assert raw.queries == rec.queries == 10
    assert not raw.errors and not rec.errors
    for ref in refs:
        r, g = raw.pools[ref.key], rec.pools[ref.key]
        assert g.dialect == r.dialect == "vllm"  # detection still reads the raw markers
        assert g.missing == r.missing  # same reasons (a prefill pool: "no observations in the 10s window")
        assert not g.stale, g.age_s
        assert all(g.value(n) is not None for n in (*GAUGES, *RATES, "ttft_p90_s")), g.missing
        for name in GAUGES:
            assert close(g, r, name, 0.1, 1.0)
        for name in RATES:
            assert close(g, r, name, 0.15, 0.5)
        for name in ("ttft_p50_s", "ttft_p90_s", "itl_p90_s"):
            if name in r.missing:
                continue
            hist = (
                "vllm:time_to_first_token_seconds"
                if name.startswith("ttft")
                else "vllm:inter_token_latency_seconds"
            )
            bounds = bucket_bounds(rules_stack.twin, hist) if ref != SYNTH else []
            gv, rv = g.value(name), r.value(name)
            assert gv is not None and rv is not None
            if ref == SYNTH:
                assert gv == pytest.approx(rv, rel=1e-6), name
            else:
                steps = abs(bisect.bisect_left(bounds, gv) - bisect.bisect_left(bounds, rv))
                assert steps <= 1, (ref, name, gv, rv)
        assert set(g.age_s) == set(r.age_s) == set(SIGNAL_NAMES) - set(r.missing)
        for name in g.age_s:
            extra = g.age_s[name] - r.age_s[name]
            assert -0.05 <= extra <= EVAL_S + SCRAPE_S + 0.5, (ref, name, g.age_s[name], r.age_s[name])


def test_recorded_synthetic_values_are_exact(rules_stack: RulesStack) -> None:
    sig = collect(rules_stack.prom, [SYNTH], recorded=True).pools[SYNTH.key]
    assert sig.gen_tps == pytest.approx(1000.0, rel=0.05) and sig.request_rps == pytest.approx(8.0, rel=0.05)
    assert sig.preemptions_per_min == pytest.approx(60.0, rel=0.05)  # the spec's scale applied on read
    assert sig.ttft_p90_s == pytest.approx(bucket_quantile(0.9, TTFT_FRACTIONS), rel=1e-6)
    assert sig.itl_p90_s == pytest.approx(0.05 * bucket_quantile(0.9, TTFT_FRACTIONS), rel=1e-6)
    assert sig.queue_depth == 7.0 and sig.kv_usage == pytest.approx(0.5)


def test_query_count_is_constant_with_recording_rules(rules_stack: RulesStack) -> None:
    one = collect(rules_stack.prom, rules_stack.refs[:1], recorded=True)
    every = collect(rules_stack.prom, rules_stack.refs, recorded=True)
    assert one.queries == every.queries == 10


def test_absent_recording_rule_is_a_named_missing_reason(rules_stack: RulesStack) -> None:
    # rules were loaded for a 10 s window only: a 7 s window reads series no rule records
    s = settings(rules_stack.prom, recorded=True, window="7s")
    sig = PrometheusSource(s).collect([pool(SYNTH)]).pools[SYNTH.key]
    assert sig.dialect == "vllm"
    assert sig.queue_depth == 7.0  # gauges are raw queries either way
    reason = sig.missing["ttft_p90_s"]
    # the newest-sample rule (window-independent) has data, so the reason names both possible causes
    assert reason == (
        "not enough samples in the 7s rate window, or no recording rule writes "
        "namespace_pool_le:vllm:time_to_first_token_seconds_bucket:rate7s "
        "(`mcp-autoscale signals rules --window 7s` prints the rules)"
    )
    assert "namespace_pool:vllm:generation_tokens:rate7s" in sig.missing["gen_tps"]
    assert sig.ttft_p90_s is None and sig.gen_tps is None  # missing, never zero
    # exactly the signals read from recorded series (histograms and counters) are missing
    assert {n for n in SIGNAL_NAMES if n not in GAUGES} == set(sig.missing)


def close(got: PoolSignals, ref: PoolSignals, name: str, rel: float, abs_: float) -> bool:
    g, r = got.value(name), ref.value(name)
    assert g is not None and r is not None, name
    assert abs(g - r) <= rel * abs(r) + abs_, f"{name}: recorded {g:.4g} vs raw {r:.4g}"
    return True


def bucket_bounds(twin: Twin, name: str) -> list[float]:
    return sorted({float(s.labels["le"]) for s in parse(twin.exposition()) if s.name == f"{name}_bucket"})


def test_rules_loaded_for_another_pool_label_leave_nothing_recorded(rules_stack: RulesStack) -> None:
    # the loaded rules derive the pool from the pod name; a configured pool label reads other names
    s = settings(rules_stack.prom, recorded=True).model_copy(update={"pool_label": "pod"})
    pod = PoolRef(namespace="rr", name="synth-llm-5d8f7c6b9a-x7k2p")
    sig = PrometheusSource(s).collect([pool(pod)]).pools[pod.key]
    assert sig.dialect == "vllm" and sig.queue_depth == 3.0
    assert sig.missing["request_rps"] == (
        "series absent: no recorded series for this pool, or no recording rule writes "
        "namespace_pod:vllm:request_success:rate10s "
        "(`mcp-autoscale signals rules --window 10s --pool-label pod` prints the rules)"
    )
