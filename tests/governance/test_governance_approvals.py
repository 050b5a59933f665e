"""Approvals through the Gate API: pend, approve (re-checked), reject, expire, channels, webhook, rollback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from governance_fakes import Clock, FakeBackend, Signals

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.approvals import ProposalStatus
from mcp_autoscale.errors import Forbidden, InvalidInput, NotFound
from mcp_autoscale.models import ActionStatus, Decision

POLICY = """
version: 1
name: approvals
tools: [scale_deployment, patch_hpa, request_gpu_nodes]
namespaces: [chat, batch, dev]
node_pools: ["gpu-*"]
approval_ttl_s: 7200
rules:
  - name: prod
    match: {namespaces: [chat, batch]}
    replicas: {min: 1, max: 16}
    max_step: 4
    cooldown_s: 300
    guards: {max_kv_for_scale_in: 0.75, max_queue_for_scale_in: 5, max_data_age_s: 60}
  - name: prod-scale-in
    effect: limit
    reason: a person signs off production scale-in
    match: {namespaces: [batch]}
    approval: {when: scale_in, via: [cli], ttl_s: 600, approvers: [carol, dave]}
  - name: gpus
    match: {tools: [request_gpu_nodes]}
    approval: {over_gpus: 2, via: [elicitation, cli]}
  - name: dev
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
"""


def scale_in(replicas: int = 1, **kw: Any) -> Any:
    return action_from_call(
        "scale_deployment",
        {"namespace": "batch", "deployment": "qwen-7b", "replicas": replicas},
        "qwen-7b idles at night",
        caller="agent-1",
        **kw,
    )


def gpus(n: int) -> Any:
    return action_from_call(
        "request_gpu_nodes", {"node_pool": "gpu-l4", "gpus": n}, "burst expected", caller="a"
    )


@pytest.fixture
def gate(make_gate: Callable[..., Gate]) -> Gate:
    return make_gate(POLICY)


def test_pending_proposal_is_stored_and_audited(gate: Gate, backend: FakeBackend, clock: Clock) -> None:
    res = gate.submit(scale_in())
    assert res.status == ActionStatus.PENDING_APPROVAL and res.proposal_id
    assert res.proposal_id in res.message and "Do not retry" in res.message
    p = gate.proposals.get(res.proposal_id)
    assert p.status == ProposalStatus.PENDING and p.via == ["cli"] and p.approvers == ["carol", "dave"]
    assert (p.expires_at - clock.now).total_seconds() == 600  # the rule's ttl, not the policy default
    assert p.audit_id == res.audit_id and gate.audit.get(res.audit_id or "").proposal_id == p.id
    assert (gate.proposals.directory / f"{p.id}.json").exists()
    assert [x.id for x in gate.pending()] == [p.id]
    assert backend.writes == []


def test_approve_executes_and_audits_the_approver(gate: Gate, backend: FakeBackend, clock: Clock) -> None:
    pend = gate.submit(scale_in())
    clock.advance(60)
    res = gate.approve(pend.proposal_id or "", "cli:carol")
    assert res.status == ActionStatus.APPLIED and res.action_id == pend.action_id
    assert backend.pools["batch/qwen-7b"].desired_replicas == 1
    rec = gate.audit.get(res.audit_id or "")
    assert rec.approver == "cli:carol" and rec.proposal_id == pend.proposal_id and rec.ts == clock.now
    assert "approved by cli:carol" in rec.verdict.reasons
    p = gate.proposals.get(pend.proposal_id or "")
    assert p.status == ProposalStatus.EXECUTED and p.decided_by == "cli:carol" and p.result_audit_id == rec.id
    with pytest.raises(InvalidInput, match="already executed"):
        gate.approve(pend.proposal_id or "", "cli:carol")
    assert gate.pending() == []


def test_only_listed_approvers_and_accepted_channels(gate: Gate) -> None:
    pend = gate.submit(scale_in())
    assert not gate.elicitation_allowed(pend.verdict)
    with pytest.raises(Forbidden, match="elicitation is not enough"):
        gate.approve(pend.proposal_id or "", "mcp-elicitation:agent-1")
    with pytest.raises(Forbidden, match="mallory may not approve"):
        gate.approve(pend.proposal_id or "", "cli:mallory")
    assert gate.proposals.get(pend.proposal_id or "").status == ProposalStatus.PENDING


def test_elicitation_is_enough_where_the_rule_says_so(gate: Gate, backend: FakeBackend) -> None:
    small = gate.submit(gpus(2))
    assert small.status == ActionStatus.APPLIED
    big = gate.submit(gpus(4))
    assert big.status == ActionStatus.PENDING_APPROVAL and gate.elicitation_allowed(big.verdict)
    assert "confirming in the MCP client" in big.message
    res = gate.approve(big.proposal_id or "", "mcp-elicitation:a")
    assert res.status == ActionStatus.APPLIED and backend.node_pools["gpu-l4"].reserved_gpus == 6
    assert not gate.elicitation_allowed(small.verdict)


def test_policy_is_rechecked_at_execution(
    gate: Gate, backend: FakeBackend, signals: Signals, clock: Clock
) -> None:
    pend = gate.submit(scale_in())
    signals.kv["batch/qwen-7b"] = 0.93  # KV pressure arrived while the proposal waited
    res = gate.approve(pend.proposal_id or "", "cli:dave")
    assert res.status == ActionStatus.DENIED and "KV-cache usage 0.93 > 0.75" in res.message
    assert backend.writes == []
    assert gate.proposals.get(pend.proposal_id or "").status == ProposalStatus.FAILED
    assert gate.audit.get(res.audit_id or "").approver == "cli:dave"


def test_data_freshness_is_rechecked_at_execution(gate: Gate, signals: Signals, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in())
    signals.age = 600.0
    res = gate.approve(pend.proposal_id or "", "cli:carol")
    assert res.status == ActionStatus.DENIED and "stale data" in res.message and backend.writes == []


def test_expired_proposal_cannot_run(gate: Gate, backend: FakeBackend, clock: Clock) -> None:
    pend = gate.submit(scale_in())
    clock.advance(601)
    res = gate.approve(pend.proposal_id or "", "cli:carol")
    assert res.status == ActionStatus.EXPIRED and "not approved before" in res.message
    assert backend.writes == []
    assert gate.proposals.get(pend.proposal_id or "").status == ProposalStatus.EXPIRED
    with pytest.raises(InvalidInput, match="already expired"):
        gate.approve(pend.proposal_id or "", "cli:carol")


def test_pending_sweeps_and_audits_expired(gate: Gate, clock: Clock) -> None:
    pend = gate.submit(scale_in())
    clock.advance(3600)
    assert gate.pending() == []
    statuses = [r.status for r in gate.audit.records()]
    assert statuses == [ActionStatus.PENDING_APPROVAL, ActionStatus.EXPIRED]
    assert gate.audit.records()[-1].proposal_id == pend.proposal_id


def test_reject(gate: Gate, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in())
    with pytest.raises(InvalidInput, match="reason is required"):
        gate.reject(pend.proposal_id or "", "cli:carol", "  ")
    res = gate.reject(pend.proposal_id or "", "cli:carol", "traffic peak expected at 9")
    assert res.status == ActionStatus.REJECTED and "traffic peak expected at 9" in res.message
    rec = gate.audit.get(res.audit_id or "")
    assert rec.approver == "cli:carol" and rec.status == ActionStatus.REJECTED
    assert gate.proposals.get(pend.proposal_id or "").status == ProposalStatus.REJECTED
    assert backend.writes == []


def test_unknown_proposal(gate: Gate) -> None:
    with pytest.raises(NotFound, match="mcp-autoscale pending"):
        gate.approve("prop-000000000000", "cli:carol")
    with pytest.raises(InvalidInput):
        gate.approve("../../etc/passwd", "cli:carol")


def test_approve_later_then_execute_approved(gate: Gate, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in())
    p = gate.approve_later(pend.proposal_id or "", "cli:dave")
    assert p.status == ProposalStatus.APPROVED and backend.writes == []
    results = gate.execute_approved()
    assert [r.status for r in results] == [ActionStatus.APPLIED]
    assert gate.audit.get(results[0].audit_id or "").approver == "cli:dave"
    assert gate.execute_approved() == []


def test_execute_approved_refuses_a_proposal_changed_after_approval(gate: Gate, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in())
    p = gate.approve_later(pend.proposal_id or "", "cli:dave")
    tampered = p.action.model_copy(update={"params": p.action.params.model_copy(update={"replicas": 0})})
    gate.proposals.save(p.model_copy(update={"action": tampered}))  # the file edited between approve and run
    results = gate.execute_approved()
    assert [r.status for r in results] == [ActionStatus.DENIED]
    assert "digest mismatch" in results[0].message and backend.writes == []
    assert gate.proposals.get(p.id).status == ProposalStatus.FAILED
    assert gate.execute_approved() == []


def test_execute_approved_refuses_a_proposal_whose_digest_was_removed(
    gate: Gate, backend: FakeBackend
) -> None:
    pend = gate.submit(scale_in())
    p = gate.approve_later(pend.proposal_id or "", "cli:dave")
    tampered = p.action.model_copy(update={"params": p.action.params.model_copy(update={"replicas": 3})})
    gate.proposals.save(p.model_copy(update={"action": tampered, "digest": None}))  # no digest, no check?
    results = gate.execute_approved()
    assert [r.status for r in results] == [ActionStatus.DENIED]
    assert "holds no digest" in results[0].message and backend.writes == []
    assert gate.proposals.get(p.id).status == ProposalStatus.FAILED


def test_reject_needs_the_right_to_approve_unless_withdrawn(gate: Gate, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in())
    with pytest.raises(Forbidden, match="may not approve"):
        gate.reject(pend.proposal_id or "", "cli:mallory", "veto")
    assert gate.proposals.get(pend.proposal_id or "").status == ProposalStatus.PENDING
    res = gate.reject(pend.proposal_id or "", "mcp-elicitation:agent-1", "withdrawn: load came back")
    assert res.status == ActionStatus.REJECTED and backend.writes == []


def test_only_the_proposer_in_person_may_withdraw(gate: Gate, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in())
    pid = pend.proposal_id or ""
    # an identity that reads like a delegation by the proposer (a token subject can say anything)
    with pytest.raises(Forbidden, match="may not approve"):
        gate.reject(pid, "oidc:mallory (delegated by agent-1)", "veto")
    with pytest.raises(Forbidden, match="needs approval via cli"):
        gate.reject(pid, "mcp-elicitation:oidc:mallory (delegated by agent-1)", "veto")
    assert gate.proposals.get(pid).status == ProposalStatus.PENDING
    res = gate.reject(pid, "cli:dave (delegated by cli:mallory)", "on dave's behalf")  # an approver's name
    assert res.status == ActionStatus.REJECTED and backend.writes == []


def test_idempotent_retry_after_approval_returns_the_outcome(gate: Gate, backend: FakeBackend) -> None:
    pend = gate.submit(scale_in(idempotency_key="night-1"))
    assert gate.submit(scale_in(idempotency_key="night-1")).status == ActionStatus.PENDING_APPROVAL
    assert len(gate.proposals.all()) == 1
    gate.approve(pend.proposal_id or "", "cli:carol")
    again = gate.submit(scale_in(idempotency_key="night-1"))
    assert again.status == ActionStatus.APPLIED and len(backend.applied_writes()) == 1


def test_rollback_goes_through_the_gate(gate: Gate, backend: FakeBackend, clock: Clock) -> None:
    up = gate.submit(
        action_from_call(
            "scale_deployment", {"namespace": "dev", "deployment": "granite-8b", "replicas": 3}, "x"
        )
    )
    assert up.status == ActionStatus.APPLIED
    back = gate.rollback(up.audit_id or "", "latency recovered", caller="bob", dry_run=False)
    assert back.status == ActionStatus.APPLIED and backend.pools["dev/granite-8b"].desired_replicas == 1
    rec = gate.audit.get(back.audit_id or "")
    assert rec.rationale == f"latency recovered (rollback of {up.audit_id})" and rec.caller == "bob"
    dry = gate.rollback(back.audit_id or "", "again", caller="bob", dry_run=True)
    assert dry.status == ActionStatus.DRY_RUN
    with pytest.raises(InvalidInput, match="not applied"):
        gate.rollback(dry.audit_id or "", "x", caller="bob", dry_run=False)
    with pytest.raises(InvalidInput, match="rationale"):
        gate.rollback(back.audit_id or "", " ", caller="bob", dry_run=False)


def test_rollback_of_a_production_scale_out_needs_approval(gate: Gate, clock: Clock) -> None:
    up = gate.submit(scale_in(4))  # 2 -> 4 is a scale-out: no approval needed
    assert up.status == ActionStatus.APPLIED
    clock.advance(301)
    back = gate.rollback(up.audit_id or "", "not needed after all", caller="bob", dry_run=False)
    assert back.status == ActionStatus.PENDING_APPROVAL and back.verdict.rules == ["prod-scale-in"]


def test_gpu_requests_have_no_inverse(gate: Gate) -> None:
    res = gate.submit(gpus(1))
    with pytest.raises(InvalidInput, match="no automatic inverse"):
        gate.rollback(res.audit_id or "", "x", caller="bob", dry_run=False)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    release: threading.Event

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.release.wait(10)  # hold the response: the verdict must not wait for it
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler: type[_Hook] = type("Hook", (_Hook,), {"received": [], "release": threading.Event()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    handler.release.set()
    server.shutdown()


def test_webhook_posts_pending_proposals_without_blocking(
    make_gate: Callable[..., Gate], hook: tuple[str, type[_Hook]]
) -> None:
    url, handler = hook
    gate = make_gate(POLICY, webhook_url=url)
    res = gate.submit(scale_in())  # returns while the webhook handler is still holding the request
    assert res.status == ActionStatus.PENDING_APPROVAL and handler.received == []
    handler.release.set()
    deadline = threading.Event()
    for _ in range(500):
        if handler.received:
            break
        deadline.wait(0.01)
    assert handler.received, "webhook never arrived"
    payload = handler.received[0]
    assert payload["proposal_id"] == res.proposal_id and payload["target"] == "batch/qwen-7b"
    assert (
        f"mcp-autoscale approve {res.proposal_id}" in payload["text"] and "qwen-7b idles" in payload["text"]
    )
    assert payload["via"] == ["cli"]


def test_dead_webhook_changes_nothing(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate(POLICY, webhook_url="http://127.0.0.1:9/nowhere")
    res = gate.submit(scale_in())
    assert res.status == ActionStatus.PENDING_APPROVAL and gate.pending()


def test_check_reports_needs_approval_without_a_proposal(gate: Gate) -> None:
    assert gate.check(scale_in()).decision == Decision.NEEDS_APPROVAL
    assert gate.proposals.all() == []
