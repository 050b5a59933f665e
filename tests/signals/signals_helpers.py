"""Helpers shared by the signal tests (imported by conftest and test modules)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
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


def start_prometheus(tmp: Path, targets: list[str], deadline_s: float = 30.0) -> RealPrometheus:
    """Start the Debian ``prometheus`` binary scraping ``targets`` (host:port) every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus binary is not on PATH; install it with `sudo apt-get install prometheus` "
            "(the integration tests need a real Prometheus; .ci/run installs it)"
        )
    port = _free_port()
    config = tmp / "prometheus.yml"
    target_list = ", ".join(f'"{t}"' for t in targets)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
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
