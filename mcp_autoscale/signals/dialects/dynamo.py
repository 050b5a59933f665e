"""NVIDIA Dynamo HTTP frontend (``dynamo_frontend_*``). Source: Dynamo docs, observability/metrics-catalog.

The frontend sees requests, not KV blocks (KV usage lives on the workers), so ``kv_usage`` is absent.
Token rates come from the ``_sum`` of the input/output sequence-length histograms.
"""

from mcp_autoscale.signals.dialects.spec import Dialect, gauge, latency, rate

DIALECTS = (
    Dialect(
        name="dynamo",
        engine="dynamo",
        markers=("dynamo_frontend_inflight_requests",),
        priority=60,
        signals={
            **latency(
                "dynamo_frontend_time_to_first_token_seconds", "dynamo_frontend_inter_token_latency_seconds"
            ),
            "queue_depth": gauge("dynamo_frontend_queued_requests"),
            "running": gauge("dynamo_frontend_inflight_requests"),
            "prompt_tps": rate("dynamo_frontend_input_sequence_tokens_sum"),
            "gen_tps": rate("dynamo_frontend_output_sequence_tokens_sum"),
            "request_rps": rate("dynamo_frontend_requests_total"),
        },
        notes="frontend only; KV usage is per worker",
        docs="https://docs.nvidia.com/dynamo/latest/reference/observability/metrics-catalog",
    ),
)
