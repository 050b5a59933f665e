"""Our capacity model against llm-d-planner 0.3.3 (test-only dependency) on the same inputs.

Both sides read llm-d-planner's bundled BLIS benchmark database (model x GPU x GPU count x requests/s ->
TTFT/ITL p90). llm-d-planner sizes with ``ceil(QPS x 1.2 / QPS_max)`` where QPS_max is the highest benchmarked
load meeting the SLO (``ConfigFinder.plan_all_capacities``, which runs offline on its in-memory SQLite repo).
We turn the same benchmark rows into history samples, learn per-replica token capacity from them
(``learn_capacity``) and size with ``N = max(ceil(R_in / (C_in U)), ceil(R_out / (C_out U)), floor)``.
With U = 1/1.2 the two must agree exactly; at our default U = 0.75 we must never be below llm-d and at most
25% above it. The BLIS points stop well before saturation, so both capacities are lower bounds; our roofline
prior must lie above them.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

import pytest
from planner.knowledge_base.benchmarks import BenchmarkRepository
from planner.recommendation.config_finder import ConfigFinder
from planner.shared.schemas import DeploymentIntent, SLOTargets, TrafficProfile

from mcp_autoscale.cost import load_catalogue
from mcp_autoscale.models import SloTargets
from mcp_autoscale.planner import (
    PlannerConfig,
    PoolSample,
    estimate_capacity,
    learn_capacity,
    replicas_needed,
)

PROMPT, OUTPUT = 512, 256
SLO = SloTargets(ttft_p90_s=2.0, itl_p90_s=0.1)
CASES = [
    ("meta-llama/Llama-3.1-8B-Instruct", "H100", 1),
    ("Qwen/Qwen2.5-7B-Instruct", "H100", 1),
    ("Qwen/Qwen2.5-7B-Instruct", "A100-80", 1),
    ("meta-llama/Llama-3.3-70B-Instruct", "H100", 4),
]
QPS = [0.5, 2.0, 7.0, 10.0, 25.0, 60.0]


@pytest.fixture(scope="module")
def blis() -> list[dict[str, Any]]:
    path = resources.files("planner").joinpath("data", "performance", "benchmarks_BLIS.json")
    rows: list[dict[str, Any]] = json.loads(path.read_text())["benchmarks"]
    return rows


@pytest.fixture(scope="module")
def finder(blis: list[dict[str, Any]]) -> ConfigFinder:
    logging.getLogger("planner").setLevel(logging.ERROR)
    repo = BenchmarkRepository(db_path=":memory:")
    repo.load_benchmarks(blis, source="BLIS", confidence_level="estimated")
    return ConfigFinder(benchmark_repo=repo)


def _llmd_replicas(finder: ConfigFinder, model: str, gpu: str, gpus: int, qps: float) -> int:
    recs, _ = finder.plan_all_capacities(
        TrafficProfile(prompt_tokens=PROMPT, output_tokens=OUTPUT, expected_qps=qps),
        SLOTargets(ttft_target_ms=2000, itl_target_ms=100, e2e_target_ms=120_000, percentile="p90"),
        DeploymentIntent(use_case="chatbot_conversational", user_count=1000, preferred_gpu_types=[gpu]),
        preferred_models=[model],
    )
    (rec,) = [r for r in recs if r.gpu_config.gpu_type == gpu and r.gpu_config.gpu_count == gpus]
    return int(rec.gpu_config.replicas)


def _history(blis: list[dict[str, Any]], model: str, gpu: str, gpus: int) -> list[PoolSample]:
    rows = [
        r
        for r in blis
        if r["model_hf_repo"] == model.lower()
        and r["hardware"] == gpu
        and r["hardware_count"] == gpus
        and r["prompt_tokens"] == PROMPT
        and r["output_tokens"] == OUTPUT
    ]
    assert len(rows) >= 5, f"no BLIS sweep for {model} on {gpus}x{gpu}"
    return [
        PoolSample(
            t_s=float(i),
            ready_replicas=1,
            prompt_tps=r["requests_per_second"] * PROMPT,
            gen_tps=r["requests_per_second"] * OUTPUT,
            ttft_p90_s=r["ttft_p90"] / 1000,
            itl_p90_s=r["itl_p90"] / 1000,
        )
        for i, r in enumerate(rows)
    ]


@pytest.mark.parametrize(("model", "gpu", "gpus"), CASES)
def test_sizing_agrees_with_llmd_planner(
    finder: ConfigFinder, blis: list[dict[str, Any]], model: str, gpu: str, gpus: int
) -> None:
    c_in, c_out, _ = learn_capacity(_history(blis, model, gpu, gpus), SLO, PlannerConfig(slo=SLO))
    assert c_in is not None and c_out is not None
    for qps in QPS:
        theirs = _llmd_replicas(finder, model, gpu, gpus, qps)
        r_in, r_out = qps * PROMPT, qps * OUTPUT
        same_u = replicas_needed(r_in, r_out, c_in, c_out, 1 / 1.2, 1)
        ours = replicas_needed(r_in, r_out, c_in, c_out, 0.75, 1)
        assert same_u == theirs, (model, gpu, qps)
        assert theirs <= ours <= max(theirs + 1, 1.25 * theirs), (model, gpu, qps, ours, theirs)


@pytest.mark.parametrize(("model", "gpu", "gpus"), CASES)
def test_roofline_prior_is_above_the_benchmarked_lower_bound(
    blis: list[dict[str, Any]], model: str, gpu: str, gpus: int
) -> None:
    c_in, c_out, _ = learn_capacity(_history(blis, model, gpu, gpus), SLO, PlannerConfig(slo=SLO))
    spec = load_catalogue().gpu(gpu)
    assert spec is not None and c_in is not None and c_out is not None
    e_in, e_out, _ = estimate_capacity(model, spec, gpus, SLO, PlannerConfig(slo=SLO))
    assert e_in is not None and e_out is not None
    assert e_in >= c_in and e_out >= c_out
