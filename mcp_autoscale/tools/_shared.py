"""Argument types and annotations shared by the toolsets (one definition, so schemas stay consistent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_autoscale.errors import AutoscaleError, NotFound
from mcp_autoscale.models import K8S_NAME, ActionResult, ActionStatus

Namespace = Annotated[str, Field(pattern=K8S_NAME, max_length=63, description="Pool namespace")]
Deployment = Annotated[
    str,
    Field(pattern=K8S_NAME, max_length=253, description="Pool Deployment name, as the snapshot reports it"),
]
OptNamespace = Annotated[
    str | None, Field(default=None, pattern=K8S_NAME, max_length=63, description="Only this namespace")
]
OptDeployment = Annotated[
    str | None, Field(default=None, pattern=K8S_NAME, max_length=253, description="Only this Deployment")
]
Rationale = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        description="Why, citing the data (required; recorded in the audit log)",
    ),
]
DryRun = Annotated[
    bool,
    Field(
        description="Required, no default (explicit intent): true validates and records a proposal without "
        "changing anything; false applies the change if the policy allows it"
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Field(default=None, max_length=128, description="Retries with the same key act at most once"),
]


def mutating(title: str, *, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        title=title,
        read_only_hint=False,
        destructive_hint=True,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


def read_only(title: str) -> ToolAnnotations:
    return ToolAnnotations(title=title, read_only_hint=True, destructive_hint=False, open_world_hint=False)


def as_tool_result(result: ActionResult) -> ActionResult:
    """Denials and pending approvals are normal results; a failed execution is a tool error the model sees."""
    if result.status is ActionStatus.FAILED:
        raise ToolError(f"{result.message} (audit id {result.audit_id})")
    return result


def tool_error(err: AutoscaleError) -> ToolError:
    prefix = "not found: " if isinstance(err, NotFound) else ""
    return ToolError(f"{prefix}{err}")


T = TypeVar("T")


class Progress:
    """Runs a tool's blocking steps in a worker thread and reports each as MCP progress.

    Snapshots wait on Prometheus (up to its timeout) and planning walks the whole fleet: a client that
    asked for progress sees what the server is doing instead of silence.
    """

    def __init__(self, ctx: Context | None, steps: int) -> None:
        self.ctx = ctx
        self.total = float(steps)
        self.done = 0.0

    async def run(self, message: str, fn: Callable[[], T]) -> T:
        if self.ctx is not None:
            await self.ctx.report_progress(self.done, self.total, message)
        result = await anyio.to_thread.run_sync(fn)
        self.done += 1
        if self.ctx is not None and self.done >= self.total:
            await self.ctx.report_progress(self.total, self.total, "done")
        return result
