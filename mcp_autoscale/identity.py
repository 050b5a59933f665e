"""Who is calling: the verified credential over HTTP, the local user on stdio.

Over HTTP the SDK's authentication middleware verifies the one ``Authorization`` header (the guard refuses
requests with more) and puts the result in the request's ``scope["user"]``. Identity is read from there,
from the very credential that was verified, never by parsing a header again. The token itself is never
part of an identity.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError


def os_user() -> str:
    """The effective user's login name from the password database (``uid-N`` when it has none).

    Not ``$USER`` or ``$LOGNAME``, which anyone can set.
    """
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def local_user() -> str:
    return f"local:{os_user()}"


@dataclass(frozen=True)
class Identity:
    """A caller as the audit and the policy see it."""

    caller: str
    """The audit's ``caller``: ``local:USER``, ``http:token-<hash>``, ``oidc:SUBJECT`` or ``http:anonymous-loopback``."""
    subject: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()
    scopes: frozenset[str] | None = field(default=None)
    """Granted scopes; None where no token is involved (stdio, loopback without auth): not scope-limited."""

    def allows(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes


ANONYMOUS_LOOPBACK = Identity(caller="http:anonymous-loopback")


def identity_of_token(token: AccessToken) -> Identity:
    claims = token.claims or {}
    groups = claims.get("groups") or ()
    if claims.get("kind") == "static":
        caller = f"http:{token.client_id}"
    else:
        caller = f"oidc:{token.subject or token.client_id}"
    return Identity(
        caller=caller,
        subject=token.subject or token.client_id,
        name=str(claims["name"]) if claims.get("name") else None,
        groups=tuple(str(g) for g in groups),
        scopes=frozenset(token.scopes),
    )


def _http_request(ctx: Any) -> Any:
    if ctx is None:
        return None
    try:
        return getattr(ctx.request_context, "request", None)
    except (ValueError, AttributeError):
        return None


def identity_for(ctx: Any) -> Identity:
    """``ctx`` is an MCP ``Context`` (or None outside a request)."""
    request = _http_request(ctx)
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return Identity(caller=local_user())
    user = scope.get("user")
    if isinstance(user, AuthenticatedUser):
        return identity_of_token(user.access_token)
    return ANONYMOUS_LOOPBACK


def caller_for(ctx: Any) -> str:
    return identity_for(ctx).caller


def require_scope(ctx: Any, scope: str) -> Identity:
    """The caller, if its token grants ``scope``; otherwise a tool error that names the missing scope."""
    who = identity_for(ctx)
    if not who.allows(scope):
        granted = ", ".join(sorted(who.scopes or ())) or "none"
        raise ToolError(f"insufficient scope: this tool needs '{scope}'; {who.caller} has {granted}")
    return who
