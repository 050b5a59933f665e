"""The trace suite on tiny traces: every (trace, strategy) task, the table, the plots, the per-trace JSON."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from mcp_autoscale.cli import app
from mcp_autoscale.replay import write_trace
from mcp_autoscale.replay.shapes import build_trace
from mcp_autoscale.replay.suite import run_suite, suite_specs, summarise
from mcp_autoscale.replay.suite_report import write_suite


def test_suite_runs_every_strategy_on_every_trace(tmp_path: Path) -> None:
    csv = tmp_path / "extra.csv"
    write_trace(build_trace("flash", 5, 300), csv)
    specs = suite_specs(["step", "onoff"], [1, 2], [csv], duration_s=300.0)
    assert [s.key for s in specs] == ["step-s1", "step-s2", "onoff-s1", "onoff-s2", "extra"]
    twice = suite_specs(["step"], [1], [csv, tmp_path / "other" / "extra.csv"])
    assert [s.key for s in twice] == ["step-s1", "extra", "extra-2"]
    reports, summary = run_suite(specs, ["keda", "dynamo"], workers=2)
    assert set(reports) == {s.key for s in specs}
    for rep in reports.values():
        assert [r.name for r in rep.results] == ["keda", "dynamo"]
    # one row per shape x strategy; no oracle ran, so no ratio to one
    assert [(r.shape, r.strategy) for r in summary.rows] == [
        (shape, name) for shape in ("step", "onoff", "extra") for name in ("keda", "dynamo")
    ]
    step = next(r for r in summary.rows if r.shape == "step" and r.strategy == "dynamo")
    assert step.traces == 2 and step.vs_causal_gpu_hours is None
    # the ratio is per trace, then averaged: give each step trace a "causal" at half keda's GPU-hours
    for key in ("step-s1", "step-s2"):
        keda = reports[key].results[0]
        reports[key].results.append(
            keda.model_copy(update={"name": "causal", "gpu_hours": keda.gpu_hours / 2})
        )
    (row,) = [r for r in summarise(specs, reports, ["keda"]) if r.shape == "step"]
    assert row.vs_causal_gpu_hours == 2.0 and row.vs_oracle_gpu_hours is None
    path = write_suite(
        reports, summary, {"step": ["step-s1", "step-s2"], "onoff": ["onoff-s1", "onoff-s2"]}, tmp_path, "x"
    )
    text = path.read_text()
    assert "| step | dynamo | 2 |" in text and "pareto-step.png" in text
    assert (tmp_path / "pareto-onoff.png").stat().st_size > 1000
    data = json.loads((tmp_path / "step-s2" / "results.json").read_text())
    entry = data["results"][1]
    assert entry["name"] == "dynamo"
    assert {"ttft_minutes_ok_pct", "itl_minutes_ok_pct", "gpu_hours", "usd"} <= set(entry)


def test_suite_cli_rejects_unknown_shapes_and_strategies(tmp_path: Path) -> None:
    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["replay", "--suite", "--out", str(tmp_path), *args])

    bad = run("--shapes", "step,sawtooth")
    assert bad.exit_code == 2 and "sawtooth" in bad.stderr and "weekly" in bad.stderr
    bad = run("--strategies", "keda,hpa")
    assert bad.exit_code == 2 and "hpa" in bad.stderr and "aibrix" in bad.stderr
    bad = run("--trace", str(tmp_path / "missing.csv"))
    assert bad.exit_code == 2 and "missing.csv" in bad.stderr
    bad = CliRunner().invoke(app, ["replay", "x.csv", "--suite"])
    assert bad.exit_code == 2 and "--trace" in bad.stderr
