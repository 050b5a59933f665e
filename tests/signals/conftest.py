"""Fixtures for the signal tests: a loopback exposition server, hung and closed ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from signals_helpers import ExpositionServer, serving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def exposition_server() -> Iterator[ExpositionServer]:
    with serving() as server:
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung Prometheus or pod)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return int(port)
