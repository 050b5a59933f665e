"""The OAuth scopes of the HTTP transport and what each allows (docs/security.md has the table)."""

from __future__ import annotations

READ = "autoscale:read"
"""Read tools, resources and prompts (and ``check_policy``, ``list_pending_approvals``)."""
WRITE = "autoscale:write"
"""Mutating tools: proposals, dry runs and, where the policy allows, applied changes."""
APPROVE = "autoscale:approve"
"""Approve or reject pending proposals over HTTP (``/approvals/...``), never through an MCP tool."""

ALL = (READ, WRITE, APPROVE)
