"""MCP wiring only: build the server from an ``AutoscaleApp`` and run it over stdio or streamable HTTP.

Toolsets live in ``mcp_autoscale.tools.*`` (one module each), resources in ``resources.py``, prompts in
``prompts.py``. Nothing here decides or mutates anything.
"""

from __future__ import annotations

import importlib
import ipaddress
import pkgutil
from typing import Any
from urllib.parse import urlparse

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from mcp_autoscale import __version__, metrics, prompts, resources, tools
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.logs import get_logger
from mcp_autoscale.web import scopes
from mcp_autoscale.web.app import Protection, SessionLimits, build_http_app
from mcp_autoscale.web.approvals import approval_routes
from mcp_autoscale.web.deadlines import deadline_protocol
from mcp_autoscale.web.guard import ASGIApp
from mcp_autoscale.web.oauth import ChainVerifier, JwtVerifier, OAuthConfig, check_algorithms
from mcp_autoscale.web.static_token import StaticTokenVerifier

log = get_logger(__name__)

INSTRUCTIONS = (
    "Outer-loop autoscaling for LLM inference on Kubernetes. Start with get_slo_snapshot (or list_pools). "
    "Every mutating tool (scale_deployment, patch_hpa, request_gpu_nodes) needs a rationale citing the data, "
    "and an explicit dry_run (required: true proposes, false applies if the policy allows), goes through a "
    "policy gate and is audited; prefer dry_run=true first. When an HPA or KEDA owns a pool's "
    "replicas, change its bounds with patch_hpa instead of scaling the Deployment. Objects that Argo CD or "
    "Flux manage are changed as a Git commit when the policy says so (status proposed_commit); never "
    "work around a denial. Runbooks are resources under autoscale://runbooks/ (find_runbook searches them)."
)


def _toolset_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(tools.__path__) if not m.name.startswith("_")]
    return sorted(names)


def compact_schema(schema: Any) -> Any:
    """Drop pydantic's auto-generated ``title`` keys (they repeat the property names) in place.

    ``tools/list`` goes into the model's context on every turn; titles are ~20% of it and carry nothing a
    description does not. A property that is itself *called* ``title`` is kept (it lives under
    ``properties``, which is a name -> schema mapping, not a schema).
    """
    if isinstance(schema, dict):
        if isinstance(schema.get("title"), str):
            del schema["title"]
        _merge_nullable(schema)
        for key, value in schema.items():
            if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
                for sub in value.values():
                    compact_schema(sub)
            else:
                compact_schema(value)
    elif isinstance(schema, list):
        for item in schema:
            compact_schema(item)
    return schema


_SCALAR_KEYWORDS = frozenset(
    {"type", "maxLength", "minLength", "pattern", "enum", "minimum", "maximum", "format"}
)


def _merge_nullable(schema: dict[str, Any]) -> None:
    """``anyOf: [{type: number}, {type: null}], default: null`` -> ``type: [number, null]`` (same meaning).

    A scalar option's constraints move up with it: ``maxLength``/``pattern``/``minimum`` only constrain
    values of their own type, so null stays valid; an ``enum`` gets ``null`` added for the same reason.
    """
    options = schema.get("anyOf")
    if not isinstance(options, list) or not all(isinstance(o, dict) and "type" in o for o in options):
        return
    constrained = [o for o in options if set(o) != {"type"}]
    if len(constrained) > 1 or any(not set(o) <= _SCALAR_KEYWORDS for o in constrained):
        return
    types: list[Any] = []
    for option in options:
        t = option["type"]
        types.extend(t if isinstance(t, list) else [t])
    del schema["anyOf"]
    for option in constrained:
        schema.update({k: v for k, v in option.items() if k != "type"})
    if "enum" in schema and "null" in types and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    schema["type"] = types
    if "default" in schema and schema["default"] is None:
        del schema["default"]


