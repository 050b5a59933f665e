"""#16: four eyes and approvers by group, through the Gate API: the proposer cannot approve, whatever
the channel (the same OS user at the CLI, its own chat session, a delegation, the same token subject)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from governance_fakes import Clock, FakeBackend, Signals

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.errors import Forbidden
from mcp_autoscale.models import ActionStatus

POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [batch]
approvals: {allow_delegation: true}
rules:
  - name: batch
    match: {namespaces: [batch]}
    replicas: {min: 1, max: 16}
  - name: bots-propose-sre-approves
    effect: limit
    match: {namespaces: [batch], groups: [bots]}
    approval: {four_eyes: true, approver_groups: [sre], via: [cli, elicitation]}
  - name: people-need-a-second-person
    effect: limit
    match: {namespaces: [batch], callers: ["local:*", "oidc:alice"]}
    approval: {four_eyes: true, via: [cli, elicitation]}
"""


def propose(gate: Gate, caller: str, groups: tuple[str, ...] = ()) -> str:
    action = action_from_call(
        "scale_deployment",
        {"namespace": "batch", "deployment": "qwen-7b", "replicas": 3},
        "more",
        caller=caller,
    ).model_copy(update={"caller_groups": list(groups)})
    result = gate.submit(action)
    assert result.status is ActionStatus.PENDING_APPROVAL, result.message
    assert result.proposal_id is not None
    return result.proposal_id


@pytest.fixture
def gate(make_gate: Callable[..., Gate], backend: FakeBackend, signals: Signals, clock: Clock) -> Gate:
    return make_gate(POLICY)


@pytest.mark.parametrize(
    ("proposer", "self_approval"),
    [
        ("local:alice", "cli:alice"),  # the same OS user at the terminal
        ("local:alice", "mcp-elicitation:local:alice"),  # confirming in its own chat
        ("local:alice", "cli:carol (delegated by cli:alice)"),  # delegating to someone else's name
        ("oidc:alice", "oidc:alice"),  # the same token subject over HTTP
    ],
)
def test_the_proposer_cannot_approve_under_four_eyes(gate: Gate, proposer: str, self_approval: str) -> None:
    pid = propose(gate, proposer)
    with pytest.raises(Forbidden, match="four eyes"):
        gate.approve(pid, self_approval)
    assert gate.approve(pid, "cli:bob").status is ActionStatus.APPLIED  # a second person can


def test_approvers_by_group(gate: Gate) -> None:
    pid = propose(gate, "oidc:ci-agent", ("bots",))
    with pytest.raises(Forbidden, match="group sre"):
        gate.approve(pid, "oidc:dave", groups=("viewers",))
    with pytest.raises(Forbidden, match="four eyes"):
        gate.approve(pid, "oidc:ci-agent", groups=("sre",))
    done: Any = gate.approve(pid, "oidc:bob", groups=("sre",))
    assert done.status is ActionStatus.APPLIED
