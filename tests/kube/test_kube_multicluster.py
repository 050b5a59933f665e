"""One server, two clusters: two API-server emulators behind one kubeconfig (a context each). Pools carry
their cluster, filters and policy rules see it, the audit names it, and a cluster that is down makes the
answer partial, names itself, and leaves the other cluster working."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import Emulator
from kube_objects import KEDA_CRD, NODEPOOL_CRD, default_fleet
from mcp import Client

from mcp_autoscale.app import build_app
from mcp_autoscale.cluster.multi import MultiClusterBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio

POLICY = """
version: 1
tools: [scale_deployment, request_gpu_nodes]
namespaces: [chat, batch, dev]
node_pools: ["gpu-*"]
rules:
  - name: eu-pools
    match: {clusters: [eu], tools: [scale_deployment]}
    replicas: {min: 1, max: 8}
    max_step: 4
  - name: us-frozen
    reason: the us cluster is in a change freeze
    effect: deny
    match: {clusters: [us]}
"""
QWEN = {"namespace": "batch", "deployment": "qwen-7b"}


@pytest.fixture
def us() -> Iterator[Emulator]:
    second = Emulator().start()
    yield second
    second.stop()


@pytest.fixture
def settings(emu: Emulator, us: Emulator, tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    for cluster in (emu, us):
        for obj in (KEDA_CRD, NODEPOOL_CRD, *default_fleet()):
            cluster.seed(obj)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: ctx-eu\n"
        f"clusters: [{{name: eu, cluster: {{server: '{emu.url}'}}}}, {{name: us, cluster: {{server: '{us.url}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: ctx-eu, context: {cluster: eu, user: u}}, {name: ctx-us, context: {cluster: us, user: u}}]\n"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return make_settings(
        backend="kubernetes",
        kubeconfig=kubeconfig,
        policy_file=policy,
        clusters={"eu": "ctx-eu", "us": "ctx-us"},
        request_timeout_s=2,
    )


def audit(settings: Settings) -> list[dict[str, Any]]:
    """Decision records (write-ahead intent records left out)."""
    records = [json.loads(x) for x in settings.resolved_audit_file.read_text().splitlines()]
    return [r for r in records if r["status"] != "intent"]


async def test_pools_of_both_clusters_carry_their_cluster(settings: Settings) -> None:
    app = build_app(settings)
    assert isinstance(app.backend, MultiClusterBackend) and app.backend.default == "eu"
    async with Client(create_server(app)) as c:
        listed = (await c.call_tool("list_pools", {"limit": 50})).structured_content
        assert listed is not None
        where = {(p["cluster"], p["namespace"], p["deployment"]) for p in listed["pools"]}
        assert ("eu", "batch", "qwen-7b") in where and ("us", "batch", "qwen-7b") in where
        only_us = (await c.call_tool("list_pools", {"cluster": "us", "limit": 50})).structured_content
        assert only_us is not None and {p["cluster"] for p in only_us["pools"]} == {"us"}
        assert only_us["total_pools"] * 2 == listed["total_pools"]
        snap = (await c.call_tool("get_slo_snapshot", {"cluster": "eu", "limit": 50})).structured_content
        assert snap is not None and {p["cluster"] for p in snap["pools"]} == {"eu"}
        assert not any("cluster" in w for w in snap.get("warnings", []))
        nodes = {(n["cluster"], n["name"]) for n in snap["node_pools"]}
        assert ("eu", "gpu-h100") in nodes


async def test_writes_go_to_the_named_cluster_and_policy_and_audit_see_it(
    settings: Settings, emu: Emulator, us: Emulator
) -> None:
    app = build_app(settings)
    async with Client(create_server(app)) as c:
        eu = await c.call_tool(
            "scale_deployment",
            {**QWEN, "cluster": "eu", "replicas": 3, "rationale": "eu queue 8", "dry_run": False},
        )
        assert eu.structured_content, eu.content
        assert eu.structured_content["status"] == "applied", eu.content  # type: ignore[index]
        default = await c.call_tool(
            "scale_deployment", {**QWEN, "replicas": 4, "rationale": "default is eu", "dry_run": False}
        )
        assert default.structured_content["status"] == "applied", default.content  # type: ignore[index]
        frozen = await c.call_tool(
            "scale_deployment",
            {**QWEN, "cluster": "us", "replicas": 3, "rationale": "us queue 8", "dry_run": False},
        )
        assert frozen.structured_content["status"] == "denied"  # type: ignore[index]
        assert "us-frozen" in frozen.structured_content["verdict"]["rules"]  # type: ignore[index]
        unknown = await c.call_tool(
            "scale_deployment", {**QWEN, "cluster": "ap", "replicas": 3, "rationale": "x", "dry_run": False}
        )
        assert unknown.is_error and "cluster 'ap'" in unknown.content[0].text  # type: ignore[union-attr]
    assert emu.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 4  # type: ignore[index]
    assert us.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 2  # type: ignore[index]
    assert not us.writes()  # the frozen cluster was never written
    records = audit(settings)
    assert [r["target"] for r in records] == ["eu:batch/qwen-7b", "eu:batch/qwen-7b", "us:batch/qwen-7b"]
    assert records[0]["arguments"]["cluster"] == "eu" and records[2]["verdict"]["decision"] == "deny"


async def test_a_cluster_that_is_down_makes_the_answer_partial_and_says_which(
    settings: Settings, us: Emulator
) -> None:
    app = build_app(settings)
    us.stop()
    async with Client(create_server(app)) as c:
        snap = (await c.call_tool("get_slo_snapshot", {"limit": 50})).structured_content
        assert snap is not None and snap["partial"] is True
        assert {p["cluster"] for p in snap["pools"]} == {"eu"}  # the other cluster still answers
        down = [w for w in snap["warnings"] if w.startswith("cluster us unavailable")]
        assert down, snap["warnings"]
        assert not any(w.startswith("cluster eu") for w in snap["warnings"])
        ok = await c.call_tool(
            "scale_deployment", {**QWEN, "cluster": "eu", "replicas": 3, "rationale": "q", "dry_run": False}
        )
        assert ok.structured_content["status"] == "applied", ok.content  # type: ignore[index]
        failed = await c.call_tool(
            "scale_deployment", {**QWEN, "cluster": "us", "replicas": 3, "rationale": "q", "dry_run": False}
        )
        assert failed.is_error or failed.structured_content["status"] in ("failed", "denied")  # type: ignore[index]


def test_cluster_names_are_checked_at_start_up(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="DNS label"):
        build_app(settings.model_copy(update={"clusters": {"EU_1": "ctx-eu"}}))
    with pytest.raises(ConfigError, match="DEFAULT_CLUSTER"):
        build_app(settings.model_copy(update={"default_cluster": "ap"}))
