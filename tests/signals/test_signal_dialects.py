"""Dialects on recorded exposition text: detection and every mapped signal, per engine."""

from __future__ import annotations

import math

import pytest
from signals_helpers import fixture_text

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.models import SIGNAL_NAMES
from mcp_autoscale.signals import dialects
from mcp_autoscale.signals.common import check_overrides
from mcp_autoscale.signals.dialects.spec import Dialect, Kind, MetricSpec, gauge
from mcp_autoscale.signals.exposition import Sample, Scrape, counter_rate, gauge_value, parse, quantile_value

ENGINES = ["vllm", "vllm-v0", "sglang", "tgi", "triton-trtllm", "dynamo"]

# Values hand-picked in the fixtures: queue 7, running 12, KV 0.62, 200 finished requests, 51200 prompt
# and 25600 generated tokens, 30 preemptions; TTFT histogram of 200 and ITL histogram of 10000 observations.
EXPECTED = {
    "queue_depth": 7.0,
    "running": 12.0,
    "kv_usage": 0.62,
    # over a 10 s interval starting from zero:
    "request_rps": 20.0,
    "prompt_tps": 5120.0,
    "gen_tps": 2560.0,
    "preemptions_per_min": 180.0,
    # TTFT: p50 rank 100 is the top of the (0.75, 1.0] bucket, p90 rank 180 the top of (1.0, 2.5], p99
    # rank 198 the top of (2.5, 5.0]. ITL: p50 rank 5000 lies 2000/4000 into (0.05, 0.075]; p90 rank
    # 9000 lies 2000/2500 into (0.075, 0.1].
    "ttft_p50_s": 1.0,
    "ttft_p90_s": 2.5,
    "ttft_p99_s": 5.0,
    "itl_p50_s": 0.0625,
    "itl_p90_s": 0.095,
}


def _zeroed(scrape: Scrape) -> Scrape:
    """The same pod at process start: every series present, every value zero."""
    return Scrape(scrape.url, scrape.at - 10.0, [Sample(s.name, s.labels, 0.0) for s in scrape.samples])


def evaluate(dialect: Dialect, text: str) -> dict[str, float | None]:
    cur = Scrape("fixture", 100.0, parse(text))
    pairs = [(_zeroed(cur), cur)]
    out: dict[str, float | None] = {}
    for name, spec in dialect.signals.items():
        if spec.kind is Kind.GAUGE:
            out[name] = gauge_value(spec, [cur])
        elif spec.kind is Kind.RATE:
            out[name] = counter_rate(spec, pairs)
        else:
            out[name] = quantile_value(spec, pairs)
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_fixture_is_detected_as_its_engine(engine: str) -> None:
    names = {s.name for s in parse(fixture_text(engine))}
    detected = dialects.detect(names)
    assert detected is not None
    assert detected.name == engine


@pytest.mark.parametrize("engine", ENGINES)
def test_every_mapped_signal_resolves_to_the_fixture_value(engine: str) -> None:
    dialect = dialects.get(engine)
    values = evaluate(dialect, fixture_text(engine))
    assert set(values) == set(dialect.signals)
    for name, value in values.items():
        assert value is not None, f"{engine}: {name} ({dialect.signals[name].metric}) not in fixture"
        assert value == pytest.approx(EXPECTED[name], rel=1e-9), f"{engine}: {name}"


def test_core_signals_are_covered_by_every_dialect() -> None:
    for d in dialects.DIALECTS.values():
        assert {"queue_depth", "running"} <= set(d.signals), d.name
        assert set(d.signals) <= set(SIGNAL_NAMES)


def test_unexposed_signals_are_the_documented_gaps() -> None:
    gaps = {name: set(SIGNAL_NAMES) - set(d.signals) for name, d in dialects.DIALECTS.items()}
    assert gaps["vllm"] == set()
    assert gaps["tgi"] == {"ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "kv_usage", "preemptions_per_min"}
    assert "kv_usage" in gaps["dynamo"]


def test_vllm_releases_with_both_names_detect_as_current_v1() -> None:
    both = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "vllm:num_requests_waiting"}
    detected = dialects.detect(both)
    assert detected is not None and detected.name == "vllm"
    old = dialects.detect({"vllm:gpu_cache_usage_perc"})
    assert old is not None and old.name == "vllm-v0"
    assert old.signals["itl_p90_s"].metric == "vllm:time_per_output_token_seconds"
    assert old.signals["kv_usage"].metric == "vllm:gpu_cache_usage_perc"


def test_unknown_engine_detects_nothing() -> None:
    assert dialects.detect({"process_cpu_seconds_total", "up"}) is None


def test_label_filters_pick_one_member_of_a_gauge_family() -> None:
    triton = dialects.get("triton-trtllm")
    cur = [Scrape("x", 0.0, parse(fixture_text("triton-trtllm")))]
    assert gauge_value(triton.signals["queue_depth"], cur) == 7.0
    assert gauge_value(triton.signals["running"], cur) == 12.0
    # without the filter the family would sum all members, which is what the filter is there to avoid
    assert gauge_value(gauge("nv_trt_llm_request_metrics"), cur) == 7 + 12 + 2 + 64 + 12


def test_gauge_average_and_sum_across_pods() -> None:
    text = fixture_text("vllm")
    other = text.replace("vllm:kv_cache_usage_perc{", 'vllm:kv_cache_usage_perc{pod="b",').replace(
        " 0.62\n", " 0.82\n"
    )
    pods = [Scrape("a", 0.0, parse(text)), Scrape("b", 0.0, parse(other))]
    vllm = dialects.get("vllm")
    assert gauge_value(vllm.signals["kv_usage"], pods) == pytest.approx(0.72)
    assert gauge_value(vllm.signals["queue_depth"], pods) == 14.0


def test_counter_reset_counts_the_new_value_like_rate() -> None:
    spec = dialects.get("vllm").signals["gen_tps"]
    prev = Scrape("a", 0.0, [Sample("vllm:generation_tokens_total", {}, 1000.0)])
    cur = Scrape("a", 10.0, [Sample("vllm:generation_tokens_total", {}, 300.0)])
    assert counter_rate(spec, [(prev, cur)]) == 30.0


def test_quantile_without_observations_is_nan_not_zero() -> None:
    spec = dialects.get("vllm").signals["ttft_p90_s"]
    cur = Scrape("a", 100.0, parse(fixture_text("vllm")))
    value = quantile_value(spec, [(cur, Scrape("a", 110.0, cur.samples))])
    assert value is not None and math.isnan(value)


def test_spec_validation_rejects_bad_names() -> None:
    with pytest.raises(ValueError):
        MetricSpec('x"} or vector(1)', Kind.GAUGE)
    with pytest.raises(ValueError):
        MetricSpec("x", Kind.GAUGE, matchers=(("__name__", "y"),))
    with pytest.raises(ValueError):
        MetricSpec("x", Kind.QUANTILE)
    with pytest.raises(ValueError):
        Dialect(name="bad", engine="e", markers=("m",), signals={"not_a_signal": gauge("m")})


def test_overrides_are_validated_at_start_up() -> None:
    assert check_overrides({"chat/llama-8b": "sglang"})["chat/llama-8b"].name == "sglang"
    with pytest.raises(ConfigError, match="unknown dialect 'nope'"):
        check_overrides({"chat/llama-8b": "nope"})
    with pytest.raises(ConfigError, match="namespace/deployment"):
        check_overrides({"llama-8b": "vllm"})
