"""Argument types and annotations shared by the toolsets (one definition, so schemas stay consistent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_autoscale.errors import AutoscaleError, NotFound
from mcp_autoscale.models import K8S_NAME, ActionResult, ActionStatus
from mcp_autoscale.paging import DEFAULT_LIMIT, MAX_LIMIT, OwnerFilter, SloFilter, compact_dump, compact_text

Namespace = Annotated[str, Field(pattern=K8S_NAME, max_length=63, description="Pool namespace")]
Deployment = Annotated[
    str,
    Field(pattern=K8S_NAME, max_length=253, description="Pool Deployment name, as the snapshot reports it"),
]
OptNamespace = Annotated[str | None, Field(default=None, max_length=63, description="Only this namespace")]
OptDeployment = Annotated[str | None, Field(default=None, max_length=253, description="Only this Deployment")]
"""Filters only compare names (a malformed one matches no pool), so they carry no pattern: tools/list is in
the model's context on every turn."""
Slo = Annotated[SloFilter | None, Field(default=None, description="SLO status")]
GpuType = Annotated[str | None, Field(default=None, max_length=32, description="GPU type")]
Owner = Annotated[OwnerFilter | None, Field(default=None, description="Owning autoscaler")]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Items per page")]
Cursor = Annotated[
    str | None, Field(default=None, max_length=200, description="next_cursor of the previous page")
]
DEFAULT_PAGE = DEFAULT_LIMIT
RECOMMEND_PAGE = 10
"""Recommendations carry reasons, diagnoses and the exact call (~400 tokens each): fewer per page."""
OptCluster = Annotated[str | None, Field(default=None)]
"""Cluster name on a several-cluster server (default: its default cluster). Checked against the configured
names by ``resolve_cluster``, so the schema carries no pattern: tools/list stays inside its context budget."""
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


def compact_result(model: BaseModel) -> CallToolResult:
    """A read answer as compact JSON text plus the same data as structured content (defaults left out).

    The SDK's default text is indented JSON of every field: at 1,000 pools that alone blows any context
    budget. The structured form still validates against the tool's output schema.
    """
    data = compact_dump(model)
    return CallToolResult(
        content=[TextContent(type="text", text=compact_text(data))], structured_content=data
    )


def resolve_cluster(backend: object, cluster: str | None) -> str | None:
    """The cluster an action addresses: explicit on a several-cluster server (its default when not given),
    None on a single-cluster one (where naming a cluster is an error)."""
    clusters = getattr(backend, "clusters", None)
    if not isinstance(clusters, dict):
        if cluster is not None:
            raise ToolError(f"not found: cluster {cluster!r}: this server addresses a single cluster")
        return None
    name = cluster or str(getattr(backend, "default", ""))
    if name not in clusters:
        raise ToolError(f"not found: cluster {name!r} (clusters: {', '.join(sorted(clusters))})")
    return name


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
