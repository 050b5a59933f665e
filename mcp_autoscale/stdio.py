"""The stdio transport, with an answer for every line.

The SDK drops a line it cannot parse: a request with a lone surrogate (``"\\ud800"``, valid to Python's
json, not to the JSON-RPC validator) or plain garbage got no answer, and the client waited forever.
Here such a line is answered with a JSON-RPC error (parse error, or invalid request), with the request's
id when it can be read, ``null`` otherwise, as JSON-RPC 2.0 says.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterable, AsyncIterator
from io import TextIOWrapper
from typing import Any, cast

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from mcp_autoscale.logs import get_logger

log = get_logger(__name__)


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def error_for(line: str) -> types.JSONRPCError | None:
    """The error answer for a line the SDK would drop; None for a line it accepts."""
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        return None
    except ValueError:
        pass
    try:
        raw = json.loads(line)
    except ValueError:
        return _error(None, types.PARSE_ERROR, "Parse error: not JSON")
    request_id = raw.get("id") if isinstance(raw, dict) else None
    if (
        not isinstance(request_id, str | int)
        or isinstance(request_id, bool)
        or _has_lone_surrogate(request_id)
    ):
        request_id = None
    if _has_lone_surrogate(raw):
        return _error(request_id, types.PARSE_ERROR, "Parse error: lone surrogate in a JSON string")
    return _error(request_id, types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")


def _error(request_id: str | int | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


class AnsweringLines:
    """Passes the lines the SDK can parse; answers the others itself on the write stream."""

    def __init__(self, lines: AsyncIterable[str]) -> None:
        self._lines = lines
        self._reply: Any = None
        self._attached = anyio.Event()

    def attach(self, write_stream: Any) -> None:
        self._reply = write_stream
        self._attached.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._lines:
            if not line.strip():
                continue
            error = error_for(line)
            if error is None:
                yield line
                continue
            log.warning("stdio.unparsable_line", code=error.error.code, id=error.id)
            await self._attached.wait()
            await self._reply.send(SessionMessage(error))


async def serve_stdio(server: MCPServer) -> None:
    stdin = anyio.wrap_file(TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"))
    lines = AnsweringLines(stdin)
    async with stdio_server(stdin=cast(Any, lines)) as (read_stream, write_stream):
        lines.attach(write_stream)
        lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async drives, with our stdin
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
