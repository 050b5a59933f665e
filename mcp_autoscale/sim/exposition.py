"""Prometheus exposition of the twin's pods in vLLM V1 names, built with prometheus_client.

One ``Collector`` walks every Ready pod and yields metric families; ``generate_latest`` formats them, so
the text is exactly what a Prometheus scrape (or ``text_string_to_metric_families``) expects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from mcp_autoscale.sim.serving import Histogram, PodMetrics

LABELS = ["namespace", "pod", "model_name", "engine"]


@dataclass(frozen=True)
class PodView:
    """What the collector needs of one pod (read under the twin's lock)."""

    namespace: str
    pod: str
    model: str
    metrics: PodMetrics
    num_gpu_blocks: int
    block_size: int


PodSource = Callable[[], Iterable["PodView"]]


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    cum = 0
    for bound, c in zip(h.bounds, h.counts, strict=False):
        cum += c
        out.append((repr(float(bound)), float(cum)))
    out.append(("+Inf", float(h.count)))
    return out


class VllmCollector(Collector):
    """Yields vLLM V1 metric families for the pods returned by ``pods()``."""

    def __init__(self, pods: PodSource) -> None:
        self._pods = pods

    def collect(self) -> Iterator[Metric]:
        pods = list(self._pods())
        waiting = GaugeMetricFamily(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels=LABELS
        )
        running = GaugeMetricFamily(
            "vllm:num_requests_running", "Number of requests in model execution batches.", labels=LABELS
        )
        kv = GaugeMetricFamily(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels=LABELS
        )
        prompt = CounterMetricFamily(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", labels=LABELS
        )
        gen = CounterMetricFamily(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels=LABELS
        )
        pre = CounterMetricFamily(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine.", labels=LABELS
        )
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*LABELS, "finished_reason"],
        )
        ttft = HistogramMetricFamily(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", labels=LABELS
        )
        itl = HistogramMetricFamily(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", labels=LABELS
        )
        e2e = HistogramMetricFamily(
            "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", labels=LABELS
        )
        info = InfoMetricFamily(
            "vllm:cache_config", "Information of the LLMEngine CacheConfig", labels=LABELS
        )
        for p in pods:
            lv = [p.namespace, p.pod, p.model, "0"]
            m = p.metrics
            waiting.add_metric(lv, float(m.waiting))
            running.add_metric(lv, float(m.running))
            kv.add_metric(lv, m.kv_usage)
            prompt.add_metric(lv, float(m.prompt_tokens))
            gen.add_metric(lv, float(m.gen_tokens))
            pre.add_metric(lv, float(m.preemptions))
            success.add_metric([*lv, "stop"], float(m.success))
            ttft.add_metric(lv, _buckets(m.ttft), m.ttft.total)
            itl.add_metric(lv, _buckets(m.itl), m.itl.total)
            e2e.add_metric(lv, _buckets(m.e2e), m.e2e.total)
            info.add_metric(
                lv,
                {
                    "block_size": str(p.block_size),
                    "num_gpu_blocks": str(p.num_gpu_blocks),
                    "gpu_memory_utilization": "0.9",
                    "cache_dtype": "auto",
                    "enable_prefix_caching": "True",
                },
            )
        yield from (waiting, running, kv, prompt, gen, pre, success, ttft, itl, e2e, info)


def make_registry(pods: PodSource) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(VllmCollector(pods))
    return reg
