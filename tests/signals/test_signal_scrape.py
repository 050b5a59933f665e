"""ScrapeSource against a loopback server serving recorded exposition text."""

from __future__ import annotations

import time

import pytest
from signals_helpers import ExpositionServer, fixture_text

from mcp_autoscale.config import Settings
from mcp_autoscale.models import SIGNAL_NAMES, PoolRef, PoolState
from mcp_autoscale.signals import ScrapeSource, SignalSource


def pool(urls: list[str], name: str = "llama-8b") -> PoolState:
    return PoolState(
        ref=PoolRef(namespace="chat", name=name),
        model="m",
        gpu_type="L4",
        desired_replicas=len(urls),
        ready_replicas=len(urls),
        metrics_urls=urls,
    )


def bump(text: str, factor: float) -> str:
    """The same exposition with every counter and histogram sample multiplied (gauges kept)."""
    out = []
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if not line.startswith("#") and (
            name.endswith(("_total", "_bucket", "_count", "_sum")) or name in ("tgi_request_success",)
        ):
            head, value = line.rsplit(" ", 1)
            line = f"{head} {float(value) * factor}"
        out.append(line)
    return "\n".join(out) + "\n"


def test_two_scrapes_give_rates_and_percentiles(exposition_server: ExpositionServer) -> None:
    text = fixture_text("vllm")
    url_a = exposition_server.set("/a/metrics", text)
    url_b = exposition_server.set("/b/metrics", text)
    source = ScrapeSource(Settings(), timeout_s=2.0)
    assert isinstance(source, SignalSource)
    p = pool([url_a, url_b])

    t0 = time.monotonic()
    first = source.collect([p]).pools["chat/llama-8b"]
    assert first.dialect == "vllm"
    assert first.queue_depth == 14.0 and first.running == 24.0 and first.kv_usage == pytest.approx(0.62)
    for sig in ("gen_tps", "prompt_tps", "request_rps", "preemptions_per_min", "ttft_p90_s", "itl_p50_s"):
        assert getattr(first, sig) is None
        assert first.missing[sig] == "need two scrapes"

    exposition_server.set("/a/metrics", bump(text, 2.0))
    exposition_server.set("/b/metrics", bump(text, 2.0))
    second = source.collect([p])
    elapsed_max = time.monotonic() - t0  # the interval between the two scrapes is shorter than this
    sig = second.pools["chat/llama-8b"]
    assert second.queries == 2
    assert not sig.missing
    # each pod added 25600 generated tokens between the scrapes; two pods
    assert sig.gen_tps is not None
    assert sig.gen_tps >= 2 * 25600 / elapsed_max
    assert sig.prompt_tps is not None and sig.prompt_tps == pytest.approx(2 * sig.gen_tps)
    # the increase is the original histogram again: same percentiles as the fixture's own counts
    assert sig.ttft_p50_s == pytest.approx(1.0) and sig.ttft_p99_s == pytest.approx(5.0)
    assert sig.itl_p90_s == pytest.approx(0.095)
    assert set(sig.age_s) == set(SIGNAL_NAMES)


def test_no_traffic_between_scrapes_is_missing_not_zero(exposition_server: ExpositionServer) -> None:
    url = exposition_server.set("/metrics", fixture_text("sglang"))
    source = ScrapeSource(Settings(), timeout_s=2.0)
    source.collect([pool([url])])
    sig = source.collect([pool([url])]).pools["chat/llama-8b"]
    assert sig.dialect == "sglang"
    assert sig.gen_tps == 0.0  # a counter that did not move is a true zero rate
    assert sig.ttft_p90_s is None
    assert sig.missing["ttft_p90_s"] == "no observations since the previous scrape"


def test_failed_pod_makes_sums_missing_but_keeps_averages(
    exposition_server: ExpositionServer, closed_port: int
) -> None:
    ok = exposition_server.set("/metrics", fixture_text("vllm"))
    dead = f"http://127.0.0.1:{closed_port}/metrics"
    report = ScrapeSource(Settings(), timeout_s=2.0).collect([pool([ok, dead])])
    sig = report.pools["chat/llama-8b"]
    assert sig.kv_usage == pytest.approx(0.62)
    assert sig.queue_depth is None
    reason = sig.missing["queue_depth"]
    assert reason.startswith("scrape failed: ") and "(1/2 pods)" in reason
    assert any(dead in e for e in report.errors)


def test_hung_pod_costs_one_timeout(exposition_server: ExpositionServer, silent_port: int) -> None:
    urls = [f"http://127.0.0.1:{silent_port}/metrics/{i}" for i in range(6)]
    source = ScrapeSource(Settings(), timeout_s=1.0)
    t0 = time.monotonic()
    report = source.collect([pool(urls)])
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0 + 1.0
    sig = report.pools["chat/llama-8b"]
    assert all(v == "scrape failed: no answer within 1 s" for v in sig.missing.values())
    assert set(sig.missing) == set(SIGNAL_NAMES)


def test_unknown_engine_and_bad_text_are_named(exposition_server: ExpositionServer) -> None:
    other = exposition_server.set("/other", "# TYPE up gauge\nup 1\n")
    bad = exposition_server.set("/bad", "this is { not exposition\n")
    report = ScrapeSource(Settings(), timeout_s=2.0).collect([pool([other], "a"), pool([bad], "b")])
    assert report.pools["chat/a"].missing["queue_depth"].startswith("series absent")
    assert report.pools["chat/b"].missing["queue_depth"].startswith("scrape failed: ")
    assert "unparseable" in report.pools["chat/b"].missing["queue_depth"]


def test_dialect_override_wins_over_detection(exposition_server: ExpositionServer) -> None:
    url = exposition_server.set("/metrics", fixture_text("vllm"))
    source = ScrapeSource(Settings(), dialect_overrides={"chat/llama-8b": "vllm-v0"}, timeout_s=2.0)
    sig = source.collect([pool([url])]).pools["chat/llama-8b"]
    assert sig.dialect == "vllm-v0"
    assert sig.kv_usage is None and sig.missing["kv_usage"] == "series absent"  # old name not exposed


def test_pool_without_urls() -> None:
    sig = ScrapeSource(Settings()).collect([pool([])]).pools["chat/llama-8b"]
    assert sig.missing["gen_tps"] == "no metrics URLs known for this pool"
