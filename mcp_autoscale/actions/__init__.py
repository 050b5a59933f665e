"""The one gate: every mutating path goes propose -> check -> approve -> execute -> audit through here.

``build`` turns tool calls into typed ``Action``s (and back), ``checks`` holds the policy-independent
preconditions, ``gate`` is the ``Gate`` itself. Nothing else in the code may call a cluster write.
"""

from mcp_autoscale.actions.build import (
    action_arguments,
    action_digest,
    action_from_call,
    compact_evidence,
    inverse_of,
    new_action,
)
from mcp_autoscale.actions.checks import live_pool, ownership_verdict
from mcp_autoscale.actions.gate import CONFLICT_ATTEMPTS, Gate

__all__ = [
    "CONFLICT_ATTEMPTS",
    "Gate",
    "action_arguments",
    "action_digest",
    "action_from_call",
    "compact_evidence",
    "inverse_of",
    "live_pool",
    "new_action",
    "ownership_verdict",
]
