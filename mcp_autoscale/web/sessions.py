"""Session limits for streamable HTTP: a cap per credential, a global cap, and eviction of the least
recently used idle session instead of refusing newcomers.

The SDK's manager refuses every new session (503) once ``max_sessions`` are open, and keeps idle ones for
30 minutes: 10,000 ``initialize`` calls locked every client out for half an hour. Here a credential that
opens too many sessions only evicts its own oldest idle ones, and a full server evicts the globally
oldest idle session; a refusal happens only when every candidate is busy serving a request.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from mcp_autoscale.logs import get_logger

log = get_logger(__name__)

Owner = tuple[str, str | None, str | None] | None


def owner_key(requestor: AuthorizationContext | None) -> Owner:
    """The credential a session belongs to (client id, issuer, subject); None when unauthenticated."""
    if requestor is None:
        return None
    return (requestor["client_id"], requestor["issuer"], requestor["subject"])


def last_active(transport: StreamableHTTPServerTransport) -> float | None:
    """When the session last finished a request (anyio clock), or None while one is in flight."""
    scope = transport.idle_scope
    idle_timeout: Any = getattr(transport, "_idle_timeout", None)
    if scope is None or idle_timeout is None or not math.isfinite(scope.deadline):
        return None
    return float(scope.deadline) - float(idle_timeout)


class BoundedSessionManager(StreamableHTTPSessionManager):
    def __init__(self, *args: Any, max_sessions_per_owner: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if max_sessions_per_owner <= 0:
            raise ValueError("max_sessions_per_owner must be positive")
        self.max_sessions_per_owner = max_sessions_per_owner

    def session_count(self) -> int:
        return len(self._server_instances)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        owner = owner_key(requestor)
        mine = [sid for sid in self._server_instances if owner_key(self._session_owners.get(sid)) == owner]
        if len(mine) >= self.max_sessions_per_owner and not self._evict_oldest_idle(
            mine, "per-credential cap"
        ):
            return None
        if (
            self.max_sessions is not None
            and len(self._server_instances) >= self.max_sessions
            and not self._evict_oldest_idle(list(self._server_instances), "server cap")
        ):
            return None
        return super()._admit_session(requestor)

    def _evict_oldest_idle(self, candidates: list[str], why: str) -> bool:
        """Forget the least recently active idle session among ``candidates`` now; end it in the background."""
        idle = [(t, sid) for sid in candidates if (t := last_active(self._server_instances[sid])) is not None]
        if not idle:
            return False
        _, victim = min(idle)
        transport = self._server_instances.pop(victim)
        self._session_owners.pop(victim, None)
        log.info("http.session_evicted", session=victim[:8], reason=why)
        if self._task_group is not None:
            self._task_group.start_soon(self._end, transport)
        return True

    @staticmethod
    async def _end(transport: StreamableHTTPServerTransport) -> None:
        with anyio.CancelScope(shield=True):
            await transport.terminate()
