"""Policy: the language (schema), a loader with FILE:LINE errors, and the pure evaluator."""

from mcp_autoscale.policy.evaluate import PolicyContext, evaluate, target_label
from mcp_autoscale.policy.loader import (
    BUILTIN_POLICIES,
    builtin_policy,
    default_policy_name,
    load_policy,
    parse_policy,
)
from mcp_autoscale.policy.schema import (
    ApprovalSpec,
    Budget,
    Guards,
    Match,
    Policy,
    ReplicaBounds,
    Rule,
    ScaleInLimit,
    TimeWindow,
    policy_json_schema,
)

__all__ = [
    "BUILTIN_POLICIES",
    "ApprovalSpec",
    "Budget",
    "Guards",
    "Match",
    "Policy",
    "PolicyContext",
    "ReplicaBounds",
    "Rule",
    "ScaleInLimit",
    "TimeWindow",
    "builtin_policy",
    "default_policy_name",
    "evaluate",
    "load_policy",
    "parse_policy",
    "policy_json_schema",
    "target_label",
]
