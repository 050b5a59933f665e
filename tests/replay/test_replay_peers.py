"""The peers' autoscalers: each rule, worked by hand from its source's thresholds, and a short replay each."""

from __future__ import annotations

import pytest

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.replay.aibrix import Cooldown, KpaConfig, KpaState, in_panic, kpa_target
from mcp_autoscale.replay.dynamo import agg_easy_decision, engine_utilisation
from mcp_autoscale.replay.evaluate import PEERS, STRATEGIES, ReplayConfig, run_named, run_strategy
from mcp_autoscale.replay.hpa import Hpa, hpa_raw_recommendation
from mcp_autoscale.replay.shapes import build_trace
from mcp_autoscale.replay.trace import Trace
from mcp_autoscale.replay.wva import ReplicaMetrics, analyse, saturation_target

# ---------------------------------------------------------------- WVA (internal/saturation/analyzer.go)


def test_wva_saturated_replicas_are_left_out_of_the_spares() -> None:
    # KV 0.80 is saturated (>=), queue 5 is saturated (>=): only the third replica counts
    a = analyse([ReplicaMetrics(0.80, 0), ReplicaMetrics(0.2, 5), ReplicaMetrics(0.5, 1)])
    assert a.non_saturated == 1
    assert a.avg_spare_kv == pytest.approx(0.30) and a.avg_spare_queue == pytest.approx(4.0)
    assert not a.scale_up and not a.scale_down_safe  # one non-saturated replica: never scale down


def test_wva_scale_up_when_spare_kv_below_0_10_or_spare_queue_below_3() -> None:
    # spare KV = 0.80 - 0.75 = 0.05 < 0.10
    assert analyse([ReplicaMetrics(0.75, 0)] * 3).scale_up
    # spare queue = 5 - 3 = 2 < 3
    assert analyse([ReplicaMetrics(0.1, 3)] * 3).scale_up
    # spare KV 0.10 and spare queue 3 are not below the triggers
    assert not analyse([ReplicaMetrics(0.70, 2)] * 3).scale_up
    # every replica saturated: no spare at all -> scale up
    assert analyse([ReplicaMetrics(0.95, 9)] * 4).scale_up


def test_wva_scale_down_only_if_n_minus_1_keeps_both_spares() -> None:
    # 4 replicas at KV 0.5, queue 1: load x4/3 -> KV 0.667 (spare 0.133 >= 0.1), queue 1.33 (spare 3.67)
    assert analyse([ReplicaMetrics(0.5, 1)] * 4).scale_down_safe
    # 4 at KV 0.55: x4/3 -> 0.733, spare 0.067 < 0.1 -> unsafe
    assert not analyse([ReplicaMetrics(0.55, 0)] * 4).scale_down_safe
    # 2 at queue 1.2: x2 -> 2.4, spare 2.6 < 3 -> unsafe
    assert not analyse([ReplicaMetrics(0.1, 1.2)] * 2).scale_down_safe


def test_wva_targets_block_in_transition_and_with_pending_pods() -> None:
    up = analyse([ReplicaMetrics(0.79, 0)] * 3)
    down = analyse([ReplicaMetrics(0.1, 0)] * 3)
    # stable: +1 on the replicas reporting metrics; -1 when safe
    assert saturation_target(up, current=3, ready=3, reporting=3, desired=3) == 4
    assert saturation_target(down, current=3, ready=3, reporting=3, desired=0) == 2
    # a previous target not reached yet: keep it, decide nothing
    assert saturation_target(up, current=3, ready=3, reporting=3, desired=4) == 4
    # a pod exists that does not report metrics (pending): hold at current
    assert saturation_target(up, current=4, ready=3, reporting=3, desired=4) == 4
    # never below the floor
    assert saturation_target(down, current=2, ready=2, reporting=2, desired=2, floor=2) == 2


# ---------------------------------------------------------------- the HPA in front of WVA


def test_hpa_tolerance_and_average_value_arithmetic() -> None:
    assert hpa_raw_recommendation(11.0, 1.0, 10) == 11  # ratio 1.1: just outside the 10% (float)
    assert hpa_raw_recommendation(12.0, 1.0, 11) == 11  # ratio 1.09: inside the tolerance
    assert hpa_raw_recommendation(3.0, 1.0, 2) == 3


def test_hpa_scale_up_waits_for_the_240_s_window() -> None:
    hpa = Hpa(min_replicas=2, max_replicas=24)
    assert hpa.recommend(0.0, 2.0, 2) == 2
    # the metric asks for 3 from t=15: the window's lowest recommendation is still 2 until t=0 leaves it
    assert hpa.recommend(15.0, 3.0, 2) == 2
    assert hpa.recommend(240.0, 3.0, 2) == 3  # t=0 is out of (0, 240]
    # scale-down: the highest of the window holds it
    hpa2 = Hpa(min_replicas=2, max_replicas=24)
    assert hpa2.recommend(0.0, 8.0, 8) == 8
    assert hpa2.recommend(15.0, 5.0, 8) == 8
    assert hpa2.recommend(240.0, 5.0, 8) == 5


def test_hpa_rate_policy_10_pods_per_150_s() -> None:
    hpa = Hpa(min_replicas=2, max_replicas=50, up_window_s=0.0)
    assert hpa.recommend(0.0, 30.0, 2) == 12  # +10 at most
    assert hpa.recommend(60.0, 30.0, 12) == 12  # still within the 150 s period
    assert hpa.recommend(150.0, 30.0, 12) == 22


