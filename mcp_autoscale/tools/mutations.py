"""The three mutating tools. Each builds a typed ``Action`` and hands it to the one gate; nothing here
touches the cluster. Denied or pending results are normal results that say why and what is allowed."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field, ValidationError

from mcp_autoscale.actions import new_action
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.identity import caller_for
from mcp_autoscale.models import (
    K8S_NAME,
    ActionKind,
    ActionParams,
    ActionResult,
    AutoscalerPatch,
    GpuNodeRequest,
    PoolRef,
    ScaleDeploymentParams,
)
from mcp_autoscale.tools._shared import (
    Deployment,
    DryRun,
    IdempotencyKey,
    Namespace,
    Rationale,
    as_tool_result,
    mutating,
    require_rationale,
    tool_error,
)

Replicas = Annotated[int, Field(ge=0, le=1000, description="Target replica count")]
OptReplicas = Annotated[int | None, Field(default=None, ge=0, le=1000)]
OptSeconds = Annotated[int | None, Field(default=None, ge=0, le=3600, description="Seconds")]


def submit(
    app: AutoscaleApp,
    kind: ActionKind,
    target: PoolRef | None,
    params: ActionParams,
    rationale: str,
    dry_run: bool,
    idempotency_key: str | None,
    caller: str,
) -> ActionResult:
    """The single hand-off from every mutating tool to the gate."""
    try:
        action = new_action(
            kind,
            target,
            params,
            require_rationale(rationale),
            dry_run=dry_run,
            caller=caller,
            idempotency_key=idempotency_key,
        )
        return as_tool_result(app.gate.submit(action))
    except AutoscaleError as err:
        raise tool_error(err) from err


def _pool(namespace: str, deployment: str) -> PoolRef:
    try:
        return PoolRef(namespace=namespace, name=deployment)
    except ValidationError as err:  # already validated by the schema; kept for direct callers
        raise tool_error(AutoscaleError(str(err))) from err


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.tool(annotations=mutating("Scale a Deployment", idempotent=True))
    def scale_deployment(
        namespace: Namespace,
        deployment: Deployment,
        replicas: Replicas,
        rationale: Rationale,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> ActionResult:
        """Set a pool's replicas (scale subresource). Refused when an HPA/KEDA owns the replicas: change
        its bounds with patch_hpa instead. Policy-gated and audited; returns verdict, before->after, audit id."""
        return submit(
            app,
            ActionKind.SCALE_DEPLOYMENT,
            _pool(namespace, deployment),
            ScaleDeploymentParams(replicas=replicas),
            rationale,
            dry_run,
            idempotency_key,
            caller_for(ctx),
        )

    @server.tool(annotations=mutating("Patch autoscaler bounds", idempotent=True))
    def patch_hpa(
        namespace: Namespace,
        deployment: Deployment,
        rationale: Rationale,
        min_replicas: OptReplicas = None,
        max_replicas: Annotated[int | None, Field(default=None, ge=1, le=1000)] = None,
        scale_down_stabilization_s: OptSeconds = None,
        scale_up_stabilization_s: OptSeconds = None,
        paused: Annotated[bool | None, Field(default=None, description="KEDA only: pause autoscaling")] = None,
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> ActionResult:
        """Change the min/max replicas or scale behaviour of the autoscaler owning a pool. For KEDA the
        ScaledObject is patched (never its keda-hpa-*). Omitted fields stay as they are. Policy-gated, audited."""
        patch = AutoscalerPatch(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_down_stabilization_s=scale_down_stabilization_s,
            scale_up_stabilization_s=scale_up_stabilization_s,
            paused=paused,
        )
        if all(getattr(patch, f) is None for f in AutoscalerPatch.model_fields if f != "kind"):
            raise tool_error(AutoscaleError("nothing to change: give min_replicas, max_replicas, a window or paused"))
        return submit(
            app,
            ActionKind.PATCH_HPA,
            _pool(namespace, deployment),
            patch,
            rationale,
            dry_run,
            idempotency_key,
            caller_for(ctx),
        )

    @server.tool(annotations=mutating("Pre-provision GPU nodes", idempotent=False))
    def request_gpu_nodes(
        node_pool: Annotated[str, Field(pattern=K8S_NAME, max_length=253, description="GPU node pool name")],
        gpus: Annotated[int, Field(ge=1, le=1024, description="GPUs of headroom to add")],
        rationale: Rationale,
        method: Annotated[
            Literal["auto", "limit", "balloon"],
            Field(description="limit: raise the NodePool GPU limit; balloon: placeholder pods; auto: as needed"),
        ] = "auto",
        dry_run: DryRun = False,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> ActionResult:
        """Get GPU capacity ahead of demand (nodes take minutes). Policy-gated (GPU and $ budgets), audited."""
        return submit(
            app,
            ActionKind.REQUEST_GPU_NODES,
            None,
            GpuNodeRequest(node_pool=node_pool, gpus=gpus, method=method),
            rationale,
            dry_run,
            idempotency_key,
            caller_for(ctx),
        )
