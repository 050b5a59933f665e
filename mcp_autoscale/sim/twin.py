"""The embedded digital twin: a simulated Kubernetes fleet serving LLMs, stepped in simulated time.

``Twin`` owns the state; ``SimClusterBackend`` and ``SimSignalSource`` are its views through the project's
``ClusterBackend`` / ``SignalSource`` protocols, and ``exposition()`` renders the pods' vLLM metrics.
Everything is deterministic for a given scenario and seed; with ``clock="wall"`` the twin catches up to
wall time (x ``speed``) whenever it is read. One re-entrant lock guards all state, so the MCP server and a
metrics HTTP server can read it from different threads.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
from prometheus_client import generate_latest

from mcp_autoscale.errors import InvalidInput, NotFound
from mcp_autoscale.models import SIGNAL_NAMES, AutoscalerPatch, PoolRef, PoolSignals
from mcp_autoscale.sim.backend import SimClusterBackend, SimSignalSource
from mcp_autoscale.sim.calibration import Calibration, load_calibration
from mcp_autoscale.sim.cluster import (
    AutoscalerState,
    Deployment,
    NodePool,
    Pod,
    consolidate,
    place,
    place_balloons,
    provision,
    tri,
)
from mcp_autoscale.sim.exposition import PodView, make_registry
from mcp_autoscale.sim.scenarios import SCENARIOS, PoolSpec, Scenario
from mcp_autoscale.sim.serving import SIGNAL_WINDOW_S, ArrivalFn, ServingPool

DEFAULT_DATE = datetime(2026, 11, 24, tzinfo=UTC)
"""Scenarios start on this (fixed) day unless ``start`` is given, so runs never depend on the wall clock."""


@dataclass(frozen=True, slots=True)
class PoolStep:
    """One pool after one tick (what an evaluator needs for SLO attainment and GPU-hours)."""

    desired: int
    ready: int
    starting: int
    pending: int
    queue: int
    running: int
    kv_usage: float
    itl_s: float | None
    ttft_p90_s: float | None
    ttft_samples: tuple[float, ...]
    finished: int
    preemptions: int
    gpus: int
    """GPUs held by this pool's scheduled pods (starting + ready)."""


@dataclass(frozen=True, slots=True)
class TwinStep:
    t_s: float
    """Simulated seconds since the twin's hand-over time (``Twin.start``); negative during pre-roll."""
    at: datetime
    dt: float
    pools: dict[str, PoolStep]
    node_gpus: dict[str, int]
    """GPUs in launched nodes per node pool (what the cloud bills, idle or not)."""


StepHook = Callable[[TwinStep], None]


