"""The fleet strategy on the per-pool planner: each pool keeps the planner's sizing; a busy batch pool holds
the pooled headroom as spare and yields it through the gate when the interactive pools grow."""

from __future__ import annotations

from pathlib import Path

from mcp_autoscale.planner import PoolSample
from mcp_autoscale.replay.fleet import FleetConfig, make_strategy
from mcp_autoscale.replay.fleet_spec import load_fleet, scenario_of
from mcp_autoscale.replay.fleet_strategies import FleetPlanner
from mcp_autoscale.replay.strategies import KedaPlusPlanner
from mcp_autoscale.sim import Twin

FLEET = """
duration: 10m
node_pools:
  - {name: gpu-l4, gpu_type: L4, limit_gpus: 12}
pools:
  - {namespace: chat, name: assistant, node_pool: gpu-l4, priority: interactive,
     trace: {synthetic: step, seed: 2, scale: 0.2}}
  - {namespace: batch, name: summarise, node_pool: gpu-l4, priority: batch,
     trace: {synthetic: onoff, seed: 3, scale: 0.2}}
"""


def test_busy_batch_pool_holds_the_pooled_spare_and_yields_it_when_interactive_grows(tmp_path: Path) -> None:
    path = tmp_path / "FLEET.yaml"
    path.write_text(FLEET)
    spec, traces = load_fleet(path)
    cfg = FleetConfig(fleet_reserve="batch", audit_dir=tmp_path / "gate")
    fleet = make_strategy("fleet", spec, traces, cfg, {})
    assert isinstance(fleet, FleetPlanner)
    # every pool is sized by the per-pool planner (its learned capacity), interactive pools hotter
    assert all(isinstance(s, KedaPlusPlanner) for s in fleet.inner.values())
    assert fleet.inner["chat/assistant"].config.target_utilisation == cfg.fleet_utilisation
    assert fleet.inner["batch/summarise"].config.target_utilisation == cfg.planner_utilisation
    twin = Twin(scenario_of(spec), 7)
    fleet.setup(twin, spec)
    try:
        b, chat, batch = "batch/summarise", spec.pools[0].ref, spec.pools[1].ref
        states = {p.ref.key: twin.backend.get_pool(p.ref) for p in spec.pools}
        fleet.pooled["gpu-l4"] = 2
        # an idle batch pool holds no spare: it would be billed for nothing
        fleet._share(twin, "gpu-l4", 12, "L4", 0.0, states)
        assert fleet._spare[b] == 0 and fleet.inner[b].config.floors["batch"] == 1
        # busy: it holds the pooled headroom as spare (its planner's floor goes up by it)
        fleet.inner[b].history.append(PoolSample(t_s=30.0, ready_replicas=1, request_rps=1.0))
        fleet._share(twin, "gpu-l4", 12, "L4", 30.0, states)
        assert fleet._spare[b] == 2 and fleet.inner[b].config.floors["batch"] == 3
        twin.pin_replicas(batch, 3)
        # the interactive pool grows by 2 within the lead time: the batch pool yields both at once
        states = {p.ref.key: twin.backend.get_pool(p.ref) for p in spec.pools}
        states[chat.key] = states[chat.key].model_copy(
            update={"desired_replicas": states[chat.key].desired_replicas + 2}
        )
        fleet._share(twin, "gpu-l4", 12, "L4", 60.0, states)
        assert fleet._spare[b] == 0 and fleet.inner[b].config.floors["batch"] == 1
        assert twin.backend.get_pool(batch).desired_replicas == 1
        audit = (tmp_path / "gate" / "fleet" / "fleet-audit.jsonl").read_text()
        assert "yields 2 L4 ($1.61/h) of its pooled spare to chat/assistant" in audit
        assert fleet.verdicts["applied"] >= 1 and "denied" not in fleet.verdicts
    finally:
        fleet.teardown()


def test_the_pooled_reserve_starts_at_its_floor_where_interactive_pools_run_hot(tmp_path: Path) -> None:
    # interactive pools run at U 0.9 from the first minute, so their node pool holds the reserve floor
    # (2 GPUs) before its burst statistics exist; a node pool of batch pools alone holds none
    path = tmp_path / "FLEET.yaml"
    path.write_text(
        FLEET.replace(
            "limit_gpus: 12}", "limit_gpus: 12}\n  - {name: gpu-l40s, gpu_type: L40S, limit_gpus: 8}"
        )
        + "  - {namespace: bulk, name: embed, node_pool: gpu-l40s, priority: batch,\n"
        "     trace: {synthetic: onoff, seed: 5, scale: 0.2}}\n"
    )
    spec, traces = load_fleet(path)
    fleet = make_strategy("fleet", spec, traces, FleetConfig(), {})
    assert isinstance(fleet, FleetPlanner)
    twin = Twin(scenario_of(spec), 7)
    fleet.setup(twin, spec)
    try:
        assert fleet.pooled == {"gpu-l4": 2, "gpu-l40s": 0}
        b = "batch/summarise"
        fleet.inner[b].history.append(PoolSample(t_s=30.0, ready_replicas=1, request_rps=1.0))
        states = {p.ref.key: twin.backend.get_pool(p.ref) for p in spec.pools}
        fleet._share(twin, "gpu-l4", 12, "L4", 30.0, states)
        assert fleet._spare[b] == 2  # the busy batch pool holds it from the start
        # burst statistics that say "none" do not take the reserve below its floor
        for k in fleet.held:
            fleet.held[k] = [2.0] * 200
        fleet._size_pooled(twin, 6000.0)
        assert fleet.pooled["gpu-l4"] == 2 and fleet.pooled["gpu-l40s"] == 0
    finally:
        fleet.teardown()
    # held as warm placeholders instead, the floor goes through the gate at the first planning pass
    warm = make_strategy(
        "fleet", spec, traces, FleetConfig(fleet_reserve="warm", audit_dir=tmp_path / "w"), {}
    )
    assert isinstance(warm, FleetPlanner)
    twin = Twin(scenario_of(spec), 7)
    warm.setup(twin, spec)
    try:
        warm._size_pooled(twin, 0.0)
        assert warm.warm == {"gpu-l4": 2, "gpu-l40s": 0}
        audit = (tmp_path / "w" / "fleet" / "fleet-audit.jsonl").read_text()
        assert '"request_gpu_nodes"' in audit and "the reserve floor until their burst statistics" in audit
        assert "2 warm L4 ($1.61/h)" in audit  # the rationale names what the move costs
    finally:
        warm.teardown()
    off = make_strategy("fleet", spec, traces, FleetConfig(fleet_reserve_min=0), {})
    assert isinstance(off, FleetPlanner)
    off.setup(Twin(scenario_of(spec), 7), spec)
    try:
        assert off.pooled == {"gpu-l4": 0, "gpu-l40s": 0}
    finally:
        off.teardown()


