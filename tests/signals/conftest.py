"""Fixtures for the signal tests: a loopback exposition server, hung and closed ports."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from signals_helpers import ExpositionServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def exposition_server() -> Iterator[ExpositionServer]:
    state = ExpositionServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.bodies.get(self.path)
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            if body is None:
                self.send_error(404)
                return
            data = (body() if callable(body) else body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


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