OUTPUT_SCHEMA_DEPTH = 1
"""Output schemas are published to this many object levels (the top-level fields); nested models collapse
to ``{"type": "object"}``. Still a valid schema for every result, at a fraction of the context cost; the
nested models are listed in docs/reference.md ("Result models"), generated from the same code."""


def shallow_schema(schema: dict[str, Any], depth: int = OUTPUT_SCHEMA_DEPTH) -> dict[str, Any]:
    """Inline ``$ref``s down to ``depth`` object levels, drop ``$defs`` and model docstrings."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> tuple[Any, bool]:
        referenced = False
        while isinstance(node, dict) and "$ref" in node:
            node = defs.get(str(node["$ref"]).rsplit("/", 1)[-1], {"type": "object"})
            referenced = True
        return node, referenced

    def walk(node: Any, level: int, keep_description: bool) -> Any:
        node, referenced = resolve(node)
        keep_description = keep_description and not referenced  # a $def's docstring, not a field's
        if not isinstance(node, dict):
            return node
        if "properties" in node or node.get("type") == "object":
            if level >= depth:
                return {"type": "object"}
            props = {k: walk(v, level + 1, True) for k, v in node.get("properties", {}).items()}
            out: dict[str, Any] = {"type": "object"}
            if props:
                out["properties"] = props
            if node.get("required"):
                out["required"] = node["required"]
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                out["additionalProperties"] = walk(extra, level + 1, False)
            if keep_description and "description" in node and "properties" not in node:
                out["description"] = node["description"]
            return out
        out = {k: v for k, v in node.items() if k not in ("$defs", "default")}
        if "items" in out:
            out["items"] = walk(out["items"], level, False)
        for key in ("anyOf", "oneOf", "allOf"):
            if key in out:
                out[key] = [walk(o, level, False) for o in out[key]]
        if not keep_description:
            out.pop("description", None)
        return out

    return compact_schema(walk(schema, 0, False))


def _compact_tool_schemas(server: MCPServer) -> None:
    for tool in server._tool_manager.list_tools():
        if tool.description:
            tool.description = " ".join(tool.description.split())  # docstring indentation, every turn
        compact_schema(tool.parameters)
        output = tool.fn_metadata.output_schema
        if output is not None:
            compact_schema(output)
            tool.fn_metadata.output_schema = shallow_schema(output)


def create_server(app: AutoscaleApp) -> MCPServer:
    """The MCP server for one ``AutoscaleApp``: every toolset module, the resources and the prompts."""
    server = MCPServer("mcp-autoscale", version=__version__, instructions=INSTRUCTIONS)
    for name in _toolset_modules():
        module = importlib.import_module(f"{tools.__name__}.{name}")
        module.register(server, app)
    resources.register(server, app)
    prompts.register(server)
    prompts.register_capacity_review(server)
    _compact_tool_schemas(server)
    metrics.instrument_server(server)
    return server


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(
    host: str, allowed_hosts: list[str], allowed_origins: list[str]
) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding protection: loopback hosts (any port) by default, or the listed hosts."""
    if allowed_hosts:
        return TransportSecuritySettings(allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
    if is_loopback(host):
        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *allowed_origins]
        return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)
    # Bound beyond loopback with no host list (e.g. behind a Service whose name we cannot know): the
    # bearer token is the guard and HttpGuard checks browser Origins itself.
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


