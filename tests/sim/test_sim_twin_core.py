"""The twin's serving behaviour: determinism, scenarios, scaling dynamics, signals, explicit arrivals."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest

from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import SIGNAL_NAMES, AutoscalerPatch, PoolRef, PoolState
from mcp_autoscale.sim import SCENARIOS, ArrivalStep, TraceRequest, TraceSchedule, Twin, TwinStep

LLAMA8B = PoolRef(namespace="chat", name="llama-8b")
DECODE70 = PoolRef(namespace="chat", name="llama-70b-decode")
PREFILL70 = PoolRef(namespace="chat", name="llama-70b-prefill")
QWEN = PoolRef(namespace="batch", name="qwen-7b")
GRANITE = PoolRef(namespace="dev", name="granite-8b")


def test_scenarios_are_the_briefed_names() -> None:
    briefed = {"default", "ttft-breach", "kv-pressure", "idle", "burst"}
    assert set(SCENARIOS) == briefed | {"fleet-10", "fleet-100", "fleet-1000"}
    with pytest.raises(InvalidInput, match="known: "):
        Twin("nope")


def test_default_fleet_matches_the_brief() -> None:
    tw = Twin()
    pools = {p.ref.key: p for p in tw.backend.list_pools()}
    assert list(pools) == [
        "chat/llama-8b",
        "chat/llama-70b-prefill",
        "chat/llama-70b-decode",
        "batch/qwen-7b",
        "dev/granite-8b",
    ]
    assert [pools[k].desired_replicas for k in pools] == [4, 2, 2, 2, 1]
    l8 = pools["chat/llama-8b"]
    assert (l8.gpu_type, l8.gpus_per_replica, l8.node_pool, l8.instance_type) == (
        "L4",
        1,
        "gpu-l4",
        "g6.xlarge",
    )
    assert l8.autoscaler is not None and l8.autoscaler.kind.value == "ScaledObject"
    assert (l8.autoscaler.min_replicas, l8.autoscaler.max_replicas) == (2, 16)
    assert l8.autoscaler.managed_hpa == "keda-hpa-llama-8b"
    assert pools["chat/llama-70b-prefill"].autoscaler.kind.value == "HorizontalPodAutoscaler"  # type: ignore[union-attr]
    assert pools["batch/qwen-7b"].autoscaler is None and pools["batch/qwen-7b"].gpu_type == "H100"
    assert pools["dev/granite-8b"].capacity_type == "spot"
    assert all(p.cold_start_s and p.cold_start_s > 30 for p in pools.values())
    nps = {n.name: n for n in tw.backend.list_node_pools()}
    h100 = nps["gpu-h100"]
    assert (h100.gpu_limit, h100.gpus_per_node, h100.nodes_ready, h100.gpus_allocated) == (32, 8, 3, 18)
    assert (nps["gpu-l4"].gpu_limit, nps["gpu-a10g"].gpu_limit) == (24, 8)


def test_same_seed_is_identical_and_a_different_seed_differs() -> None:
    a, b, c = Twin(seed=11), Twin(seed=11), Twin(seed=12)
    for tw in (a, b, c):
        tw.advance(300)
    assert a.exposition() == b.exposition()
    assert a.ground_truth(LLAMA8B) == b.ground_truth(LLAMA8B)
    assert a.exposition() != c.exposition()
    assert a.ground_truth(LLAMA8B) != c.ground_truth(LLAMA8B)


def test_default_is_healthy_and_ttft_breach_breaches_on_llama_8b() -> None:
    healthy = Twin("default").ground_truth(LLAMA8B)
    assert healthy.ttft_p90_s is not None and healthy.ttft_p90_s < 2.0
    assert healthy.itl_p90_s is not None and healthy.itl_p90_s < 0.1
    breach = Twin("ttft-breach").ground_truth(LLAMA8B)
    assert breach.ttft_p90_s is not None and breach.ttft_p90_s > 2.0
    assert breach.queue_depth is not None and breach.queue_depth > 50


def test_kv_pressure_scenario_fills_kv_and_preempts() -> None:
    tw = Twin("kv-pressure")
    sig = tw.ground_truth(DECODE70)
    assert sig.kv_usage is not None and sig.kv_usage > 0.9
    assert sig.preemptions_per_min is not None and sig.preemptions_per_min > 0


def test_too_few_replicas_means_kv_pressure_and_preemptions() -> None:
    tw = Twin("default", seed=3)
    tw.backend.patch_autoscaler(DECODE70, _patch(max_replicas=1, min_replicas=1), dry_run=False)
    long_chats = ArrivalStep(rps=4.0, prompt_tokens=6000.0, output_tokens=600.0)
    tw.set_arrivals(PREFILL70, lambda _at, _dt: long_chats)
    tw.advance(600)
    sig = tw.ground_truth(DECODE70)
    assert tw.backend.get_pool(DECODE70).ready_replicas == 1
    assert sig.kv_usage is not None and sig.kv_usage > 0.9
    assert sig.preemptions_per_min is not None and sig.preemptions_per_min > 0


def test_scale_up_serves_only_after_the_cold_start() -> None:
    tw = Twin("default", seed=5)
    # 2 replicas of qwen cannot keep up with 100k prompt tokens/s; 6 can
    tw.set_arrivals(QWEN, lambda _at, _dt: ArrivalStep(rps=25.0, prompt_tokens=4000.0, output_tokens=50.0))
    tw.advance(120)
    before = tw.ground_truth(QWEN)
    assert before.queue_depth is not None and before.queue_depth > 100
    changes = tw.backend.scale_deployment(QWEN, 6, dry_run=False)
    assert [(c.field, c.before, c.after) for c in changes] == [("spec.replicas", 2, 6)]
    tw.advance(1)
    state = tw.backend.get_pool(QWEN)
    assert (state.desired_replicas, state.ready_replicas, state.starting_replicas) == (6, 2, 4)
    tw.advance(20)  # shorter than the minimum cold start (cached pull 0 + weights 8 + warm-up 20 s)
    mid = tw.ground_truth(QWEN)
    assert tw.backend.get_pool(QWEN).ready_replicas == 2
    assert mid.queue_depth is not None and mid.queue_depth >= before.queue_depth
    tw.advance(400)
    after = tw.ground_truth(QWEN)
    assert tw.backend.get_pool(QWEN).ready_replicas == 6
    assert after.queue_depth is not None and after.queue_depth < before.queue_depth / 10
    assert after.ttft_p90_s is not None and before.ttft_p90_s is not None
    assert after.ttft_p90_s < before.ttft_p90_s


def test_trace_requests_are_served_exactly_and_steps_are_recorded() -> None:
    tw = Twin("idle", seed=2)
    tw.set_load_factor(GRANITE, 0.0)
    tw.advance(600)  # drain what the pre-roll left running
    fed = {"done": False}

    def schedule(_at: datetime, _dt: float) -> list[TraceRequest]:
        if fed["done"]:
            return []
        fed["done"] = True
        return [TraceRequest(0.1 * i, 500, 20) for i in range(10)]

    tw.set_arrivals(GRANITE, schedule)
    steps: list[TwinStep] = []
    remove = tw.on_step(steps.append)
    tw.advance(120)
    remove()
    tw.advance(10)
    assert len(steps) == 120
    g = [s.pools["dev/granite-8b"] for s in steps]
    assert sum(x.finished for x in g) == 10
    assert sum(len(x.ttft_samples) for x in g) == 10
    assert all(x.gpus == 1 and x.ready == 1 for x in g)
    assert steps[1].t_s - steps[0].t_s == pytest.approx(1.0)
    assert steps[0].node_gpus["gpu-h100"] == 24


def test_signal_source_reports_ground_truth_and_missing_pools() -> None:
    tw = Twin()
    pools = [*tw.backend.list_pools(), _fake_state("ghost", "nothing")]
    report = tw.signals.collect(pools)
    assert report.source == "sim" and report.queries == 0 and report.errors == []
    assert report.collected_at == tw.now
    s = report.pools["chat/llama-8b"]
    assert s.dialect == "vllm" and s == tw.ground_truth(LLAMA8B)
    assert s.age_s and all(v == 0.0 for v in s.age_s.values())
    ghost = report.pools["ghost/nothing"]
    assert ghost.ttft_p90_s is None and set(ghost.missing) == set(SIGNAL_NAMES)


def test_unknown_pool_raises_not_found_listing_known_pools() -> None:
    tw = Twin()
    with pytest.raises(NotFound, match="chat/llama-8b"):
        tw.backend.get_pool(PoolRef(namespace="chat", name="gpt-5"))
    with pytest.raises(NotFound):
        tw.set_load_factor(PoolRef(namespace="chat", name="gpt-5"), 2.0)
    with pytest.raises(InvalidInput):
        tw.set_arrivals(DECODE70, lambda _a, _d: ArrivalStep(rps=1.0))


def test_wall_clock_catches_up_when_read() -> None:
    tw = Twin(clock="wall", speed=200.0)
    start = tw.now
    deadline = time.monotonic() + 10
    while tw.now == start and time.monotonic() < deadline:
        tw.sync()
    assert tw.now > start
    manual = Twin()
    t0 = manual.now
    manual.sync()
    assert manual.now == t0


def _patch(**kw: int) -> AutoscalerPatch:
    return AutoscalerPatch.model_validate(kw)


def _fake_state(ns: str, name: str) -> PoolState:
    return PoolState(
        ref=PoolRef(namespace=ns, name=name),
        model="m",
        gpu_type="L4",
        desired_replicas=1,
        ready_replicas=1,
    )


def test_trace_schedule_delivers_every_row_once() -> None:
    tw = Twin("idle", seed=2)
    tw.set_load_factor(GRANITE, 0.0)
    tw.advance(600)
    t0 = datetime(2023, 11, 16, 18, 15)
    rows = [(t0 + timedelta(seconds=0.7 * i), 300 + i, 10 + i % 7) for i in range(40)]
    sched = TraceSchedule(reversed(rows), align_to=tw.now, speedup=2.0)
    assert len(sched) == 40
    tw.set_arrivals(GRANITE, sched)
    finished = []
    tw.on_step(lambda s: finished.append(s.pools["dev/granite-8b"].finished))
    tw.advance(7)  # 40 rows x 0.7 s / speedup 2 = 14 s of trace: half delivered
    assert sched.delivered == 20
    tw.advance(300)
    assert sched.delivered == 40 and sum(finished) == 40
    with pytest.raises(InvalidInput):
        TraceSchedule([])


def test_concurrent_readers_see_a_consistent_twin() -> None:
    tw = Twin(clock="wall", speed=50.0)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                tw.exposition()
                tw.signals.collect(tw.backend.list_pools())
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        tw.backend.scale_deployment(QWEN, 3, dry_run=False)
        tw.ground_truth(LLAMA8B)
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
