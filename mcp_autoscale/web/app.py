"""The streamable-HTTP ASGI app, assembled from the SDK's parts with our session manager and guard.

Assembled here rather than by ``MCPServer.streamable_http_app`` so that the session manager is ours
(limits per credential, see ``sessions.py``), the protected-resource metadata is served both at the root
and path-suffixed (RFC 9728 §3.1), and the guard sees every request first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import BaseRoute, Route

from mcp_autoscale.web.guard import ASGIApp, HttpGuard
from mcp_autoscale.web.sessions import BoundedSessionManager

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class SessionLimits:
    max_sessions: int = 1000
    max_sessions_per_owner: int = 100
    idle_timeout_s: float = 300.0


@dataclass(frozen=True)
class Protection:
    """How ``/mcp`` is protected: the verifier, the scopes every request needs and, for OAuth, the
    resource URL and authorization servers named in the protected-resource metadata."""

    verifier: TokenVerifier
    required_scopes: list[str] = field(default_factory=list)
    resource_url: str | None = None
    authorization_servers: list[str] = field(default_factory=list)
    scopes_supported: list[str] = field(default_factory=list)


def _metadata_routes(protection: Protection) -> list[BaseRoute]:
    if not protection.resource_url or not protection.authorization_servers:
        return []
    routes: list[BaseRoute] = list(
        create_protected_resource_routes(
            resource_url=AnyHttpUrl(protection.resource_url),
            authorization_servers=[AnyHttpUrl(s) for s in protection.authorization_servers],
            scopes_supported=protection.scopes_supported or None,
            resource_name="mcp-autoscale",
        )
    )
    suffixed = routes[0]
    assert isinstance(suffixed, Route)
    if suffixed.path != METADATA_PATH:  # also at the root, for clients that look there first
        routes.append(Route(METADATA_PATH, endpoint=suffixed.endpoint, methods=["GET", "OPTIONS"]))
    return routes


def build_http_app(
    server: MCPServer,
    *,
    security: TransportSecuritySettings,
    limits: SessionLimits,
    protection: Protection | None,
    own_origin_check: list[str] | None,
    extra_routes: Sequence[BaseRoute] = (),
) -> ASGIApp:
    manager = BoundedSessionManager(
        app=server._lowlevel_server,  # the SDK builds its own manager the same way
        security_settings=security,
        session_idle_timeout=limits.idle_timeout_s,
        max_sessions=limits.max_sessions,
        max_sessions_per_owner=limits.max_sessions_per_owner,
    )
    endpoint: Any = StreamableHTTPASGIApp(manager)
    middleware: list[Middleware] = []
    routes: list[BaseRoute] = []
    if protection is not None:
        metadata_url = (
            build_resource_metadata_url(AnyHttpUrl(protection.resource_url))
            if protection.resource_url
            else None
        )
        endpoint = RequireAuthMiddleware(endpoint, protection.required_scopes, metadata_url)
        middleware = [
            Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(protection.verifier)),
            Middleware(AuthContextMiddleware),
        ]
        routes.extend(_metadata_routes(protection))
    routes.append(Route(MCP_PATH, endpoint=endpoint))
    routes.extend(extra_routes)
    routes.extend(server._custom_starlette_routes)
    starlette = Starlette(routes=routes, middleware=middleware, lifespan=lambda _app: manager.run())
    starlette.state.session_manager = manager
    return HttpGuard(starlette, own_origin_check, MCP_PATH)
