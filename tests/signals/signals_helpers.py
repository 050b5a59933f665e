"""Helpers shared by the signal tests (imported by conftest and test modules)."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "exposition"


def fixture_text(engine: str) -> str:
    return (FIXTURES / f"{engine}.txt").read_text()


@dataclass
class ExpositionServer:
    """Serves ``bodies[path]`` (a string or a callable producing one) on 127.0.0.1."""

    url: str
    bodies: dict[str, str | Callable[[], str]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def set(self, path: str, body: str | Callable[[], str]) -> str:
        self.bodies[path] = body
        return self.url + path


@contextmanager
def serving() -> Iterator[ExpositionServer]:
    """Serve an ``ExpositionServer``'s bodies on 127.0.0.1 for the duration of the block."""
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
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RealPrometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, object]]:
        r = httpx.post(f"{self.url}/api/v1/query", data={"query": promql}, timeout=5)
        r.raise_for_status()
        return list(r.json()["data"]["result"])


def start_prometheus(
    tmp: Path, targets: list[str], deadline_s: float = 30.0, rules: str | None = None
) -> RealPrometheus:
    """Start the Debian ``prometheus`` binary scraping ``targets`` (host:port) every second.

    ``rules``: the text of a rules file to load (``rule_files:``), evaluated every second.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus binary is not on PATH; install it with `sudo apt-get install prometheus` "
            "(the integration tests need a real Prometheus; .ci/run installs it)"
        )
    port = _free_port()
    config = tmp / "prometheus.yml"
    target_list = ", ".join(f'"{t}"' for t in targets)
    rule_files = ""
    if rules is not None:
        (tmp / "rules.yaml").write_text(rules)
        rule_files = f"rule_files:\n  - {tmp / 'rules.yaml'}\n"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"{rule_files}"
        "scrape_configs:\n  - job_name: twin\n    honor_labels: true\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: [{target_list}]\n"
    )
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return RealPrometheus(url=url, process=proc, log=log)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling interval while waiting for readiness, bounded by the deadline
    proc.kill()
    pytest.fail(f"prometheus not ready within {deadline_s} s: {log.read_text()[-2000:]}")


def stop_prometheus(prom: RealPrometheus) -> None:
    prom.process.terminate()
    try:
        prom.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        prom.process.kill()
        prom.process.wait(timeout=5)


def poll(check: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``check`` until it is true or fail naming ``what``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(interval_s)
    pytest.fail(f"timed out after {deadline_s} s waiting for {what}")


# TTFT distribution of the synthetic pods: cumulative fraction of requests per bucket upper bound.
TTFT_FRACTIONS = ((0.25, 0.1), (0.5, 0.5), (1.0, 0.8), (2.5, 0.95), (5.0, 1.0), (float("inf"), 1.0))


@dataclass
class SyntheticVllmPod:
    """A vLLM V1 pod whose counters grow linearly with wall time, so every rate is known exactly."""

    namespace: str
    pod: str
    queue: float = 3.0
    running: float = 5.0
    kv: float = 0.5
    prompt_tps: float = 1000.0
    gen_tps: float = 500.0
    rps: float = 4.0
    preempt_per_s: float = 0.5
    fixed_timestamp_ms: int | None = None
    t0: float = field(default_factory=time.time)

    def render(self) -> str:
        dt = time.time() - self.t0
        lab = f'namespace="{self.namespace}",pod="{self.pod}",model_name="m",engine="0"'
        ts = f" {self.fixed_timestamp_ms}" if self.fixed_timestamp_ms is not None else ""
        lines = [
            f"vllm:num_requests_waiting{{{lab}}} {self.queue}{ts}",
            f"vllm:num_requests_running{{{lab}}} {self.running}{ts}",
            f"vllm:kv_cache_usage_perc{{{lab}}} {self.kv}{ts}",
            f"vllm:prompt_tokens_total{{{lab}}} {self.prompt_tps * dt}{ts}",
            f"vllm:generation_tokens_total{{{lab}}} {self.gen_tps * dt}{ts}",
            f"vllm:num_preemptions_total{{{lab}}} {self.preempt_per_s * dt}{ts}",
            f'vllm:request_success_total{{{lab},finished_reason="stop"}} {self.rps * dt}{ts}',
        ]
        n = self.rps * dt
        for hist in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"):
            scale = 1.0 if "first" in hist else 0.05
            for le, frac in TTFT_FRACTIONS:
                le_s = "+Inf" if le == float("inf") else repr(le * scale)
                lines.append(f'{hist}_bucket{{{lab},le="{le_s}"}} {frac * n}{ts}')
            lines.append(f"{hist}_count{{{lab}}} {n}{ts}")
            lines.append(f"{hist}_sum{{{lab}}} {n * scale}{ts}")
        return "\n".join(lines) + "\n"


def render_pods(pods: list[SyntheticVllmPod]) -> Callable[[], str]:
    return lambda: "".join(p.render() for p in pods)
