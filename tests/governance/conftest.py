"""Governance fixtures: a fake backend, a temp audit log, a gate on a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from governance_fakes import Clock, FakeBackend, Signals

from mcp_autoscale.actions import Gate
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.models import Action, NodePoolState, PoolState
from mcp_autoscale.policy import Policy, parse_policy


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def signals(backend: FakeBackend) -> Signals:
    return Signals(backend)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(backend="sim", audit_file=tmp_path / "audit.jsonl", state_dir=tmp_path / "state")


def simple_cost(action: Action, pool: PoolState | None, node_pool: NodePoolState | None) -> float | None:
    """$1/h per GPU added (negative when removed): easy numbers for budget tests."""
    from mcp_autoscale.models import GpuNodeRequest, ScaleDeploymentParams

    if isinstance(action.params, GpuNodeRequest):
        return float(action.params.gpus)
    if isinstance(action.params, ScaleDeploymentParams) and pool is not None:
        return float((action.params.replicas - pool.desired_replicas) * pool.gpus_per_replica)
    return 0.0


@pytest.fixture
def make_gate(
    backend: FakeBackend, settings: Settings, clock: Clock, signals: Signals, tmp_path: Path
) -> Callable[..., Gate]:
    def factory(policy: Policy | str, **kw: Any) -> Gate:
        if isinstance(policy, str):
            policy = parse_policy(policy, "<test>")
        kw.setdefault("settings", settings)
        kw.setdefault("audit", AuditLog(tmp_path / "audit.jsonl"))
        kw.setdefault("cost_delta", simple_cost)
        kw.setdefault("evidence", signals)
        return Gate(backend=backend, policy=policy, clock=clock, **kw)

    return factory
