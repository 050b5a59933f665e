"""Load and serving model of one pool: arrivals, a FIFO queue, chunked prefill, batched decode, KV cache.

Requests are discrete (each has a prompt and an output length drawn from the workload's lognormal fit),
time is stepped in ticks, and the replicas of a pool are pooled behind one queue (a perfect balancer).
Decode progress uses a virtual clock ``V`` (tokens generated per running sequence so far), so a tick is
O(arrivals + finishes) and not O(running requests). All randomness comes from per-pool numpy streams
seeded from the twin's seed, so a run is reproducible.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np

from mcp_autoscale.models import Role
from mcp_autoscale.sim.calibration import ServingProfile, WorkloadShape

TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
"""vLLM V1 ``vllm:time_to_first_token_seconds`` bucket bounds."""
ITL_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
"""vLLM V1 ``vllm:inter_token_latency_seconds`` bucket bounds."""
E2E_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
    120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
"""vLLM V1 ``vllm:e2e_request_latency_seconds`` bucket bounds."""

SIGNAL_WINDOW_S = 60.0
"""Ground truth covers the last 60 s, matching ``rate(...[1m])`` over the exposition's counters."""


class TraceRequest(NamedTuple):
    """One request of an explicit arrival schedule: offset within the step (s), prompt and output tokens."""

    offset_s: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ArrivalStep:
    """Rate-based arrivals for one step: Poisson at ``rps``; token means default to the workload fit."""

    rps: float
    prompt_tokens: float | None = None
    output_tokens: float | None = None


Arrivals = ArrivalStep | Sequence[TraceRequest]
ArrivalFn = Callable[[datetime, float], Arrivals]
"""``fn(step_start, step_seconds)`` -> arrivals for that step (used by trace replay)."""


