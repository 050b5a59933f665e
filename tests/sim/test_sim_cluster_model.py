"""The simulated cluster: autoscaler bounds, pause, dry runs, node provisioning, GPU limits, balloons."""

from __future__ import annotations

import pytest

from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import AutoscalerPatch, GpuNodeRequest, NodePoolState, PoolRef
from mcp_autoscale.sim import Twin

LLAMA8B = PoolRef(namespace="chat", name="llama-8b")
PREFILL70 = PoolRef(namespace="chat", name="llama-70b-prefill")
QWEN = PoolRef(namespace="batch", name="qwen-7b")
GRANITE = PoolRef(namespace="dev", name="granite-8b")


def _np(tw: Twin, name: str) -> NodePoolState:
    return next(n for n in tw.backend.list_node_pools() if n.name == name)


def _everything(tw: Twin) -> str:
    pools = [p.model_dump_json() for p in tw.backend.list_pools()]
    nodes = [n.model_dump_json() for n in tw.backend.list_node_pools()]
    return "\n".join(pools + nodes)


def test_keda_respects_a_patched_min_and_max() -> None:
    tw = Twin("default")
    tw.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(min_replicas=6), dry_run=False)
    tw.advance(2)
    assert tw.backend.get_pool(LLAMA8B).desired_replicas == 6
    tw.advance(900)  # queue stays empty: KEDA would scale in, but not below the new floor
    assert tw.backend.get_pool(LLAMA8B).desired_replicas == 6

    breach = Twin("ttft-breach")
    assert breach.backend.get_pool(LLAMA8B).desired_replicas > 3
    changes = breach.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(max_replicas=3), dry_run=False)
    assert [(c.field, c.after) for c in changes] == [("spec.maxReplicaCount", 3)]
    breach.advance(2)
    assert breach.backend.get_pool(LLAMA8B).desired_replicas == 3
    breach.advance(300)  # the queue is huge; KEDA still stops at the ceiling
    assert breach.backend.get_pool(LLAMA8B).desired_replicas == 3


def test_hpa_follows_its_metric_and_a_patched_floor() -> None:
    tw = Twin("default")
    assert tw.backend.get_pool(PREFILL70).desired_replicas == 2
    tw.advance(600)  # prompt tokens/s per pod far under target: stabilised scale-in to min
    assert tw.backend.get_pool(PREFILL70).desired_replicas == 1
    changes = tw.backend.patch_autoscaler(PREFILL70, AutoscalerPatch(min_replicas=3), dry_run=False)
    assert [(c.field, c.before, c.after) for c in changes] == [("spec.minReplicas", 1, 3)]
    tw.advance(2)
    assert tw.backend.get_pool(PREFILL70).desired_replicas == 3
    tw.advance(600)  # the two new replicas cold start (HPA only counts ready pods' metrics)
    tw.set_load_factor(PREFILL70, 12.0)
    tw.advance(60)
    assert tw.backend.get_pool(PREFILL70).desired_replicas == 4  # HPA max


def test_direct_scale_of_an_owned_pool_is_reverted_unless_keda_is_paused() -> None:
    tw = Twin("default")
    tw.backend.scale_deployment(LLAMA8B, 12, dry_run=False)
    tw.advance(1)
    assert tw.backend.get_pool(LLAMA8B).desired_replicas == 12
    tw.advance(400)  # KEDA: empty queue -> back down after the stabilisation window
    assert tw.backend.get_pool(LLAMA8B).desired_replicas < 12

    paused = Twin("default")
    ch = paused.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(paused=True), dry_run=False)
    assert [(c.field, c.after) for c in ch] == [("metadata.annotations.autoscaling.keda.sh/paused", True)]
    paused.backend.scale_deployment(LLAMA8B, 12, dry_run=False)
    paused.advance(600)
    state = paused.backend.get_pool(LLAMA8B)
    assert state.desired_replicas == 12 and state.autoscaler is not None and state.autoscaler.paused


def test_patch_validation() -> None:
    tw = Twin()
    with pytest.raises(InvalidInput, match="min replicas 20 > max replicas 16"):
        tw.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(min_replicas=20), dry_run=True)
    with pytest.raises(InvalidInput, match="scale_deployment"):
        tw.backend.patch_autoscaler(QWEN, AutoscalerPatch(max_replicas=4), dry_run=False)
    with pytest.raises(InvalidInput, match="KEDA only"):
        tw.backend.patch_autoscaler(PREFILL70, AutoscalerPatch(paused=True), dry_run=False)
    with pytest.raises(NotFound, match="gpu-l4"):
        tw.backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-tpu", gpus=2), dry_run=True)
    with pytest.raises(InvalidInput):
        tw.backend.scale_deployment(QWEN, -1, dry_run=True)


