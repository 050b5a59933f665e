"""Replay on a short synthetic trace: the ordering the design promises, deterministic under a seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.replay import KedaOnly, KedaPlusPlanner, ReplayConfig, StrategyResult, run_strategy
from mcp_autoscale.replay.evaluate import ReplayReport, compare
from mcp_autoscale.replay.report import write_report
from mcp_autoscale.replay.trace import synthetic_trace

CFG = ReplayConfig(seed=7)
CAT = load_catalogue()
# 50 minutes of afternoon traffic with a burst: the pool starts at 4 replicas and must grow
TRACE = synthetic_trace(50 * 60, seed=7, peak_rps=10.0, start_hour=13.0, bursts_per_hour=2.0)


@pytest.fixture(scope="module")
def keda() -> StrategyResult:
    return run_strategy(TRACE, KedaOnly(), CFG, CAT)


@pytest.fixture(scope="module")
def planner() -> StrategyResult:
    return run_strategy(TRACE, KedaPlusPlanner(CAT, CFG.slo, config=None), CFG, CAT)


def test_planner_beats_keda_at_no_more_than_ten_percent_more_gpu_hours(
    keda: StrategyResult, planner: StrategyResult
) -> None:
    assert planner.ttft_minutes_ok_pct >= keda.ttft_minutes_ok_pct
    assert planner.ttft_requests_ok_pct >= keda.ttft_requests_ok_pct
    assert planner.itl_tokens_ok_pct >= keda.itl_tokens_ok_pct
    assert planner.gpu_hours <= 1.10 * keda.gpu_hours
    assert planner.outer_actions > 0 and keda.outer_actions == 0
    # every request of the trace got its first token in both runs
    assert keda.requests_first_token + keda.requests_waiting_at_end >= TRACE.requests - 50
    assert planner.minutes == keda.minutes == 50


def test_replay_is_deterministic_under_a_seed(planner: StrategyResult) -> None:
    again = run_strategy(TRACE, KedaPlusPlanner(CAT, CFG.slo), CFG, CAT)
    a = planner.model_dump(exclude={"wall_s"})
    b = again.model_dump(exclude={"wall_s"})
    assert a == b


def test_report_writer(tmp_path: Path, keda: StrategyResult, planner: StrategyResult) -> None:
    report = ReplayReport(
        trace=TRACE.source,
        requests=TRACE.requests,
        duration_h=TRACE.duration_s / 3600,
        seed=7,
        slo=CFG.slo,
        usd_per_gpu_hour=0.805,
        oracle_capacity={},
        results=[keda, planner],
        wall_s=1.0,
        workers=1,
    )
    path = write_report(report, tmp_path, "mcp-autoscale replay --synthetic 50m --out X")
    text = path.read_text()
    assert "| keda |" in text and "| planner |" in text and "planner vs keda gpu hours" in text
    gated = f"| {planner.gated_actions} ({planner.verdicts['applied']} applied"
    assert planner.gated_actions > 0 and gated in text
    for png in ("replicas.png", "latency.png", "summary.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ReplayReport.model_validate_json((tmp_path / "results.json").read_text()) == report


def test_compare_rejects_nothing_and_runs_the_oracle_last_in_order() -> None:
    short = synthetic_trace(12 * 60, seed=2, peak_rps=3.0, start_hour=3.0)
    rep = compare(short, ReplayConfig(seed=2), ("keda", "oracle"), workers=1)
    assert [r.name for r in rep.results] == ["keda", "oracle"]
    assert rep.oracle_capacity["c_out"] > 0 and rep.oracle_capacity["lead_s"] > 0