class Histogram:
    """Non-cumulative bucket counts (+Inf last), sum and count: one pod's vLLM histogram."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.total += value * n
        self.count += n


class PodMetrics:
    """Counters and histograms of one pod (monotonic for the pod's life, like a vLLM process)."""

    __slots__ = (
        "e2e",
        "gen_tokens",
        "itl",
        "kv_usage",
        "preemptions",
        "prompt_tokens",
        "running",
        "success",
        "ttft",
        "waiting",
    )

    def __init__(self) -> None:
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.prompt_tokens = 0
        self.gen_tokens = 0
        self.preemptions = 0
        self.success = 0
        self.waiting = 0
        self.running = 0
        self.kv_usage = 0.0


class Request:
    __slots__ = ("arrival", "done", "first_token", "output", "preempted", "prompt", "v_start")

    def __init__(self, arrival: float, prompt: int, output: int) -> None:
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.first_token = False
        self.v_start = 0.0
        self.done = False
        self.preempted = False


class _Stream:
    """Buffered draws from a numpy generator so the hot loop reads Python floats."""

    def __init__(
        self,
        rng: np.random.Generator,
        draw: Callable[[np.random.Generator, int], np.ndarray],
        batch: int = 4096,
    ) -> None:
        self._rng = rng
        self._draw = draw
        self._batch = batch
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._draw(self._rng, self._batch).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


@dataclass
class TickStats:
    """What one pool did in one tick (feeds the rolling window, the step record and the ground truth)."""

    t: float
    ttfts: list[float] = field(default_factory=list)
    itl: float | None = None
    gen_tokens: int = 0
    prompt_tokens: int = 0
    finished: int = 0
    preemptions: int = 0


def diurnal(hour: float, peak_to_trough: float) -> float:
    """Daily shape in (0, 1]: trough at 04:00, peak at 16:00 (Azure 2024 traces peak in the afternoon)."""
    trough = 1.0 / peak_to_trough
    return trough + (1.0 - trough) * (0.5 - 0.5 * math.cos(2.0 * math.pi * (hour - 4.0) / 24.0))


class ServingPool:
    """Serving state of one pool; ``tick`` advances it by ``dt`` given its ready replicas."""

    def __init__(
        self,
        *,
        role: Role,
        profile: ServingProfile,
        workload: WorkloadShape,
        peak_rps: float,
        ctx_scale: float,
        gen_scale: float,
        max_num_seqs: int,
        max_prefill_share: float,
        kv_watermark: float,
        kv_transfer_s_per_token: float,
        burst_scale: float,
        rng: np.random.Generator,
        draw_batch: int = 4096,
    ) -> None:
        """``draw_batch``: random draws buffered per stream (4 streams per pool, ~32 B per buffered float:
        4096 costs ~0.5 MB a pool, which a 1,000-pool scenario cannot afford; the draws differ, the model
        does not)."""
        self.role = role
        self.p = profile
        self.w = workload
        self.peak_rps = peak_rps
        self.ctx_scale = ctx_scale
        self.gen_scale = gen_scale
        self.max_num_seqs = max_num_seqs
        self.max_prefill_share = max_prefill_share
        self.kv_watermark = kv_watermark
        self.kv_transfer_s_per_token = kv_transfer_s_per_token
        self.burst_rate = workload.burst_per_hour * burst_scale / 3600.0
        self.load_factor = 1.0
        self.arrival_fn: ArrivalFn | None = None
        self.external = False  # decode pools: arrivals come from a prefill pool
        self.handoff: ServingPool | None = None

        self._exp = _Stream(rng, lambda r, n: r.exponential(1.0, n), draw_batch)
        self._unif = _Stream(rng, lambda r, n: r.random(n), draw_batch)
        self._ctx = _Stream(
            rng,
            lambda r, n: np.minimum(r.lognormal(workload.ctx_mu, workload.ctx_sigma, n), workload.ctx_max),
            draw_batch,
        )
        self._gen = _Stream(
            rng,
            lambda r, n: np.minimum(r.lognormal(workload.gen_mu, workload.gen_sigma, n), workload.gen_max),
            draw_batch,
        )
        self._mass = self._exp.next()
        self._burst_until = -1.0

        self.queue: deque[Request] = deque()
        self._heap: list[tuple[float, int, Request]] = []
        self._admitted: list[Request] = []
        self._seq = 0
        self.n_run = 0
        self.v = 0.0
        self._s_prompt = 0.0
        self._s_vstart = 0.0
        self._head_done = 0.0  # prompt tokens of the queue head already prefilled (chunked prefill)
        self.itl_now = profile.itl_base_s
        self._prefill_time = 0.0
        self.window: deque[TickStats] = deque()
        self.last: TickStats = TickStats(t=0.0)

    # ---------------------------------------------------------------- load
    def _sample_request(self, t: float, prompt_mean: float | None, output_mean: float | None) -> Request:
        """Prompt/output lengths: the workload's lognormal draws, rescaled when a schedule sets the means."""
        w = self.w
        prompt = self._ctx.next()
        output = self._gen.next()
        if prompt_mean is not None:
            prompt *= prompt_mean / math.exp(w.ctx_mu + w.ctx_sigma**2 / 2)
        if output_mean is not None:
            output *= output_mean / math.exp(w.gen_mu + w.gen_sigma**2 / 2)
        return Request(t, max(1, int(prompt * self.ctx_scale)), max(1, int(output * self.gen_scale)))

    def rate(self, t: float, hour: float) -> float:
        """Requests/s of the built-in load model at sim time ``t`` (seconds) and local hour."""
        base = self.peak_rps * diurnal(hour, self.w.peak_to_trough) * self.load_factor
        return base * (self.w.burst_factor if t < self._burst_until else 1.0)

    def _arrive(self, t0: float, dt: float, hour: float, now: datetime) -> None:
        if self.external:
            return
        if self.arrival_fn is not None:
            arrivals = self.arrival_fn(now, dt)
            if isinstance(arrivals, ArrivalStep):
                self._poisson(t0, dt, arrivals.rps, arrivals.prompt_tokens, arrivals.output_tokens)
            else:
                append = self.queue.append
                for r in arrivals:
                    pt, ot = r.prompt_tokens, r.output_tokens
                    append(Request(t0 + r.offset_s, pt if pt > 1 else 1, ot if ot > 1 else 1))
            return
        if self.burst_rate > 0 and t0 >= self._burst_until and self._unif.next() < self.burst_rate * dt:
            self._burst_until = t0 + self.w.burst_duration_s * (0.5 + self._unif.next())
        self._poisson(t0, dt, self.rate(t0, hour), None, None)

    def _poisson(self, t0: float, dt: float, rps: float, pm: float | None, om: float | None) -> None:
        """Non-homogeneous Poisson arrivals: spend unit-exponential 'mass' at ``rps`` per second."""
        if rps <= 0:
            return
        budget = rps * dt
        used = 0.0
        while self._mass <= budget - used:
            used += self._mass
            self.queue.append(self._sample_request(t0 + used / rps, pm, om))
            self._mass = self._exp.next()
        self._mass -= budget - used

    def accept(self, req: Request, t: float) -> None:
        """A prefill pool hands a request over (its KV arrives with it)."""
        req.arrival = t
        req.first_token = False
        self.queue.append(req)

    # ---------------------------------------------------------------- serving
    def kv_used(self) -> float:
        return self._s_prompt + self.n_run * self.v - self._s_vstart

    def tick(self, t0: float, dt: float, hour: float, now: datetime, pods: Sequence[PodMetrics]) -> TickStats:
        self._arrive(t0, dt, hour, now)
        st = TickStats(t=t0 + dt)
        n = len(pods)
        p = self.p
        if n == 0:
            # no replica serves: running work is lost and retried by the router
            self._requeue_all()
            self._finish_tick(st, pods)
            return st
        kv_cap = p.kv_tokens * n
        seq_cap = self.max_num_seqs * n
        prefill_rate = p.prefill_tps * n
        if self.role is not Role.PREFILL:
            # running sequences are scheduled before waiting ones (vLLM V1 scheduler order)
            self._decode(t0, dt, self._prefill_time, n, kv_cap, st, pods)
        share = 1.0 if self.role is Role.PREFILL or self.n_run == 0 else self.max_prefill_share
        budget = prefill_rate * dt * share
        used = 0.0
        kv_limit = kv_cap * (1.0 - self.kv_watermark)
        kv = self.kv_used()
        pod_i = self._seq
        # the hot loop (one pass per admitted request): roles and attributes read once
        queue, heap, admitted, ttfts = self.queue, self._heap, self._admitted, st.ttfts
        decode, prefill = self.role is Role.DECODE, self.role is Role.PREFILL
        prefill_tps, overhead = p.prefill_tps, p.ttft_overhead_s
        while queue and used < budget:
            req = queue[0]
            need = req.prompt - self._head_done if not decode else 0.0
            if not prefill and self.n_run > 0 and (kv + req.prompt > kv_limit or self.n_run >= seq_cap):
                break
            if need > budget - used:
                self._head_done += budget - used
                used = budget
                break
            used += need
            self._head_done = 0.0
            queue.popleft()
            t_fin = t0 + used / prefill_rate
            t_min = req.arrival + need / prefill_tps
            if t_min > t_fin:  # max(t_fin, t_min), as max() picks
                t_fin = t_min
            pod = pods[pod_i % n]
            pod_i += 1
            pod.prompt_tokens += int(need)
            st.prompt_tokens += int(need)
            if not req.first_token:
                if decode:
                    ttft = t_fin - req.arrival + req.prompt * self.kv_transfer_s_per_token + self.itl_now
                else:
                    ttft = t_fin - req.arrival + overhead
                req.first_token = True
                pod.ttft.observe(ttft)
                ttfts.append(ttft)
            if prefill:
                pod.gen_tokens += 1
                st.gen_tokens += 1
                pod.success += 1
                pod.e2e.observe(t_fin - req.arrival + p.ttft_overhead_s)
                st.finished += 1
                if self.handoff is not None:
                    self.handoff.accept(req, t_fin + p.ttft_overhead_s)
                continue
            req.v_start = self.v
            self.n_run += 1
            self._s_prompt += req.prompt
            self._s_vstart += self.v
            kv += req.prompt
            self._seq += 1
            heapq.heappush(heap, (self.v + req.output, self._seq, req))
            admitted.append(req)
        self._seq = max(self._seq, pod_i)
        self._prefill_time = used / prefill_rate
        self._finish_tick(st, pods)
        return st

    def _decode(
        self,
        t0: float,
        dt: float,
        prefill_time: float,
        n: int,
        kv_cap: float,
        st: TickStats,
        pods: Sequence[PodMetrics],
    ) -> None:
        p = self.p
        if self.n_run == 0:
            self.itl_now = p.itl_base_s
            return
        b = self.n_run / n
        kv_per = self.kv_used() / n
        step = p.itl_base_s + kv_per * p.kv_bytes_per_token / p.kv_read_bw + b * p.itl_per_seq_s
        avail = max(dt - prefill_time, dt * (1.0 - self.max_prefill_share))
        steps = avail / step
        self.itl_now = dt / steps
        v0 = self.v
        self.v = v0 + steps
        gen = self.n_run * steps
        freed = 0.0
        heap = self._heap
        while heap and heap[0][0] <= self.v:
            v_fin, _, req = heapq.heappop(heap)
            if req.done or req.preempted:
                continue
            gen -= self.v - v_fin
            freed += req.prompt + req.output
            req.done = True
            self.n_run -= 1
            self._s_prompt -= req.prompt
            self._s_vstart -= req.v_start
            frac = (v_fin - v0) / steps if steps > 0 else 1.0
            e2e = t0 + (0.0 if frac < 0.0 else frac) * dt - req.arrival  # max(frac, 0.0)
            pod = pods[self._seq % n]
            self._seq += 1
            pod.success += 1
            pod.e2e.observe(0.0 if e2e < 0.0 else e2e)
            st.finished += 1
        tokens = max(round(gen), 0)
        st.gen_tokens += tokens
        st.itl = self.itl_now
        share, rem = divmod(tokens, n)
        for i, pod in enumerate(pods):
            k = share + (1 if i < rem else 0)
            if k:
                pod.gen_tokens += k
                pod.itl.observe(self.itl_now, k)
        # vLLM preempts (recompute) the most recently admitted sequence when a decode step finds no free
        # block. Blocks freed by finishing requests arrive in lumps, so the tick's growth is checked
        # against the cache before those frees (``peak``).
        peak = self.kv_used() + freed
        while self.n_run > 0 and (peak > kv_cap or self.n_run > self.max_num_seqs * n):
            victim = self._admitted.pop()
            if victim.done or victim.preempted:
                continue
            peak -= victim.prompt + (self.v - victim.v_start)
            self._preempt(victim)
            pod = pods[self._seq % n]
            self._seq += 1
            pod.preemptions += 1
            st.preemptions += 1
        if len(self._admitted) > 2 * self.n_run + 256:
            self._admitted = [r for r in self._admitted if not (r.done or r.preempted)]

    def _preempt(self, req: Request) -> None:
        done = max(int(self.v - req.v_start), 0)
        req.preempted = True
        self.n_run -= 1
        self._s_prompt -= req.prompt
        self._s_vstart -= req.v_start
        again = Request(req.arrival, req.prompt + done, max(req.output - done, 1))
        again.first_token = req.first_token
        self.queue.appendleft(again)
        self._head_done = 0.0

    def _requeue_all(self) -> None:
        running = [r for r in self._admitted if not (r.done or r.preempted)]
        for req in reversed(running):
            self._preempt(req)
        self._admitted = []
        self._heap = []
        self.n_run = 0
        self._s_prompt = 0.0
        self._s_vstart = 0.0

    def _finish_tick(self, st: TickStats, pods: Sequence[PodMetrics]) -> None:
        self.last = st
        self.window.append(st)
        while self.window and self.window[0].t <= st.t - SIGNAL_WINDOW_S:
            self.window.popleft()

    def publish_gauges(self, pods: Sequence[PodMetrics]) -> None:
        """Split the pool's queue and running count over its Ready pods (at read time, not every tick)."""
        n = len(pods)
        if n == 0:
            return
        waiting = len(self.queue)
        running = self.running_now()
        kv = self.kv_usage_for(n)
        qw, qr = divmod(waiting, n)
        rw, rr = divmod(running, n)
        for i, pod in enumerate(pods):
            pod.waiting = qw + (1 if i < qr else 0)
            pod.running = rw + (1 if i < rr else 0)
            pod.kv_usage = kv

    def running_now(self) -> int:
        if self.role is Role.PREFILL:
            return 1 if self._head_done > 0 else 0
        return self.n_run

    def kv_usage_for(self, n_ready: int) -> float:
        if n_ready == 0:
            return 0.0
        if self.role is Role.PREFILL:
            return min(self._head_done / (self.p.kv_tokens * n_ready), 1.0)
        return min(max(self.kv_used(), 0.0) / (self.p.kv_tokens * n_ready), 1.0)
