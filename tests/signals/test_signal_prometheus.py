"""PrometheusSource when Prometheus is down, hung or rejects a query (no Prometheus binary needed)."""

from __future__ import annotations

import time

import pytest
from prometheus_api_client import PrometheusApiClientException
from signals_helpers import ExpositionServer

from mcp_autoscale.config import Settings
from mcp_autoscale.errors import ConfigError
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolState
from mcp_autoscale.signals import PrometheusSource, SignalSource
from mcp_autoscale.signals.common import NO_DIALECT
from mcp_autoscale.signals.prometheus import prometheus_error_message

POOLS = [
    PoolState(
        ref=PoolRef(namespace=ns, name=n), model="m", gpu_type="L4", desired_replicas=1, ready_replicas=1
    )
    for ns, n in (("chat", "llama-8b"), ("batch", "qwen-7b"))
]


def settings(url: str, timeout: float = 1.0) -> Settings:
    return Settings(prometheus_url=url, prometheus_timeout_s=timeout)


def test_prometheus_down_names_the_failure_per_signal(closed_port: int) -> None:
    source = PrometheusSource(settings(f"http://127.0.0.1:{closed_port}"))
    assert isinstance(source, SignalSource)
    t0 = time.monotonic()
    report = source.collect(POOLS)
    assert time.monotonic() - t0 < 1.0 + 1.0
    assert report.queries == 1  # detection goes first: nothing answers it, so nothing else is sent
    assert report.errors == ["prometheus unreachable: connection refused"]
    for sig in report.pools.values():
        assert sig.missing == dict.fromkeys(SIGNAL_NAMES, "prometheus unreachable: connection refused")
        assert all(sig.value(s) is None for s in SIGNAL_NAMES)


def test_prometheus_hung_costs_one_timeout_not_thirteen(silent_port: int) -> None:
    source = PrometheusSource(settings(f"http://127.0.0.1:{silent_port}", timeout=1.0))
    t0 = time.monotonic()
    report = source.collect(POOLS)
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0 + 1.0, elapsed
    reason = "prometheus unreachable: no answer within 1 s"
    assert report.queries == 1
    assert report.errors == [reason]
    assert report.pools["chat/llama-8b"].missing == dict.fromkeys(SIGNAL_NAMES, reason)


def test_query_error_carries_prometheus_message(exposition_server: ExpositionServer) -> None:
    # A fake Prometheus that rejects every query the way Prometheus does (HTTP 400, JSON error body).
    body = '{"status":"error","errorType":"bad_data","error":"1:12: parse error: unexpected \\"}\\""}'

    class Reject:
        def custom_query(self, query: str, params: object = None, timeout: object = None) -> object:
            raise PrometheusApiClientException(f"HTTP Status Code 400 ({body.encode()!r})")

        def close(self) -> None:
            return

    source = PrometheusSource(settings(exposition_server.url), client=Reject())  # type: ignore[arg-type]
    report = source.collect(POOLS)
    expected = 'query error: bad_data: 1:12: parse error: unexpected "}"'
    # detection answered, though with an error: every dialect's branches are asked
    assert report.queries == 10
    assert report.errors == [expected]
    assert report.pools["batch/qwen-7b"].missing["kv_usage"] == expected


def test_error_message_parsing_falls_back_to_the_raw_text() -> None:
    raw = "HTTP Status Code 502 (b'bad gateway')"
    assert prometheus_error_message(PrometheusApiClientException(raw)) == raw


def test_configuration_errors_surface_at_construction() -> None:
    with pytest.raises(ConfigError, match="prometheus_url"):
        PrometheusSource(Settings())
    with pytest.raises(ConfigError, match="pool_label"):
        PrometheusSource(Settings(prometheus_url="http://127.0.0.1:1", pool_label='pod"}'))
    with pytest.raises(ConfigError, match="unknown dialect"):
        PrometheusSource(Settings(prometheus_url="http://127.0.0.1:1"), dialect_overrides={"a/b": "x"})


def test_no_pools_means_no_queries(closed_port: int) -> None:
    report = PrometheusSource(settings(f"http://127.0.0.1:{closed_port}")).collect([])
    assert report.queries == 0 and not report.errors and not report.pools


class Recording:
    """A fake Prometheus client: detection finds vLLM on chat/llama-8b only; every query is kept."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def custom_query(self, query: str, params: object = None, timeout: object = None) -> object:
        self.queries.append(query)
        if query.startswith("count by (__name__"):
            metric = {"__name__": "vllm:kv_cache_usage_perc", "namespace": "chat", "pool": "llama-8b"}
            return [{"metric": metric, "value": [1.0, "1"]}]
        return []

    def close(self) -> None:
        return


def test_signal_queries_carry_only_the_dialects_found(exposition_server: ExpositionServer) -> None:
    fake = Recording()
    source = PrometheusSource(settings(exposition_server.url), client=fake)  # type: ignore[arg-type]
    report = source.collect(POOLS)
    detect, *signals = fake.queries
    assert "sglang:" in detect and "tgi_" in detect  # detection asks for every dialect's markers
    assert report.queries == 1 + len(signals) == 10
    for q in signals:
        assert "|vllm" in q and not any(f"|{d}|" in q for d in ("sglang", "tgi", "dynamo", "triton-trtllm"))
    assert report.pools["chat/llama-8b"].dialect == "vllm"
    assert report.pools["batch/qwen-7b"].missing["kv_usage"] == NO_DIALECT


def test_an_override_adds_its_dialect_to_the_queries(exposition_server: ExpositionServer) -> None:
    fake = Recording()
    source = PrometheusSource(
        settings(exposition_server.url),
        client=fake,  # type: ignore[arg-type]
        dialect_overrides={"batch/qwen-7b": "sglang"},
    )
    report = source.collect(POOLS)
    assert any("|sglang|" in q for q in fake.queries[1:])
    assert report.pools["batch/qwen-7b"].dialect == "sglang"
