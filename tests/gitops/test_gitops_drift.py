"""Drift between the live fleet and Git: KEDA-scaled vs hand-patched; the tool, resource and snapshot."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gitops_fakes import Fleet
from mcp import Client

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.gitops.drift import DriftReport, drift_report
from mcp_autoscale.models import PoolSignals, PoolState, SignalReport, SloTargets
from mcp_autoscale.policy import Policy
from mcp_autoscale.server import create_server
from mcp_autoscale.snapshot import Snapshotter


def by_field(report: DriftReport, target: str) -> dict[str, tuple[object, object, str]]:
    return {d.field: (d.git, d.live, d.status) for d in report.drift if d.target == target}


def test_keda_scaled_replicas_are_expected_not_drift(fleet: Fleet, policy_for: Callable[..., Policy]) -> None:
    report = drift_report(policy_for().gitops, fleet.list_pools(), fleet.list_node_pools())
    assert report.configured and report.errors == []
    # Git says replicas 2, the cluster runs 4: KEDA did that, within Git's bounds 2..16.
    assert by_field(report, "chat/llama-8b") == {"spec.replicas": (2, 4, "autoscaled")}
    item = next(d for d in report.drift if d.target == "chat/llama-8b")
    assert "KEDA ScaledObject llama-8b scaled it" in item.explanation and "not drift" in item.explanation
    assert item.file == "apps/chat/llama-8b.yaml"
    assert {"chat/llama-70b-prefill", "chat/llama-70b-decode", "nodepool/gpu-l4", "nodepool/gpu-h100"} <= set(
        report.in_sync
    )
    assert report.unmapped == ["batch/qwen-7b"]


def test_hand_patched_bounds_and_limits_are_flagged(fleet: Fleet, policy_for: Callable[..., Policy]) -> None:
    llama = fleet.pools["chat/llama-8b"]
    assert llama.autoscaler is not None
    fleet.pools["chat/llama-8b"] = llama.model_copy(
        update={"autoscaler": llama.autoscaler.model_copy(update={"max_replicas": 30, "paused": True})}
    )
    fleet.node_pools["gpu-h100"] = fleet.node_pools["gpu-h100"].model_copy(update={"gpu_limit": 48})
    report = drift_report(policy_for().gitops, fleet.list_pools(), fleet.list_node_pools())

    assert by_field(report, "chat/llama-8b") == {
        "spec.maxReplicaCount": (16, 30, "hand_patched"),
        "metadata.annotations[autoscaling.keda.sh/paused]": (False, True, "hand_patched"),
        "spec.replicas": (2, 4, "hand_patched"),  # paused: nobody autoscales it, so 4 != 2 is a hand change
    }
    bound = next(d for d in report.drift if d.field == "spec.maxReplicaCount")
    assert "Argo CD app 'inference' will revert it" in bound.explanation
    assert by_field(report, "nodepool/gpu-h100") == {"spec.limits[nvidia.com/gpu]": (32, 48, "hand_patched")}
    assert "chat/llama-8b" not in report.in_sync and "nodepool/gpu-h100" not in report.in_sync


def test_scaled_replicas_on_an_unowned_pool_are_hand_patched(
    fleet: Fleet, policy_for: Callable[..., Policy]
) -> None:
    llama = fleet.pools["chat/llama-8b"]
    fleet.pools["chat/llama-8b"] = llama.model_copy(update={"autoscaler": None, "desired_replicas": 5})
    report = drift_report(policy_for().gitops, fleet.list_pools(), [])
    (item,) = [d for d in report.drift if d.target == "chat/llama-8b"]
    assert (item.git, item.live, item.status) == (2, 5, "hand_patched")
    assert "no active autoscaler owns them" in item.explanation


def test_without_a_gitops_block_the_report_says_so(fleet: Fleet) -> None:
    report = drift_report(None, fleet.list_pools(), [])
    assert not report.configured and "no gitops block" in report.errors[0] and report.drift == []


# --------------------------------------------------------------------------------------- the server


class StubSignals:
    name = "stub"

    def collect(self, pools: list[PoolState]) -> SignalReport:
        return SignalReport(
            source="stub",
            pools={p.ref.key: PoolSignals(ttft_p90_s=0.5, itl_p90_s=0.02) for p in pools},
            collected_at=datetime.now(UTC),
        )


@pytest.fixture
def app(fleet: Fleet, policy_for: Callable[..., Policy], settings: Settings, tmp_path: Path) -> AutoscaleApp:
    from mcp_autoscale.actions import Gate

    policy = policy_for()
    audit = AuditLog(settings.resolved_audit_file)
    snapshotter = Snapshotter(
        fleet, StubSignals(), targets_for=lambda p: SloTargets(), cost_for=lambda p: None
    )
    gate = Gate(backend=fleet, policy=policy, audit=audit, settings=settings, evidence=fleet.snapshot)
    return AutoscaleApp(
        settings=settings,
        backend=fleet,
        signals=StubSignals(),
        policy=policy,
        policy_source="test",
        audit=audit,
        catalogue=load_catalogue(None),
        snapshotter=snapshotter,
        gate=gate,
    )


@pytest.fixture
async def client(app: AutoscaleApp) -> AsyncIterator[Client]:
    async with Client(create_server(app)) as c:
        yield c


@pytest.mark.anyio
async def test_drift_tool_resource_and_snapshot_show_gitops(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    ann = tools["gitops_drift"].annotations
    assert ann is not None and ann.read_only_hint is True

    r = await client.call_tool("gitops_drift", {"namespace": "chat", "deployment": "llama-8b"})
    assert not r.is_error and r.structured_content is not None
    drift = r.structured_content["drift"]
    assert [(d["target"], d["field"], d["status"]) for d in drift] == [
        ("chat/llama-8b", "spec.replicas", "autoscaled")
    ]

    text = (await client.read_resource("autoscale://gitops/drift")).contents[0].text  # type: ignore[union-attr]
    assert "nodepool/gpu-h100" in json.loads(text)["in_sync"]

    snap = (await client.call_tool("get_slo_snapshot", {"namespace": "chat"})).structured_content
    assert snap is not None
    pool = next(p for p in snap["pools"] if p["name"] == "llama-70b-decode")
    assert pool.get("gitops") is None and pool["owner"]["gitops"]["app"] == "inference"
    state = json.loads((await client.read_resource("autoscale://cluster/state")).contents[0].text)  # type: ignore[union-attr]
    assert {n["name"]: n["gitops"]["tool"] for n in state["node_pools"]} == {
        "gpu-l4": "flux",
        "gpu-h100": "flux",
    }
