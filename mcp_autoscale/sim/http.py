"""A background HTTP server exposing the twin's pods like a vLLM fleet's /metrics (loopback by default)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from mcp_autoscale.logs import get_logger
from mcp_autoscale.sim.twin import Twin

log = get_logger(__name__)


class MetricsServer:
    """Handle on a running server: ``url`` (base, no path), ``port``, ``close()``."""

    def __init__(self, twin: Twin, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._twin = twin
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"
        self.metrics_url = f"{self.url}/metrics"

    def close(self) -> None:
        with self._twin._lock:
            if self.metrics_url in self._twin.metrics_urls:
                self._twin.metrics_urls.remove(self.metrics_url)
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(twin: Twin, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve ``GET /metrics`` (the twin synced, then its exposition) and ``GET /healthz`` in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body = twin.exposition().encode("utf-8")
                ctype = CONTENT_TYPE_PLAIN_0_0_4
                status = 200
            elif path == "/healthz":
                body, ctype, status = b"ok\n", "text/plain; charset=utf-8", 200
            else:
                body, ctype, status = (
                    b"not found: try /metrics or /healthz\n",
                    "text/plain; charset=utf-8",
                    404,
                )
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("sim.metrics.request", line=format % args)

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="sim-metrics", daemon=True)
    thread.start()
    server = MetricsServer(twin, httpd, thread)
    with twin._lock:
        twin.metrics_urls.append(server.metrics_url)
    log.info("sim.metrics.serving", url=server.metrics_url)
    return server
