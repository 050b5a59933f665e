"""Human approval in the chat (MCP elicitation), when the policy allows it for the deciding rule.

A resolver runs before the tool body: it builds the same ``Action`` the tool will submit, asks the gate
(side-effect free), and only when the verdict is *needs approval*, the policy accepts elicitation for it,
and the client can elicit, asks the user. Otherwise it answers "not asked" and the tool's submit ends in
deny-and-pend, never in allow. The answer is applied through ``Gate.approve`` / ``Gate.reject``, so policy
and data freshness are checked again at execution time and the approver is audited.

The answer is bound to what the user was shown: ``settle`` passes the digest of the shown action, and
the gate refuses to approve (or reject) a proposal that holds anything else. The prompt shows what the
server asserts first and the agent's rationale last, neutralised to one line and labelled as its words.
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

from mcp_autoscale.actions import action_arguments, action_digest
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.models import Action, ActionResult, ActionStatus, Decision
from mcp_autoscale.untrusted import neutralise, quoted


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
        if app.gate.idempotency_conflict(action) is not None:
            return NOT_ASKED  # the tool body refuses the reused key; never ask about a call that cannot run
        prior = (
            app.gate.audit.find_idempotent(action.idempotency_key, caller=action.caller)
            if action.idempotency_key
            else None
        )
        if prior is not None and prior.rationale != action.rationale:
            return (
                NOT_ASKED  # the retry returns the earlier proposal: never ask under words it does not carry
            )
        verdict = app.gate.check(action)
    except AutoscaleError:
        return NOT_ASKED  # the tool body reports the error properly
    if verdict.decision != Decision.NEEDS_APPROVAL or not app.gate.elicitation_allowed(verdict):
        return NOT_ASKED
    return Elicit(prompt(action, verdict.reasons), ApprovalAnswer)


def prompt(action: Action, reasons: list[str]) -> str:
    """What the server asserts (the exact call, the policy, the digest), then the agent's words, quoted."""
    args = ", ".join(f"{k}={v}" for k, v in action_arguments(action).items())
    policy = neutralise("; ".join(reasons) or "approval required")
    return (
        f"Approve {neutralise(f'{action.kind.value}({args})')}?\n"
        f"Policy: {policy}\n"
        f"Action digest: {action_digest(action)[:12]}\n"
        f"Rationale {quoted(action.rationale)}"
    )


def settle(
    app: AutoscaleApp,
    result: ActionResult,
    answer: ElicitationResult[ApprovalAnswer],
    caller: str,
    shown: Action,
) -> ActionResult:
    """Apply the user's answer to a pending proposal: accept -> approve and run; decline -> reject.

    ``shown`` is the action the user was asked about (the resolver built it from the same arguments);
    the gate acts only when the pending proposal is exactly that action.
    """
    proposal_id: Any = getattr(result, "proposal_id", None)
    if result.status is not ActionStatus.PENDING_APPROVAL or not proposal_id:
        return result
    approver = f"mcp-elicitation:{caller}"
    digest = action_digest(shown)
    try:
        if isinstance(answer, AcceptedElicitation):
            if answer.data is NOT_ASKED or not answer.data.approve:
                return result  # not asked (or not approved): stays pending for a human
            return app.gate.approve(proposal_id, approver, digest=digest)
        if answer.action == "decline":
            return app.gate.reject(proposal_id, approver, "declined in the MCP client", digest=digest)
    except AutoscaleError as err:
        raise ToolError(f"{err} (proposal {proposal_id} is still pending)") from err
    return result  # cancelled: stays pending
