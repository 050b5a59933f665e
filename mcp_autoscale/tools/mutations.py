"""The three mutating tools. Each builds a typed ``Action`` and hands it to the one gate; nothing here
touches the cluster. Denied or pending results are normal results that say why and what is allowed.

No ``from __future__ import annotations`` here: the approval resolvers are closures over ``app`` and the
SDK evaluates ``Resolve(...)`` annotations at registration, so they must be real objects, not strings.
"""

from collections.abc import Callable
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from mcp_autoscale.actions import new_action
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.identity import Identity, identity_for, require_scope
from mcp_autoscale.models import (
    K8S_NAME,
    Action,
    ActionKind,
    ActionParams,
    ActionResult,
    AutoscalerPatch,
    GpuNodeRequest,
    PoolRef,
    ScaleDeploymentParams,
)
from mcp_autoscale.tools._approval import NOT_ASKED, ApprovalAnswer, question, settle
from mcp_autoscale.tools._shared import (
    Deployment,
    DryRun,
    IdempotencyKey,
    Namespace,
    OptCluster,
    Rationale,
    as_tool_result,
    mutating,
    resolve_cluster,
    tool_error,
)
from mcp_autoscale.web.scopes import WRITE

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
    caller: Identity,
    answer: ElicitationResult[ApprovalAnswer] | None = None,
) -> ActionResult:
    """The single hand-off from every mutating tool to the gate (and, when asked, to the approver)."""
    try:
        action = build(kind, target, params, rationale, dry_run, caller, idempotency_key)
        app.run_approved()
        result = app.gate.submit(action)
        if answer is not None:
            result = settle(app, result, answer, caller.caller, action)
        return as_tool_result(result)
    except AutoscaleError as err:
        raise tool_error(err) from err


def build(
    kind: ActionKind,
    target: PoolRef | None,
    params: ActionParams,
    rationale: str,
    dry_run: bool,
    caller: Identity,
    idempotency_key: str | None = None,
) -> Action:
    return new_action(
        kind,
        target,
        params,
        rationale,  # new_action refuses a blank one with a message the model can act on
        dry_run=dry_run,
        caller=caller.caller,
        caller_name=caller.name,
        caller_groups=caller.groups,
        idempotency_key=idempotency_key,
    )


Answer = ElicitationResult[ApprovalAnswer]
Ask = Elicit[ApprovalAnswer] | ApprovalAnswer


