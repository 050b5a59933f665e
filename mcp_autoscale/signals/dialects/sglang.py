"""SGLang (``--enable-metrics``). Source: SGLang docs "Production Metrics"."""

from mcp_autoscale.signals.dialects.spec import Dialect, gauge, latency, rate

DIALECTS = (
    Dialect(
        name="sglang",
        engine="sglang",
        markers=("sglang:num_running_reqs",),
        priority=30,
        signals={
            **latency("sglang:time_to_first_token_seconds", "sglang:inter_token_latency_seconds"),
            "kv_usage": gauge("sglang:token_usage", agg="avg"),
            "queue_depth": gauge("sglang:num_queue_reqs"),
            "running": gauge("sglang:num_running_reqs"),
            "prompt_tps": rate("sglang:prompt_tokens_total"),
            "gen_tps": rate("sglang:generation_tokens_total"),
            "preemptions_per_min": rate("sglang:num_retracted_requests_total", scale=60.0),
            "request_rps": rate("sglang:num_requests_total"),
        },
        notes="preemptions = retracted requests",
        docs="https://docs.sglang.ai/references/production_metrics.html",
    ),
)
