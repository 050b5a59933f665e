"""Derive the digital twin's calibration (mcp_autoscale/data/calibration.json) from sourced figures.

Run: ``python scripts/calibrate_twin.py`` (needs the ``llm-d-planner`` test extra for its benchmark data).
Every number written carries a ``source``: a file + field of llm-d-planner 0.3.3's data, or a section of
CALIBRATION.md (the team's compiled public figures). The twin only reads the JSON at runtime, so
llm-d-planner never becomes a runtime dependency.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "mcp_autoscale" / "data" / "calibration.json"
BLIS = "llm-d-planner 0.3.3 planner/data/performance/benchmarks_BLIS.json"
CATALOG = "llm-d-planner 0.3.3 planner/data/configuration/gpu_catalog.json"
MEMCONST = "llm-d-planner 0.3.3 planner/data/configuration/vllm_memory_constants.json"
GIB = 1024**3


def num(value: float, source: str, unit: str = "") -> dict[str, Any]:
    """One calibrated number with where it came from."""
    out: dict[str, Any] = {"value": round(value, 6) if isinstance(value, float) else value, "source": source}
    if unit:
        out["unit"] = unit
    return out


def load_planner_json(*parts: str) -> Any:
    base = resources.files("planner").joinpath("data")
    for p in parts:
        base = base.joinpath(p)
    return json.loads(base.read_text())


def blis_points(
    bench: list[dict[str, Any]], model: str, hw: str, count: int, prompt: int
) -> list[dict[str, Any]]:
    pts = [
        b
        for b in bench
        if b["model_hf_repo"] == model
        and b["hardware"] == hw
        and b["hardware_count"] == count
        and b["prompt_tokens"] == prompt
    ]
    if not pts:
        raise SystemExit(f"no BLIS points for {model} {hw}x{count} prompt {prompt}")
    return sorted(pts, key=lambda b: b["requests_per_second"])


def main() -> None:
    bench = load_planner_json("performance", "benchmarks_BLIS.json")["benchmarks"]
    catalog = {g["gpu_type"]: g for g in load_planner_json("configuration", "gpu_catalog.json")["gpu_types"]}
    memc = load_planner_json("configuration", "vllm_memory_constants.json")

    gpus: dict[str, dict[str, Any]] = {
        "L4": {"mem_gb": 24, "bw_gbs": 300, "bf16_tflops": 121, "fp8_tflops": 242},
        "A10G": {"mem_gb": 24, "bw_gbs": 600, "bf16_tflops": 70, "fp8_tflops": None},
        "H100": {"mem_gb": 80, "bw_gbs": 3350, "bf16_tflops": 989, "fp8_tflops": 1979},
        "L40S": {"mem_gb": 48, "bw_gbs": 864, "bf16_tflops": 362, "fp8_tflops": 733},
    }
    gpu_out: dict[str, Any] = {}
    for name, g in gpus.items():
        entry = {
            "memory_gb": num(g["mem_gb"], f"CALIBRATION.md §4 GPU constants ({name}); {CATALOG} memory_gb"),
            "bandwidth_gbs": num(g["bw_gbs"], f"CALIBRATION.md §4 GPU constants ({name})"),
            "bf16_tflops": num(g["bf16_tflops"], f"CALIBRATION.md §4 GPU constants ({name})"),
        }
        if g["fp8_tflops"]:
            entry["fp8_tflops"] = num(g["fp8_tflops"], f"CALIBRATION.md §4 GPU constants ({name})")
        if name in catalog:
            entry["cost_per_hour_usd"] = num(
                catalog[name]["cost_per_hour_aws"], f"{CATALOG} cost_per_hour_aws"
            )
        gpu_out[name] = entry

    eta = 0.75  # CALIBRATION.md §4: η ≈ 0.7–0.8 (A100-40 measured 0.77)
    mfu = 0.5  # CALIBRATION.md §4: prefill MFU 0.4–0.6
    util = 0.9  # vLLM gpu_memory_utilization default

    models: dict[str, dict[str, Any]] = {
        "meta-llama/Llama-3.1-8B-Instruct": {
            "params_b": 8.03,
            "kv_bytes": 32 * 8 * 128 * 2 * 2,
            "arch": "LlamaForCausalLM",
            "kv_src": "CALIBRATION.md §1c: 32 layers x 8 KV heads x 128 dims x 2 x 2 B = 128 KiB/token",
        },
        "meta-llama/Llama-3.3-70B-Instruct": {
            "params_b": 70.6,
            "kv_bytes": 80 * 8 * 128 * 2 * 2,
            "arch": "LlamaForCausalLM",
            "kv_src": "CALIBRATION.md §1c: 80 layers x 8 KV heads x 128 x 2 x 2 B = 320 KiB/token",
        },
        "Qwen/Qwen2.5-7B-Instruct": {
            "params_b": 7.62,
            "kv_bytes": 28 * 4 * 128 * 2 * 2,
            "arch": "Qwen2ForCausalLM",
            "kv_src": "HF config Qwen2.5-7B-Instruct: 28 layers x 4 KV heads x 128 x 2 x 2 B = 56 KiB/token",
        },
        "ibm-granite/granite-3.1-8b-instruct": {
            "params_b": 8.17,
            "kv_bytes": 40 * 8 * 128 * 2 * 2,
            "arch": "GraniteForCausalLM",
            "kv_src": "HF config granite-3.1-8b: 40 layers x 8 KV heads x 128 x 2 x 2 B = 160 KiB/token",
        },
    }
    model_out = {
        m: {
            "params_b": num(v["params_b"], "HF model card parameter count"),
            "kv_bytes_per_token": num(v["kv_bytes"], v["kv_src"], "B"),
        }
        for m, v in models.items()
    }

    def kv_tokens(model: str, gpu: str, n: int, weight_bytes_per_param: float) -> tuple[float, str]:
        """KV pool = util x memory - weights - activation peak - non-torch overhead (vLLM's accounting)."""
        m = models[model]
        act_gib = memc["activation_profiles"][m["arch"]]
        overhead_gib = memc["non_torch_overhead_gib"]["tp1_pp1" if n == 1 else "tpN_pp1"]
        free = util * gpus[gpu]["mem_gb"] * 1e9 * n - m["params_b"] * 1e9 * weight_bytes_per_param
        free -= (act_gib + overhead_gib) * GIB * n
        tokens = free / m["kv_bytes"]
        src = (
            f"[E] {util} x {gpus[gpu]['mem_gb']} GB x {n} - weights ({m['params_b']}B x "
            f"{weight_bytes_per_param} B)"
            f" - activation {act_gib} GiB/GPU ({MEMCONST} activation_profiles.{m['arch']})"
            f" - overhead {overhead_gib} GiB/GPU (non_torch_overhead_gib); / kv_bytes_per_token;"
            " cross-check CALIBRATION.md §1c KV pool table"
        )
        return tokens, src

    def roofline_itl(model: str, gpu: str, n: int, weight_bytes_per_param: float) -> tuple[float, str]:
        m = models[model]
        t = m["params_b"] * 1e9 * weight_bytes_per_param / (eta * gpus[gpu]["bw_gbs"] * 1e9 * n) + 0.0005
        src = (
            f"[E] CALIBRATION.md §4 decode step: c0 0.5 ms + weights / (η {eta} x "
            f"{gpus[gpu]['bw_gbs']} GB/s x {n})"
        )
        return t, src

    def per_seq(model: str, gpu: str, n: int, fp8: bool) -> tuple[float, str]:
        flops = (gpus[gpu]["fp8_tflops"] if fp8 else gpus[gpu]["bf16_tflops"]) * 1e12 * n
        t = 2 * models[model]["params_b"] * 1e9 / (mfu * flops)
        src = (
            f"[E] CALIBRATION.md §4 decode compute term 2·P/(MFU {mfu} x "
            f"{'FP8' if fp8 else 'BF16'} FLOPs) per sequence"
        )
        return t, src

    profiles: dict[str, Any] = {}

    def blis_profile(
        key: str, model: str, blis_model: str, gpu: str, n: int, *, prefill_from: tuple[int, int] | None
    ) -> None:
        lo = blis_points(bench, blis_model, gpu, n, 512)[0]
        itl = lo["itl_mean"] / 1000
        itl_src = f"{BLIS} itl_mean, {blis_model} {gpu}x{n} 512/256 at {lo['requests_per_second']:.1f} req/s"
        if prefill_from is None:
            a = blis_points(bench, blis_model, gpu, n, 512)[0]
            b = blis_points(bench, blis_model, gpu, n, 4096)[0]
            slope = (b["ttft_mean"] - a["ttft_mean"]) / 1000 / (4096 - 512)
            rate = 1 / slope
            rate_src = f"{BLIS} ttft_mean slope between 512- and 4096-token prompts, {blis_model} {gpu}x{n}"
        else:
            src_n, scale_to = prefill_from
            a = blis_points(bench, blis_model, gpu, src_n, 512)[0]
            b = blis_points(bench, blis_model, gpu, src_n, 4096)[0]
            slope = (b["ttft_mean"] - a["ttft_mean"]) / 1000 / (4096 - 512)
            rate = (1 / slope) * scale_to / src_n
            rate_src = (
                f"{BLIS} ttft_mean slope 512->4096 tokens, {blis_model} {gpu}x{src_n}, scaled "
                f"x{scale_to}/{src_n} "
                "for the GPU count [E]; within CALIBRATION.md §4 range (TP4 H100 11-17k tok/s)"
            )
        ttft0 = lo["ttft_mean"] / 1000 - 512 / rate
        kv, kv_src = kv_tokens(model, gpu, n, 2.0)
        ps, ps_src = per_seq(model, gpu, n, False)
        profiles[key] = {
            "model": model,
            "gpu": gpu,
            "gpus": n,
            "weights": "bf16",
            "itl_base_s": num(itl, itl_src, "s"),
            "itl_per_seq_s": num(ps, ps_src, "s"),
            "prefill_tps": num(rate, rate_src, "tokens/s"),
            "ttft_overhead_s": num(
                max(ttft0, 0.005), f"{BLIS} ttft_mean at 512 tokens minus 512/prefill_tps", "s"
            ),
            "kv_tokens": num(math.floor(kv), kv_src, "tokens"),
        }

    def roofline_profile(
        key: str, model: str, gpu: str, n: int, fp8: bool, prefill_range: tuple[float, float]
    ) -> None:
        wb = 1.0 if fp8 else 2.0
        itl, itl_src = roofline_itl(model, gpu, n, wb)
        kv, kv_src = kv_tokens(model, gpu, n, wb)
        ps, ps_src = per_seq(model, gpu, n, fp8)
        flops = (gpus[gpu]["fp8_tflops"] if fp8 else gpus[gpu]["bf16_tflops"]) * 1e12 * n
        rate = mfu * flops / (2 * models[model]["params_b"] * 1e9)
        rate_src = (
            f"[E] CALIBRATION.md §4 prefill rate MFU {mfu} x {'FP8' if fp8 else 'BF16'} FLOPs / (2·P);"
            f" §4 quotes {prefill_range[0]:.0f}-{prefill_range[1]:.0f} tok/s for {gpu} BF16"
        )
        profiles[key] = {
            "model": model,
            "gpu": gpu,
            "gpus": n,
            "weights": "fp8" if fp8 else "bf16",
            "itl_base_s": num(itl, itl_src, "s"),
            "itl_per_seq_s": num(ps, ps_src, "s"),
            "prefill_tps": num(rate, rate_src, "tokens/s"),
            "ttft_overhead_s": num(itl, "[E] one decode step (the first token) on top of prefill", "s"),
            "kv_tokens": num(math.floor(kv), kv_src, "tokens"),
        }

    roofline_profile("llama-3.1-8b/L4x1", "meta-llama/Llama-3.1-8B-Instruct", "L4", 1, True, (3000, 4500))
    profiles["llama-3.1-8b/L4x1"]["note"] = (
        "Served with vLLM --quantization fp8 (dynamic): BF16 weights on an L4 break a 50-100 ms ITL "
        "SLO at B=1 "
        "(CALIBRATION.md §1c), so the realistic L4 deployment quantises."
    )
    blis_profile(
        "llama-3.3-70b/H100x4",
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/llama-3.3-70b-instruct",
        "H100",
        4,
        prefill_from=(8, 4),
    )
    blis_profile(
        "qwen2.5-7b/H100x1",
        "Qwen/Qwen2.5-7B-Instruct",
        "qwen/qwen2.5-7b-instruct",
        "H100",
        1,
        prefill_from=None,
    )
    roofline_profile(
        "llama-3.1-8b/L40Sx1", "meta-llama/Llama-3.1-8B-Instruct", "L40S", 1, False, (6000, 9000)
    )
    profiles["llama-3.1-8b/L40Sx1"]["note"] = (
        "Roofline only (no published BLIS point for the L40S); the fleet-1000 scenario's fourth GPU type."
    )
    roofline_profile(
        "granite-3.1-8b/A10Gx1", "ibm-granite/granite-3.1-8b-instruct", "A10G", 1, False, (2000, 3000)
    )

    common = {
        "kv_read_efficiency": num(
            eta, "CALIBRATION.md §4: η ≈ 0.7-0.8 (A100-40 measured 0.77, johnmusgrave)"
        ),
        "max_num_seqs": num(
            256, "vLLM engine default max_num_seqs (EngineArgs) [E: V1 raises it on big GPUs]"
        ),
        "max_prefill_share": num(
            0.7,
            "[E] chunked prefill: decode tokens are scheduled first, prefill fills the rest of the budget",
        ),
        "kv_admission_watermark": num(
            0.0, "[E] vLLM V1 scheduler admits while free blocks cover the prompt (V0's 1% watermark is gone)"
        ),
        "kv_transfer_s_per_token": num(
            2e-6,
            "[E] P/D KV transfer: 320 KiB/token over ~200 GB/s NVLink/RDMA class links (llm-d "
            "NIXL); ~0.3 ms/1k tok",
        ),
        "block_size": num(16, "vLLM default block_size (vllm:cache_config_info)"),
    }

    cold = {
        "node_provision_s": {
            "min": 90,
            "mode": 180,
            "max": 600,
            "source": "CALIBRATION.md §2 twin defaults: GPU node provision (Karpenter, drivers in AMI)",
        },
        "image_pull_cold_s": {
            "min": 30,
            "mode": 90,
            "max": 300,
            "source": "CALIBRATION.md §2 suggested twin defaults: image pull, cold node",
        },
        "image_pull_cached_s": {
            "min": 0,
            "mode": 2,
            "max": 5,
            "source": "CALIBRATION.md §2: image pull, cached ≈0 s",
        },
        "weights_8b_s": {
            "min": 8,
            "mode": 15,
            "max": 45,
            "source": "CALIBRATION.md §2: 8B weights, local NVMe",
        },
        "weights_70b_s": {
            "min": 30,
            "mode": 60,
            "max": 90,
            "source": "CALIBRATION.md §2: 70B weights, NVMe 30-90 s (mode = midpoint [E])",
        },
        "warmup_s": {
            "min": 20,
            "mode": 40,
            "max": 60,
            "source": "CALIBRATION.md §2: engine warm-up (CUDA graphs, torch.compile) 20-60 s (mode [E])",
        },
    }

    workloads = {
        "conversation": {
            "ctx_mu": num(
                6.63, "CALIBRATION.md §3a Azure 2023 conversation: lognormal fit of ln(ContextTokens)"
            ),
            "ctx_sigma": num(0.99, "CALIBRATION.md §3a Azure 2023 conversation: lognormal fit"),
            "gen_mu": num(
                5.02, "CALIBRATION.md §3a Azure 2023 conversation: lognormal fit of ln(GeneratedTokens)"
            ),
            "gen_sigma": num(0.86, "CALIBRATION.md §3a Azure 2023 conversation: lognormal fit"),
            "ctx_max": num(14050, "CALIBRATION.md §3a Azure 2023 conversation: ContextTokens max"),
            "gen_max": num(2048, "[E] generation cap (conversation p99 601)"),
            "peak_to_trough": num(
                2.5, "CALIBRATION.md §3b Azure 2024 conversation daily peak:trough ≈ 2.5x [P]"
            ),
            "burst_per_hour": num(0.5, "[E] CALIBRATION.md §3a: per-minute peak/mean 1.5x; modest bursts"),
            "burst_factor": num(1.5, "CALIBRATION.md §3a conversation per-minute peak/mean 1.5x"),
            "burst_duration_s": num(
                120, "[E] burst length, minutes scale (CALIBRATION.md §3a per-minute counts)"
            ),
        },
        "code": {
            "ctx_mu": num(7.00, "CALIBRATION.md §3a Azure 2023 code: lognormal fit of ln(ContextTokens)"),
            "ctx_sigma": num(1.36, "CALIBRATION.md §3a Azure 2023 code: lognormal fit (bimodal, poor fit)"),
            "gen_mu": num(2.79, "CALIBRATION.md §3a Azure 2023 code: lognormal fit of ln(GeneratedTokens)"),
            "gen_sigma": num(0.85, "CALIBRATION.md §3a Azure 2023 code: lognormal fit"),
            "ctx_max": num(7437, "CALIBRATION.md §3a Azure 2023 code: ContextTokens max"),
            "gen_max": num(1024, "[E] generation cap (code p99 252)"),
            "peak_to_trough": num(10.0, "CALIBRATION.md §3b Azure 2024 code weekday peak:trough ≈ 10x [P]"),
            "burst_per_hour": num(2.0, "[E] CALIBRATION.md §3a code inter-arrival CV 13.2 (very bursty)"),
            "burst_factor": num(4.2, "CALIBRATION.md §3a code per-minute peak/mean 4.2x"),
            "burst_duration_s": num(60, "[E] burst length (CALIBRATION.md §3a per-minute counts)"),
        },
    }

    out = {
        "version": 1,
        "generated_by": "scripts/calibrate_twin.py",
        "sources": {
            "BLIS": BLIS,
            "gpu_catalog": CATALOG,
            "vllm_memory_constants": MEMCONST,
            "CALIBRATION.md": "/work/shared/CALIBRATION.md (team compilation of public figures, 2026-11-23)",
        },
        "gpus": gpu_out,
        "models": model_out,
        "profiles": profiles,
        "serving": common,
        "cold_start": cold,
        "workloads": workloads,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    for key, p in profiles.items():
        print(
            f"{key:24s} itl_base {p['itl_base_s']['value'] * 1000:6.1f} ms  per_seq "
            f"{p['itl_per_seq_s']['value'] * 1000:.3f} ms"
            f"  prefill {p['prefill_tps']['value']:8.0f} tok/s  kv {p['kv_tokens']['value']:8d} tok"
        )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