def register(server: MCPServer, app: AutoscaleApp) -> None:
    def ask(ctx: Context, make: Callable[[Identity], Action]) -> Ask:
        who = identity_for(ctx)
        if not who.allows(WRITE):
            return NOT_ASKED  # the tool body refuses with the missing scope; never ask about it
        try:
            action = make(who)
        except (AutoscaleError, ToolError, ValidationError, ValueError):
            return NOT_ASKED  # the tool body reports bad input properly
        return question(app, ctx, action)

    def ask_scale(
        ctx: Context,
        namespace: str,
        deployment: str,
        replicas: int,
        rationale: str,
        dry_run: bool = True,
        idempotency_key: str | None = None,
        cluster: str | None = None,
    ) -> Ask:
        return ask(
            ctx,
            lambda caller: build(
                ActionKind.SCALE_DEPLOYMENT,
                PoolRef(namespace=namespace, name=deployment, cluster=resolve_cluster(app.backend, cluster)),
                ScaleDeploymentParams(replicas=replicas),
                rationale,
                dry_run,
                caller,
                idempotency_key,
            ),
        )

    def ask_patch(
        ctx: Context,
        namespace: str,
        deployment: str,
        rationale: str,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
        scale_down_stabilization_s: int | None = None,
        scale_up_stabilization_s: int | None = None,
        paused: bool | None = None,
        dry_run: bool = True,
        idempotency_key: str | None = None,
        cluster: str | None = None,
    ) -> Ask:
        patch = AutoscalerPatch(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            scale_down_stabilization_s=scale_down_stabilization_s,
            scale_up_stabilization_s=scale_up_stabilization_s,
            paused=paused,
        )
        return ask(
            ctx,
            lambda caller: build(
                ActionKind.PATCH_HPA,
                PoolRef(namespace=namespace, name=deployment, cluster=resolve_cluster(app.backend, cluster)),
                patch,
                rationale,
                dry_run,
                caller,
                idempotency_key,
            ),
        )

    def ask_gpus(
        ctx: Context,
        node_pool: str,
        gpus: int,
        rationale: str,
        method: str = "auto",
        dry_run: bool = True,
        idempotency_key: str | None = None,
        cluster: str | None = None,
    ) -> Ask:
        return ask(
            ctx,
            lambda caller: build(
                ActionKind.REQUEST_GPU_NODES,
                None,
                GpuNodeRequest(
                    node_pool=node_pool,
                    gpus=gpus,
                    method=method,
                    cluster=resolve_cluster(app.backend, cluster),
                ),
                rationale,
                dry_run,
                caller,
                idempotency_key,
            ),
        )

    @server.tool(annotations=mutating("Scale a Deployment", idempotent=True))
    def scale_deployment(
        namespace: Namespace,
        deployment: Deployment,
        replicas: Replicas,
        rationale: Rationale,
        approval: Annotated[Answer, Resolve(ask_scale)],
        dry_run: DryRun,
        idempotency_key: IdempotencyKey = None,
        cluster: OptCluster = None,
        ctx: Context | None = None,
    ) -> ActionResult:
        """Set a pool's replicas (scale subresource). Refused when an HPA/KEDA owns the replicas: change
        its bounds with patch_hpa instead. Policy-gated and audited; returns verdict, before->after, audit id."""
        return submit(
            app,
            ActionKind.SCALE_DEPLOYMENT,
            PoolRef(namespace=namespace, name=deployment, cluster=resolve_cluster(app.backend, cluster)),
            ScaleDeploymentParams(replicas=replicas),
            rationale,
            dry_run,
            idempotency_key,
            require_scope(ctx, WRITE),
            approval,
        )

    @server.tool(annotations=mutating("Patch autoscaler bounds", idempotent=True))
    def patch_hpa(
        namespace: Namespace,
        deployment: Deployment,
        rationale: Rationale,
        approval: Annotated[Answer, Resolve(ask_patch)],
        dry_run: DryRun,
        min_replicas: OptReplicas = None,
        max_replicas: Annotated[int | None, Field(default=None, ge=1, le=1000)] = None,
        scale_down_stabilization_s: OptSeconds = None,
        scale_up_stabilization_s: OptSeconds = None,
        paused: Annotated[
            bool | None, Field(default=None, description="KEDA only: pause autoscaling")
        ] = None,
        idempotency_key: IdempotencyKey = None,
        cluster: OptCluster = None,
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
            raise tool_error(
                AutoscaleError("nothing to change: give min_replicas, max_replicas, a window or paused")
            )
        return submit(
            app,
            ActionKind.PATCH_HPA,
            PoolRef(namespace=namespace, name=deployment, cluster=resolve_cluster(app.backend, cluster)),
            patch,
            rationale,
            dry_run,
            idempotency_key,
            require_scope(ctx, WRITE),
            approval,
        )

    @server.tool(annotations=mutating("Pre-provision GPU nodes", idempotent=False))
    def request_gpu_nodes(
        node_pool: Annotated[str, Field(pattern=K8S_NAME, max_length=253, description="GPU node pool name")],
        gpus: Annotated[int, Field(ge=1, le=1024, description="GPUs of headroom to add")],
        rationale: Rationale,
        approval: Annotated[Answer, Resolve(ask_gpus)],
        dry_run: DryRun,
        method: Annotated[
            Literal["auto", "limit", "balloon"],
            Field(
                description="limit: raise the NodePool GPU limit; balloon: placeholder pods; auto: as needed"
            ),
        ] = "auto",
        idempotency_key: IdempotencyKey = None,
        cluster: OptCluster = None,
        ctx: Context | None = None,
    ) -> ActionResult:
        """Get GPU capacity ahead of demand (nodes take minutes). Policy-gated (GPU and $ budgets), audited."""
        return submit(
            app,
            ActionKind.REQUEST_GPU_NODES,
            None,
            GpuNodeRequest(
                node_pool=node_pool, gpus=gpus, method=method, cluster=resolve_cluster(app.backend, cluster)
            ),
            rationale,
            dry_run,
            idempotency_key,
            require_scope(ctx, WRITE),
            approval,
        )
