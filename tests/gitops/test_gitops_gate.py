"""GitOps execution through the one gate, against a real temporary Git repository."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops_fakes import LLAMA_8B, NODEPOOLS, Fleet, git, repo_state

from mcp_autoscale.actions import Gate, new_action
from mcp_autoscale.audit.verify import verify_file
from mcp_autoscale.errors import AuditUnavailable
from mcp_autoscale.models import (
    Action,
    ActionKind,
    ActionStatus,
    AutoscalerPatch,
    Decision,
    GpuNodeRequest,
    PoolRef,
    ScaleDeploymentParams,
)
from mcp_autoscale.policy import Policy

LLAMA = PoolRef(namespace="chat", name="llama-8b")
WHY = "TTFT p90 3.1 s > 2.0 s with queue 42 at maxReplicaCount 16: raise the cap to 24"


def patch(max_replicas: int, *, dry_run: bool = False, ref: PoolRef = LLAMA, **kw: int | bool) -> Action:
    return new_action(
        ActionKind.PATCH_HPA,
        ref,
        AutoscalerPatch(max_replicas=max_replicas, **kw),  # type: ignore[arg-type]
        WHY,
        dry_run=dry_run,
        caller="test-agent",
    )


def changed_lines(diff: str) -> list[str]:
    return [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_max_replica_change_lands_as_a_commit_touching_only_that_field(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    before = repo_state(repo)
    gate = make_gate(policy_for("gitops"))
    action = patch(24)
    result = gate.submit(action)

    assert result.status == ActionStatus.PROPOSED_COMMIT, result.message
    assert result.verdict.decision == Decision.ALLOW
    assert fleet.writes == []  # the cluster was not patched
    branch = f"mcp-autoscale/{action.id}"
    assert branch in result.message
    # The new branch is one commit on top of main, touching one line of one file.
    assert git(repo, "rev-parse", f"{branch}~1") == before["head"]
    assert git(repo, "diff", "--name-only", "main", branch).split() == ["apps/chat/llama-8b.yaml"]
    diff = git(repo, "diff", "main", branch)
    assert changed_lines(diff) == [
        "-  maxReplicaCount: 16  # burst cap, reviewed 2026-10",
        "+  maxReplicaCount: 24  # burst cap, reviewed 2026-10",
    ]
    committed = git(repo, "show", f"{branch}:apps/chat/llama-8b.yaml")
    assert committed == LLAMA_8B.replace("maxReplicaCount: 16 ", "maxReplicaCount: 24 ")
    assert [ln for ln in committed.splitlines() if "#" in ln] == [
        ln.replace("16 ", "24 ") for ln in LLAMA_8B.splitlines() if "#" in ln
    ]
    # The result carries the diff and the commit; the user's checkout is exactly as it was.
    assert changed_lines(result.notes[-1]) == changed_lines(diff)
    git_change = result.changes[-1]
    sha = git(repo, "rev-parse", branch).strip()
    assert (
        git_change.field == "git"
        and git_change.after["commit"] == sha
        and git_change.after["branch"] == branch
    )
    assert result.changes[0].before == 16 and result.changes[0].after == 24
    after = repo_state(repo)
    assert {k: v for k, v in after.items() if k != "refs"} == {k: v for k, v in before.items() if k != "refs"}
    assert after["refs"].splitlines() == sorted([*before["refs"].splitlines(), f"refs/heads/{branch} {sha}"])
    # Commit message: rationale, verdict, audit id; the audit record links the commit.
    message = git(repo, "log", "-1", "--format=%B", branch)
    author = git(repo, "log", "-1", "--format=%an <%ae>", branch).strip()
    assert author == "mcp-autoscale <mcp-autoscale@localhost>"
    assert WHY in message and "Policy verdict: allow" in message and "rule 'chat-bounds'" in message
    assert f"Audit-Id: {result.audit_id}" in message and f"Action-Id: {action.id}" in message
    record = gate.audit.get(str(result.audit_id))
    assert record.status == ActionStatus.PROPOSED_COMMIT
    assert record.changes[-1].after == {
        "repo": str(repo),
        "branch": branch,
        "commit": sha,
        "files": ["apps/chat/llama-8b.yaml"],
    }
    assert verify_file(gate.audit.path).ok


def test_dry_run_returns_the_diff_and_leaves_the_repository_untouched(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    objects = git(repo, "count-objects", "-v")
    before = repo_state(repo)
    result = make_gate(policy_for("gitops")).submit(patch(24, dry_run=True))

    assert result.status == ActionStatus.DRY_RUN, result.message
    assert "nothing committed" in result.message
    assert changed_lines(result.notes[-1]) == [
        "-  maxReplicaCount: 16  # burst cap, reviewed 2026-10",
        "+  maxReplicaCount: 24  # burst cap, reviewed 2026-10",
    ]
    assert "a/apps/chat/llama-8b.yaml" in result.notes[-1]
    assert result.changes[-1].after["commit"] is None
    assert repo_state(repo) == before
    assert git(repo, "count-objects", "-v") == objects  # not even a loose blob was written
    assert fleet.writes == []


def test_target_without_git_mapping_is_refused_with_a_clear_message(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    before = repo_state(repo)
    qwen = PoolRef(namespace="batch", name="qwen-7b")
    action = new_action(
        ActionKind.SCALE_DEPLOYMENT, qwen, ScaleDeploymentParams(replicas=3), WHY, dry_run=False, caller="t"
    )
    only_llama = "    - match: {namespace: chat, deployment: llama-8b}\n      path: apps/chat/llama-8b.yaml\n"
    result = make_gate(policy_for("gitops", targets=only_llama)).submit(action)

    assert result.status == ActionStatus.DENIED
    assert result.verdict.rules == ["chat-bounds"]
    assert "batch/qwen-7b has no Git mapping in gitops.targets" in result.message
    assert "refusing rather than patching the cluster" in result.message
    assert "namespace: batch, deployment: qwen-7b" in str(result.verdict.hint)
    assert fleet.writes == [] and repo_state(repo) == before


def test_routing_direct_gitops_and_refuse(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    # direct (no execution given): the backend is patched, the verdict says who manages the object.
    direct = make_gate(policy_for(None)).submit(patch(20))
    assert direct.status == ActionStatus.APPLIED
    assert fleet.writes and fleet.writes[-1][0] == "patch"
    assert any(
        "chat/llama-8b ScaledObject llama-8b is managed by Argo CD app 'inference' (self-heal reverts" in r
        for r in direct.verdict.reasons
    )
    assert git(repo, "branch", "--list", "mcp-autoscale/*") == ""

    # refuse: denied, naming the manager and the alternative.
    writes = len(fleet.writes)
    refused = make_gate(policy_for("refuse")).submit(patch(24))
    assert refused.status == ActionStatus.DENIED
    assert refused.verdict.rules == ["chat-bounds"]
    assert "Argo CD app 'inference' manages it" in refused.verdict.reasons[0]
    assert "execution: gitops" in str(refused.verdict.hint) and "Git repository" in str(refused.verdict.hint)
    assert len(fleet.writes) == writes

    # gitops: a commit, no backend write.
    committed = make_gate(policy_for("gitops")).submit(patch(24))
    assert committed.status == ActionStatus.PROPOSED_COMMIT
    assert len(fleet.writes) == writes
    assert len(git(repo, "branch", "--list", "mcp-autoscale/*").split()) == 1


def test_the_strictest_execution_among_matching_rules_wins(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    extra = """  - name: llama-via-git
    effect: limit
    match: {pools: [chat/llama-8b]}
    execution: gitops