def http_protection(settings: Settings) -> Protection | None:
    """Who may call ``/mcp``: the static token, OAuth access tokens from the issuer, or both; None (no auth)
    when neither is set. Every request needs ``autoscale:read``; the tools check the rest."""
    verifiers: list[TokenVerifier] = []
    if settings.http_token is not None:
        verifiers.append(StaticTokenVerifier(settings.http_token.get_secret_value()))
    if settings.oauth_issuer:
        issuer = urlparse(settings.oauth_issuer)
        if issuer.scheme != "https" and not (issuer.scheme == "http" and is_loopback(issuer.hostname or "")):
            raise ConfigError(
                f"MCP_AUTOSCALE_OAUTH_ISSUER must be an https URL (http only on loopback), not "
                f"{settings.oauth_issuer!r}: the keys that verify every token are fetched from it"
            )
        if not settings.resource_url:
            raise ConfigError(
                "MCP_AUTOSCALE_OAUTH_ISSUER needs MCP_AUTOSCALE_PUBLIC_URL (this server's public base URL; "
                "the token audience is PUBLIC_URL + /mcp)"
            )
        config = OAuthConfig(
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience or settings.resource_url,
            algorithms=tuple(check_algorithms(settings.oauth_algorithms)),
            leeway_s=settings.oauth_leeway_s,
            user_claim=settings.oauth_user_claim,
            name_claim=settings.oauth_name_claim,
            groups_claim=settings.oauth_groups_claim,
            min_refresh_interval_s=settings.oauth_jwks_min_refresh_s,
        )
        verifiers.append(JwtVerifier(config))
    if not verifiers:
        return None
    oauth = bool(settings.oauth_issuer)
    return Protection(
        verifier=verifiers[0] if len(verifiers) == 1 else ChainVerifier(verifiers),
        required_scopes=[scopes.READ],
        resource_url=settings.resource_url if oauth else None,
        authorization_servers=[settings.oauth_issuer] if settings.oauth_issuer else [],
        scopes_supported=list(scopes.ALL),
    )


def http_app(app: AutoscaleApp, server: MCPServer, host: str) -> ASGIApp:
    """The streamable-HTTP ASGI app at ``/mcp`` with ``/healthz``, Host/Origin checks and bearer auth."""
    settings = app.settings
    protection = http_protection(settings)
    if not is_loopback(host) and protection is None:
        raise ConfigError(
            f"refusing to serve HTTP on {host} without authentication: set MCP_AUTOSCALE_HTTP_TOKEN or "
            "MCP_AUTOSCALE_OAUTH_ISSUER (or bind to 127.0.0.1)"
        )

    @server.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "backend": app.backend.name, "version": __version__})

    @server.custom_route("/metrics", methods=["GET"], include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        body, content_type = metrics.exposition()  # counters only, no secrets: unauthenticated like /healthz
        return Response(body, media_type=content_type)

    metrics.watch_pending(app.gate)

    security = transport_security(host, settings.allowed_hosts, settings.allowed_origins)
    own_origin_check = None if security.enable_dns_rebinding_protection else list(settings.allowed_origins)
    limits = SessionLimits(
        max_sessions=settings.http_max_sessions,
        max_sessions_per_owner=settings.http_max_sessions_per_caller,
        idle_timeout_s=settings.http_session_idle_s,
    )
    routes: list[BaseRoute] = []
    if protection is not None:
        metadata = (
            str(build_resource_metadata_url(AnyHttpUrl(protection.resource_url)))
            if protection.resource_url
            else None
        )
        routes = approval_routes(app.gate, metadata)
    return build_http_app(
        server,
        security=security,
        limits=limits,
        protection=protection,
        own_origin_check=own_origin_check,
        extra_routes=routes,
    )


def run_stdio(app: AutoscaleApp) -> None:
    import anyio

    from mcp_autoscale.stdio import serve_stdio

    anyio.run(serve_stdio, create_server(app))


def run_http(app: AutoscaleApp, host: str, port: int) -> None:
    """Serve with read deadlines on every connection and a bounded graceful shutdown: SIGTERM ends the
    process within ``http_shutdown_s`` however many sessions and open streams there are."""
    import uvicorn

    settings = app.settings
    asgi = http_app(app, create_server(app), host)
    log.info(
        "serve.http",
        url=f"http://{host}:{port}/mcp",
        token=bool(settings.http_token),
        oauth_issuer=settings.oauth_issuer,
    )
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level="warning",
        http=deadline_protocol(settings.http_header_timeout_s, settings.http_body_timeout_s),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=settings.http_shutdown_s,
    )
    uvicorn.Server(config).run()
