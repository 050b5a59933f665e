"""Symptom search: plain-language queries land on the right runbook; signal lookup; bad input."""

from __future__ import annotations

import pytest

from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.runbooks import (
    Runbook,
    default_runbooks,
    find_runbooks,
    load_runbooks,
    normalise,
    runbook_for_signal,
)


@pytest.fixture(scope="module")
def runbooks() -> list[Runbook]:
    return load_runbooks()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("time to first token is slow", "ttft-breach"),
        ("TTFT p90 is 3.8s, above our 2s SLO", "ttft-breach"),
        ("users wait a long time before the answer starts streaming", "ttft-breach"),
        ("pods pending no GPU", "gpu-capacity-shortage"),
        ("0/12 nodes available: Insufficient nvidia.com/gpu (FailedScheduling)", "gpu-capacity-shortage"),
        ("Karpenter is not provisioning new nodes", "gpu-capacity-shortage"),
        ("kv cache full preemptions", "kv-cache-pressure"),
        ("vllm:num_preemptions_total rising, long contexts", "kv-cache-pressure"),
        ("KV-cache usage at 93%", "kv-cache-pressure"),
        ("metrics are old", "stale-metrics"),
        ("prometheus scrape lag, data is outdated", "stale-metrics"),
        ("dashboard not updating", "stale-metrics"),
        ("inter-token latency regression", "itl-regression"),
        ("TPOT went up after the upgrade", "itl-regression"),
        ("tokens stream slowly, decode is slow", "itl-regression"),
        ("requests waiting in queue and KEDA is at max replicas", "queue-buildup"),
        ("num_requests_waiting keeps growing", "queue-buildup"),
        ("replicas flapping up and down, slow startup", "cold-start-storm"),
        ("weights take minutes to load on every new pod", "cold-start-storm"),
        ("cold start", "cold-start-storm"),
        ("the GPU bill doubled this month", "cost-spike"),
        ("a 7B model is running on H100s, too expensive", "cost-spike"),
        ("idle GPUs at night", "cost-spike"),
    ],
)
def test_query_ranks_expected_runbook_first(runbooks: list[Runbook], query: str, expected: str) -> None:
    matches = find_runbooks(query, runbooks)
    assert matches, query
    assert matches[0].slug == expected, [(m.slug, m.score) for m in matches]
    assert matches[0].score > 0 and matches[0].matched_terms
    assert matches[0].title and matches[0].summary and "\n" not in matches[0].summary


def test_clear_query_wins_by_a_margin(runbooks: list[Runbook]) -> None:
    first, second, *_ = find_runbooks("kv cache full preemptions", runbooks)
    assert first.slug == "kv-cache-pressure"
    assert first.score > 2 * second.score


def test_results_are_sorted_limited_and_positive(runbooks: list[Runbook]) -> None:
    matches = find_runbooks("replicas slow gpu queue", runbooks, limit=5)
    assert 1 <= len(matches) <= 5
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(s > 0 for s in scores)
    assert len(find_runbooks("replicas slow gpu queue", runbooks, limit=1)) == 1


def test_matched_terms_are_the_query_words(runbooks: list[Runbook]) -> None:
    [top] = find_runbooks("pods pending no GPU", runbooks, limit=1)
    assert set(top.matched_terms) == {"pods", "pending", "gpu"}
    [top] = find_runbooks("time to first token is slow", runbooks, limit=1)
    assert "ttft" in top.matched_terms and "slow" in top.matched_terms


def test_unrelated_query_returns_nothing(runbooks: list[Runbook]) -> None:
    assert find_runbooks("banana smoothie recipe", runbooks) == []


@pytest.mark.parametrize("query", ["", "   ", "the of and", "?!"])
def test_empty_query_is_invalid(runbooks: list[Runbook], query: str) -> None:
    with pytest.raises(InvalidInput):
        find_runbooks(query, runbooks)


def test_limit_must_be_positive(runbooks: list[Runbook]) -> None:
    with pytest.raises(InvalidInput):
        find_runbooks("ttft", runbooks, limit=0)


def test_default_runbooks_are_the_packaged_ones() -> None:
    assert [r.slug for r in default_runbooks()] == [r.slug for r in load_runbooks()]
    assert find_runbooks("metrics are old")[0].slug == "stale-metrics"


def test_search_over_a_custom_subset(runbooks: list[Runbook]) -> None:
    subset = [r for r in runbooks if r.slug in {"cost-spike", "stale-metrics"}]
    assert {m.slug for m in find_runbooks("gpu cost", subset, limit=5)} <= {"cost-spike", "stale-metrics"}


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("Time-to-first-token", ["ttft"]),
        ("inter token latency", ["itl"]),
        ("TPOT", ["itl"]),
        ("preemptions preempted preempt", ["preempt", "preempt", "preempt"]),
        ("provisioning provision", ["provis", "provis"]),
        ("metrics are old", ["metric", "stale"]),
        ("pods GPUs", ["pod", "gpu"]),
        ("KV-cache", ["kv", "cache"]),
    ],
)
def test_normalisation(text: str, terms: list[str]) -> None:
    assert normalise(text) == terms


@pytest.mark.parametrize(
    ("signal", "first"),
    [
        ("ttft_p90_s", "ttft-breach"),
        ("itl_p90_s", "itl-regression"),
        ("kv_usage", "kv-cache-pressure"),
        ("queue_depth", "queue-buildup"),
        ("preemptions_per_min", "kv-cache-pressure"),
    ],
)
def test_runbook_for_signal_puts_the_primary_runbook_first(
    runbooks: list[Runbook], signal: str, first: str
) -> None:
    hits = runbook_for_signal(signal, runbooks)
    assert hits[0].slug == first
    assert all(signal in r.signals for r in hits)
    assert {r.slug for r in hits} == {r.slug for r in runbooks if signal in r.signals}


def test_runbook_for_signal_defaults_to_packaged_and_rejects_unknown() -> None:
    assert runbook_for_signal("kv_usage")[0].slug == "kv-cache-pressure"
    assert runbook_for_signal("ttft_p50_s") == []
    with pytest.raises(InvalidInput, match="unknown signal"):
        runbook_for_signal("gpu_util")
