"""Issue 13, item 9: a webhook URL is a credential (Slack): no log line may carry its path or query."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

import mcp_autoscale.approvals as approvals
from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.logs import configure_logging, redact_urls

SECRET = "services/T0SECRET/B0SECRET/xoxSECRETtoken"
POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [dev]
rules:
  - name: dev
    match: {namespaces: [dev]}
    approval: {via: [cli]}
"""


class _Hook(BaseHTTPRequestHandler):
    status = 200
    done: threading.Event

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def hook_server() -> Iterator[Callable[[int], str]]:
    servers: list[HTTPServer] = []

    def start(status: int) -> str:
        handler = type("Hook", (_Hook,), {"status": status})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/{SECRET}?token=SECRETQUERY"

    yield start
    for s in servers:
        s.shutdown()
    configure_logging("warning")


@pytest.mark.parametrize("status", [200, 404])
def test_webhook_url_never_reaches_the_logs(
    make_gate: Callable[..., Gate],
    hook_server: Callable[[int], str],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    configure_logging("info")  # what `serve` runs with: httpx logs each request at INFO
    url = hook_server(status)
    gate = make_gate(POLICY, webhook_url=url)
    call = {"namespace": "dev", "deployment": "granite-8b", "replicas": 2}
    action = action_from_call("scale_deployment", call, "r")
    sent: list[threading.Thread] = []

    def spy(*a: Any, **kw: Any) -> threading.Thread:  # the background sender, so the test can join it
        sent.append(approvals.post_webhook(*a, **kw))
        return sent[-1]

    monkeypatch.setattr("mcp_autoscale.actions.gate.post_webhook", spy)
    gate.submit(action)
    for t in sent:
        t.join(timeout=10)
    logging.getLogger().handlers[0].flush()
    err = capfd.readouterr().err
    assert "127.0.0.1" in err  # the request was logged ...
    assert "SECRET" not in err  # ... without its path or query
    if status == 404:
        assert "proposals.webhook_failed" in err


def test_redact_urls_keeps_scheme_and_host_only() -> None:
    text = "for url 'https://user:pw@hooks.slack.com/services/T/B/X?a=1' and http://127.0.0.1:9090"
    assert redact_urls(text) == "for url 'https://…@hooks.slack.com/…' and http://127.0.0.1:9090"
