"""The simulated Kubernetes side: Deployments and their pods, GPU node pools (Karpenter-like), HPA and KEDA.

Kept deliberately close to the real controllers' rules so the outer loop sees realistic dynamics:
- a Deployment creates pods; a pod waits (``pending``) until a node with free GPUs is Ready, then cold
  starts (image pull + weights + warm-up) before it serves;
- a node pool launches nodes for pending GPU demand up to its ``nvidia.com/gpu`` limit, each after a
  provisioning delay, and removes nodes that stayed empty for ``EMPTY_NODE_TTL_S``;
- placeholder ("balloon") pods hold GPUs that real pods pre-empt;
- HPA: ``desired = ceil(ready * metric / target)`` with ±10 % tolerance, scale-up limited to
  max(2x, +4) per sync, scale-down stabilised over the window, clamped to min/max;
- KEDA: the same through its managed HPA on the waiting queue, polled every 30 s, with ``paused``.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from mcp_autoscale.models import AutoscalerKind
from mcp_autoscale.sim.calibration import Triangular
from mcp_autoscale.sim.serving import PodMetrics

EMPTY_NODE_TTL_S = 300.0
"""Karpenter consolidation of empty nodes (consolidateAfter) in the twin."""
HPA_TOLERANCE = 0.1
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"


def tri(rng: random.Random, t: Triangular) -> float:
    return rng.triangular(t.low, t.high, t.mode)


@dataclass
class Node:
    name: str
    gpus: int
    ready_at: float
    """Sim time when the node is Ready with GPUs allocatable (launch time + provisioning delay)."""
    used: int = 0
    balloons: int = 0
    images: set[str] = field(default_factory=set)
    empty_since: float | None = None

    def ready(self, t: float) -> bool:
        return t >= self.ready_at

    @property
    def free_for_pods(self) -> int:
        """Real pods may pre-empt placeholders, so balloon GPUs count as free for them."""
        return self.gpus - self.used

    @property
    def free_for_balloons(self) -> int:
        return self.gpus - self.used - self.balloons


@dataclass
class NodePool:
    name: str
    gpu_type: str
    instance_type: str
    capacity_type: Literal["on-demand", "spot"]
    gpus_per_node: int
    gpu_limit: int | None
    provision: Triangular
    nodes: list[Node] = field(default_factory=list)
    balloon_target: int = 0
    seq: int = 0

    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    def balloons_placed(self) -> int:
        return sum(n.balloons for n in self.nodes)

    def new_node(self, t: float, delay: float) -> Node:
        self.seq += 1
        node = Node(name=f"{self.name}-{self.seq:04d}", gpus=self.gpus_per_node, ready_at=t + delay)
        self.nodes.append(node)
        return node


@dataclass
class Pod:
    name: str
    phase: Literal["pending", "starting", "ready"]
    created: float
    node: Node | None = None
    ready_at: float = math.inf
    metrics: PodMetrics = field(default_factory=PodMetrics)


@dataclass
class AutoscalerState:
    kind: AutoscalerKind
    name: str
    min_replicas: int
    max_replicas: int
    target: float
    metric: str
    poll_s: float
    scale_down_stabilization_s: int
    scale_up_stabilization_s: int
    paused: bool = False
    next_poll: float = 0.0
    history: deque[tuple[float, int]] = field(default_factory=deque)

    def recommend(self, t: float, current: int, ready: int, value: float | None) -> int:
        """One HPA sync: the new replica count (``value`` = per-pod average of the metric, None = no data)."""
        if value is None or ready == 0:
            proposal = current
        else:
            usage = value / self.target
            within = abs(usage - 1.0) <= HPA_TOLERANCE
            proposal = current if within else math.ceil(usage * ready - 1e-9)
        proposal = min(proposal, max(2 * current, current + 4))  # default scale-up policy per sync
        self.history.append((t, proposal))
        horizon = max(self.scale_down_stabilization_s, self.scale_up_stabilization_s)
        while self.history and self.history[0][0] < t - horizon:
            self.history.popleft()
        # scale-down: the highest proposal in the window; scale-up: the lowest in its (default 0 s) window
        down = max(p for ts, p in self.history if ts >= t - self.scale_down_stabilization_s)
        up = min(p for ts, p in self.history if ts >= t - self.scale_up_stabilization_s)
        desired = current
        if up > current:
            desired = up
        elif down < current:
            desired = down
        return max(self.min_replicas, min(self.max_replicas, desired))


@dataclass
class Deployment:
    namespace: str
    name: str
    replicas: int
    gpus_per_replica: int
    node_pool: str
    model: str
    pod_template_hash: str
    weights: Literal["8b", "70b"]
    autoscaler: AutoscalerState | None = None
    pods: list[Pod] = field(default_factory=list)

    def new_pod_name(self, rng: random.Random) -> str:
        suffix = "".join(rng.choice(_ALNUM) for _ in range(5))
        return f"{self.name}-{self.pod_template_hash}-{suffix}"

    def count(self, phase: str) -> int:
        return sum(1 for p in self.pods if p.phase == phase)

    def ready_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.phase == "ready"]


def place(pool: NodePool, gpus: int, t: float) -> Node | None:
    """First Ready node with room (pre-empting balloons if needed)."""
    for node in pool.nodes:
        if node.ready(t) and node.free_for_pods >= gpus:
            node.used += gpus
            overflow = node.used + node.balloons - node.gpus
            if overflow > 0:
                node.balloons -= overflow  # evicted placeholders go back to pending
            node.empty_since = None
            return node
    return None


def provision(pool: NodePool, demand_gpus: int, t: float, rng: random.Random) -> None:
    """Karpenter: launch nodes for GPU demand not covered by nodes already launching, within the limit."""
    launching_free = sum(n.free_for_balloons for n in pool.nodes if not n.ready(t))
    need = demand_gpus - launching_free
    while need > 0:
        if pool.gpu_limit is not None and pool.total_gpus() + pool.gpus_per_node > pool.gpu_limit:
            return
        node = pool.new_node(t, tri(rng, pool.provision))
        need -= node.gpus


def place_balloons(pool: NodePool, t: float) -> int:
    """Place pending placeholders on Ready nodes; returns the GPUs still pending."""
    pending = pool.balloon_target - pool.balloons_placed()
    if pending < 0:
        # shrink: remove placeholders from the newest nodes first
        for node in reversed(pool.nodes):
            take = min(node.balloons, -pending)
            node.balloons -= take
            pending += take
        return 0
    for node in pool.nodes:
        if pending == 0:
            break
        if node.ready(t) and node.free_for_balloons > 0:
            take = min(node.free_for_balloons, pending)
            node.balloons += take
            node.empty_since = None
            pending -= take
    return pending


def consolidate(pool: NodePool, t: float) -> None:
    keep: list[Node] = []
    for node in pool.nodes:
        if node.ready(t) and node.used == 0 and node.balloons == 0:
            if node.empty_since is None:
                node.empty_since = t
            if t - node.empty_since >= EMPTY_NODE_TTL_S:
                continue
        keep.append(node)
    pool.nodes = keep
