"""MCP wiring only: build the server from an ``AutoscaleApp`` and run it over stdio or streamable HTTP.

Toolsets live in ``mcp_autoscale.tools.*`` (one module each), resources in ``resources.py``, prompts in
``prompts.py``. Nothing here decides or mutates anything.
"""

from __future__ import annotations

import hmac
import importlib
import ipaddress
import json
import pkgutil
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_autoscale import __version__, prompts, resources, tools
from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.logs import get_logger

log = get_logger(__name__)

INSTRUCTIONS = (
    "Outer-loop autoscaling for LLM inference on Kubernetes. Start with get_slo_snapshot (or list_pools). "
    "Every mutating tool (scale_deployment, patch_hpa, request_gpu_nodes) needs a rationale citing the data, "
    "goes through a policy gate and is audited; prefer dry_run=true first. When an HPA or KEDA owns a pool's "
    "replicas, change its bounds with patch_hpa instead of scaling the Deployment. Objects that Argo CD or "
    "Flux manage are changed as a Git commit when the policy says so (status proposed_commit); never "
    "work around a denial. Runbooks are resources under autoscale://runbooks/ (find_runbook searches them)."
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
    return server


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _reply(status: int, payload: dict[str, str], extra: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def respond(send: Send) -> None:
        headers = [(b"content-type", b"application/json"), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    return respond


class HttpGuard:
    """Pure ASGI middleware in front of ``/mcp``: bearer token and (when the SDK's Host check is off)
    browser Origin. Pure ASGI, not BaseHTTPMiddleware, so streamed SSE responses pass through untouched.
    """

    def __init__(
        self,
        inner: ASGIApp,
        token: str | None,
        allowed_origins: list[str] | None = None,
        protected_prefix: str = "/mcp",
    ) -> None:
        self.inner = inner
        self.token = token.encode() if token else None
        self.allowed_origins = allowed_origins
        self.prefix = protected_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefix):
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin")
            if self.allowed_origins is not None and origin and origin.decode() not in self.allowed_origins:
                await _reply(403, {"error": "forbidden", "detail": "Origin not allowed"})(send)
                return
            if self.token is not None:
                auth = headers.get(b"authorization", b"")
                presented = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
                if not presented or not hmac.compare_digest(presented, self.token):
                    challenge = [(b"www-authenticate", b'Bearer realm="mcp-autoscale"')]
                    detail = {"error": "unauthorized", "detail": "missing or wrong bearer token"}
                    await _reply(401, detail, challenge)(send)
                    return
        await self.inner(scope, receive, send)


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


def http_app(app: AutoscaleApp, server: MCPServer, host: str) -> ASGIApp:
    """The streamable-HTTP ASGI app at ``/mcp`` with ``/healthz``, Host/Origin checks and bearer auth."""
    settings = app.settings
    token = settings.http_token.get_secret_value() if settings.http_token else None
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve HTTP on {host} without a bearer token: set MCP_AUTOSCALE_HTTP_TOKEN "
            "(or bind to 127.0.0.1)"
        )

    @server.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "backend": app.backend.name, "version": __version__})

    security = transport_security(host, settings.allowed_hosts, settings.allowed_origins)
    asgi: ASGIApp = server.streamable_http_app(host=host, transport_security=security)
    own_origin_check = None if security.enable_dns_rebinding_protection else list(settings.allowed_origins)
    if token or own_origin_check is not None:
        asgi = HttpGuard(asgi, token, own_origin_check)
    return asgi


def run_stdio(app: AutoscaleApp) -> None:
    create_server(app).run()


def run_http(app: AutoscaleApp, host: str, port: int) -> None:
    import uvicorn

    server = create_server(app)
    asgi = http_app(app, server, host)
    log.info("serve.http", url=f"http://{host}:{port}/mcp", auth=bool(app.settings.http_token))
    uvicorn.run(asgi, host=host, port=port, log_level="warning")
