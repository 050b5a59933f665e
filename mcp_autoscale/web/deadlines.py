"""Read deadlines for HTTP/1.1 connections: a request head within ``header_timeout_s`` of the connection
(or of its first byte after a keep-alive pause), its body within ``body_timeout_s`` of the head.

uvicorn's h11 protocol only times out idle keep-alive connections: a client that sends half a request
line, or a Content-Length and no body, held its connection (and a task) forever. This subclass closes it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

Phase = Literal["head", "body"]


class DeadlineH11Protocol(H11Protocol):
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: Phase | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm the deadline for what the client still owes; a deadline runs from when it was first owed
        (bytes trickled in one at a time do not extend it)."""
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._phase != "head" and self.conn.trailing_data[0]:
                self._arm("head")  # a partial head after a keep-alive pause
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
        else:
            self._disarm()

    def _arm(self, phase: Phase) -> None:
        self._disarm()
        seconds = self.header_timeout_s if phase == "head" else self.body_timeout_s
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, None

    def _expired(self) -> None:
        phase, self._deadline, self._phase = self._phase, None, None
        if not self.transport.is_closing():
            self.logger.warning("closing a connection that sent no complete request %s in time", phase)
            self.transport.close()


def deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type[DeadlineH11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these deadlines."""
    return type(
        "DeadlineH11Protocol",
        (DeadlineH11Protocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s},
    )
