"""The whole product path on the Kubernetes backend: the real client (via a kubeconfig) against the API-server
emulator, driven through MCP tools. Gate, policy, Lease lock, ownership, dry run and audit all on one path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from emulator import Emulator
from kube_objects import KEDA_CRD, NODEPOOL_CRD, default_fleet
from mcp import Client

from mcp_autoscale.app import build_app
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.cluster.lease import LeaseLock
from mcp_autoscale.config import Settings
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio

POLICY = """
version: 1
tools: [scale_deployment, patch_hpa]
namespaces: [chat, batch]
rules:
  - name: prod
    match: {namespaces: [chat, batch]}
    replicas: {min: 1, max: 20}
    max_step: 4
"""


@pytest.fixture
def kube_app_settings(emu: Emulator, tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    for obj in (KEDA_CRD, NODEPOOL_CRD, *default_fleet()):
        emu.seed(obj)
    kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return make_settings(backend="kubernetes", kubeconfig=kubeconfig, policy_file=policy)


async def test_actions_flow_through_the_gate_to_the_api_server(
    emu: Emulator, kube_app_settings: Settings
) -> None:
    app = build_app(kube_app_settings)
    assert isinstance(app.gate.lock, LeaseLock)
    async with Client(create_server(app)) as c:
        pools = (await c.call_tool("list_pools", {})).structured_content
        assert {p["deployment"] for p in pools["pools"]} >= {"llama-8b", "qwen-7b"}  # type: ignore[index]

        emu.clear_log()
        dry = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "batch",
                "deployment": "qwen-7b",
                "replicas": 3,
                "rationale": "queue 8",
                "dry_run": True,
            },
        )
        assert dry.structured_content["status"] == "dry_run", dry.content  # type: ignore[index]
        scale_writes = emu.requests("PATCH", r"/deployments/qwen-7b/scale$")
        assert scale_writes and all(w.query.get("dryRun") == "All" for w in scale_writes)
        assert emu.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 2  # type: ignore[index]

        real = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "batch",
                "deployment": "qwen-7b",
                "replicas": 3,
                "rationale": "queue 8",
                "dry_run": False,
            },
        )
        assert real.structured_content["status"] == "applied", real.content  # type: ignore[index]
        assert emu.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 3  # type: ignore[index]
        assert emu.requests("POST", r"/leases$") or emu.requests("PUT", r"/leases/")  # the per-pool Lease

        owned = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "chat",
                "deployment": "llama-8b",
                "replicas": 6,
                "rationale": "x",
                "dry_run": False,
            },
        )
        assert owned.structured_content["status"] == "denied"  # type: ignore[index]

        emu.clear_log()
        patched = await c.call_tool(
            "patch_hpa",
            {
                "namespace": "chat",
                "deployment": "llama-8b",
                "max_replicas": 20,
                "rationale": "pinned",
                "dry_run": False,
            },
        )
        assert patched.structured_content["status"] == "applied", patched.content  # type: ignore[index]
        assert emu.requests("PATCH", r"/scaledobjects/llama-8b$")
        assert not emu.requests("PATCH", r"/horizontalpodautoscalers/keda-hpa-llama-8b")
        so = emu.get("keda.sh/v1alpha1", "scaledobjects", "llama-8b", "chat")
        assert so is not None and so["spec"]["maxReplicaCount"] == 20

    records = AuditLog(kube_app_settings.resolved_audit_file).records(intents=True)
    assert [r.status.value for r in records] == [
        "dry_run", "intent", "applied", "denied", "intent", "applied"
    ]  # fmt: skip
    assert records[2].intent_id == records[1].id and records[5].intent_id == records[4].id


async def test_a_concurrent_writer_is_retried_and_audited(emu: Emulator, kube_app_settings: Settings) -> None:
    app = build_app(kube_app_settings)
    # another writer bumps the Deployment just before our first PATCH lands: 409, re-read, retry
    emu.on("PATCH", r"qwen-7b/scale$", lambda e: e.bump("apps/v1", "deployments", "qwen-7b", "batch"))
    async with Client(create_server(app)) as c:
        r = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "batch",
                "deployment": "qwen-7b",
                "replicas": 3,
                "rationale": "queue",
                "dry_run": False,
            },
        )
    assert r.structured_content["status"] == "applied", r.content  # type: ignore[index]
    record = json.loads(kube_app_settings.resolved_audit_file.read_text().splitlines()[-1])
    assert record["attempts"] == 2
    assert emu.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 3  # type: ignore[index]


async def test_policy_is_rechecked_against_what_a_concurrent_writer_left(
    emu: Emulator, kube_app_settings: Settings
) -> None:
    app = build_app(kube_app_settings)

    def someone_scales_to_ten(e: Emulator) -> None:
        with e.lock:
            key = ("apps", "v1", "deployments", "batch", "qwen-7b")
            e.store[key]["spec"]["replicas"] = 10
        e.bump("apps/v1", "deployments", "qwen-7b", "batch")

    emu.on("PATCH", r"qwen-7b/scale$", someone_scales_to_ten)
    async with Client(create_server(app)) as c:
        # 2 -> 5 is within max_step 4 as decided; from the live 10 it would be a step of 5: refused
        r = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "batch",
                "deployment": "qwen-7b",
                "replicas": 5,
                "rationale": "x",
                "dry_run": False,
            },
        )
    assert r.is_error and "re-check" in r.content[0].text  # type: ignore[union-attr]
    assert emu.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 10  # not overwritten
    record = json.loads(kube_app_settings.resolved_audit_file.read_text().splitlines()[-1])
    assert record["status"] == "failed" and "max_step" in record["message"]