"""
    gate = make_gate(policy_for("direct", extra_rules=extra))
    assert gate.submit(patch(24)).status == ActionStatus.PROPOSED_COMMIT
    other = gate.submit(patch(5, ref=PoolRef(namespace="chat", name="llama-70b-decode")))
    assert other.status == ActionStatus.APPLIED  # only llama-8b is routed to Git
    refuse = (
        extra.replace("llama-via-git", "never-70b")
        .replace("llama-8b", "llama-70b-*")
        .replace("gitops", "refuse")
    )
    gate = make_gate(policy_for("gitops", extra_rules=refuse))
    denied = gate.submit(patch(5, ref=PoolRef(namespace="chat", name="llama-70b-decode")))
    assert denied.status == ActionStatus.DENIED and denied.verdict.rules == ["never-70b"]


def test_policy_denial_comes_first_and_nothing_is_committed(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    before = repo_state(repo)
    result = make_gate(policy_for("gitops")).submit(patch(64))  # over replicas.max 32
    assert result.status == ActionStatus.DENIED
    assert "max_replicas 64 > max 32" in result.message
    assert repo_state(repo) == before


def test_needs_approval_then_commit_after_approval(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    extra = """  - name: humans-review
    effect: limit
    match: {namespaces: [chat]}
    approval: {when: scale_out}