def _quantile(sorted_vals: list[float], q: float) -> float:
    """Linear-interpolated empirical quantile (numpy's default method)."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _weighted_quantile(pairs: list[tuple[float, int]], q: float) -> float:
    pairs = sorted(pairs)
    total = sum(w for _, w in pairs)
    target = q * total
    acc = 0
    for v, w in pairs:
        acc += w
        if acc >= target:
            return v
    return pairs[-1][0]


class _Pool:
    """A pool: its spec, its Deployment (cluster side) and its serving model."""

    def __init__(self, spec: PoolSpec, dep: Deployment, serving: ServingPool, cold_start_s: float) -> None:
        self.spec = spec
        self.dep = dep
        self.serving = serving
        self.cold_start_s = cold_start_s
        self.last_ttft_sorted: list[float] = []


class Twin:
    """A deterministic simulated fleet. See docs/simulator.md."""

    def __init__(
        self,
        scenario: str | Scenario = "default",
        seed: int = 7,
        *,
        start: datetime | None = None,
        clock: Literal["manual", "wall"] = "manual",
        speed: float = 1.0,
        tick_s: float | None = None,
    ) -> None:
        if isinstance(scenario, str) and scenario not in SCENARIOS:
            raise InvalidInput(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
        sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario  # or a generated fleet's
        if tick_s is None:
            tick_s = sc.tick_s
        if not 0.1 <= tick_s <= 60.0:
            raise InvalidInput(f"tick_s must be within 0.1-60 s, got {tick_s}")
        if speed <= 0:
            raise InvalidInput(f"speed must be > 0, got {speed}")
        self._lock = threading.RLock()
        self.scenario: Scenario = sc
        self.seed = seed
        self.tick_s = float(tick_s)
        self.clock = clock
        self.speed = speed
        self.cal: Calibration = load_calibration()
        sc = self.scenario
        self.start = (start or DEFAULT_DATE + timedelta(hours=sc.start_hour)).astimezone(UTC)
        self._origin = self.start - timedelta(seconds=sc.preroll_s)
        self._t = 0.0  # sim seconds since origin
        self._carry = 0.0
        self._crng = random.Random(f"twin-cluster-{seed}")
        self._node_pools: dict[str, NodePool] = {}
        self._pools: dict[str, _Pool] = {}
        self._hooks: list[StepHook] = []
        self.events: list[dict[str, str]] = []
        self.metrics_urls: list[str] = []
        """``/metrics`` URLs of running ``serve_metrics`` servers (every pool's pods are in each)."""
        self._load_steps = sorted(
            ((sc.preroll_s + s.at_s, s.pool.key, s.factor) for s in sc.load_steps), key=lambda x: x[0]
        )
        self._build()
        self.backend = SimClusterBackend(self)
        self.signals = SimSignalSource(self)
        self._registry = make_registry(self._pod_views)
        self._run_until(sc.preroll_s)
        self._wall0 = time.monotonic()
        self._sim0 = self._t

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        cal = self.cal
        for np_spec in self.scenario.node_pools:
            self._node_pools[np_spec.name] = NodePool(
                name=np_spec.name,
                gpu_type=np_spec.gpu_type,
                instance_type=np_spec.instance_type,
                capacity_type=np_spec.capacity_type,
                gpus_per_node=np_spec.gpus_per_node,
                gpu_limit=np_spec.gpu_limit,
                provision=cal.cold_start["node_provision_s"],
            )
            for _ in range(np_spec.nodes):
                self._node_pools[np_spec.name].new_node(0.0, -1.0)
        for i, spec in enumerate(self.scenario.pools):
            prof = cal.profiles[spec.profile]
            rng = np.random.default_rng([self.seed, i])
            serving = ServingPool(
                role=spec.role,
                profile=prof,
                workload=cal.workloads[spec.workload],
                peak_rps=spec.peak_rps,
                ctx_scale=spec.ctx_scale,
                gen_scale=spec.gen_scale,
                max_num_seqs=cal.max_num_seqs,
                max_prefill_share=cal.max_prefill_share,
                kv_watermark=cal.kv_watermark,
                kv_transfer_s_per_token=cal.kv_transfer_s_per_token,
                burst_scale=self.scenario.burst_scale,
                rng=rng,
                draw_batch=self.scenario.draw_batch,
            )
            a = spec.autoscaler
            auto = (
                AutoscalerState(
                    kind=a.kind,
                    name=a.name,
                    min_replicas=a.min_replicas,
                    max_replicas=a.max_replicas,
                    target=a.target,
                    metric=a.metric,
                    poll_s=a.poll_s,
                    scale_down_stabilization_s=a.scale_down_stabilization_s,
                    scale_up_stabilization_s=a.scale_up_stabilization_s,
                    next_poll=a.poll_s,
                )
                if a
                else None
            )
            if auto is not None:
                # the fast loop has been running: its recent recommendation is the current replica count
                auto.history.append((0.0, spec.replicas))
            weights: Literal["8b", "70b"] = "70b" if prof.params_b > 30 else "8b"
            dep = Deployment(
                namespace=spec.ref.namespace,
                name=spec.ref.name,
                replicas=spec.replicas,
                gpus_per_replica=prof.gpus,
                node_pool=spec.node_pool,
                model=spec.model,
                pod_template_hash="".join(
                    self._crng.choice("0123456789abcdef") for _ in range(spec.hash_len)
                ),
                weights=weights,
                autoscaler=auto,
            )
            cs = cal.cold_start
            cold = cs["image_pull_cold_s"].mode + cs[f"weights_{weights}_s"].mode + cs["warmup_s"].mode
            self._pools[spec.ref.key] = _Pool(spec, dep, serving, cold)
            # the pool's initial pods are already serving on existing nodes (images cached)
            npool = self._node_pools[spec.node_pool]
            for _ in range(spec.replicas):
                pod = Pod(name=dep.new_pod_name(self._crng), phase="pending", created=0.0)
                node = place(npool, dep.gpus_per_replica, 0.0)
                if node is not None:
                    node.images.add(dep.model)
                    pod.phase, pod.node, pod.ready_at = "ready", node, 0.0
                dep.pods.append(pod)
        for p in self._pools.values():
            if p.spec.handoff_to is not None:
                p.serving.handoff = self._pools[p.spec.handoff_to.key].serving
            if p.spec.fed_by is not None:
                p.serving.external = True

    # ------------------------------------------------------------------ time
    @property
    def lock(self) -> threading.RLock:
        """Held for every tick and every read: a reader holding it sees one instant of the fleet."""
        return self._lock

    @property
    def now(self) -> datetime:
        with self._lock:
            return self._origin + timedelta(seconds=self._t)

    def advance(self, seconds: float) -> None:
        """Run the model forward by ``seconds`` of simulated time (whole ticks; the remainder carries)."""
        if seconds < 0:
            raise InvalidInput("cannot advance by a negative time")
        with self._lock:
            self._run_until(self._t + self._carry + seconds)

    def sync(self) -> None:
        """Wall clock: catch up to start + wall elapsed x speed. Manual clock: nothing to do."""
        if self.clock != "wall":
            return
        with self._lock:
            target = self._sim0 + (time.monotonic() - self._wall0) * self.speed
            if target > self._t:
                self._run_until(target)

    def _run_until(self, target: float) -> None:
        dt = self.tick_s
        while self._t + dt <= target + 1e-9:
            self._tick(dt)
        self._carry = max(target - self._t, 0.0)

    # ------------------------------------------------------------------ scenario control
    def _pool(self, ref: PoolRef) -> _Pool:
        p = self._pools.get(ref.key)
        if p is None:
            known = ", ".join(self._pools)
            raise NotFound(f"pool {ref.key} not found in the simulator; known pools: {known}")
        return p

    def pools(self) -> list[PoolRef]:
        return [p.spec.ref for p in self._pools.values()]

    def set_load_factor(self, ref: PoolRef, factor: float) -> None:
        """Multiply a pool's built-in load (a decode pool's factor applies to the prefill pool feeding it)."""
        if factor < 0 or not math.isfinite(factor):
            raise InvalidInput(f"load factor must be a finite number >= 0, got {factor}")
        with self._lock:
            p = self._pool(ref)
            if p.spec.fed_by is not None:
                p = self._pool(p.spec.fed_by)
            p.serving.load_factor = factor

    def pin_replicas(self, ref: PoolRef, replicas: int) -> bool:
        """Experiment control for evaluations (like ``set_arrivals``): pause the pool's autoscaler and set
        its replicas directly. Baselines such as the replay's oracle and capacity bisection use it on their
        own private twin; agents never do (their changes go through the gate). True if replicas changed."""
        with self._lock:
            if self.backend.get_pool(ref).autoscaler is not None:
                self.backend.patch_autoscaler(ref, AutoscalerPatch(paused=True), dry_run=False)
            return bool(self.backend.scale_deployment(ref, replicas, dry_run=False))

    def set_arrivals(self, ref: PoolRef, fn: ArrivalFn | None) -> None:
        """Drive a pool from an explicit schedule: ``fn(step_start, step_s)`` returns an ``ArrivalStep``
        (Poisson at a rate with given token means) or a list of ``TraceRequest``; ``None`` restores the
        built-in load model."""
        with self._lock:
            p = self._pool(ref)
            if p.spec.fed_by is not None:
                raise InvalidInput(
                    f"{ref.key} is a decode pool fed by {p.spec.fed_by.key}; set arrivals on that "
                    "prefill pool"
                )
            p.serving.arrival_fn = fn

    def on_step(self, hook: StepHook) -> Callable[[], None]:
        """Call ``hook(TwinStep)`` after every tick; returns a function that removes the hook."""
        with self._lock:
            self._hooks.append(hook)

        def remove() -> None:
            with self._lock:
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return remove

    # ------------------------------------------------------------------ the tick
    def _tick(self, dt: float) -> None:
        t0 = self._t
        t1 = t0 + dt
        while self._load_steps and self._load_steps[0][0] <= t0:
            _, key, factor = self._load_steps.pop(0)
            self._pools[key].serving.load_factor = factor
        self._cluster_tick(t1)
        now = self._origin + timedelta(seconds=t0)
        hour = (now.hour + now.minute / 60.0 + now.second / 3600.0) % 24.0
        for p in self._pools.values():
            pods = [pod.metrics for pod in p.dep.pods if pod.phase == "ready"]
            p.serving.tick(t0, dt, hour, now, pods)
        self._t = t1
        self._autoscale(t1)
        if self._hooks:
            step = self._step_record(dt)
            for hook in list(self._hooks):
                hook(step)

    def _cluster_tick(self, t: float) -> None:
        cs = self.cal.cold_start
        rng = self._crng
        demand: dict[str, int] = dict.fromkeys(self._node_pools, 0)
        for p in self._pools.values():
            dep = p.dep
            npool = self._node_pools[dep.node_pool]
            if len(dep.pods) < dep.replicas:
                for _ in range(dep.replicas - len(dep.pods)):
                    dep.pods.append(Pod(name=dep.new_pod_name(rng), phase="pending", created=t))
            elif len(dep.pods) > dep.replicas:
                order = {"pending": 0, "starting": 1, "ready": 2}
                victims = sorted(dep.pods, key=lambda pd: (order[pd.phase], -pd.created))
                for pod in victims[: len(dep.pods) - dep.replicas]:
                    if pod.node is not None:
                        pod.node.used -= dep.gpus_per_replica
                    dep.pods.remove(pod)
            for pod in dep.pods:
                if pod.phase == "pending":
                    node = place(npool, dep.gpus_per_replica, t)
                    if node is None:
                        demand[dep.node_pool] += dep.gpus_per_replica
                        continue
                    pull = (
                        cs["image_pull_cold_s"] if dep.model not in node.images else cs["image_pull_cached_s"]
                    )
                    cold = (
                        tri(rng, pull) + tri(rng, cs[f"weights_{dep.weights}_s"]) + tri(rng, cs["warmup_s"])
                    )
                    node.images.add(dep.model)
                    pod.phase, pod.node, pod.ready_at = "starting", node, t + cold
                elif pod.phase == "starting" and t >= pod.ready_at:
                    pod.phase = "ready"
        for name, npool in self._node_pools.items():
            pending_balloons = place_balloons(npool, t)
            provision(npool, demand[name] + pending_balloons, t, rng)
            consolidate(npool, t)

    def _autoscale(self, t: float) -> None:
        for p in self._pools.values():
            a = p.dep.autoscaler
            if a is None or a.paused or t + 1e-9 < a.next_poll:
                continue
            a.next_poll = t + a.poll_s
            current = p.dep.replicas
            ready = p.dep.count("ready")
            if a.kind.value == "ScaledObject":
                value = len(p.serving.queue) / current if current > 0 else None
                base = current
            else:
                value = self._window_sum(p, "prompt") / self._window_span(p) / ready if ready else None
                base = ready
            desired = a.recommend(t, current, base, value)
            if desired != current:
                p.dep.replicas = desired

    # ------------------------------------------------------------------ views
    def _window_span(self, p: _Pool) -> float:
        w = p.serving.window
        if not w:
            return SIGNAL_WINDOW_S
        return min(SIGNAL_WINDOW_S, w[-1].t - w[0].t + self.tick_s)

    def _window_sum(self, p: _Pool, what: str) -> float:
        w = p.serving.window
        if what == "prompt":
            return float(sum(s.prompt_tokens for s in w))
        if what == "gen":
            return float(sum(s.gen_tokens for s in w))
        if what == "finished":
            return float(sum(s.finished for s in w))
        return float(sum(s.preemptions for s in w))

    def _signals(self, p: _Pool) -> PoolSignals:
        ready = p.dep.count("ready")
        if ready == 0:
            reason = "no ready replicas: no pod serves metrics"
            return PoolSignals(dialect="vllm", missing=dict.fromkeys(SIGNAL_NAMES, reason))
        sv = p.serving
        span = self._window_span(p)
        ttfts = sorted(x for s in sv.window for x in s.ttfts)
        itls = [(s.itl, s.gen_tokens) for s in sv.window if s.itl is not None and s.gen_tokens > 0]
        sig = PoolSignals(
            dialect="vllm",
            kv_usage=sv.kv_usage_for(ready),
            queue_depth=float(len(sv.queue)),
            running=float(sv.running_now()),
            prompt_tps=self._window_sum(p, "prompt") / span,
            gen_tps=self._window_sum(p, "gen") / span,
            preemptions_per_min=self._window_sum(p, "preempt") * 60.0 / span,
            request_rps=self._window_sum(p, "finished") / span,
        )
        missing: dict[str, str] = {}
        if ttfts:
            sig.ttft_p50_s = _quantile(ttfts, 0.5)
            sig.ttft_p90_s = _quantile(ttfts, 0.9)
            sig.ttft_p99_s = _quantile(ttfts, 0.99)
        else:
            for k in ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s"):
                missing[k] = f"no request reached its first token in the last {SIGNAL_WINDOW_S:.0f} s"
        if itls:
            sig.itl_p50_s = _weighted_quantile(itls, 0.5)
            sig.itl_p90_s = _weighted_quantile(itls, 0.9)
        else:
            for k in ("itl_p50_s", "itl_p90_s"):
                missing[k] = f"no tokens decoded in the last {SIGNAL_WINDOW_S:.0f} s"
        sig.missing = missing
        sig.age_s = {k: 0.0 for k in type(sig).model_fields if k in SIGNAL_NAMES and sig.value(k) is not None}
        return sig

    def ground_truth(self, ref: PoolRef) -> PoolSignals:
        """The exact signals over the last 60 s (TTFT/ITL quantiles over that window; gauges now)."""
        self.sync()
        with self._lock:
            return self._signals(self._pool(ref))

    def _pod_views(self) -> Iterable[PodView]:
        views: list[PodView] = []
        for p in self._pools.values():
            prof = p.serving.p
            blocks = prof.kv_tokens // self.cal.block_size
            ready = [pod for pod in p.dep.pods if pod.phase == "ready"]
            p.serving.publish_gauges([pod.metrics for pod in ready])
            for pod in ready:
                views.append(
                    PodView(p.dep.namespace, pod.name, p.spec.model, pod.metrics, blocks, self.cal.block_size)
                )
        return views

    def exposition(self) -> str:
        """Every Ready pod's metrics in Prometheus text format (vLLM V1 names)."""
        self.sync()
        with self._lock:
            return generate_latest(self._registry).decode("utf-8")

    def _step_record(self, dt: float) -> TwinStep:
        pools: dict[str, PoolStep] = {}
        for key, p in self._pools.items():
            sv = p.serving
            st = sv.last
            ready = starting = pending = 0
            for pod in p.dep.pods:
                if pod.phase == "ready":
                    ready += 1
                elif pod.phase == "starting":
                    starting += 1
                else:
                    pending += 1
            ttfts = tuple(st.ttfts)
            p90 = _quantile(sorted(ttfts), 0.9) if ttfts else None
            pools[key] = PoolStep(
                desired=p.dep.replicas,
                ready=ready,
                starting=starting,
                pending=pending,
                queue=len(sv.queue),
                running=sv.running_now(),
                kv_usage=sv.kv_usage_for(ready),
                itl_s=st.itl,
                ttft_p90_s=p90,
                ttft_samples=ttfts,
                finished=st.finished,
                preemptions=st.preemptions,
                gpus=(ready + starting) * p.dep.gpus_per_replica,
            )
        node_gpus = {name: npool.total_gpus() for name, npool in self._node_pools.items()}
        at = self._origin + timedelta(seconds=self._t)
        return TwinStep(t_s=(at - self.start).total_seconds(), at=at, dt=dt, pools=pools, node_gpus=node_gpus)
