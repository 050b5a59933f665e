"""Pure snapshot assembly: SLO judgement per role, missing data never counted as healthy, cost totals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mcp_autoscale.models import (
    PoolRef,
    PoolSignals,
    PoolState,
    Role,
    SignalReport,
    SloStatus,
    SloTargets,
)
from mcp_autoscale.snapshot import build_snapshot, judge_slo

T = SloTargets(ttft_p90_s=2.0, itl_p90_s=0.1)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("signals", "role", "status", "n_breaches"),
    [
        (PoolSignals(ttft_p90_s=1.0, itl_p90_s=0.05), Role.UNIFIED, SloStatus.OK, 0),
        (PoolSignals(ttft_p90_s=3.1, itl_p90_s=0.05), Role.UNIFIED, SloStatus.BREACH, 1),
        (PoolSignals(ttft_p90_s=3.1, itl_p90_s=0.2), Role.UNIFIED, SloStatus.BREACH, 2),
        (PoolSignals(ttft_p90_s=1.0), Role.UNIFIED, SloStatus.UNKNOWN, 0),
        (PoolSignals(ttft_p90_s=3.0), Role.UNIFIED, SloStatus.BREACH, 1),
        (
            PoolSignals(ttft_p90_s=1.0, stale=["ttft_p90_s"], itl_p90_s=0.05),
            Role.UNIFIED,
            SloStatus.UNKNOWN,
            0,
        ),
        (PoolSignals(ttft_p90_s=1.0), Role.PREFILL, SloStatus.OK, 0),
        (PoolSignals(ttft_p90_s=9.0, itl_p90_s=0.05), Role.DECODE, SloStatus.BREACH, 1),
        (PoolSignals(itl_p90_s=0.05), Role.DECODE, SloStatus.OK, 0),
        (PoolSignals(ttft_p90_s=3.0), Role.PREFILL, SloStatus.BREACH, 1),
        (PoolSignals(itl_p90_s=0.3), Role.DECODE, SloStatus.BREACH, 1),
        (PoolSignals(), Role.PREFILL, SloStatus.UNKNOWN, 0),
        # idle, proven by fresh zero counts: no latency exists to miss a target (issue 19)
        (PoolSignals(request_rps=0.0, queue_depth=0.0, running=0.0), Role.UNIFIED, SloStatus.OK, 0),
        # requests waiting but none finishing: not idle, blind on latency -> never ok
        (PoolSignals(request_rps=0.0, queue_depth=4.0, running=0.0), Role.UNIFIED, SloStatus.UNKNOWN, 0),
        # a stale or missing count proves nothing
        (
            PoolSignals(request_rps=0.0, queue_depth=0.0, running=0.0, stale=["queue_depth"]),
            Role.UNIFIED,
            SloStatus.UNKNOWN,
            0,
        ),
        (PoolSignals(request_rps=0.0, queue_depth=0.0), Role.UNIFIED, SloStatus.UNKNOWN, 0),
    ],
)
def test_judge_slo(signals: PoolSignals, role: Role, status: SloStatus, n_breaches: int) -> None:
    got, breaches = judge_slo(signals, T, role)
    assert got is status
    assert len(breaches) == n_breaches


def test_breach_text_names_signal_value_and_target() -> None:
    _, breaches = judge_slo(PoolSignals(ttft_p90_s=3.14159, itl_p90_s=0.01), T)
    assert breaches == ["ttft_p90_s 3.14 > 2"]


def _pool(name: str, replicas: int) -> PoolState:
    return PoolState(
        ref=PoolRef(namespace="ns", name=name),
        model="m",
        gpu_type="L4",
        desired_replicas=replicas,
        ready_replicas=replicas,
    )


def test_build_snapshot_joins_state_signals_and_cost() -> None:
    pools = [_pool("a", 2), _pool("b", 3)]
    report = SignalReport(
        source="test",
        pools={"ns/a": PoolSignals(ttft_p90_s=1.23456, itl_p90_s=0.02, age_s={"ttft_p90_s": 3.14159})},
        collected_at=NOW,
        queries=4,
    )
    snap = build_snapshot(
        pools,
        [],
        report,
        targets_for=lambda p: T,
        cost_for=lambda p: 0.5 * p.desired_replicas,
        backend="fake",
        now=NOW,
    )
    a, b = snap.pools
    assert a.slo is SloStatus.OK and a.signals.ttft_p90_s == 1.2346 and a.signals.age_s == {"ttft_p90_s": 3.1}
    assert b.slo is SloStatus.UNKNOWN and "*" in b.signals.missing  # never silently healthy
    assert snap.partial is True and snap.queries == 4
    assert snap.fleet_cost_per_hour == 2.5


def test_report_errors_make_the_snapshot_partial_and_are_surfaced() -> None:
    report = SignalReport(source="prometheus", errors=["prometheus unreachable: refused"], collected_at=NOW)
    snap = build_snapshot(
        [_pool("a", 1)], [], report, targets_for=lambda p: T, cost_for=lambda p: None, backend="fake", now=NOW
    )
    assert snap.partial and snap.warnings == ["prometheus unreachable: refused"]
    assert snap.fleet_cost_per_hour is None


def test_a_prefill_pools_missing_itl_does_not_make_the_snapshot_partial() -> None:
    prefill = PoolState(
        ref=PoolRef(namespace="ns", name="p"),
        model="m",
        gpu_type="H100",
        role=Role.PREFILL,
        desired_replicas=1,
        ready_replicas=1,
    )
    signals = PoolSignals(ttft_p90_s=0.2, missing={"itl_p90_s": "no tokens decoded"})
    report = SignalReport(source="t", pools={"ns/p": signals}, collected_at=NOW)
    snap = build_snapshot(
        [prefill], [], report, targets_for=lambda p: T, cost_for=lambda p: None, backend="f", now=NOW
    )
    assert snap.partial is False and snap.pools[0].slo is SloStatus.OK
    unified = prefill.model_copy(update={"role": Role.UNIFIED})
    snap = build_snapshot(
        [unified], [], report, targets_for=lambda p: T, cost_for=lambda p: None, backend="f", now=NOW
    )
    assert snap.partial is True and snap.pools[0].slo is SloStatus.UNKNOWN
