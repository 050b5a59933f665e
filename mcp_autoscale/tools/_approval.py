"""Human approval in the chat (MCP elicitation), when the policy allows it for the deciding rule.

A resolver runs before the tool body: it builds the same ``Action`` the tool will submit, asks the gate
(side-effect free), and only when the verdict is *needs approval*, the policy accepts elicitation for it,
and the client can elicit, asks the user. Otherwise it answers "not asked" and the tool's submit ends in
deny-and-pend, never in allow. The answer is applied through ``Gate.approve`` / ``Gate.reject``, so policy
and data freshness are checked again at execution time and the approver is audited.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
)
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_autoscale.actions import action_arguments
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.models import Action, ActionResult, ActionStatus, Decision


class ApprovalAnswer(BaseModel):
    approve: bool = Field(description="Approve this change now?")


NOT_ASKED = ApprovalAnswer(approve=False)


def client_can_elicit(ctx: Context) -> bool:
    try:
        caps = ctx.client_capabilities
    except ValueError:
        return False
    return caps is not None and caps.elicitation is not None


def question(app: AutoscaleApp, ctx: Context, action: Action) -> Elicit[ApprovalAnswer] | ApprovalAnswer:
    """Ask the user only when the policy allows a chat approval for this exact verdict."""
    if action.dry_run or app.settings.dry_run or not client_can_elicit(ctx):
        return NOT_ASKED
    try:
        verdict = app.gate.check(action)
    except AutoscaleError:
        return NOT_ASKED  # the tool body reports the error properly
    if verdict.decision != Decision.NEEDS_APPROVAL or not app.gate.elicitation_allowed(verdict):
        return NOT_ASKED
    args = ", ".join(f"{k}={v}" for k, v in action_arguments(action).items())
    message = (
        f"Approve {action.kind.value}({args})?\n"
        f"Why (agent): {action.rationale}\n"
        f"Policy: {'; '.join(verdict.reasons) or 'approval required'}"
    )
    return Elicit(message, ApprovalAnswer)


def settle(
    app: AutoscaleApp, result: ActionResult, answer: ElicitationResult[ApprovalAnswer], caller: str
) -> ActionResult:
    """Apply the user's answer to a pending proposal: accept -> approve and run; decline -> reject."""
    proposal_id: Any = getattr(result, "proposal_id", None)
    if result.status is not ActionStatus.PENDING_APPROVAL or not proposal_id:
        return result
    approver = f"mcp-elicitation:{caller}"
    try:
        if isinstance(answer, AcceptedElicitation):
            if answer.data is NOT_ASKED or not answer.data.approve:
                return result  # not asked (or not approved): stays pending for a human
            return app.gate.approve(proposal_id, approver)
        if answer.action == "decline":
            return app.gate.reject(proposal_id, approver, "declined in the MCP client")
    except AutoscaleError as err:
        raise ToolError(f"{err} (proposal {proposal_id} is still pending)") from err
    return result  # cancelled: stays pending
