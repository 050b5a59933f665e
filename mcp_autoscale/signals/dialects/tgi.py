"""Hugging Face Text Generation Inference. Source: TGI docs, reference/metrics.

TGI has no TTFT histogram and no KV-usage gauge; its ITL is a histogram of each request's *mean* time per
token, and its token counts are histograms whose ``_sum`` grows like a counter.
"""

from mcp_autoscale.signals.dialects.spec import Dialect, gauge, latency, rate

DIALECTS = (
    Dialect(
        name="tgi",
        engine="tgi",
        markers=("tgi_queue_size",),
        priority=40,
        signals={
            **latency(None, "tgi_request_mean_time_per_token_duration"),
            "queue_depth": gauge("tgi_queue_size"),
            "running": gauge("tgi_batch_current_size"),
            "prompt_tps": rate("tgi_request_input_length_sum"),
            "gen_tps": rate("tgi_request_generated_tokens_sum"),
            "request_rps": rate("tgi_request_success"),
        },
        notes="ITL = per-request mean time per token; no TTFT, no KV usage",
        docs="https://huggingface.co/docs/text-generation-inference/reference/metrics",
    ),
)
