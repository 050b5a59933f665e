"""The twin's calibrated numbers, loaded from package data (``mcp_autoscale/data/calibration.json``).

The JSON is produced by ``scripts/calibrate_twin.py`` and every number in it names its source; this module
only turns it into small typed records the model can use without dictionary look-ups in the hot loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from mcp_autoscale.errors import ConfigError


@dataclass(frozen=True)
class Triangular:
    """A (min, mode, max) duration in seconds, sampled with ``random.triangular``."""

    low: float
    mode: float
    high: float


@dataclass(frozen=True)
class ServingProfile:
    """One replica of one model on one GPU shape (per-replica numbers)."""

    key: str
    model: str
    gpu: str
    gpus: int
    itl_base_s: float
    itl_per_seq_s: float
    prefill_tps: float
    ttft_overhead_s: float
    kv_tokens: int
    kv_bytes_per_token: int
    kv_read_bw: float
    """Effective bytes/s the replica reads KV at (η x bandwidth x GPUs): the ITL slope in KV tokens."""
    params_b: float


@dataclass(frozen=True)
class WorkloadShape:
    """Token-size and burstiness statistics of a traffic class (Azure LLM trace fits)."""

    name: str
    ctx_mu: float
    ctx_sigma: float
    gen_mu: float
    gen_sigma: float
    ctx_max: int
    gen_max: int
    peak_to_trough: float
    burst_per_hour: float
    burst_factor: float
    burst_duration_s: float


@dataclass(frozen=True)
class Calibration:
    profiles: dict[str, ServingProfile]
    workloads: dict[str, WorkloadShape]
    cold_start: dict[str, Triangular]
    max_num_seqs: int
    max_prefill_share: float
    kv_watermark: float
    kv_transfer_s_per_token: float
    block_size: int
    gpu_cost_per_hour: dict[str, float]
    raw: dict[str, Any]


def _v(entry: dict[str, Any]) -> Any:
    return entry["value"]


def parse_calibration(raw: dict[str, Any]) -> Calibration:
    """Build typed records from the JSON document; a missing field is a ConfigError naming it."""
    try:
        eta = float(_v(raw["serving"]["kv_read_efficiency"]))
        profiles: dict[str, ServingProfile] = {}
        for key, p in raw["profiles"].items():
            gpu = raw["gpus"][p["gpu"]]
            model = raw["models"][p["model"]]
            profiles[key] = ServingProfile(
                key=key,
                model=p["model"],
                gpu=p["gpu"],
                gpus=int(p["gpus"]),
                itl_base_s=float(_v(p["itl_base_s"])),
                itl_per_seq_s=float(_v(p["itl_per_seq_s"])),
                prefill_tps=float(_v(p["prefill_tps"])),
                ttft_overhead_s=float(_v(p["ttft_overhead_s"])),
                kv_tokens=int(_v(p["kv_tokens"])),
                kv_bytes_per_token=int(_v(model["kv_bytes_per_token"])),
                kv_read_bw=eta * float(_v(gpu["bandwidth_gbs"])) * 1e9 * int(p["gpus"]),
                params_b=float(_v(model["params_b"])),
            )
        workloads = {
            name: WorkloadShape(
                name=name,
                ctx_mu=float(_v(w["ctx_mu"])),
                ctx_sigma=float(_v(w["ctx_sigma"])),
                gen_mu=float(_v(w["gen_mu"])),
                gen_sigma=float(_v(w["gen_sigma"])),
                ctx_max=int(_v(w["ctx_max"])),
                gen_max=int(_v(w["gen_max"])),
                peak_to_trough=float(_v(w["peak_to_trough"])),
                burst_per_hour=float(_v(w["burst_per_hour"])),
                burst_factor=float(_v(w["burst_factor"])),
                burst_duration_s=float(_v(w["burst_duration_s"])),
            )
            for name, w in raw["workloads"].items()
        }
        cold = {
            name: Triangular(float(c["min"]), float(c["mode"]), float(c["max"]))
            for name, c in raw["cold_start"].items()
        }
        s = raw["serving"]
        costs = {
            name: float(_v(g["cost_per_hour_usd"]))
            for name, g in raw["gpus"].items()
            if "cost_per_hour_usd" in g
        }
        return Calibration(
            profiles=profiles,
            workloads=workloads,
            cold_start=cold,
            max_num_seqs=int(_v(s["max_num_seqs"])),
            max_prefill_share=float(_v(s["max_prefill_share"])),
            kv_watermark=float(_v(s["kv_admission_watermark"])),
            kv_transfer_s_per_token=float(_v(s["kv_transfer_s_per_token"])),
            block_size=int(_v(s["block_size"])),
            gpu_cost_per_hour=costs,
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"calibration.json: missing or invalid field {exc!s}") from exc


@lru_cache(maxsize=1)
def load_calibration() -> Calibration:
    """The packaged calibration (read once per process)."""
    text = resources.files("mcp_autoscale").joinpath("data", "calibration.json").read_text(encoding="utf-8")
    return parse_calibration(json.loads(text))
