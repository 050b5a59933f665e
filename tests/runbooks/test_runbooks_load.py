"""The packaged runbooks load, are complete, and only prescribe real tool calls with sane arguments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_autoscale.errors import ConfigError
from mcp_autoscale.models import SIGNAL_NAMES
from mcp_autoscale.runbooks import KNOWN_TOOLS, Runbook, load_runbooks, packaged_runbook_dir

EXPECTED_SLUGS = {
    "ttft-breach",
    "itl-regression",
    "kv-cache-pressure",
    "queue-buildup",
    "gpu-capacity-shortage",
    "cold-start-storm",
    "cost-spike",
    "stale-metrics",
}
REQUIRED_SECTIONS = [
    "Symptoms",
    "Confirm",
    "Likely causes",
    "Decision steps",
    "Fix with tool calls",
    "What not to do",
    "Verify afterwards",
]
TOOLS = {
    "get_slo_snapshot",
    "patch_hpa",
    "scale_deployment",
    "request_gpu_nodes",
    "estimate_cost",
    "recommend_scaling",
    "explain_pool",
    "check_policy",
    "find_runbook",
    "list_pools",
    "rollback_action",
}
# Parameter names of the mutating tools (the server's contract): a runbook may omit optional ones.
PARAMS = {
    "patch_hpa": {
        "namespace",
        "deployment",
        "min_replicas",
        "max_replicas",
        "scale_down_stabilization_s",
        "rationale",
        "dry_run",
    },
    "scale_deployment": {"namespace", "deployment", "replicas", "rationale", "dry_run"},
    "request_gpu_nodes": {"node_pool", "gpus", "method", "rationale", "dry_run"},
}
# Functions PromQL and shell snippets may use; anything else written as name( must be a tool.
PROMQL_FUNCS = {
    "histogram_quantile",
    "rate",
    "sum",
    "avg",
    "max",
    "min",
    "count",
    "label_replace",
    "deriv",
    "changes",
    "increase",
    "time",
    "timestamp",
    "max_over_time",
    "by",
}
DEFAULT_FLEET = {
    "chat/llama-8b",
    "chat/llama-70b-prefill",
    "chat/llama-70b-decode",
    "batch/qwen-7b",
    "dev/granite-8b",
}
NODE_POOLS = {"gpu-l4", "gpu-h100", "gpu-a10g"}


@pytest.fixture(scope="module")
def runbooks() -> list[Runbook]:
    return load_runbooks()


def test_all_eight_runbooks_ship_as_package_data(runbooks: list[Runbook]) -> None:
    assert {r.slug for r in runbooks} == EXPECTED_SLUGS
    names = {e.name for e in packaged_runbook_dir().iterdir() if e.name.endswith(".md")}
    assert names == {f"{slug}.md" for slug in EXPECTED_SLUGS}


def test_known_tools_constant_matches_the_tool_list() -> None:
    assert set(KNOWN_TOOLS) == TOOLS


@pytest.mark.parametrize("slug", sorted(EXPECTED_SLUGS))
def test_runbook_is_complete(runbooks: list[Runbook], slug: str) -> None:
    rb = next(r for r in runbooks if r.slug == slug)
    sections = rb.sections()
    assert [s for s in REQUIRED_SECTIONS if s in sections] == REQUIRED_SECTIONS
    for name in REQUIRED_SECTIONS:
        assert len(sections[name]) > 80, f"{slug}: section {name} is too thin"
    assert len(rb.symptoms) >= 5
    assert rb.signals and set(rb.signals) <= set(SIGNAL_NAMES)
    assert rb.summary and rb.summary != rb.title and "\n" not in rb.summary
    # Confirm has PromQL in fenced blocks and covers the other engines by name.
    confirm = sections["Confirm"]
    assert "```promql" in confirm
    for engine in ("SGLang", "TGI", "Triton", "Dynamo"):
        assert engine in confirm, f"{slug}: Confirm lacks notes for {engine}"
    # Decision steps are a numbered list.
    assert re.search(r"^1\. .+\n(.+\n)*?2\. ", sections["Decision steps"], re.MULTILINE)


@pytest.mark.parametrize("slug", sorted(EXPECTED_SLUGS))
def test_tool_calls_are_real_and_well_formed(runbooks: list[Runbook], slug: str) -> None:
    rb = next(r for r in runbooks if r.slug == slug)
    assert len(rb.tool_calls) >= 3
    assert any(c.tool in PARAMS for c in rb.tool_calls), f"{slug} prescribes no action"
    assert {"get_slo_snapshot", "explain_pool"} & {c.tool for c in rb.tool_calls}, f"{slug} never looks first"
    for call in rb.tool_calls:
        assert call.tool in TOOLS
        if call.tool in PARAMS:
            assert set(call.arguments) <= PARAMS[call.tool], f"{slug}: {call.tool} has unknown arguments"
            assert call.arguments["rationale"].strip()
            assert call.arguments["dry_run"] is True or call.arguments["dry_run"] is False
        if "namespace" in call.arguments and "deployment" in call.arguments:
            assert f"{call.arguments['namespace']}/{call.arguments['deployment']}" in DEFAULT_FLEET
        if "node_pool" in call.arguments:
            assert call.arguments["node_pool"] in NODE_POOLS
        if call.tool == "check_policy":
            assert call.arguments["tool"] in PARAMS
        if call.tool == "patch_hpa" and "min_replicas" in call.arguments and "max_replicas" in call.arguments:
            assert call.arguments["min_replicas"] <= call.arguments["max_replicas"]


@pytest.mark.parametrize("slug", sorted(EXPECTED_SLUGS))
def test_every_call_named_anywhere_in_the_text_is_a_real_tool(runbooks: list[Runbook], slug: str) -> None:
    """Prose and code outside PromQL/shell blocks: every ``name(`` must be a tool of the server."""
    rb = next(r for r in runbooks if r.slug == slug)
    text = re.sub(r"```(promql|sh)\n.*?```", "", rb.body, flags=re.DOTALL)
    called = set(re.findall(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\(", text))
    assert called, f"{slug}: no tool calls found"
    assert called <= TOOLS, f"{slug}: not tools: {called - TOOLS}"
    # Tool names mentioned in backticks are real too.
    mentioned = {m for m in re.findall(r"`([a-z]+(?:_[a-z]+)+)`", text) if m.endswith(tuple(TOOLS))}
    assert mentioned <= TOOLS


@pytest.mark.parametrize("slug", sorted(EXPECTED_SLUGS))
def test_promql_uses_real_metric_names(runbooks: list[Runbook], slug: str) -> None:
    rb = next(r for r in runbooks if r.slug == slug)
    blocks = re.findall(r"```promql\n(.*?)```", rb.body, flags=re.DOTALL)
    assert blocks
    promql = "\n".join(blocks)
    # Removed/renamed or V0-only vLLM names must not be queried (they may be mentioned in prose as history).
    assert "vllm:gpu_cache_usage_perc" not in promql
    assert "vllm:num_requests_swapped" not in promql
    assert "vllm:time_per_output_token_seconds" not in promql
    for vllm_metric in re.findall(r"vllm:[a-z_]+", promql):
        assert vllm_metric in {
            "vllm:num_requests_waiting",
            "vllm:num_requests_running",
            "vllm:kv_cache_usage_perc",
            "vllm:time_to_first_token_seconds_bucket",
            "vllm:inter_token_latency_seconds_bucket",
            "vllm:prompt_tokens_total",
            "vllm:generation_tokens_total",
            "vllm:num_preemptions_total",
            "vllm:request_success_total",
            "vllm:request_queue_time_seconds_bucket",
            "vllm:request_prefill_time_seconds_bucket",
            "vllm:request_decode_time_seconds_bucket",
            "vllm:cache_config_info",
        }, f"{slug}: unexpected vLLM metric {vllm_metric}"
    # Quantiles come from histogram buckets over a rate, grouped, never a raw gauge.
    for q in re.findall(r"histogram_quantile\(0\.9,\s*sum by \(([^)]*)\) \(\s*(\w+)\(", promql):
        assert "le" in q[0].split(", ") and q[1] in {"rate", "label_replace"}
    # Functions used are PromQL functions, not invented ones.
    assert set(re.findall(r"\b([a-z_]+)\(", promql)) <= PROMQL_FUNCS


def test_ttft_runbook_confirms_with_grouped_histogram_quantile(runbooks: list[Runbook]) -> None:
    rb = next(r for r in runbooks if r.slug == "ttft-breach")
    compact = " ".join(rb.sections()["Confirm"].split())
    assert (
        "histogram_quantile(0.9, sum by (le, namespace, pod) "
        '(rate(vllm:time_to_first_token_seconds_bucket{namespace="chat"}[5m])))' in compact
    )


def test_keda_owned_pools_are_never_scaled_directly(runbooks: list[Runbook]) -> None:
    """KEDA owns chat/llama-8b and chat/llama-70b-decode: runbooks change bounds there, not replicas."""
    keda_owned = {("chat", "llama-8b"), ("chat", "llama-70b-decode"), ("chat", "llama-70b-prefill")}
    for rb in runbooks:
        for call in rb.tool_calls:
            if call.tool == "scale_deployment":
                assert (call.arguments["namespace"], call.arguments["deployment"]) not in keda_owned, rb.slug


def test_thresholds_from_the_domain_appear_where_they_matter(runbooks: list[Runbook]) -> None:
    by_slug = {r.slug: r.body for r in runbooks}
    assert "0.75" in by_slug["kv-cache-pressure"] and "0.85-0.9" in by_slug["kv-cache-pressure"]
    assert "30-90 s" in by_slug["stale-metrics"] and "30-120 s" in by_slug["cold-start-storm"]
    assert "AverageValue" in by_slug["queue-buildup"]
    assert "minutes" in by_slug["gpu-capacity-shortage"]
    assert "$/h" in by_slug["cost-spike"] or "/h" in by_slug["cost-spike"]


# --------------------------------------------------------------------------------------------------
# Malformed runbooks
# --------------------------------------------------------------------------------------------------

GOOD = """---
title: Example
slug: example
severity: low
signals: [queue_depth]
symptoms: [queue grows]
---
# Example

Intro sentence. More.

```mcp
get_slo_snapshot(namespace="chat")
```
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_custom_directory_loads(tmp_path: Path) -> None:
    [rb] = load_runbooks(_write(tmp_path, "example.md", GOOD))
    assert rb.slug == "example" and rb.summary == "Intro sentence."
    assert rb.tool_calls[0].tool == "get_slo_snapshot" and rb.tool_calls[0].arguments == {"namespace": "chat"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace("severity: low", "severity: catastrophic"), "field 'severity'"),
        (GOOD.replace("signals: [queue_depth]", "signals: [queue_len]"), "field 'signals"),
        (GOOD.replace("symptoms: [queue grows]\n", ""), "field 'symptoms'"),
        (GOOD.replace("title: Example\n", ""), "field 'title'"),
        (GOOD.replace("slug: example", "slug: other"), "field 'slug'"),
        (GOOD.replace("slug: example", "slug: Not A Slug"), "field 'slug'"),
        (GOOD.replace("symptoms: [queue grows]", "symptoms: [queue grows"), "example.md:7"),
        (GOOD.replace("---\ntitle", "title", 1), "front matter"),
        (
            GOOD.replace('get_slo_snapshot(namespace="chat")', 'kubectl_apply(file="x")'),
            "unknown tool 'kubectl_apply'",
        ),
        (
            GOOD.replace('get_slo_snapshot(namespace="chat")', "get_slo_snapshot(chat)"),
            "keyword arguments only",
        ),
        (
            GOOD.replace(
                'get_slo_snapshot(namespace="chat")',
                'scale_deployment(namespace="a", deployment="b", replicas=1, dry_run=True)',
            ),
            "non-empty rationale",
        ),
        (
            GOOD.replace(
                'get_slo_snapshot(namespace="chat")',
                'patch_hpa(namespace="a", deployment="b", rationale="r")',
            ),
            "dry_run",
        ),
        (GOOD.replace('get_slo_snapshot(namespace="chat")', "get_slo_snapshot(namespace="), "does not parse"),
    ],
)
def test_malformed_runbook_names_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_runbooks(_write(tmp_path, "example.md", text))
    assert "example.md" in str(err.value)
    assert needle in str(err.value)


@pytest.mark.parametrize("blank_lines", [0, 3])
def test_tool_call_error_points_at_the_line(tmp_path: Path, blank_lines: int) -> None:
    text = GOOD.replace('get_slo_snapshot(namespace="chat")', "get_slo_snapshot()\nlist_pools()\nnope()")
    text = text.replace("---\n# Example", "---\n" + "\n" * blank_lines + "# Example")
    line = text.splitlines().index("nope()") + 1
    assert line == 15 + blank_lines
    with pytest.raises(ConfigError, match=rf"example\.md:{line}: unknown tool 'nope'"):
        load_runbooks(_write(tmp_path, "example.md", text))


def test_duplicate_slug_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "example.md", GOOD)
    (tmp_path / "copy").mkdir()
    with pytest.raises(ConfigError, match="field 'slug'"):
        load_runbooks(
            _write(tmp_path / "copy", "example.md", GOOD.replace("slug: example", "slug: example2"))
        )
    _write(tmp_path, "second.md", GOOD.replace("slug: example", "slug: second"))
    assert [r.slug for r in load_runbooks(tmp_path)] == ["example", "second"]


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_runbooks(tmp_path / "absent")
