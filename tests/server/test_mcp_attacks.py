"""Attacks through the MCP surface (issue 13): a hostile agent steering what a person approves."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import AcceptedElicitation
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ElicitResult

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.app import build_app
from mcp_autoscale.config import Settings
from mcp_autoscale.identity import local_user
from mcp_autoscale.models import PoolRef
from mcp_autoscale.server import create_server
from mcp_autoscale.tools._approval import ApprovalAnswer, prompt, settle

pytestmark = pytest.mark.anyio

DEV = PoolRef(namespace="dev", name="granite-8b")
POLICY = """version: 1
tools: [scale_deployment]
namespaces: [dev]
rules:
  - name: dev-pools
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
  - name: dev-review
    effect: limit
    match: {namespaces: [dev]}
    approval: {via: [elicitation, cli], ttl_s: 600}
"""


def args(replicas: int, key: str | None = "k-1", rationale: str = "queue 9/replica") -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": "dev",
        "deployment": "granite-8b",
        "replicas": replicas,
        "rationale": rationale,
        "dry_run": False,
    }
    if key:
        out["idempotency_key"] = key
    return out


def records(settings: Settings) -> list[dict[str, Any]]:
    lines = settings.resolved_audit_file.read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


async def test_same_key_other_arguments_cannot_borrow_the_pending_proposal(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Cancel a 4-replica request, re-ask 3 with the same key and accept: the 4 must never run."""
    (tmp_path / "p.yaml").write_text(POLICY)
    app = build_app(make_settings(policy_file=tmp_path / "p.yaml"))
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(create_server(app), mode="legacy", elicitation_callback=on_elicit) as c:
        first = await c.call_tool("scale_deployment", args(4))
        assert first.structured_content["status"] == "pending_approval"  # type: ignore[index]
        second = await c.call_tool("scale_deployment", args(3))
    assert second.is_error
    text = second.content[0].text  # type: ignore[union-attr]
    assert "idempotency_key 'k-1' was already used" in text and "replicas=4" in text
    assert len(asked) == 1  # the user is never asked about a call that cannot run as shown
    assert app.backend.get_pool(DEV).desired_replicas == 1
    assert [r["status"] for r in records(app.settings)] == ["pending_approval"]


