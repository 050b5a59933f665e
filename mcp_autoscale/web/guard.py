"""A pure ASGI guard in front of every HTTP route: one credential per request, and browser Origins.

Pure ASGI, not ``BaseHTTPMiddleware``, so streamed SSE responses pass through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def reply(
    send: Send, status: int, payload: dict[str, str], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HttpGuard:
    """Refuses a request that carries more than one ``Authorization`` header (the token checker would
    read one and anything downstream might read another: a forged identity), and, when the SDK's Host
    check is off, a browser Origin that is not listed."""

    def __init__(
        self, inner: ASGIApp, allowed_origins: list[str] | None = None, protected_prefix: str = "/mcp"
    ) -> None:
        self.inner = inner
        self.allowed_origins = allowed_origins
        self.prefix = protected_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
            if sum(1 for name, _ in headers if name.lower() == b"authorization") > 1:
                await reply(
                    send,
                    400,
                    {"error": "invalid_request", "error_description": "more than one Authorization header"},
                )
                return
            if self.allowed_origins is not None and str(scope.get("path", "")).startswith(self.prefix):
                origin = next((v for k, v in headers if k.lower() == b"origin"), None)
                if origin and origin.decode("latin-1") not in self.allowed_origins:
                    await reply(send, 403, {"error": "forbidden", "detail": "Origin not allowed"})
                    return
        await self.inner(scope, receive, send)
