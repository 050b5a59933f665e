"""Approval over HTTP for remote approvers: ``GET /approvals``, ``POST /approvals/{id}/approve`` and
``POST /approvals/{id}/reject``, each reachable only with a token that grants ``autoscale:approve``.

These are plain HTTP routes, not MCP tools: no tool can approve, so a model connected over MCP has no
path to an approval at all. The approver is the token's identity (never a name in the request), the
approval names the digest of the action the approver reviewed (a proposal holding anything else is
refused), and the gate applies the policy's approver list, approver groups and four-eyes rule: a person
cannot approve what they proposed, whichever channel they use.
"""

from __future__ import annotations

import re
from typing import Any

import anyio.to_thread
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_autoscale.actions import Gate, action_digest
from mcp_autoscale.errors import AutoscaleError, Forbidden, NotFound
from mcp_autoscale.identity import Identity, identity_of_token
from mcp_autoscale.untrusted import neutralise
from mcp_autoscale.web.scopes import APPROVE

PROPOSAL_ID = re.compile(r"prop-[0-9a-f]{6,32}")


def _challenge(status: int, error: str, description: str, metadata_url: str | None) -> Response:
    parts = [f'error="{error}"', f'error_description="{description}"']
    if metadata_url:
        parts.append(f'resource_metadata="{metadata_url}"')
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": "Bearer " + ", ".join(parts)},
    )


def approval_routes(gate: Gate, metadata_url: str | None) -> list[BaseRoute]:
    def approver(request: Request) -> Identity | Response:
        user = request.scope.get("user")
        if not isinstance(user, AuthenticatedUser):
            return _challenge(401, "invalid_token", "Authentication required", metadata_url)
        who = identity_of_token(user.access_token)
        if not who.allows(APPROVE):
            return _challenge(403, "insufficient_scope", f"Required scope: {APPROVE}", metadata_url)
        return who

    async def pending(request: Request) -> Response:
        who = approver(request)
        if isinstance(who, Response):
            return who
        items = await anyio.to_thread.run_sync(gate.pending)
        out = [
            {
                "id": p.id,
                "summary": p.summary(),
                "digest": action_digest(p.action),
                "proposed_by": p.action.caller,
                "rationale": neutralise(p.action.rationale),
                "reasons": p.verdict.reasons,
                "expires_at": p.expires_at.isoformat(),
                "four_eyes": p.four_eyes,
                "approvers": p.approvers,
                "approver_groups": p.approver_groups,
            }
            for p in items
        ]
        return JSONResponse({"proposals": out})

    async def decide(request: Request) -> Response:
        who = approver(request)
        if isinstance(who, Response):
            return who
        proposal_id = str(request.path_params["proposal_id"])
        verb = str(request.path_params["verb"])
        if verb not in ("approve", "reject") or not PROPOSAL_ID.fullmatch(proposal_id):
            return JSONResponse({"error": "not_found"}, status_code=404)
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("digest"), str):
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "give the 'digest' of the action you reviewed",
                },
                status_code=400,
            )
        digest = str(body["digest"])
        try:
            if verb == "approve":
                result = await anyio.to_thread.run_sync(
                    lambda: gate.approve(proposal_id, who.caller, digest=digest, groups=who.groups)
                )
            else:
                reason = str(body.get("reason") or "rejected over HTTP")
                result = await anyio.to_thread.run_sync(
                    lambda: gate.reject(proposal_id, who.caller, reason, digest=digest, groups=who.groups)
                )
        except Forbidden as err:
            return JSONResponse({"error": "forbidden", "error_description": str(err)}, status_code=403)
        except NotFound:  # its message names the state directory: not for remote callers
            return JSONResponse(
                {"error": "not_found", "error_description": f"no proposal {proposal_id}"}, 404
            )
        except AutoscaleError as err:
            return JSONResponse({"error": "invalid_request", "error_description": str(err)}, status_code=409)
        return JSONResponse(result.model_dump(mode="json"))

    return [
        Route("/approvals", endpoint=pending, methods=["GET"]),
        Route("/approvals/{proposal_id}/{verb:str}", endpoint=decide, methods=["POST"]),
    ]
