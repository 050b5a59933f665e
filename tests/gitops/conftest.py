"""GitOps fixtures: a real temporary Git repository with commented manifests, a fake fleet, a gate."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops_fakes import MANIFESTS, Fleet, git

from mcp_autoscale.actions import Gate
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.policy import Policy, parse_policy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kube"))  # the API-server emulator


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """``git init`` + one commit of the fleet's manifests (with comments) on branch main."""
    path = tmp_path / "fleet-repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Platform Team")
    git(path, "config", "user.email", "platform@example.com")
    git(path, "config", "commit.gpgsign", "false")
    for rel, text in MANIFESTS.items():
        f = path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "fleet manifests")
    return path


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(backend="sim", audit_file=tmp_path / "audit.jsonl", state_dir=tmp_path / "state")


@pytest.fixture
def make_gate(fleet: Fleet, settings: Settings) -> Callable[[Policy], Gate]:
    def build(policy: Policy) -> Gate:
        return Gate(
            backend=fleet,
            policy=policy,
            audit=AuditLog(settings.resolved_audit_file),
            settings=settings,
            evidence=fleet.snapshot,
        )

    return build


@pytest.fixture
def policy_for(repo: Path) -> Callable[..., Policy]:
    """A policy allowing patch_hpa/scale_deployment/request_gpu_nodes in chat and batch, with a gitops block."""

    def build(
        execution: str | None = "gitops", *, extra_rules: str = "", targets: str | None = None
    ) -> Policy:
        exe = f"\n    execution: {execution}" if execution else ""
        mapping = targets if targets is not None else DEFAULT_TARGETS
        text = f"""
version: 1
name: gitops-test
tools: [scale_deployment, patch_hpa, request_gpu_nodes]
namespaces: [chat, batch]
node_pools: ["gpu-*"]
rules:
  - name: chat-bounds
    match: {{namespaces: [chat, batch]}}
    replicas: {{min: 1, max: 32}}{exe}
  - name: gpus
    match: {{node_pools: ["gpu-*"]}}{exe}
{extra_rules}
gitops:
  repo: {repo}
  base: main
  targets:
{mapping}
"""
        return parse_policy(text, "test-policy.yaml")

    return build


DEFAULT_TARGETS = """    - match: {namespace: chat, deployment: llama-8b}
      path: apps/chat/llama-8b.yaml
    - match: {namespace: chat, deployment: "llama-70b-*"}
      path: apps/chat/llama-70b.yaml
    - match: {node_pool: "gpu-*"}
      path: infra/karpenter/nodepools.yaml
"""
