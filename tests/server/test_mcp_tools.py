"""The server through the MCP SDK's own client, in-process, in both protocol eras (2026-07-28 and legacy)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_autoscale.app import AutoscaleApp, build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.models import PoolRef
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio

FIVE_TOOLS = {"get_slo_snapshot", "patch_hpa", "scale_deployment", "request_gpu_nodes", "estimate_cost"}
MUTATING = {"patch_hpa", "scale_deployment", "request_gpu_nodes", "rollback_action"}


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> AutoscaleApp:
    return build_app(make_settings())


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, app: AutoscaleApp) -> AsyncIterator[Client]:
    async with Client(create_server(app), mode=request.param) as c:
        yield c


def audit_lines(app: AutoscaleApp) -> list[dict[str, Any]]:
    """One record per decision (an intent record is left out once its outcome follows)."""
    return [r.model_dump(mode="json") for r in app.audit.records()]


async def test_lists_the_five_tools_with_schemas_and_annotations(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= FIVE_TOOLS
    for name in FIVE_TOOLS:
        assert tools[name].input_schema["type"] == "object"
        assert tools[name].output_schema is not None, name
        assert tools[name].description
    for name in MUTATING:
        ann = tools[name].annotations
        assert ann is not None and ann.destructive_hint is True and ann.read_only_hint is False
        props = tools[name].input_schema["properties"]
        assert "rationale" in tools[name].input_schema["required"]
        # explicit intent to mutate: no default, so leaving it out never applies (docs/security.md)
        assert "dry_run" in tools[name].input_schema["required"], name
        assert "default" not in props["dry_run"], name
    for name in tools.keys() - MUTATING - {"advance_simulation"}:
        ann = tools[name].annotations
        assert ann is not None and ann.read_only_hint is True, name
    replicas = tools["scale_deployment"].input_schema["properties"]["replicas"]
    assert replicas["minimum"] == 0 and replicas["maximum"] == 1000


async def test_snapshot_reports_every_sim_pool(client: Client) -> None:
    r = await client.call_tool("get_slo_snapshot", {})
    assert not r.is_error
    snap = r.structured_content
    assert snap is not None
    keys = {f"{p['namespace']}/{p['name']}" for p in snap["pools"]}
    assert {
        "chat/llama-8b",
        "chat/llama-70b-prefill",
        "chat/llama-70b-decode",
        "batch/qwen-7b",
        "dev/granite-8b",
    } <= keys
    pool = next(p for p in snap["pools"] if p["name"] == "llama-8b")
    assert pool["owner"]["kind"] == "ScaledObject"
    assert pool["signals"]["ttft_p90_s"] is not None and pool["cost_per_hour"] > 0
    assert snap["node_pools"]


async def test_snapshot_filter(client: Client) -> None:
    r = await client.call_tool("get_slo_snapshot", {"namespace": "dev"})
    assert {p["namespace"] for p in r.structured_content["pools"]} == {"dev"}  # type: ignore[index]


async def test_scale_applies_and_is_audited(client: Client, app: AutoscaleApp) -> None:
    ref = PoolRef(namespace="dev", name="granite-8b")
    before = app.backend.get_pool(ref).desired_replicas
    r = await client.call_tool(
        "scale_deployment",
        {
            "namespace": "dev",
            "deployment": "granite-8b",
            "replicas": before + 1,
            "rationale": "queue 12 > 5",
            "dry_run": False,
        },
    )
    assert not r.is_error, r.content
    res = r.structured_content
    assert res["status"] == "applied" and res["verdict"]["decision"] == "allow"  # type: ignore[index]
    assert res["changes"][0]["before"] == before and res["changes"][0]["after"] == before + 1  # type: ignore[index]
    assert app.backend.get_pool(ref).desired_replicas == before + 1
    records = audit_lines(app)
    assert records[-1]["id"] == res["audit_id"] and records[-1]["rationale"] == "queue 12 > 5"  # type: ignore[index]
    assert records[-1]["status"] == "applied"


async def test_dry_run_changes_nothing_but_records_a_proposal(client: Client, app: AutoscaleApp) -> None:
    ref = PoolRef(namespace="dev", name="granite-8b")
    before = app.backend.get_pool(ref).desired_replicas
    r = await client.call_tool(
        "scale_deployment",
        {
            "namespace": "dev",
            "deployment": "granite-8b",
            "replicas": before + 1,
            "rationale": "try",
            "dry_run": True,
        },
    )
    res = r.structured_content
    assert res["status"] == "dry_run" and res["changes"][0]["after"] == before + 1  # type: ignore[index]
    assert app.backend.get_pool(ref).desired_replicas == before
    assert audit_lines(app)[-1]["status"] == "dry_run" and audit_lines(app)[-1]["dry_run"] is True


async def test_scaling_a_keda_owned_pool_is_refused_with_the_alternative(
    client: Client, app: AutoscaleApp
) -> None:
    r = await client.call_tool(
        "scale_deployment",
        {"namespace": "chat", "deployment": "llama-8b", "replicas": 6, "rationale": "ttft", "dry_run": False},
    )
    assert not r.is_error
    res = r.structured_content
    assert res["status"] == "denied"  # type: ignore[index]
    text = " ".join(res["verdict"]["reasons"]) + (res["verdict"]["hint"] or "")  # type: ignore[index]
    assert "ScaledObject" in text and "patch_hpa" in text
    assert audit_lines(app)[-1]["status"] == "denied"


async def test_patch_hpa_on_keda_pool_changes_scaledobject_bounds(client: Client, app: AutoscaleApp) -> None:
    ref = PoolRef(namespace="chat", name="llama-8b")
    old = app.backend.get_pool(ref).autoscaler
    assert old is not None
    r = await client.call_tool(
        "patch_hpa",
        {
            "namespace": "chat",
            "deployment": "llama-8b",
            "min_replicas": old.min_replicas + 1,
            "rationale": "burst",
            "dry_run": False,
        },
    )
    res = r.structured_content
    assert res["status"] == "applied", res  # type: ignore[index]
    new = app.backend.get_pool(ref).autoscaler
    assert new is not None and new.min_replicas == old.min_replicas + 1


async def test_out_of_bounds_is_denied_with_reasons(client: Client, app: AutoscaleApp) -> None:
    r = await client.call_tool(
        "scale_deployment",
        {"namespace": "dev", "deployment": "granite-8b", "replicas": 900, "rationale": "x", "dry_run": False},
    )
    res = r.structured_content
    assert res["status"] == "denied" and res["verdict"]["reasons"]  # type: ignore[index]
    assert app.backend.get_pool(PoolRef(namespace="dev", name="granite-8b")).desired_replicas < 900


async def test_non_allowlisted_namespace_is_denied(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ntools: [scale_deployment]\nnamespaces: [dev]\nrules:\n  - name: dev-only\n"
        "    match: {namespaces: [dev]}\n    replicas: {min: 0, max: 4}\n"
    )
    app = build_app(make_settings(policy_file=policy))
    async with Client(create_server(app)) as c:
        r = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "batch",
                "deployment": "qwen-7b",
                "replicas": 3,
                "rationale": "x",
                "dry_run": False,
            },
        )
    assert r.structured_content["status"] == "denied"  # type: ignore[index]


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        ("scale_deployment", {"namespace": "dev", "deployment": "granite-8b", "replicas": 2}, "rationale"),
        (
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": 2,
                "rationale": "  ",
                "dry_run": False,
            },
            "rationale",
        ),
        (
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": -1,
                "rationale": "x",
                "dry_run": False,
            },
            "replicas",
        ),
        (
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": 10**9,
                "rationale": "x",
                "dry_run": False,
            },
            "replicas",
        ),
        (
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": "many",
                "rationale": "x",
                "dry_run": False,
            },
            "replicas",
        ),
        (
            "scale_deployment",
            {"namespace": "dev", "deployment": "nope-9b", "replicas": 2, "rationale": "x", "dry_run": False},
            "nope-9b",
        ),
        (
            "scale_deployment",
            {"namespace": "Bad NS!", "deployment": "x", "replicas": 2, "rationale": "x", "dry_run": False},
            "namespace",
        ),
        (
            "request_gpu_nodes",
            {"node_pool": "gpu-h100", "gpus": 0, "rationale": "x", "dry_run": False},
            "gpus",
        ),
        (
            "request_gpu_nodes",
            {"node_pool": "no-such-pool", "gpus": 1, "rationale": "x", "dry_run": False},
            "no-such-pool",
        ),
        (
            "patch_hpa",
            {"namespace": "chat", "deployment": "llama-8b", "rationale": "x", "dry_run": False},
            "nothing to change",
        ),
        (
            "scale_deployment",
            {"namespace": "dev", "deployment": "granite-8b", "replicas": 2, "rationale": "x"},
            "dry_run",
        ),
        ("rollback_action", {"audit_id": "aud-000001", "rationale": "x"}, "dry_run"),
    ],
)
async def test_bad_input_is_a_tool_error_and_the_server_keeps_serving(
    client: Client, tool: str, args: dict[str, Any], needle: str
) -> None:
    r = await client.call_tool(tool, args)
    assert r.is_error
    assert needle in r.content[0].text  # type: ignore[union-attr]
    ok = await client.call_tool("list_pools", {})
    assert not ok.is_error


async def test_request_gpu_nodes_dry_run(client: Client, app: AutoscaleApp) -> None:
    before = {n.name: n for n in app.backend.list_node_pools()}["gpu-l4"]
    r = await client.call_tool(
        "request_gpu_nodes",
        {"node_pool": "gpu-l4", "gpus": 2, "rationale": "burst expected", "dry_run": True},
    )
    assert not r.is_error, r.content
    assert r.structured_content["status"] in {"dry_run", "denied", "pending_approval"}  # type: ignore[index]
    after = {n.name: n for n in app.backend.list_node_pools()}["gpu-l4"]
    assert after == before


async def test_estimate_cost(client: Client) -> None:
    r = await client.call_tool("estimate_cost", {})
    assert not r.is_error, r.content
    est = r.structured_content
    assert est is not None and est["fleet_usd_per_hour"] > 0
    assert {p["pool"] for p in est["pools"]} >= {"chat/llama-8b", "batch/qwen-7b"}


async def test_estimate_cost_what_if(client: Client) -> None:
    r = await client.call_tool(
        "estimate_cost", {"namespace": "batch", "deployment": "qwen-7b", "gpu_type": "L4"}
    )
    assert not r.is_error, r.content
    what_if = r.structured_content["what_if"]  # type: ignore[index]
    assert what_if["delta_usd_per_hour"] < 0  # an H100 pool moved to L4 costs less
    bad = await client.call_tool("estimate_cost", {"replicas": 3})
    assert bad.is_error and "namespace and deployment" in bad.content[0].text  # type: ignore[union-attr]


async def test_server_wide_dry_run_turns_allowed_calls_into_proposals(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings(dry_run=True))
    ref = PoolRef(namespace="dev", name="granite-8b")
    before = app.backend.get_pool(ref).desired_replicas
    async with Client(create_server(app)) as c:
        r = await c.call_tool(
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": before + 1,
                "rationale": "x",
                "dry_run": False,
            },
        )
    assert r.structured_content["status"] == "dry_run"  # type: ignore[index]
    assert app.backend.get_pool(ref).desired_replicas == before
    # issue 19: the answer must not invite the retry loop it cannot satisfy
    message = r.structured_content["message"]  # type: ignore[index]
    assert "dry-run mode" in message and "will not apply" in message and "Do not retry" in message
    assert "Call again with dry_run=false" not in message


async def test_scaling_takes_effect_after_cold_start(client: Client, app: AutoscaleApp) -> None:
    ref = PoolRef(namespace="dev", name="granite-8b")
    pool = app.backend.get_pool(ref)
    r = await client.call_tool(
        "scale_deployment",
        {
            "namespace": "dev",
            "deployment": "granite-8b",
            "replicas": pool.desired_replicas + 1,
            "rationale": "x",
            "dry_run": False,
        },
    )
    assert r.structured_content["status"] == "applied"  # type: ignore[index]
    assert app.backend.get_pool(ref).ready_replicas == pool.ready_replicas
    await client.call_tool("advance_simulation", {"seconds": 900})
    assert app.backend.get_pool(ref).ready_replicas == pool.desired_replicas + 1


async def test_every_mutating_call_is_audited(client: Client, app: AutoscaleApp) -> None:
    calls = [
        (
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": 2,
                "rationale": "a",
                "dry_run": False,
            },
        ),
        (
            "scale_deployment",
            {
                "namespace": "dev",
                "deployment": "granite-8b",
                "replicas": 2,
                "rationale": "b",
                "dry_run": True,
            },
        ),
        (
            "scale_deployment",
            {
                "namespace": "chat",
                "deployment": "llama-8b",
                "replicas": 3,
                "rationale": "c",
                "dry_run": False,
            },
        ),
        (
            "patch_hpa",
            {
                "namespace": "chat",
                "deployment": "llama-8b",
                "max_replicas": 14,
                "rationale": "d",
                "dry_run": False,
            },
        ),
        ("request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": 1, "rationale": "e", "dry_run": True}),
    ]
    for tool, args in calls:
        await client.call_tool(tool, args)
    assert [r["rationale"] for r in audit_lines(app)] == ["a", "b", "c", "d", "e"]


async def test_resources(client: Client) -> None:
    listed = {str(r.uri) for r in (await client.list_resources()).resources}
    assert {
        "autoscale://fleet/snapshot",
        "autoscale://cluster/state",
        "autoscale://policy/active",
        "autoscale://audit/recent",
    } <= listed
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert "autoscale://pools/{namespace}/{deployment}/metrics" in templates
    metrics = await client.read_resource("autoscale://pools/chat/llama-8b/metrics")
    assert json.loads(metrics.contents[0].text)["name"] == "llama-8b"  # type: ignore[union-attr]
    state = json.loads((await client.read_resource("autoscale://cluster/state")).contents[0].text)  # type: ignore[union-attr]
    assert len(state["pools"]) == 5 and state["node_pools"]
    policy = json.loads((await client.read_resource("autoscale://policy/active")).contents[0].text)  # type: ignore[union-attr]
    assert policy["source"] == "builtin:sim-default"


async def test_runbook_resources(client: Client) -> None:
    listed = {str(r.uri) for r in (await client.list_resources()).resources}
    runbooks = {u for u in listed if u.startswith("autoscale://runbooks/")}
    assert {
        "autoscale://runbooks/ttft-breach",
        "autoscale://runbooks/kv-cache-pressure",
        "autoscale://runbooks/gpu-capacity-shortage",
    } <= runbooks
    text = (await client.read_resource("autoscale://runbooks/ttft-breach")).contents[0].text  # type: ignore[union-attr]
    assert "histogram_quantile" in text


async def test_prompt(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert "diagnose_slo_breach" in prompts
    got = await client.get_prompt("diagnose_slo_breach", {"namespace": "chat", "deployment": "llama-8b"})
    assert "chat/llama-8b" in got.messages[0].content.text  # type: ignore[union-attr]


async def test_context_budgets(client: Client) -> None:
    """tools/list < ~6,000 tokens and the default snapshot a few thousand (4 chars/token heuristic)."""
    tools = (await client.list_tools()).tools
    tools_chars = len(
        json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
    )
    assert tools_chars / 4 < 6000, tools_chars
    snap = await client.call_tool("get_slo_snapshot", {})
    snap_chars = len(json.dumps(snap.structured_content))
    assert snap_chars / 4 < 4000, snap_chars


async def test_progress_is_reported_on_slow_calls(client: Client) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    r = await client.call_tool("recommend_scaling", {}, progress_callback=on_progress)
    assert not r.is_error, r.content
    assert seen and seen[-1][0] == seen[-1][1]  # ends complete
    assert any(m and "snapshot" in m for _, _, m in seen)
    seen.clear()
    await client.call_tool("get_slo_snapshot", {}, progress_callback=on_progress)
    assert any(m and "signals" in m for _, _, m in seen)


async def test_applied_scale_says_when_a_new_node_is_needed_first(client: Client) -> None:
    # dev/granite-8b's A10G node pool has no free GPU: the new replica waits for a node, then cold-starts
    r = await client.call_tool(
        "scale_deployment",
        {"namespace": "dev", "deployment": "granite-8b", "replicas": 2, "rationale": "x", "dry_run": False},
    )
    message = r.structured_content["message"]  # type: ignore[index]
    assert "new node comes first" in message and "gpu-a10g" in message
