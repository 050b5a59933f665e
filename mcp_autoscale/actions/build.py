"""Building actions: typed proposals from tool calls, their arguments as the audit records them, and the
inverse call that undoes an applied change. Pure functions."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mcp_autoscale.errors import (
    InvalidInput,
)
from mcp_autoscale.models import (
    Action,
    ActionKind,
    ActionParams,
    AutoscalerPatch,
    Change,
    GpuNodeRequest,
    PoolRef,
    PoolSnapshot,
    PoolState,
    ScaleDeploymentParams,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# Building actions
# --------------------------------------------------------------------------------------------------


def new_action(
    kind: ActionKind,
    target: PoolRef | None,
    params: ActionParams,
    rationale: str,
    *,
    dry_run: bool,
    caller: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    caller_name: str | None = None,
    caller_groups: Sequence[str] = (),
) -> Action:
    """A typed proposal. The rationale is required: an action nobody can explain does not happen."""
    if not rationale or not rationale.strip():
        raise InvalidInput("rationale is required: say in one or two sentences why this action is needed")
    if params.kind != kind:
        raise InvalidInput(f"parameters are for {params.kind.value}, not {kind.value}")
    if kind != ActionKind.REQUEST_GPU_NODES and target is None:
        raise InvalidInput(f"{kind.value} needs a target pool (namespace and deployment)")
    return Action(
        id=f"act-{uuid.uuid4().hex[:12]}",
        kind=kind,
        target=target,
        params=params,
        rationale=rationale.strip(),
        dry_run=dry_run,
        caller=caller,
        caller_name=caller_name,
        caller_groups=list(caller_groups),
        idempotency_key=idempotency_key,
        requested_at=now or utcnow(),
    )


def action_arguments(action: Action) -> dict[str, Any]:
    """The action as the MCP tool call that would make it (what the audit log records)."""
    args: dict[str, Any] = {}
    if action.target is not None:
        args = {"namespace": action.target.namespace, "deployment": action.target.name}
        if action.target.cluster:
            args["cluster"] = action.target.cluster
    args.update(action.params.model_dump(mode="json", exclude={"kind"}, exclude_none=True))
    return args


def action_digest(action: Action) -> str:
    """SHA-256 of what a person is shown and approves: tool, target, exact arguments and rationale.

    An approval carries the digest of the action it was shown; the gate runs a proposal only when the
    proposal's own digest matches, so approving one thing can never run another.
    """
    shown = {
        "tool": action.kind.value,
        "arguments": action_arguments(action),
        "rationale": action.rationale,
    }
    return hashlib.sha256(json.dumps(shown, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def action_from_call(
    tool: str,
    arguments: dict[str, Any],
    rationale: str,
    *,
    dry_run: bool = False,
    caller: str = "local",
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Action:
    """Rebuild an Action from a tool name and its arguments (rollback inverses, ``policy explain``)."""
    try:
        kind = ActionKind(tool)
    except ValueError:
        known = ", ".join(k.value for k in ActionKind)
        raise InvalidInput(f"unknown tool {tool!r}; mutating tools are: {known}") from None
    rest = dict(arguments)
    target: PoolRef | None = None
    try:
        if kind != ActionKind.REQUEST_GPU_NODES:
            ns = rest.pop("namespace", None)
            name = rest.pop("deployment", None) or rest.pop("name", None)
            if not ns or not name:
                raise InvalidInput(f"{tool} needs 'namespace' and 'deployment' arguments")
            target = PoolRef(namespace=ns, name=name, cluster=rest.pop("cluster", None))
        params: ActionParams
        if kind == ActionKind.SCALE_DEPLOYMENT:
            params = ScaleDeploymentParams.model_validate(rest)
        elif kind == ActionKind.PATCH_HPA:
            params = AutoscalerPatch.model_validate(rest)
        else:
            params = GpuNodeRequest.model_validate(rest)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(arguments)"
        raise InvalidInput(f"{tool}: {field}: {first['msg']}") from None
    return new_action(
        kind,
        target,
        params,
        rationale,
        dry_run=dry_run,
        caller=caller,
        idempotency_key=idempotency_key,
        now=now,
    )


def inverse_of(action: Action, pool: PoolState | None) -> dict[str, Any] | None:
    """The tool call that undoes an applied action, from the state before it (None: no safe inverse)."""
    p = action.params
    if pool is None or action.target is None:
        return None
    base: dict[str, Any] = {"namespace": action.target.namespace, "deployment": action.target.name}
    if action.target.cluster:
        base["cluster"] = action.target.cluster
    if isinstance(p, ScaleDeploymentParams):
        return {
            "tool": ActionKind.SCALE_DEPLOYMENT.value,
            "arguments": {**base, "replicas": pool.desired_replicas},
        }
    if isinstance(p, AutoscalerPatch) and pool.autoscaler is not None:
        owner = pool.autoscaler
        undo: dict[str, Any] = {}
        for field in p.model_fields_set - {"kind"}:
            if getattr(p, field) is None:
                continue
            before = getattr(owner, field, None)
            if before is not None:
                undo[field] = before
        return {"tool": ActionKind.PATCH_HPA.value, "arguments": {**base, **undo}} if undo else None
    return None


def compact_evidence(snapshot: PoolSnapshot | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return snapshot.model_dump(mode="json", exclude_none=True)


def describe_changes(changes: list[Change]) -> str:
    return ", ".join(f"{c.field} {c.before} -> {c.after}" for c in changes) or "no field changes"
