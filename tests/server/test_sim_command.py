"""`mcp-autoscale sim --port 0` serves the twin's metrics in vLLM exposition format over HTTP."""

from __future__ import annotations

import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families


def test_sim_command_serves_vllm_metrics() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_autoscale", "sim", "--port", "0", "--speed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "serving N simulated pools at http://127.0.0.1:PORT/metrics ..."
        url = next(word for word in line.split() if word.startswith("http://"))
        body = httpx.get(url, timeout=10).text
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert "vllm:num_requests_waiting" in families and "vllm:time_to_first_token_seconds" in families
        pods = {s.labels["pod"] for s in families["vllm:num_requests_waiting"].samples}
        assert any(p.startswith("llama-8b-") for p in pods)
        assert {s.labels["namespace"] for s in families["vllm:num_requests_waiting"].samples} >= {
            "chat",
            "dev",
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
