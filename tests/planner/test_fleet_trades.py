"""recommend_scaling at fleet scope: a binding node-pool limit turns into gated trades (batch yields first);
explain_pool says when a pool's headroom is pooled. On a two-pool twin (FLEET.yaml scenario)."""

from __future__ import annotations

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.cost.estimate import pool_cost_per_hour
from mcp_autoscale.models import SloTargets
from mcp_autoscale.planner import recommend
from mcp_autoscale.planner.fleet import FleetPolicy
from mcp_autoscale.planner.fleet_trades import fleet_trades, pooled_headroom_note
from mcp_autoscale.replay.fleet_spec import FleetSpec, scenario_of
from mcp_autoscale.sim import ArrivalStep, Twin
from mcp_autoscale.snapshot import Snapshotter

SPEC = FleetSpec.model_validate(
    {
        "duration": "10m",
        "node_pools": [{"name": "gpu-l4", "gpu_type": "L4", "limit_gpus": 4}],
        "pools": [
            {"namespace": "chat", "name": "assistant", "node_pool": "gpu-l4", "trace": "x.csv"},
            {
                "namespace": "batch",
                "name": "summarise",
                "node_pool": "gpu-l4",
                "priority": "batch",
                "trace": "y.csv",
            },
        ],
    }
)


def _setup() -> tuple[Twin, Snapshotter]:
    twin = Twin(scenario_of(SPEC), 7)
    chat, batch = (p.ref for p in SPEC.pools)
    # batch holds 2 of the 4 GPUs (pinned), chat its 2; then chat gets ~4x what its 2 replicas serve
    twin.set_arrivals(chat, lambda _n, _dt: ArrivalStep(0.2, 1000.0, 250.0))
    twin.set_arrivals(batch, lambda _n, _dt: ArrivalStep(0.2, 1000.0, 250.0))
    twin.pin_replicas(batch, 2)
    twin.advance(600.0)
    twin.set_arrivals(batch, lambda _n, _dt: ArrivalStep(0.0))  # the batch window closed: nothing waits
    twin.set_arrivals(chat, lambda _n, _dt: ArrivalStep(6.0, 1000.0, 250.0))
    twin.advance(180.0)
    cat = load_catalogue()
    snap = Snapshotter(
        twin.backend,
        twin.signals,
        targets_for=lambda _p: SloTargets(),
        cost_for=lambda p: pool_cost_per_hour(p, cat),
        clock=lambda: twin.now,
    )
    return twin, snap


def test_a_binding_limit_becomes_a_trade_from_batch_to_the_breaching_pool() -> None:
    twin, snapshotter = _setup()
    fleet = snapshotter.take()
    states = twin.backend.list_pools()
    recs = recommend(fleet, states, fleet.node_pools, load_catalogue())
    chat = next(r for r in recs if r.pool == "chat/assistant")
    assert chat.replicas_target > 2  # the planner wants more than the limit leaves
    trades = fleet_trades(fleet, states, recs)
    (trade,) = trades
    assert (trade.giver, trade.taker, trade.node_pool) == ("batch/summarise", "chat/assistant", "gpu-l4")
    assert trade.gpus == 1  # batch keeps its floor: nothing waits, nothing arrives
    assert trade.usd_per_hour_breach_saved == 36.0  # 1 GPU x ($40 - $4)
    assert trade.summary.startswith("move 1 L4 from batch/summarise to chat/assistant: saves $36.00/h")
    giver, taker = trade.tool_calls
    assert giver.tool == "patch_hpa" and giver.arguments["max_replicas"] == 1
    assert giver.arguments["dry_run"] is True and "gpu-l4 at its 4-GPU limit" in giver.arguments["rationale"]
    assert taker.arguments["deployment"] == "assistant" and taker.arguments["max_replicas"] == 3
    # the policy can forbid it
    assert fleet_trades(fleet, states, recs, FleetPolicy(protected=["batch/summarise"])) == []


def test_explain_pool_says_when_headroom_is_pooled() -> None:
    twin, snapshotter = _setup()
    fleet = snapshotter.take()
    states = {s.ref.key: s for s in twin.backend.list_pools()}
    note = pooled_headroom_note(states["chat/assistant"], fleet, list(states.values()))
    assert (
        note
        == "headroom is pooled on gpu-l4: batch pools that yield first when the limit binds: batch/summarise"
    )
    assert pooled_headroom_note(states["batch/summarise"], fleet, list(states.values())) is None