"""
    gate = make_gate(policy_for("gitops", extra_rules=extra))
    pending = gate.submit(patch(24))
    assert pending.status == ActionStatus.PENDING_APPROVAL
    assert git(repo, "branch", "--list", "mcp-autoscale/*") == ""
    assert pending.proposal_id is not None
    done = gate.approve(pending.proposal_id, "cli:alice")
    assert done.status == ActionStatus.PROPOSED_COMMIT, done.message
    assert "approved by cli:alice" in git(repo, "log", "-1", "--format=%B", "--branches=mcp-autoscale/*")


def test_hpa_scaled_object_pause_and_window_edits(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    gate = make_gate(policy_for("gitops"))
    prefill = PoolRef(namespace="chat", name="llama-70b-prefill")
    hpa = gate.submit(patch(3, ref=prefill))
    assert hpa.status == ActionStatus.PROPOSED_COMMIT, hpa.message
    assert changed_lines(hpa.notes[-1]) == [
        "-  maxReplicas: 4 # 16 H100s at most",
        "+  maxReplicas: 3 # 16 H100s at most",
    ]

    action = new_action(
        ActionKind.PATCH_HPA,
        LLAMA,
        AutoscalerPatch(paused=True, scale_down_stabilization_s=600),
        "night: hold replicas while the queue is empty",
        dry_run=True,
        caller="t",
    )
    res = gate.submit(action)
    assert res.status == ActionStatus.DRY_RUN, res.message
    added = [ln for ln in changed_lines(res.notes[-1]) if ln.startswith("+")]
    assert added == [
        "+  annotations:",
        '+    autoscaling.keda.sh/paused: "true"',
        "+  advanced:",
        "+    horizontalPodAutoscalerConfig:",
        "+      behavior:",
        "+        scaleDown:",
        "+          stabilizationWindowSeconds: 600",
    ]
    assert not [ln for ln in changed_lines(res.notes[-1]) if ln.startswith("-")]


def test_node_pool_limit_commit_and_balloon_refusal(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    gate = make_gate(policy_for("gitops"))
    req = GpuNodeRequest(node_pool="gpu-h100", gpus=16, method="limit")
    action = new_action(ActionKind.REQUEST_GPU_NODES, None, req, WHY, dry_run=False, caller="t")
    result = gate.submit(action)
    assert result.status == ActionStatus.PROPOSED_COMMIT, result.message
    # 24 GPUs in use + 2 p5 nodes (8 GPUs each) = 40; the string quantity keeps its quotes and comment.
    assert changed_lines(result.notes[-1]) == [
        '-    nvidia.com/gpu: "32" # three p5 nodes and change',
        '+    nvidia.com/gpu: "40" # three p5 nodes and change',
    ]
    assert any(
        "NodePool gpu-h100 is managed by Flux Kustomization 'flux-system/infra'" in r
        for r in result.verdict.reasons
    )
    assert git(repo, "show", "main:infra/karpenter/nodepools.yaml") == NODEPOOLS

    balloon = GpuNodeRequest(node_pool="gpu-l4", gpus=2, method="balloon")
    denied = gate.submit(
        new_action(ActionKind.REQUEST_GPU_NODES, None, balloon, WHY, dry_run=False, caller="t")
    )
    assert denied.status == ActionStatus.DENIED
    assert "balloon" in denied.message and "method=limit" in denied.message
    assert fleet.writes == []


def test_kustomization_target_gets_a_patch_file(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    targets = "    - match: {namespace: batch}\n      kustomization: apps/{namespace}/{deployment}/kustomization.yaml\n"
    gate = make_gate(policy_for("gitops", targets=targets))
    qwen = PoolRef(namespace="batch", name="qwen-7b")
    action = new_action(
        ActionKind.SCALE_DEPLOYMENT,
        qwen,
        ScaleDeploymentParams(replicas=1),
        "idle batch pool",
        dry_run=False,
        caller="t",
    )
    result = gate.submit(action)
    assert result.status == ActionStatus.PROPOSED_COMMIT, result.message
    branch = f"mcp-autoscale/{action.id}"
    names = git(repo, "diff", "--name-only", "main", branch).split()
    patch_file = "apps/batch/qwen-7b/mcp-autoscale-deployment-qwen-7b.yaml"
    assert names == ["apps/batch/qwen-7b/kustomization.yaml", patch_file]
    kust = git(repo, "show", f"{branch}:apps/batch/qwen-7b/kustomization.yaml")
    assert kust.startswith("# batch/qwen-7b comes from a shared base")
    assert kust.rstrip().endswith("patches:\n- path: mcp-autoscale-deployment-qwen-7b.yaml")
    body = git(repo, "show", f"{branch}:{patch_file}")
    assert "kind: Deployment" in body and "name: qwen-7b" in body and re.search(r"replicas: 1\b", body)

    # A second change edits the existing patch file and leaves the kustomization alone.
    git(repo, "merge", "-q", "--ff-only", branch)
    again = new_action(
        ActionKind.SCALE_DEPLOYMENT,
        qwen,
        ScaleDeploymentParams(replicas=3),
        "batch backlog",
        dry_run=False,
        caller="t",
    )
    second = gate.submit(again)
    assert second.status == ActionStatus.PROPOSED_COMMIT, second.message
    names = git(repo, "diff", "--name-only", "main", f"mcp-autoscale/{again.id}").split()
    assert names == [patch_file]
    assert second.changes[0].before == 1 and second.changes[0].after == 3


def test_uncommitted_user_edits_are_neither_used_nor_touched(
    repo: Path, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    manifest = repo / "apps/chat/llama-8b.yaml"
    manifest.write_text(LLAMA_8B.replace("minReplicaCount: 2 ", "minReplicaCount: 3 "))
    before = repo_state(repo)
    result = make_gate(policy_for("gitops")).submit(patch(24))
    assert result.status == ActionStatus.PROPOSED_COMMIT
    assert repo_state(repo)["status"] == before["status"]
    assert "minReplicaCount: 3 " in manifest.read_text()  # the user's edit is still there, uncommitted
    committed = git(repo, "show", f"mcp-autoscale/{result.action_id}:apps/chat/llama-8b.yaml")
    assert "minReplicaCount: 2 " in committed  # and it did not leak into the proposal


def test_nothing_to_commit_when_git_already_declares_the_value(
    repo: Path, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy], fleet: Fleet
) -> None:
    live = fleet.pools["chat/llama-8b"]
    assert live.autoscaler is not None
    fleet.pools["chat/llama-8b"] = live.model_copy(
        update={"autoscaler": live.autoscaler.model_copy(update={"max_replicas": 20})}
    )
    result = make_gate(policy_for("gitops")).submit(patch(16))  # Git already says 16; the cluster says 20
    assert result.status == ActionStatus.FAILED
    assert "Git already declares" in result.message and "gitops_drift" in result.message
    assert git(repo, "branch", "--list", "mcp-autoscale/*") == ""


def test_check_has_no_side_effects(
    repo: Path, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    before = repo_state(repo)
    gate = make_gate(policy_for("gitops"))
    verdict = gate.check(patch(24))
    assert verdict.decision == Decision.ALLOW
    assert any(
        "execution gitops: proposed as a commit on branch mcp-autoscale/" in r for r in verdict.reasons
    )
    assert repo_state(repo) == before and gate.audit.records() == []


def test_one_open_proposal_per_target(
    repo: Path, fleet: Fleet, make_gate: Callable[[Policy], Gate], policy_for: Callable[..., Policy]
) -> None:
    gate = make_gate(policy_for("gitops"))
    first = gate.submit(patch(24))
    assert first.status == ActionStatus.PROPOSED_COMMIT
    branch = f"mcp-autoscale/{first.action_id}"
    assert "Target: chat/llama-8b" in git(repo, "log", "-1", "--format=%B", branch)

    second = gate.submit(patch(28))
    assert second.status == ActionStatus.FAILED
    assert f"still open on branch {branch}" in second.message and f"git branch -D {branch}" in second.message
    other = gate.submit(patch(5, ref=PoolRef(namespace="chat", name="llama-70b-decode")))
    assert other.status == ActionStatus.PROPOSED_COMMIT  # other targets are not blocked

    git(repo, "branch", "-D", branch)  # the pull request was closed
    third = gate.submit(patch(28))
    assert third.status == ActionStatus.PROPOSED_COMMIT, third.message


def test_a_commit_is_written_ahead_and_no_intent_means_no_commit(
    repo: Path,
    fleet: Fleet,
    make_gate: Callable[[Policy], Gate],
    policy_for: Callable[..., Policy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Git commit is a write the controller will apply: an intent record comes first, as for the API."""
    gate = make_gate(policy_for("gitops"))
    before = repo_state(repo)
    real = os.write

    def full_disk_for_intents(fd: int, data: bytes) -> int:
        if b'"status":"intent"' in bytes(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr("mcp_autoscale.audit.log.os.write", full_disk_for_intents)
    with pytest.raises(AuditUnavailable):
        gate.submit(patch(24))
    assert repo_state(repo) == before  # nothing committed
    monkeypatch.undo()

    result = gate.submit(patch(24))
    assert result.status == ActionStatus.PROPOSED_COMMIT, result.message
    intent, outcome = gate.audit.records(intents=True)[-2:]
    assert intent.status == ActionStatus.INTENT and outcome.id == result.audit_id
    assert outcome.intent_id == intent.id and gate.audit.open_intents() == []
