"""What the peers' autoscalers (``wva``, ``dynamo``, ``aibrix``) share in the replay: what they see, how they act.

A peer replaces KEDA on the replayed pool (KEDA paused, as for the oracles) and sets the Deployment's
replicas through the twin's experiment control; its pods then wait for nodes and cold-start like every
other strategy's. It sees only causal data: the pods' gauges as a Prometheus scrape every ``scrape_s``
would (``Scrape``: KV-cache usage, waiting and running requests, pod phases), the 60 s rate signals of the
pool's metrics endpoint, and the engine's KV-cache size from ``vllm:cache_config_info``. The twin serves a
pool from one queue and spreads KV evenly over ready replicas, so a per-replica value is the pool's value
per ready replica (KV usage as is, waiting requests / ready).
"""

from __future__ import annotations

import math
import re
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass

from mcp_autoscale.models import PoolRef
from mcp_autoscale.replay.strategies import Strategy
from mcp_autoscale.sim import Twin, TwinStep


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape of the pool's pods (gauges at that instant)."""

    t_s: float
    desired: int
    ready: int
    starting: int
    pending: int
    kv_usage: float
    queue: int
    running: int

    @property
    def current(self) -> int:
        """Pods that exist (a Deployment's ``status.replicas``): ready, starting or pending."""
        return self.ready + self.starting + self.pending

    @property
    def queue_per_replica(self) -> float:
        return self.queue / self.ready if self.ready else float(self.queue)


_BLOCKS = re.compile(r'vllm:cache_config_info\{[^}]*block_size="(\d+)"[^}]*num_gpu_blocks="(\d+)"[^}]*\}')


def kv_tokens_per_replica(twin: Twin, ref: PoolRef) -> int | None:
    """KV-cache tokens of one replica, from ``vllm:cache_config_info`` (block size x GPU blocks) of a ready
    pod of ``ref``, as an engine reports it; None when no pod of the pool serves metrics."""
    pod = re.compile(rf'namespace="{re.escape(ref.namespace)}".*pod="{re.escape(ref.name)}-')
    for line in twin.exposition().splitlines():
        if line.startswith("vllm:cache_config_info{") and pod.search(line):
            m = _BLOCKS.search(line)
            if m:
                return int(m.group(1)) * int(m.group(2))
    return None


class PeerStrategy(Strategy):
    """Base of a peer: scrapes the pool every ``scrape_s``, decides every ``period_s`` with ``decide``.

    ``decide`` returns the replicas it wants (clamped to [``min_replicas``, ``max_replicas``]) or None to
    leave them. The bounds are the other strategies': the pool's floor and the node pool's GPU limit.
    """

    scrape_s = 15.0
    history_s = 600.0

    def __init__(self, *, min_replicas: int = 2, max_replicas: int | None = None) -> None:
        super().__init__()
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.scrapes: deque[Scrape] = deque()
        self._next_scrape = 0.0
        self._remove_hook: object = None

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        state = twin.backend.get_pool(ref)
        if self.max_replicas is None:
            node_pool = next((n for n in twin.backend.list_node_pools() if n.name == state.node_pool), None)
            limit = node_pool.gpu_limit if node_pool is not None and node_pool.gpu_limit else 1000
            self.max_replicas = max(self.min_replicas, limit // max(1, state.gpus_per_replica))
        twin.pin_replicas(ref, state.desired_replicas)
        self._remove_hook = twin.on_step(lambda st: self._observe(st, ref))
        self.on_setup(twin, ref)

    def on_setup(self, twin: Twin, ref: PoolRef) -> None:
        """Hook for a peer to read what it needs once (the engine's KV size)."""
        return None

    def teardown(self) -> None:
        if callable(self._remove_hook):
            self._remove_hook()
            self._remove_hook = None

    def _observe(self, st: TwinStep, ref: PoolRef) -> None:
        if st.t_s + 1e-9 < self._next_scrape:
            return
        self._next_scrape = math.floor(st.t_s / self.scrape_s + 1e-9) * self.scrape_s + self.scrape_s
        p = st.pools[ref.key]
        self.scrapes.append(
            Scrape(st.t_s, p.desired, p.ready, p.starting, p.pending, p.kv_usage, p.queue, p.running)
        )
        while self.scrapes and self.scrapes[0].t_s < st.t_s - self.history_s:
            self.scrapes.popleft()

    def window(self, t_s: float, span_s: float) -> list[Scrape]:
        """Scrapes in (t - span, t]."""
        return [s for s in self.scrapes if t_s - span_s < s.t_s <= t_s + 1e-9]

    @abstractmethod
    def decide(self, twin: Twin, ref: PoolRef, t_s: float, current: int) -> int | None:
        """Replicas wanted now (None: leave them), from what the peer has seen up to ``t_s``."""

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        current = twin.backend.get_pool(ref).desired_replicas
        want = self.decide(twin, ref, t_s, current)
        if want is None:
            return
        assert self.max_replicas is not None
        want = max(self.min_replicas, min(self.max_replicas, want))
        if want != current and twin.pin_replicas(ref, want):
            self.actions.add(t_s, f"scale replicas={want}")