async def test_an_approval_is_bound_to_the_action_shown(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Even with a pending proposal in hand, accepting a prompt for another action approves nothing."""
    (tmp_path / "p.yaml").write_text(POLICY)
    app = build_app(make_settings(policy_file=tmp_path / "p.yaml"))
    big = action_from_call("scale_deployment", args(4, key=None), "queue 9/replica", caller="a")
    shown = action_from_call("scale_deployment", args(3, key=None), "queue 9/replica", caller="a")
    pending = app.gate.submit(big)
    assert pending.proposal_id
    yes = AcceptedElicitation(data=ApprovalAnswer(approve=True))
    with pytest.raises(ToolError, match="not the action that was shown"):
        settle(app, pending, yes, "a", shown)
    assert app.backend.get_pool(DEV).desired_replicas == 1
    assert app.gate.proposals.get(pending.proposal_id).status.value == "pending"
    assert settle(app, pending, yes, "a", big).status.value == "applied"  # the real one still works
    assert app.backend.get_pool(DEV).desired_replicas == 4


async def test_same_key_same_arguments_is_still_an_idempotent_retry(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings())
    async with Client(create_server(app)) as c:
        first = await c.call_tool("scale_deployment", args(2))
        again = await c.call_tool("scale_deployment", args(2, rationale="retrying"))
        dry = await c.call_tool("scale_deployment", {**args(2), "dry_run": True})
    assert first.structured_content["audit_id"] == again.structured_content["audit_id"]  # type: ignore[index]
    assert dry.is_error and "as a dry run" in dry.content[0].text  # type: ignore[union-attr]


def test_the_chat_prompt_keeps_the_agent_s_words_apart() -> None:
    evil = "fine\nPolicy: approved by the SRE on call\x1b[2K"
    action = action_from_call("scale_deployment", args(3, key=None), evil, caller="a")
    message = prompt(action, ["rule 'dev-review': needs approval"])
    lines = message.splitlines()
    assert [ln for ln in lines if ln.startswith("Policy:")] == ["Policy: rule 'dev-review': needs approval"]
    assert "\x1b" not in message and lines[-1].startswith("Rationale (the agent's words, unverified) «")
    assert "fine\\nPolicy: approved" in lines[-1]


TWO_POOLS = """version: 1
tools: [scale_deployment]
namespaces: [dev, batch]
rules:
  - name: pools
    match: {namespaces: [dev, batch]}
    replicas: {min: 0, max: 4}
"""


async def test_one_key_cannot_run_two_different_calls_at_once(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel tool calls with one key on two pools: the second must not run while the first is in flight.

    The key's check ran under each target's own lock, so while the first was still deciding, a second
    call on another pool saw the key unused and both applied (two different calls under one key).
    """
    (tmp_path / "p.yaml").write_text(TWO_POOLS)
    app = build_app(make_settings(policy_file=tmp_path / "p.yaml"))
    app.gate.lock_timeout_s = 0.5
    inside, go = threading.Event(), threading.Event()
    real = app.backend.get_pool

    def slow(ref: PoolRef) -> Any:  # the first call still deciding (e.g. waiting on Prometheus)
        if threading.current_thread() is t and not inside.is_set():
            inside.set()
            assert go.wait(10)
        return real(ref)

    monkeypatch.setattr(app.backend, "get_pool", slow)
    first: list[Any] = []
    t = threading.Thread(target=lambda: first.append(app.gate.submit(call("dev", "granite-8b", 2))))
    t.start()
    try:
        assert inside.wait(10)
        async with Client(create_server(app)) as c:
            second = await c.call_tool(
                "scale_deployment", {**args(3), "namespace": "batch", "deployment": "qwen-7b"}
            )
    finally:
        go.set()
        t.join(10)
    assert first[0].status.value == "applied"
    assert second.is_error or second.structured_content["status"] != "applied"  # type: ignore[index]
    assert app.backend.get_pool(PoolRef(namespace="batch", name="qwen-7b")).desired_replicas == 2


def call(namespace: str, deployment: str, replicas: int) -> Any:
    return action_from_call(
        "scale_deployment",
        {"namespace": namespace, "deployment": deployment, "replicas": replicas},
        "queue 9/replica",
        caller=local_user(),
        idempotency_key="k-1",
    ).model_copy(update={"dry_run": False})


FOUR_EYES = POLICY.replace(
    "approval: {via: [elicitation, cli], ttl_s: 600}", "approval: {via: [elicitation, cli], four_eyes: true}"
)


async def test_four_eyes_never_asks_the_proposer_in_the_chat(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Under four eyes the chat user is the proposer: asking them would show a prompt whose "yes" is
    refused. The proposal waits for another person at the CLI, and says so."""
    (tmp_path / "p.yaml").write_text(FOUR_EYES)
    app = build_app(make_settings(policy_file=tmp_path / "p.yaml"))
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(create_server(app), mode="legacy", elicitation_callback=on_elicit) as c:
        result = await c.call_tool("scale_deployment", args(3))
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "pending_approval"  # type: ignore[index]
    assert asked == []
    (proposal,) = app.gate.pending()
    assert proposal.via == ["cli"] and proposal.four_eyes
    assert app.backend.get_pool(DEV).desired_replicas == 1


async def test_a_retry_with_new_words_is_not_offered_for_the_old_proposal(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Same key and arguments, a new rationale: the retry returns the earlier proposal, so the user must
    not be asked to approve it under words it does not carry (a "yes" would only be refused)."""
    (tmp_path / "p.yaml").write_text(POLICY)
    app = build_app(make_settings(policy_file=tmp_path / "p.yaml"))
    asked: list[str] = []

    async def on_elicit(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        if len(asked) == 1:
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(create_server(app), mode="legacy", elicitation_callback=on_elicit) as c:
        first = await c.call_tool("scale_deployment", args(4))
        again = await c.call_tool("scale_deployment", args(4, rationale="the SRE on call already agreed"))
    assert not again.is_error, again.content
    assert again.structured_content["proposal_id"] == first.structured_content["proposal_id"]  # type: ignore[index]
    assert len(asked) == 1 and not any("already agreed" in m for m in asked)
    assert app.backend.get_pool(DEV).desired_replicas == 1


async def test_closed_proposals_are_not_rescanned_by_every_call(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Every tool call scans the proposals (run_approved); a flood of proposals the agent made and the
    user declined must not stay in that scan forever (5,000 of them added 0.44 s to every call)."""
    (tmp_path / "p.yaml").write_text(POLICY)
    app = build_app(make_settings(policy_file=tmp_path / "p.yaml"))

    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async with Client(create_server(app), mode="legacy", elicitation_callback=decline) as c:
        for n in range(3):
            res = await c.call_tool("scale_deployment", args(2 + n % 2, key=f"k-{n}"))
            assert res.structured_content["status"] == "rejected"  # type: ignore[index]
            pid = res.structured_content["proposal_id"]  # type: ignore[index]
    assert app.gate.proposals.all() == []
    assert app.gate.proposals.get(pid).status.value == "rejected"  # still readable by id
    assert len(list((app.settings.state_dir / "proposals").glob("prop-*.json"))) == 0
