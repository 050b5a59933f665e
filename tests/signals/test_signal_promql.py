"""PromQL builder: golden strings, escaping, and a constant query count."""

from __future__ import annotations

import re

import pytest

from mcp_autoscale.models import SIGNAL_NAMES
from mcp_autoscale.signals import dialects
from mcp_autoscale.signals.dialects.spec import MetricSpec, gauge, latency, rate
from mcp_autoscale.signals.promql import (
    PoolGrouping,
    any_of,
    branch_tag,
    bucket_rate_expr,
    detection_query,
    escape_regex,
    escape_string,
    parse_branch,
    plan,
    regex_any,
    selector,
    signal_query,
    timestamp_expr,
    value_expr,
)

DERIVED = PoolGrouping()
LABELLED = PoolGrouping("app_kubernetes_io_instance")
POD_RE = '"^(.+)-[a-z0-9]{1,10}-[a-z0-9]{5}$"'


def test_gauge_sum_with_derived_pool_label() -> None:
    q = value_expr(gauge("vllm:num_requests_waiting"), ["chat", "batch"], DERIVED, "2m")
    assert q == (
        'sum by (namespace, pool) (label_replace(vllm:num_requests_waiting{namespace=~"batch|chat"}, '
        f'"pool", "$1", "pod", {POD_RE}))'
    )


def test_gauge_avg_with_configured_pool_label_and_filter() -> None:
    spec = gauge("nv_trt_llm_kv_cache_block_metrics", agg="avg", kv_cache_block_type="fraction")
    q = value_expr(spec, ["chat"], LABELLED, "2m")
    assert q == (
        "avg by (namespace, app_kubernetes_io_instance) "
        '(nv_trt_llm_kv_cache_block_metrics{namespace=~"chat", kv_cache_block_type="fraction"})'
    )


def test_counter_rate_with_scale_and_window() -> None:
    q = value_expr(rate("vllm:num_preemptions_total", scale=60.0), ["chat"], LABELLED, "90s")
    assert q == (
        "60 * sum by (namespace, app_kubernetes_io_instance) "
        '(rate(vllm:num_preemptions_total{namespace=~"chat"}[90s]))'
    )


def test_histogram_quantile_sums_rates_by_le_and_pool() -> None:
    spec = latency("vllm:time_to_first_token_seconds", None)["ttft_p90_s"]
    q = value_expr(spec, ["chat"], DERIVED, "2m")
    assert q == (
        "histogram_quantile(0.9, sum by (le, namespace, pool) "
        '(label_replace(rate(vllm:time_to_first_token_seconds_bucket{namespace=~"chat"}[2m]), '
        f'"pool", "$1", "pod", {POD_RE})))'
    )


def test_bucket_rates_summed_by_le_and_pool() -> None:
    spec = latency("vllm:time_to_first_token_seconds", None)["ttft_p90_s"]
    assert bucket_rate_expr(spec, ["chat"], LABELLED, "2m") == (
        "sum by (le, namespace, app_kubernetes_io_instance) "
        '(rate(vllm:time_to_first_token_seconds_bucket{namespace=~"chat"}[2m]))'
    )


def test_timestamp_is_taken_of_the_bare_selector() -> None:
    spec = latency("vllm:time_to_first_token_seconds", None)["ttft_p50_s"]
    q = timestamp_expr(spec, ["chat"], LABELLED)
    assert q == (
        "max by (namespace, app_kubernetes_io_instance) "
        '(timestamp(vllm:time_to_first_token_seconds_count{namespace=~"chat"}))'
    )


def test_signal_query_tags_dialects_and_shares_identical_branches() -> None:
    q = signal_query("ttft_p90_s", dialects.DIALECTS.values(), ["chat"], LABELLED, "2m")
    assert q is not None
    tags = re.findall(r'"app_kubernetes_io_instance", "(\w+)\|([^|"]+)\|\$1"', q)
    # vllm and vllm-v0 share the TTFT histogram: one branch pair for both; TGI has no TTFT
    assert sorted({d for _, d in tags}) == ["dynamo", "sglang", "triton-trtllm", "vllm,vllm-v0"]
    assert sorted(f for f, _ in tags) == ["buckets"] * 4 + ["ts"] * 4
    assert "histogram_quantile" not in q  # quantiles are computed from the bucket rates, once per histogram


