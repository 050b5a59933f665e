"""``aibrix``: AIBrix's KPA (Knative-style pod autoscaler, its default strategy) on KV-cache usage.

Follows vllm-project/aibrix at e3e10f9e (2026-08-22), ``pkg/controller/podautoscaler/``:
- ``algorithm/kpa.go`` (``ComputeRecommendation``, ``shouldEnterPanicMode``, ``computeTargetReplicas``):
  panic mode when the panic-window value exceeds 2x the stable one (or the stable one is 0); a +/-10%
  dead band around the target (no change inside it); at most ceil(2 N) and at least floor(N / 2) per step;
  in panic mode the larger of the stable and panic counts, never below the most it ordered in panic;
- ``context/context.go`` (``NewBaseScalingContext``): max scale-up rate 2, max scale-down rate 2,
  tolerances 0.1, panic threshold 2.0, scale-up cooldown 0 s, scale-down cooldown 300 s;
- ``metrics/client.go``: stable window 180 s, panic window 60 s, each the mean of the recorded values;
- ``podautoscaler_controller.go``: resync every 10 s; ``stabilizeRecommendation`` over the cooldown
  windows (``Cooldown``);
- ``samples/autoscaling/kpa.yaml``: the metric, ``gpu_cache_usage_perc`` (KV-cache usage), target 0.5.

One departure, stated: AIBrix averages the pods' values before ``ceil(value / target)``
(``metrics/client.go`` ``UpdateMetrics``), which taken literally sizes a pool of any size to
ceil(mean usage / target) replicas. Like the Knative KPA it ports, ours sizes for the pool's total,
ceil(N x mean / target), and keeps the dead band on the per-pod mean. Left out: the activation scale and
scale to zero (off by default), several metric sources.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from mcp_autoscale.models import PoolRef
from mcp_autoscale.replay.peer import PeerStrategy
from mcp_autoscale.sim import Twin


@dataclass(frozen=True)
class KpaConfig:
    target: float = 0.5
    stable_window_s: float = 180.0
    panic_window_s: float = 60.0
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 2.0
    max_scale_down_rate: float = 2.0
    up_tolerance: float = 0.1
    down_tolerance: float = 0.1
    scale_down_cooldown_s: float = 300.0


@dataclass
class KpaState:
    in_panic: bool = False
    max_panic_pods: int = 0


def in_panic(stable: float, panic: float, threshold: float = 2.0) -> bool:
    """``shouldEnterPanicMode``: panic when the panic value exceeds ``threshold`` x the stable one."""
    if stable <= 0:
        return True
    return panic / stable > threshold


def _count(value: float, pods: int, cfg: KpaConfig) -> float:
    """Desired pods for a per-pod mean ``value``: ``pods`` inside the dead band, else ceil(total / target)."""
    if cfg.target * (1 - cfg.down_tolerance) <= value <= cfg.target * (1 + cfg.up_tolerance):
        return float(pods)
    return float(math.ceil(pods * value / cfg.target - 1e-9))


def kpa_target(stable: float, panic: float, pods: int, state: KpaState, cfg: KpaConfig | None = None) -> int:
    """``ComputeRecommendation`` + ``computeTargetReplicas``; updates ``state`` (panic mode, panic max)."""
    cfg = cfg or KpaConfig()
    state.in_panic = in_panic(stable, panic, cfg.panic_threshold)
    n = max(0, pods)
    max_up = max(1.0, math.ceil(cfg.max_scale_up_rate * n))
    max_down = math.floor(n / cfg.max_scale_down_rate)
    d_stable = int(min(max(_count(stable, n, cfg), max_down), max_up))
    d_panic = int(min(max(_count(panic, n, cfg), max_down), max_up))
    if not state.in_panic:
        return d_stable
    want = max(d_stable, d_panic)
    state.max_panic_pods = max(state.max_panic_pods, want)
    return state.max_panic_pods


@dataclass
class Cooldown:
    """``stabilizeRecommendation``, as written: each recommendation is kept; a scale-up takes the highest
    recommendation of the scale-up window (0 s by default: the current one), a scale-down the *lowest*
    of the 300 s scale-down window (its doc says "similar to K8s HPA", whose scale-down takes the highest:
    the code's choice makes the window hasten scale-downs rather than delay them; we keep the code's)."""

    down_s: float = 300.0
    up_s: float = 0.0
    _recs: deque[tuple[float, int]] = field(default_factory=deque)

    def apply(self, t_s: float, rec: int, current: int) -> int:
        self._recs.append((t_s, rec))
        while self._recs and self._recs[0][0] <= t_s - max(self.down_s, self.up_s):
            self._recs.popleft()
        if rec == current:
            return current
        up = rec > current
        window = self.up_s if up else self.down_s
        inside = [r for at, r in self._recs if at > t_s - window] or [rec]
        return max(inside) if up else min(inside)


class Aibrix(PeerStrategy):
    name = "aibrix"
    label = "AIBrix KPA (KV usage target 0.5; stable 180 s, panic 60 s)"
    period_s = 10.0
    scrape_s = 10.0

    def __init__(self, *, min_replicas: int = 2, max_replicas: int | None = None) -> None:
        super().__init__(min_replicas=min_replicas, max_replicas=max_replicas)
        self.cfg = KpaConfig()
        self.state = KpaState()
        self.cooldown = Cooldown(down_s=self.cfg.scale_down_cooldown_s)

    def on_setup(self, twin: Twin, ref: PoolRef) -> None:
        self.history_s = max(self.history_s, self.cfg.stable_window_s)

    def decide(self, twin: Twin, ref: PoolRef, t_s: float, current: int) -> int | None:
        stable_w = [s for s in self.window(t_s, self.cfg.stable_window_s) if s.ready]
        panic_w = [s for s in self.window(t_s, self.cfg.panic_window_s) if s.ready]
        if not stable_w or not panic_w:
            return None
        stable = sum(s.kv_usage for s in stable_w) / len(stable_w)
        panic = sum(s.kv_usage for s in panic_w) / len(panic_w)
        rec = kpa_target(stable, panic, current, self.state, self.cfg)
        return self.cooldown.apply(t_s, rec, current)