# ---------------------------------------------------------------- Dynamo (core/load_scaling.py)


def test_dynamo_easy_agg_thresholds() -> None:
    # utilisation = (sched + queued decode KV + queued prefill) / max KV
    assert engine_utilisation(60_000, 0, 30_000, 85_000) == pytest.approx(90_000 / 85_000)
    assert agg_easy_decision([0.5, 1.01], 4) == 5  # any engine above 1.0 -> +1
    assert agg_easy_decision([0.59, 0.2], 4) == 3  # all below 0.6 -> -1
    assert agg_easy_decision([0.59, 0.6], 4) is None  # 0.6 is not below 0.6
    assert agg_easy_decision([1.0, 1.0], 4) is None  # 1.0 is not above 1.0
    assert agg_easy_decision([0.1], 1) is None  # never below one worker
    assert agg_easy_decision([0.1, 0.1], 2, min_endpoint=2) == 2


# ---------------------------------------------------------------- AIBrix KPA (algorithm/kpa.go)


def test_aibrix_panic_when_panic_value_exceeds_twice_the_stable() -> None:
    assert not in_panic(0.3, 0.6)  # exactly 2x: not above
    assert in_panic(0.3, 0.61)
    assert in_panic(0.0, 0.1)  # no stable value: panic


def test_aibrix_dead_band_and_step_bounds() -> None:
    cfg = KpaConfig()  # target 0.5, +/-10%
    # per-pod mean 0.54 is inside [0.45, 0.55]: keep 4
    assert kpa_target(0.54, 0.54, 4, KpaState(), cfg) == 4
    # 0.6 on 4 pods -> ceil(4 x 0.6 / 0.5) = ceil(4.8) = 5
    assert kpa_target(0.6, 0.6, 4, KpaState(), cfg) == 5
    # 1.0 on 4 pods wants 8: within the 2x bound
    assert kpa_target(1.0, 1.0, 4, KpaState(), cfg) == 8
    # scale-up is bounded by ceil(2 N): 3 pods at 1.0 with target 0.1 would want 30
    assert kpa_target(1.0, 1.0, 3, KpaState(), KpaConfig(target=0.1)) == 6
    # scale-down is bounded by floor(N / 2): 10 pods at 0.05 want 1, get 5
    assert kpa_target(0.05, 0.05, 10, KpaState(), cfg) == 5


def test_aibrix_panic_mode_never_scales_down() -> None:
    st = KpaState()
    # panic: 0.9 over 60 s vs 0.3 over 180 s; 4 pods -> panic count ceil(7.2) = 8, stable ceil(2.4) = 3
    assert kpa_target(0.3, 0.9, 4, st, KpaConfig()) == 8 and st.in_panic and st.max_panic_pods == 8
    # still panicking with a lower panic count: holds the most it ordered
    assert kpa_target(0.1, 0.25, 8, st, KpaConfig()) == 8
    # out of panic: the stable count again
    assert kpa_target(0.3, 0.3, 8, st, KpaConfig()) == 5 and not st.in_panic


def test_aibrix_cooldown_takes_the_window_s_lowest_on_scale_down() -> None:
    cd = Cooldown(down_s=300.0)
    assert cd.apply(0.0, 6, 8) == 6
    assert cd.apply(100.0, 7, 8) == 6  # down: the lowest of the last 300 s
    assert cd.apply(200.0, 12, 8) == 12  # up: at once (0 s scale-up window)
    assert cd.apply(320.0, 7, 12) == 7  # t=0 left the window; 7 and 7 remain below 12


# ---------------------------------------------------------------- replays


def test_peers_are_strategies_and_replay_causally() -> None:
    assert set(PEERS) == {"wva", "dynamo", "aibrix"} and set(PEERS) <= set(STRATEGIES)
    # 20 minutes of a x2-x5 step surge: every peer must add replicas for it, through the twin's delays
    trace = build_trace("step", 3, 1200, base_rps=2.0, hold_min=(6.0, 8.0), factors=(5.0, 5.0))
    for name in PEERS:
        r = run_named(name, trace, ReplayConfig(seed=3))
        assert r.name == name and r.minutes == 20
        assert max(r.series.desired) > min(r.series.desired), f"{name} never scaled"
        assert r.outer_actions > 0 and r.gpu_hours > 0


def test_peers_decide_only_from_the_past() -> None:
    """Change the trace after 10 minutes: no peer's action before then may change."""
    full = build_trace("step", 4, 1500, base_rps=2.0, hold_min=(5.0, 6.0), factors=(5.0, 5.0))
    cut = full.t_s < 600.0
    past = Trace(full.start, full.t_s[cut], full.context[cut], full.generated[cut], "cut")
    cat = load_catalogue()
    for name, cls in PEERS.items():
        logs = []
        for trace in (full, past):
            st = cls(min_replicas=2)
            run_strategy(trace, st, ReplayConfig(seed=4), cat)
            logs.append([(t, w) for t, w in zip(st.actions.at_s, st.actions.what, strict=True) if t < 600.0])
        assert logs[0] == logs[1], name
        assert logs[0], f"{name} did nothing in the first 10 minutes of a x5 step"
