"""Governance tools: ask the policy before acting, see what waits for a human, undo through the gate."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.identity import identity_for, require_scope
from mcp_autoscale.models import ActionResult, Verdict
from mcp_autoscale.tools._shared import DryRun, Rationale, as_tool_result, mutating, read_only, tool_error
from mcp_autoscale.web.scopes import WRITE


class PolicyCheck(BaseModel):
    tool: str
    target: str
    verdict: Verdict
    elicitation_ok: bool = Field(description="A user may approve it in the chat when approval is needed")
    server_dry_run: bool = Field(description="The server turns every call into a proposal")


class PendingProposal(BaseModel):
    id: str
    status: str
    summary: str
    rationale: str
    reasons: list[str]
    caller: str
    expires_at: str
    approve_via: list[str]


class PendingList(BaseModel):
    proposals: list[PendingProposal]
    how_to_approve: str = "A human runs `mcp-autoscale approve ID` (or `reject ID --reason ...`)"


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.tool(annotations=read_only("Check policy"))
    def check_policy(
        tool: Literal["scale_deployment", "patch_hpa", "request_gpu_nodes"],
        arguments: Annotated[
            dict[str, Any],
            Field(
                description="The call's arguments without rationale/dry_run, e.g. {namespace, deployment, replicas}"
            ),
        ],
        ctx: Context | None = None,
    ) -> PolicyCheck:
        """Would the policy allow this call now? Returns the verdict, deciding rules, reasons and what would
        be allowed instead. Changes nothing and writes no audit record."""
        args = {k: v for k, v in arguments.items() if k not in ("rationale", "dry_run", "idempotency_key")}
        try:
            who = identity_for(ctx)
            action = action_from_call(tool, args, "policy check", caller=who.caller).model_copy(
                update={"caller_name": who.name, "caller_groups": list(who.groups)}
            )  # rules that match by group see the caller's groups, as at submit
            verdict = app.gate.check(action)
        except AutoscaleError as err:
            raise tool_error(err) from err
        target = action.target.key if action.target else f"nodepool/{args.get('node_pool')}"
        return PolicyCheck(
            tool=tool,
            target=target,
            verdict=verdict,
            elicitation_ok=app.gate.elicitation_allowed(verdict),
            server_dry_run=app.settings.dry_run,
        )

    @server.tool(annotations=read_only("Pending approvals"))
    def list_pending_approvals() -> PendingList:
        """Proposals waiting for a human decision (expired ones are closed and audited)."""
        app.run_approved()
        out = [
            PendingProposal(
                id=p.id,
                status=p.status.value,
                summary=p.summary(),
                rationale=p.action.rationale,
                reasons=p.verdict.reasons,
                caller=p.action.caller,
                expires_at=p.expires_at.isoformat(timespec="seconds"),
                approve_via=p.via,
            )
            for p in app.gate.pending()
        ]
        return PendingList(proposals=out)

    @server.tool(annotations=mutating("Roll back an action", idempotent=False))
    def rollback_action(
        audit_id: Annotated[
            str, Field(min_length=3, max_length=64, description="Audit id of an applied action")
        ],
        rationale: Rationale,
        dry_run: DryRun,
        ctx: Context | None = None,
    ) -> ActionResult:
        """Propose the inverse of an applied action (stored in its audit record) through the same gate:
        policy verdict, approval if required, audit record."""
        who = require_scope(ctx, WRITE)
        try:
            app.run_approved()
            return as_tool_result(
                app.gate.rollback(
                    audit_id, rationale, who.caller, dry_run, caller_name=who.name, caller_groups=who.groups
                )
            )
        except AutoscaleError as err:
            raise tool_error(err) from err