def test_a_keda_owned_batch_pool_yields_through_its_scaledobject_not_a_direct_scale(tmp_path: Path) -> None:
    # a direct scale of a KEDA-owned pool is refused by the gate (KEDA would revert it): the yield lowers
    # the ScaledObject's max to the new size, so the fast loop scales in at its next sync
    path = tmp_path / "FLEET.yaml"
    path.write_text(FLEET)
    spec, traces = load_fleet(path)
    fleet = make_strategy("fleet", spec, traces, FleetConfig(audit_dir=tmp_path / "gate"), {})
    assert isinstance(fleet, FleetPlanner)
    twin = Twin(scenario_of(spec), 7)
    fleet.setup(twin, spec)
    try:
        b, chat, batch = "batch/summarise", spec.pools[0].ref, spec.pools[1].ref
        fleet.inner[b].history.append(PoolSample(t_s=30.0, ready_replicas=1, request_rps=1.0))
        states = {p.ref.key: twin.backend.get_pool(p.ref) for p in spec.pools}
        fleet._share(twin, "gpu-l4", 12, "L4", 30.0, states)
        assert fleet._spare[b] == 2
        owner = twin.backend.get_pool(batch).autoscaler
        assert owner is not None and not owner.paused
        states = {
            chat.key: states[chat.key].model_copy(
                update={"desired_replicas": states[chat.key].desired_replicas + 2}
            ),
            b: states[b].model_copy(update={"desired_replicas": 3}),
        }
        fleet._share(twin, "gpu-l4", 12, "L4", 60.0, states)
        owner = twin.backend.get_pool(batch).autoscaler
        assert owner is not None and owner.max_replicas == 1 and owner.min_replicas == 1
        assert fleet.verdicts["applied"] == 1 and "denied" not in fleet.verdicts
        audit = (tmp_path / "gate" / "fleet" / "fleet-audit.jsonl").read_text()
        assert '"patch_hpa"' in audit and "yields 2 L4 ($1.61/h) of its pooled spare" in audit
    finally:
        fleet.teardown()


def test_on_eight_gpu_nodes_the_node_aware_spare_uses_only_gpus_billed_anyway(tmp_path: Path) -> None:
    path = tmp_path / "FLEET.yaml"
    path.write_text(
        FLEET.replace(
            "{name: gpu-l4, gpu_type: L4, limit_gpus: 12}", "{name: gpu-h100, gpu_type: H100, limit_gpus: 16}"
        ).replace("node_pool: gpu-l4", "model: Qwen/Qwen2.5-7B-Instruct, node_pool: gpu-h100")
    )
    spec, traces = load_fleet(path)
    fleet = make_strategy("fleet", spec, traces, FleetConfig(fleet_reserve_node_aware=True), {})
    assert isinstance(fleet, FleetPlanner)
    twin = Twin(scenario_of(spec), 7)
    fleet.setup(twin, spec)
    try:
        b, chat = "batch/summarise", "chat/assistant"
        fleet.inner[b].history.append(PoolSample(t_s=30.0, ready_replicas=1, request_rps=1.0))
        states = {p.ref.key: twin.backend.get_pool(p.ref) for p in spec.pools}
        # 2 + 1 GPUs on one 8-GPU node: 5 are free on it, so the 2-GPU spare costs no node
        fleet._share(twin, "gpu-h100", 16, "H100", 30.0, states)
        assert fleet._spare[b] == 2
        # 6 + 1 (+ the 2 spare): the spare would need a second node; only the one free GPU is held
        states[chat] = states[chat].model_copy(update={"desired_replicas": 6})
        states[b] = states[b].model_copy(update={"desired_replicas": 3})
        fleet._inter["gpu-h100"].clear()
        fleet._share(twin, "gpu-h100", 16, "H100", 1000.0, states)
        assert fleet._spare[b] == 1
    finally:
        fleet.teardown()