def test_derived_pool_carries_the_branch_tag_in_its_one_label_replace() -> None:
    q = signal_query("queue_depth", [dialects.get("vllm")], ["chat"], DERIVED, "2m")
    assert q == (
        '(sum by (namespace, pool) (label_replace(vllm:num_requests_waiting{namespace=~"chat"}, "pool", '
        f'"value|vllm|$1", "pod", {POD_RE})) or max by (namespace, pool) (label_replace(timestamp('
        f'vllm:num_requests_waiting{{namespace=~"chat"}}), "pool", "ts|vllm|$1", "pod", {POD_RE})))'
    )
    assert q.count("label_replace") == 2  # one per branch: the pool and its tag together


def test_branches_are_ored_as_a_balanced_tree() -> None:
    assert any_of(["a"]) == "a"
    assert any_of(["a", "b", "c", "d"]) == "((a or b) or (c or d))"
    assert any_of(["a", "b", "c"]) == "(a or (b or c))"


def test_branch_tags_parse_back() -> None:
    assert parse_branch(branch_tag("ts", "vllm,vllm-v0") + "llama-8b") == ("ts", "vllm,vllm-v0", "llama-8b")
    assert parse_branch(branch_tag("quantile=0.9", "vllm") + "a|b") == ("quantile=0.9", "vllm", "a|b")
    assert parse_branch("llama-8b") is None  # untagged (e.g. the detection query)
    assert parse_branch(branch_tag("value", "vllm")) is None  # the pod name did not parse: no pool


def test_detection_query_asks_only_for_markers() -> None:
    q = detection_query(["b:x", "a_y"], ["chat"], LABELLED)
    assert q == (
        "count by (__name__, namespace, app_kubernetes_io_instance) "
        '({__name__=~"a_y|b:x", namespace=~"chat"})'
    )


@pytest.mark.parametrize("n_namespaces", [1, 10, 1000])
def test_query_count_is_constant_in_the_number_of_pools(n_namespaces: int) -> None:
    namespaces = [f"ns-{i}" for i in range(n_namespaces)]
    qp = plan(SIGNAL_NAMES, dialects.DIALECTS.values(), namespaces, DERIVED, "2m")
    # detection + 7 gauge/counter signals + one query per latency histogram (TTFT, ITL)
    assert len(qp.queries) == 10
    assert qp.answered_by["ttft_p99_s"] == qp.answered_by["ttft_p50_s"] != qp.answered_by["itl_p90_s"]
    assert set(qp.answered_by) == set(SIGNAL_NAMES)


def test_string_escaping_follows_go_rules() -> None:
    assert escape_string('a"b\\c\nd\te') == '"a\\"b\\\\c\\nd\\x09e"'


def test_regex_escaping_makes_metacharacters_literal() -> None:
    assert escape_regex("a.b|c*(d)") == r"a\.b\|c\*\(d\)"
    assert re.fullmatch(escape_regex("a.b|c*(d)[e]{2}^$+?"), "a.b|c*(d)[e]{2}^$+?")
    assert not re.fullmatch(escape_regex("a.b"), "axb")
    assert regex_any(["b", "a.c", "b"]) == r'"a\\.c|b"'


MALICIOUS = 'chat"} or vector(1) or up{x=~".*'


def test_malicious_value_stays_inside_the_matcher() -> None:
    q = selector("up", [MALICIOUS])
    # The whole value sits in ONE string literal: the closing quote of the value is escaped, and
    # the regex alternation and dots it carried are literal characters.
    m = re.fullmatch(r'up\{namespace=~"((?:[^"\\]|\\.)*)"\}', q)
    assert m is not None, q
    unescaped = m.group(1).encode().decode("unicode_escape")
    assert re.fullmatch(unescaped, MALICIOUS)
    assert not re.fullmatch(unescaped, "chat")


def test_invalid_pool_label_is_refused() -> None:
    for bad in ('pod"}', "__name__", "1abc", "a-b"):
        with pytest.raises(ValueError):
            PoolGrouping(bad)


def test_metric_names_of_all_dialects_are_plain_identifiers() -> None:
    specs: list[MetricSpec] = [s for d in dialects.DIALECTS.values() for s in d.signals.values()]
    assert all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s.metric) for s in specs)
