"""The fleet replay end to end on a tiny fleet: FLEET.yaml (a CSV and a shape), every strategy, the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mcp_autoscale.cli import app
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.replay.fleet_spec import load_fleet, scenario_of
from mcp_autoscale.replay.shapes import build_trace
from mcp_autoscale.replay.trace import write_trace

FLEET = """
duration: 12m
node_pools:
  - {name: gpu-l4, gpu_type: L4, limit_gpus: 10}
pools:
  - {namespace: chat, name: assistant, node_pool: gpu-l4, priority: interactive, trace: chat.csv}
  - {namespace: batch, name: summarise, node_pool: gpu-l4, priority: batch,
     trace: {synthetic: onoff, seed: 3, scale: 0.3}}
"""


def _fleet(tmp_path: Path) -> Path:
    tr = build_trace("step", 2, 900.0, base_rps=1.0)
    write_trace(tr, tmp_path / "chat.csv")
    path = tmp_path / "FLEET.yaml"
    path.write_text(FLEET)
    return path


def test_fleet_yaml_loads_traces_and_builds_one_twin_scenario(tmp_path: Path) -> None:
    spec, traces = load_fleet(_fleet(tmp_path))
    assert set(traces) == {"chat/assistant", "batch/summarise"}
    assert all(t.duration_s < 720.0 for t in traces.values())  # cut to the fleet's duration
    sc = scenario_of(spec)
    assert [p.node_pool for p in sc.pools] == ["gpu-l4", "gpu-l4"]
    assert sc.node_pools[0].gpu_limit == 10
    assert [p.replicas for p in sc.pools] == [2, 1]  # HA floor for interactive, 1 for batch
    bad = tmp_path / "BAD.yaml"
    bad.write_text(FLEET.replace("node_pool: gpu-l4, priority: batch", "node_pool: gpu-h9, priority: batch"))
    with pytest.raises(InvalidInput, match="unknown node_pool"):
        load_fleet(bad)


def test_fleet_replay_cli_writes_every_strategy_and_pool(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["replay", "--fleet", str(_fleet(tmp_path)), "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in data["results"]]
    assert names == ["keda", "planner", "causal", "fleet", "oracle"]
    for r in data["results"]:
        assert r["gpu_hours"] > 0 and r["usd"] > 0
        assert 0 <= r["ttft_minutes_ok_pct"] <= 100 and 0 <= r["itl_minutes_ok_pct"] <= 100
        assert [(p["namespace"], p["name"]) for p in r["pools"]] == [
            ("chat", "assistant"),
            ("batch", "summarise"),
        ]
        # the fleet bills at least the GPUs its pods hold
        assert r["gpu_hours"] >= sum(p["gpu_hours"] for p in r["pools"]) - 1e-6
    fleet = next(r for r in data["results"] if r["name"] == "fleet")
    assert fleet["verdicts"].get("applied", 0) > 0  # its moves went through the gate
    assert "denied" not in fleet["verdicts"]
    # every pool is sized by its planner through the gate (the fleet's own moves audit next to them)
    audits = sorted((out / "gate" / "fleet").rglob("*audit.jsonl"))
    assert {a.parent.name for a in audits} <= {"fleet", "chat-assistant", "batch-summarise"}
    assert any('"patch_hpa"' in line for a in audits for line in a.read_text().splitlines())
    assert (out / "report.md").read_text().startswith("# Fleet replay")
    assert (out / "nodes.png").stat().st_size > 0 and (out / "tradeoff.png").stat().st_size > 0


def test_fleet_cli_rejects_a_trace_argument_and_unknown_strategies(tmp_path: Path) -> None:
    path = _fleet(tmp_path)
    res = CliRunner().invoke(app, ["replay", "x.csv", "--fleet", str(path)])
    assert res.exit_code == 2
    res = CliRunner().invoke(app, ["replay", "--fleet", str(path), "--strategies", "wva"])
    assert res.exit_code != 0 and "unknown wva" in res.output


def test_a_long_fleet_replays_on_coarser_ticks_unless_it_says_otherwise(tmp_path: Path) -> None:
    path = _fleet(tmp_path)
    spec, _ = load_fleet(path)
    assert spec.timing == (1.0, 30.0)  # 12 minutes: the single-pool replay's 1 s ticks, 30 s samples
    day = tmp_path / "DAY.yaml"
    day.write_text(FLEET.replace("duration: 12m", "duration: 7h"))
    assert load_fleet(day)[0].timing == (10.0, 60.0)
    day.write_text(FLEET.replace("duration: 12m", "duration: 7h\ntick_s: 5\nsample_s: 30"))
    assert load_fleet(day)[0].timing == (5.0, 30.0)
    day.write_text(FLEET.replace("duration: 12m", "duration: 7h\ntick_s: 7\nsample_s: 30"))
    with pytest.raises(InvalidInput, match="whole number of ticks"):
        load_fleet(day)


def test_the_fleet_probe_waits_for_its_replicas_and_reads_the_single_pool_capacity(tmp_path: Path) -> None:
    """A fleet scenario starts without nodes: a probe that loaded its pinned replicas before they served
    read the cold start's backlog as a lack of capacity (~0.6x), and both fleet oracles over-provisioned."""
    from mcp_autoscale.replay.evaluate import ReplayConfig, measure_capacity
    from mcp_autoscale.replay.fleet import FleetConfig, probe_capacity

    spec, traces = load_fleet(_fleet(tmp_path))
    tr = traces["batch/summarise"]
    prompt_mean, output_mean = float(tr.context.mean()), float(tr.generated.mean())
    fleet_c = probe_capacity(spec, "batch/summarise", tr, FleetConfig())
    single_c = measure_capacity(ReplayConfig(), prompt_mean, output_mean)
    assert fleet_c[1] == pytest.approx(single_c[1], rel=0.1), (fleet_c, single_c)
