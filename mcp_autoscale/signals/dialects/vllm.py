"""vLLM: V1 engine names (current) and the older names (V0, and V1 up to ~0.11).

Source: vLLM docs "Production Metrics" (design/metrics.md). ``vllm:gpu_cache_usage_perc`` and
``vllm:time_per_output_token_seconds`` were renamed to ``vllm:kv_cache_usage_perc`` and
``vllm:inter_token_latency_seconds``; the old names were removed around v0.12. Releases in between expose
both, so the current dialect has the lower priority number and wins.
"""

from mcp_autoscale.signals.dialects.spec import Dialect, gauge, latency, rate

_COMMON = {
    "queue_depth": gauge("vllm:num_requests_waiting"),
    "running": gauge("vllm:num_requests_running"),
    "prompt_tps": rate("vllm:prompt_tokens_total"),
    "gen_tps": rate("vllm:generation_tokens_total"),
    "preemptions_per_min": rate("vllm:num_preemptions_total", scale=60.0),
    "request_rps": rate("vllm:request_success_total"),
}

DIALECTS = (
    Dialect(
        name="vllm",
        engine="vllm",
        markers=("vllm:kv_cache_usage_perc",),
        priority=10,
        signals={
            **latency("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"),
            "kv_usage": gauge("vllm:kv_cache_usage_perc", agg="avg"),
            **_COMMON,
        },
        docs="https://docs.vllm.ai/en/latest/design/metrics.html",
    ),
    Dialect(
        name="vllm-v0",
        engine="vllm",
        markers=("vllm:gpu_cache_usage_perc",),
        priority=20,
        signals={
            **latency("vllm:time_to_first_token_seconds", "vllm:time_per_output_token_seconds"),
            "kv_usage": gauge("vllm:gpu_cache_usage_perc", agg="avg"),
            **_COMMON,
        },
        notes="old names: gpu_cache_usage_perc, time_per_output_token_seconds",
        docs="https://docs.vllm.ai/en/v0.6.0/serving/metrics.html",
    ),
)
