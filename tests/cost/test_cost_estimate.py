"""Cost maths against hand-worked examples (prices from the packaged catalogue, DOMAIN.md §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_autoscale.cost import (
    WhatIf,
    action_cost_delta,
    cost_per_million_tokens,
    estimate,
    load_catalogue,
    pool_cost_per_hour,
    split_token_prices,
)
from mcp_autoscale.errors import ConfigError, InvalidInput, NotFound
from mcp_autoscale.models import (
    Action,
    ActionKind,
    Autoscaler,
    AutoscalerKind,
    AutoscalerPatch,
    FleetSnapshot,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolSignals,
    PoolSnapshot,
    PoolState,
    ScaleDeploymentParams,
    SloStatus,
    SloTargets,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CAT = load_catalogue()


def _pool(ns: str, name: str, gpu: str, gpus: int, replicas: int, **kw: object) -> PoolState:
    return PoolState(
        ref=PoolRef(namespace=ns, name=name),
        model="m",
        gpu_type=gpu,
        gpus_per_replica=gpus,
        desired_replicas=replicas,
        ready_replicas=replicas,
        **kw,
    )


def _snap(state: PoolState, prompt_tps: float | None, gen_tps: float | None) -> PoolSnapshot:
    return PoolSnapshot(
        namespace=state.ref.namespace,
        name=state.ref.name,
        model=state.model,
        engine="vllm",
        role=state.role,
        gpu_type=state.gpu_type,
        gpus_per_replica=state.gpus_per_replica,
        replicas={
            "desired": state.desired_replicas,
            "ready": state.ready_replicas,
            "starting": 0,
            "pending": 0,
        },
        signals=PoolSignals(prompt_tps=prompt_tps, gen_tps=gen_tps),
        slo=SloStatus.OK,
        slo_targets=SloTargets(),
    )


def _action(kind: ActionKind, params: object, target: PoolRef | None) -> Action:
    return Action(
        id="a1",
        kind=kind,
        target=target,
        params=params,
        rationale="test",
        requested_at=NOW,
    )


KEDA = Autoscaler(kind=AutoscalerKind.KEDA, name="llama-8b", min_replicas=2, max_replicas=16)
L8B = _pool("chat", "llama-8b", "L4", 1, 4, instance_type="g6.xlarge", autoscaler=KEDA)
DECODE = _pool("chat", "llama-70b-decode", "H100", 4, 2, instance_type="p5.48xlarge")
QWEN = _pool("batch", "qwen-7b", "H100", 1, 2)
GRANITE = _pool("dev", "granite-8b", "A10G", 1, 1, instance_type="g5.xlarge", capacity_type="spot")
H100_NODES = NodePoolState(
    name="gpu-h100",
    gpu_type="H100",
    instance_type="p5.48xlarge",
    gpus_per_node=8,
    gpus_allocated=18,
    nodes_ready=3,
)


def test_catalogue_prices_and_aliases() -> None:
    assert CAT.gpu_hour("H100") == pytest.approx(55.04 / 8)  # 6.88
    assert CAT.gpu_hour("NVIDIA-H100-80GB-HBM3") == pytest.approx(6.88)
    assert CAT.gpu_hour("h100", "spot") == pytest.approx(6.88 * 0.4)
    assert CAT.gpu_hour("L4") == pytest.approx(0.805)
    assert CAT.gpu_hour("A100") == pytest.approx(27.45 / 8)  # A100 alias -> A100-80 on p4de
    assert CAT.gpu_hour("A100-40") == pytest.approx(21.96 / 8)
    assert CAT.gpu_hour("H200") == pytest.approx(63.30 / 8)
    assert CAT.gpu_hour("TPU-v5") is None
    inst = CAT.instance("Standard_NC40ads_H100_v5")
    assert inst is not None and inst.gpus == 1 and inst.cloud == "azure"
    assert CAT.gpu_hour_for("H100", "Standard_NC40ads_H100_v5") == pytest.approx(6.98)
    assert CAT.instance("p5.48xlarge") is not None and "DOMAIN" in CAT.instance("p5.48xlarge").source  # type: ignore[union-attr]
    assert CAT.hours_per_month == 730


def test_pool_cost_per_hour_two_p5_nodes_worth_of_gpus() -> None:
    # 2 replicas x 4 H100 = 8 GPUs = one p5.48xlarge = $55.04/h
    assert pool_cost_per_hour(DECODE, CAT) == pytest.approx(55.04)
    four = DECODE.model_copy(update={"desired_replicas": 4})
    assert pool_cost_per_hour(four, CAT) == pytest.approx(2 * 55.04)
    assert pool_cost_per_hour(L8B, CAT) == pytest.approx(4 * 0.805)
    assert pool_cost_per_hour(GRANITE, CAT) == pytest.approx(1.006 * 0.4)
    assert pool_cost_per_hour(_pool("x", "y", "MI300X", 1, 3), CAT) is None


def test_cost_per_million_tokens_opencost_method() -> None:
    # $55.04/h at 1,000 tok/s = 3.6M tok/h -> $15.289 per 1M
    assert cost_per_million_tokens(55.04, 1000.0) == pytest.approx(55.04 / 3.6)
    assert cost_per_million_tokens(1.0, 0.0) is None


def test_split_token_prices_recovers_the_hourly_cost() -> None:
    per_in, per_out = split_token_prices(10.0, 1000.0, 100.0, 3.0)
    assert per_in == pytest.approx(10.0 / (1300 * 3600) * 1e6)  # 2.1368
    assert per_out == pytest.approx(3 * per_in)  # type: ignore[operator]
    # what input and output tokens pay back adds up to the pool's $/h
    assert per_in * 1000 * 3600 / 1e6 + per_out * 100 * 3600 / 1e6 == pytest.approx(10.0)  # type: ignore[operator]
    assert split_token_prices(10.0, None, None, 3.0) == (None, None)


def test_action_cost_delta_scale_and_patch() -> None:
    scale = _action(ActionKind.SCALE_DEPLOYMENT, ScaleDeploymentParams(replicas=6), L8B.ref)
    assert action_cost_delta(scale, L8B, None, CAT) == pytest.approx(2 * 0.805)
    down = _action(ActionKind.SCALE_DEPLOYMENT, ScaleDeploymentParams(replicas=1), DECODE.ref)
    assert action_cost_delta(down, DECODE, None, CAT) == pytest.approx(-4 * 6.88)
    raise_min = _action(ActionKind.PATCH_HPA, AutoscalerPatch(min_replicas=6), L8B.ref)
    assert action_cost_delta(raise_min, L8B, None, CAT) == pytest.approx(2 * 0.805)
    lower_max = _action(ActionKind.PATCH_HPA, AutoscalerPatch(max_replicas=3), L8B.ref)
    assert action_cost_delta(lower_max, L8B, None, CAT) == pytest.approx(-0.805)
    within = _action(ActionKind.PATCH_HPA, AutoscalerPatch(min_replicas=3, max_replicas=20), L8B.ref)
    assert action_cost_delta(within, L8B, None, CAT) == 0.0
    assert action_cost_delta(scale, None, None, CAT) is None


def test_action_cost_delta_gpu_nodes_counts_whole_new_nodes() -> None:
    # 3 ready p5 nodes = 24 GPUs, 18 allocated -> 6 free: 4 GPUs need no new node, 10 need one ($55.04/h)
    small = _action(ActionKind.REQUEST_GPU_NODES, GpuNodeRequest(node_pool="gpu-h100", gpus=4), None)
    assert action_cost_delta(small, None, H100_NODES, CAT) == 0.0
    big = _action(ActionKind.REQUEST_GPU_NODES, GpuNodeRequest(node_pool="gpu-h100", gpus=10), None)
    assert action_cost_delta(big, None, H100_NODES, CAT) == pytest.approx(55.04)
    # 23 GPUs: 17 beyond the 6 free -> ceil(17 / 8) = 3 nodes
    huge = _action(ActionKind.REQUEST_GPU_NODES, GpuNodeRequest(node_pool="gpu-h100", gpus=23), None)
    assert action_cost_delta(huge, None, H100_NODES, CAT) == pytest.approx(3 * 55.04)


def _fleet() -> tuple[FleetSnapshot, list[PoolState]]:
    states = [L8B, DECODE, QWEN, GRANITE]
    snaps = [
        _snap(L8B, 4000.0, 800.0),
        _snap(DECODE, 50.0, 1500.0),
        _snap(QWEN, 600.0, 200.0),
        _snap(GRANITE, None, None),
    ]
    fleet = FleetSnapshot(
        taken_at=NOW, backend="test", signal_source="test", pools=snaps, node_pools=[H100_NODES]
    )
    return fleet, states


def test_estimate_pools_fleet_and_dark_gpus() -> None:
    fleet, states = _fleet()
    est = estimate(fleet, states, CAT)
    by = {p.pool: p for p in est.pools}
    assert by["chat/llama-8b"].usd_per_hour == pytest.approx(3.22)
    assert by["chat/llama-70b-decode"].usd_per_month == pytest.approx(55.04 * 730)
    assert by["batch/qwen-7b"].usd_per_hour == pytest.approx(13.76)
    # llama-8b: 4000 in + 3 x 800 out = 6400 weighted tok/s for $3.22/h
    assert by["chat/llama-8b"].usd_per_m_input_tokens == pytest.approx(3.22 / (6400 * 3600) * 1e6, abs=1e-4)
    assert by["chat/llama-8b"].usd_per_m_output_tokens == pytest.approx(
        3 * 3.22 / (6400 * 3600) * 1e6, abs=1e-4
    )
    assert by["chat/llama-8b"].usd_per_m_tokens == pytest.approx(3.22 / (4800 * 3600) * 1e6, abs=1e-4)
    assert by["dev/granite-8b"].usd_per_m_tokens is None and by["dev/granite-8b"].note
    total = 3.22 + 55.04 + 13.76 + 0.4024
    assert est.fleet_usd_per_hour == pytest.approx(total)
    assert est.fleet_usd_per_month == pytest.approx(total * 730, abs=0.01)
    (h100,) = est.node_pools
    assert (h100.gpus_total, h100.gpus_idle) == (24, 6)
    assert h100.idle_usd_per_month == pytest.approx(6 * 6.88 * 730, abs=0.01)
    assert est.nodes_usd_per_hour == pytest.approx(3 * 55.04)
    assert len(est.model_dump_json()) < 4000  # compact enough for a tool result


def test_estimate_what_if_gpu_type_replicas_and_spot() -> None:
    fleet, states = _fleet()
    tier = estimate(
        fleet, states, CAT, WhatIf(namespace="batch", deployment="qwen-7b", gpu_type="L4")
    ).what_if
    assert tier is not None and "H100 -> L4" in tier.change
    assert tier.delta_usd_per_hour == pytest.approx(2 * 0.805 - 13.76)
    assert tier.delta_usd_per_month == pytest.approx((2 * 0.805 - 13.76) * 730, abs=0.01)
    reps = estimate(fleet, states, CAT, WhatIf(namespace="chat", deployment="llama-8b", replicas=8)).what_if
    assert reps is not None and reps.delta_usd_per_hour == pytest.approx(4 * 0.805)
    # twice the GPUs for the same served tokens doubles $ per 1M output tokens
    before = reps.usd_per_m_output_tokens_before
    assert before is not None
    assert reps.usd_per_m_output_tokens_after == pytest.approx(2 * before, rel=1e-3)
    spot = estimate(
        fleet, states, CAT, WhatIf(namespace="chat", deployment="llama-70b-decode", capacity_type="spot")
    ).what_if
    assert spot is not None and spot.delta_usd_per_hour == pytest.approx(-55.04 * 0.6)
    with pytest.raises(NotFound):
        estimate(fleet, states, CAT, WhatIf(namespace="chat", deployment="nope", replicas=1))
    with pytest.raises(InvalidInput):
        estimate(fleet, states, CAT, WhatIf(namespace="chat", deployment="llama-8b", gpu_type="TPU"))


def test_estimate_from_snapshot_alone() -> None:
    fleet, _ = _fleet()
    est = estimate(fleet, [], CAT)
    by = {p.pool: p for p in est.pools}
    assert by["chat/llama-70b-decode"].usd_per_hour == pytest.approx(55.04)
    assert by["dev/granite-8b"].capacity_type == "on-demand"  # the snapshot does not carry spot


def test_user_catalogue_and_errors_name_file_line_field(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "mcp_autoscale" / "data" / "prices.yaml").read_text()
    own = tmp_path / "prices.yaml"
    own.write_text(text.replace("on_demand_usd_per_hour: 0.805", "on_demand_usd_per_hour: 0.70"))
    assert load_catalogue(own).gpu_hour("L4") == pytest.approx(0.70)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("on_demand_usd_per_hour: 0.805", "on_demand_usd_per_hour: -1"))
    with pytest.raises(ConfigError) as err:
        load_catalogue(bad)
    msg = str(err.value)
    line = next(i + 1 for i, ln in enumerate(bad.read_text().splitlines()) if "usd_per_hour: -1" in ln)
    assert str(bad) in msg and "instances.g6.xlarge.on_demand_usd_per_hour" in msg and f":{line}:" in msg
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(text.replace("reference_instance: g6.xlarge", "reference_instance: g9.huge"))
    with pytest.raises(ConfigError, match=r"g9\.huge"):
        load_catalogue(dangling)
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("gpus: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalogue(broken)
