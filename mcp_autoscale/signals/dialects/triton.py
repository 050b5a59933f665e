"""Triton Inference Server with the TensorRT-LLM backend. Source: Triton TRT-LLM backend docs (metrics).

Queue and running requests are one gauge family split by ``request_type``; KV usage is the
``kv_cache_block_type="fraction"`` member of the block metrics. Newer TRT-LLM builds add latency histograms.
"""

from mcp_autoscale.signals.dialects.spec import Dialect, gauge, latency, rate

DIALECTS = (
    Dialect(
        name="triton-trtllm",
        engine="triton",
        markers=("nv_trt_llm_request_metrics",),
        priority=50,
        signals={
            **latency("trtllm_time_to_first_token_seconds", "trtllm_time_per_output_token_seconds"),
            "queue_depth": gauge("nv_trt_llm_request_metrics", request_type="waiting"),
            "running": gauge("nv_trt_llm_request_metrics", request_type="active"),
            "kv_usage": gauge("nv_trt_llm_kv_cache_block_metrics", agg="avg", kv_cache_block_type="fraction"),
            "request_rps": rate("nv_inference_request_success"),
        },
        notes="no token counters",
        docs="https://github.com/triton-inference-server/tensorrtllm_backend/blob/main/docs/guides/metrics.md",
    ),
)