def test_dry_run_validates_returns_changes_and_changes_nothing() -> None:
    tw = Twin()
    before = _everything(tw)
    dry = [
        tw.backend.scale_deployment(QWEN, 5, dry_run=True),
        tw.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(min_replicas=3, max_replicas=20), dry_run=True),
        tw.backend.request_gpu_nodes(
            GpuNodeRequest(node_pool="gpu-h100", gpus=16, method="auto"), dry_run=True
        ),
    ]
    assert _everything(tw) == before
    assert [c.field for c in dry[1]] == ["spec.minReplicaCount", "spec.maxReplicaCount"]
    assert {c.field for c in dry[2]} == {"spec.limits.nvidia.com/gpu", "placeholder.spec.replicas"}
    real = [
        tw.backend.scale_deployment(QWEN, 5, dry_run=False),
        tw.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(min_replicas=3, max_replicas=20), dry_run=False),
        tw.backend.request_gpu_nodes(
            GpuNodeRequest(node_pool="gpu-h100", gpus=16, method="auto"), dry_run=False
        ),
    ]
    assert dry == real
    assert _everything(tw) != before
    assert tw.backend.get_pool(QWEN).desired_replicas == 5


def test_node_provisioning_delay_holds_replicas_pending() -> None:
    tw = Twin("default", seed=9)
    tw.backend.scale_deployment(GRANITE, 3, dry_run=False)
    tw.advance(2)
    s = tw.backend.get_pool(GRANITE)
    assert (s.desired_replicas, s.ready_replicas, s.pending_replicas) == (3, 1, 2)
    assert _np(tw, "gpu-a10g").nodes_launching == 2
    tw.advance(85)  # below the 90 s minimum provisioning time
    assert tw.backend.get_pool(GRANITE).pending_replicas == 2
    tw.advance(1000)  # provisioning (<= 600 s) + cold start (<= 300 + 45 + 60 s)
    s = tw.backend.get_pool(GRANITE)
    assert (s.ready_replicas, s.pending_replicas, s.starting_replicas) == (3, 0, 0)
    assert _np(tw, "gpu-a10g").nodes_ready == 3


def test_gpu_limit_caps_nodes_until_raised() -> None:
    tw = Twin("default", seed=4)
    tw.backend.scale_deployment(GRANITE, 12, dry_run=False)
    tw.advance(1200)
    s = tw.backend.get_pool(GRANITE)
    assert (s.ready_replicas, s.pending_replicas) == (8, 4)  # spec.limits nvidia.com/gpu = 8
    changes = tw.backend.request_gpu_nodes(
        GpuNodeRequest(node_pool="gpu-a10g", gpus=4, method="limit"), dry_run=False
    )
    assert [(c.field, c.before, c.after) for c in changes] == [("spec.limits.nvidia.com/gpu", 8, 12)]
    tw.advance(1200)
    assert tw.backend.get_pool(GRANITE).ready_replicas == 12


def test_balloon_headroom_lets_real_pods_skip_node_provisioning() -> None:
    tw = Twin("default", seed=6)
    tw.backend.request_gpu_nodes(GpuNodeRequest(node_pool="gpu-l4", gpus=2, method="balloon"), dry_run=False)
    tw.advance(700)  # placeholder nodes are provisioned and held
    l4 = _np(tw, "gpu-l4")
    assert l4.reserved_gpus == 2
    ready_nodes = l4.nodes_ready
    current = tw.backend.get_pool(LLAMA8B).desired_replicas
    tw.backend.patch_autoscaler(LLAMA8B, AutoscalerPatch(min_replicas=current + 2), dry_run=False)
    tw.advance(2)
    s = tw.backend.get_pool(LLAMA8B)
    assert s.desired_replicas == current + 2 and s.pending_replicas == 0 and s.starting_replicas == 2
    l4 = _np(tw, "gpu-l4")
    assert l4.nodes_ready == ready_nodes and l4.reserved_gpus == 0  # real pods pre-empted the placeholders


def test_events_are_recorded() -> None:
    tw = Twin()
    tw.backend.record_event(LLAMA8B, "ScaledByAgent", "raised min to 4")
    assert tw.events[-1]["target"] == "chat/llama-8b" and tw.events[-1]["reason"] == "ScaledByAgent"
