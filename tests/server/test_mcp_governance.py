"""Governance over MCP: check_policy, approvals by elicitation (clients that can and cannot elicit), CLI
approval picked up by the server, rollback through the gate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult
from typer.testing import CliRunner

from mcp_autoscale.app import AutoscaleApp, build_app
from mcp_autoscale.cli import app as cli_app
from mcp_autoscale.config import Settings
from mcp_autoscale.identity import os_user
from mcp_autoscale.models import PoolRef
from mcp_autoscale.server import create_server

pytestmark = pytest.mark.anyio

DEV = PoolRef(namespace="dev", name="granite-8b")


def policy(tmp_path: Path, via: str) -> Path:
    path = tmp_path / "approve.yaml"
    path.write_text(
        "version: 1\n"
        "tools: [scale_deployment, patch_hpa]\n"
        "namespaces: [dev]\n"
        "rules:\n"
        "  - name: dev-pools\n"
        "    match: {namespaces: [dev]}\n"
        "    replicas: {min: 0, max: 4}\n"
        "  - name: dev-review\n"
        "    effect: limit\n"
        "    reason: a person confirms dev changes\n"
        "    match: {namespaces: [dev]}\n"
        f"    approval: {{via: [{via}], ttl_s: 600}}\n"
    )
    return path


def audit(app: AutoscaleApp) -> list[dict[str, Any]]:
    """One record per decision (an intent record is left out once its outcome follows)."""
    return [r.model_dump(mode="json") for r in app.audit.records()]


def scale_args(replicas: int) -> dict[str, Any]:
    return {
        "namespace": "dev",
        "deployment": "granite-8b",
        "replicas": replicas,
        "rationale": "queue 9/replica",
        "dry_run": False,
    }


def accept(answer: bool) -> Callable[..., Any]:
    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        assert "scale_deployment" in params.message and "queue 9/replica" in params.message
        return ElicitResult(action="accept", content={"approve": answer})

    return on_elicit


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_elicitation_approves_and_applies(
    make_settings: Callable[..., Settings], tmp_path: Path, mode: str
) -> None:
    app = build_app(make_settings(policy_file=policy(tmp_path, "elicitation, cli")))
    async with Client(create_server(app), mode=mode, elicitation_callback=accept(True)) as c:  # type: ignore[arg-type]
        r = await c.call_tool("scale_deployment", scale_args(3))
    assert not r.is_error, r.content
    assert r.structured_content["status"] == "applied"  # type: ignore[index]
    assert app.backend.get_pool(DEV).desired_replicas == 3
    statuses = [(x["status"], x.get("approver")) for x in audit(app)]
    assert statuses[0] == ("pending_approval", None)
    assert statuses[-1][0] == "applied" and str(statuses[-1][1]).startswith("mcp-elicitation:")


async def test_elicitation_declined_rejects(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    app = build_app(make_settings(policy_file=policy(tmp_path, "elicitation, cli")))
    async with Client(create_server(app), mode="legacy", elicitation_callback=decline) as c:
        r = await c.call_tool("scale_deployment", scale_args(3))
    assert r.structured_content["status"] == "rejected"  # type: ignore[index]
    assert app.backend.get_pool(DEV).desired_replicas == 1


async def test_client_without_elicitation_gets_deny_and_pend(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = build_app(make_settings(policy_file=policy(tmp_path, "elicitation, cli")))
    async with Client(create_server(app)) as c:
        r = await c.call_tool("scale_deployment", scale_args(3))
        res = r.structured_content
        assert res["status"] == "pending_approval" and res["proposal_id"]  # type: ignore[index]
        assert app.backend.get_pool(DEV).desired_replicas == 1
        pending = (await c.call_tool("list_pending_approvals", {})).structured_content
        assert [p["id"] for p in pending["proposals"]] == [res["proposal_id"]]  # type: ignore[index]

        # A human approves from a terminal; the server (which owns the simulated fleet) runs it next call.
        runner = CliRunner()
        out = runner.invoke(
            cli_app,
            [
                "approve",
                res["proposal_id"],
                "--defer",
                "--policy",  # type: ignore[index]
                str(tmp_path / "approve.yaml"),
                "--audit",
                str(app.settings.resolved_audit_file),
                "--state-dir",
                str(app.settings.state_dir),
            ],
        )
        assert out.exit_code == 0, out.output
        await c.call_tool("get_slo_snapshot", {"namespace": "dev"})
    assert app.backend.get_pool(DEV).desired_replicas == 3
    last = audit(app)[-1]
    assert last["status"] == "applied" and last["approver"] == f"cli:{os_user()}"


async def test_policy_that_needs_a_person_is_not_satisfied_by_the_chat(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    app = build_app(make_settings(policy_file=policy(tmp_path, "cli")))
    async with Client(create_server(app), mode="legacy", elicitation_callback=on_elicit) as c:
        r = await c.call_tool("scale_deployment", scale_args(3))
    assert r.structured_content["status"] == "pending_approval"  # type: ignore[index]
    assert asked == [] and app.backend.get_pool(DEV).desired_replicas == 1


async def test_check_policy(make_settings: Callable[..., Settings]) -> None:
    app = build_app(make_settings())
    async with Client(create_server(app)) as c:
        ok = await c.call_tool(
            "check_policy",
            {
                "tool": "scale_deployment",
                "arguments": {"namespace": "dev", "deployment": "granite-8b", "replicas": 2},
            },
        )
        assert ok.structured_content["verdict"]["decision"] == "allow"  # type: ignore[index]
        no = await c.call_tool(
            "check_policy",
            {
                "tool": "scale_deployment",
                "arguments": {"namespace": "dev", "deployment": "granite-8b", "replicas": 99},
            },
        )
        assert no.structured_content["verdict"]["decision"] == "deny"  # type: ignore[index]
        bad = await c.call_tool(
            "check_policy", {"tool": "scale_deployment", "arguments": {"namespace": "dev"}}
        )
        assert bad.is_error and "deployment" in bad.content[0].text  # type: ignore[union-attr]
    assert not app.settings.resolved_audit_file.exists() or audit(app) == []  # checking is not acting


async def test_rollback_restores_the_previous_replicas(make_settings: Callable[..., Settings]) -> None:
    app = build_app(make_settings())
    async with Client(create_server(app)) as c:
        r = await c.call_tool("scale_deployment", {**scale_args(3), "rationale": "try 3"})
        audit_id = r.structured_content["audit_id"]  # type: ignore[index]
        assert app.backend.get_pool(DEV).desired_replicas == 3
        back = await c.call_tool(
            "rollback_action", {"audit_id": audit_id, "rationale": "3 did not help", "dry_run": False}
        )
        assert back.structured_content["status"] == "applied", back.content  # type: ignore[index]
        missing = await c.call_tool(
            "rollback_action", {"audit_id": "aud-nope", "rationale": "x", "dry_run": False}
        )
        assert missing.is_error
    assert app.backend.get_pool(DEV).desired_replicas == 1
    assert (
        audit(app)[-1]["rationale"].endswith("3 did not help")
        or "3 did not help" in audit(app)[-1]["rationale"]
    )


async def test_idempotency_key_acts_once(make_settings: Callable[..., Settings]) -> None:
    app = build_app(make_settings())
    async with Client(create_server(app)) as c:
        first = await c.call_tool("scale_deployment", {**scale_args(2), "idempotency_key": "k-1"})
        second = await c.call_tool("scale_deployment", {**scale_args(2), "idempotency_key": "k-1"})
    assert first.structured_content["audit_id"] == second.structured_content["audit_id"]  # type: ignore[index]
    assert [x["status"] for x in audit(app)] == ["applied"]
