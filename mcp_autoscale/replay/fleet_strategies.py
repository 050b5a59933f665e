"""Strategies for a many-pool replay: per-pool loops side by side, and the fleet planner.

- ``PerPool``: one single-pool strategy per pool (``keda``, ``planner``, ``causal``, ``oracle``), each blind
  to the others: every pool holds headroom for its own bursts.
- ``FleetPlanner``: the same KEDA + planner per interactive pool, but at a higher target utilisation and
  floor 1, because burst headroom is held once per node pool as warm placeholder GPUs (``request_gpu_nodes``
  method ``balloon``) sized by ``planner.fleet.pooled_headroom`` on the pools' observed burst excess. When a
  node pool's limit binds and an interactive pool queues, ``planner.fleet.allocate`` decides who yields:
  batch pools are capped (``patch_hpa`` max) down to what drains their backlog within the policy's deadline,
  and restored once the limit no longer binds. Every move is an ``Action`` through ``actions.Gate`` whose
  rationale names the pools traded off and the $.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.cost.estimate import action_cost_delta
from mcp_autoscale.models import ActionKind, ActionStatus, PoolRef
from mcp_autoscale.planner import replicas_needed
from mcp_autoscale.planner.fleet import FleetPolicy, PoolClaim, allocate, burst_excess, pooled_headroom
from mcp_autoscale.policy import Match, Policy, ReplicaBounds, Rule
from mcp_autoscale.replay.fleet_spec import FleetSpec
from mcp_autoscale.replay.strategies import ActionLog, CausalOracle, KedaPlusPlanner, Strategy
from mcp_autoscale.sim import Twin


class FleetStrategy:
    name = "base"
    label = "base"
    period_s = 30.0

    def __init__(self) -> None:
        self.actions = ActionLog()
        self.verdicts: Counter[str] = Counter()

    def setup(self, twin: Twin, spec: FleetSpec) -> None:
        return None

    def step(self, twin: Twin, t_s: float) -> None:
        return None

    def teardown(self) -> None:
        return None


class PerPool(FleetStrategy):
    """Each pool under its own single-pool strategy, blind to the rest of the fleet."""

    def __init__(self, name: str, label: str, make: Callable[[PoolRef], Strategy]) -> None:
        super().__init__()
        self.name, self.label, self._make = name, label, make
        self.inner: dict[str, tuple[PoolRef, Strategy]] = {}

    def setup(self, twin: Twin, spec: FleetSpec) -> None:
        for p in spec.pools:
            s = self._make(p.ref)
            self.inner[p.ref.key] = (p.ref, s)
            s.setup(twin, p.ref)
        self.period_s = min(s.period_s for _, s in self.inner.values())
        self._next = dict.fromkeys(self.inner, 0.0)

    def step(self, twin: Twin, t_s: float) -> None:
        for key, (ref, s) in self.inner.items():
            if t_s + 1e-9 >= self._next[key]:
                s.step(twin, ref, t_s)
                self._next[key] = t_s + s.period_s

    def teardown(self) -> None:
        for ref, s in self.inner.values():
            s.teardown()
            self.actions.at_s.extend(s.actions.at_s)
            self.actions.what.extend(f"{ref.key}: {w}" for w in s.actions.what)
            if isinstance(s, KedaPlusPlanner):
                self.verdicts.update(s.verdicts)


def fleet_policy(spec: FleetSpec, forbid_node_pools: bool = False) -> Policy:
    """The fleet planner's gate policy: every pool's replicas within [1, its node pool's limit] (KEDA may be
    paused: the fleet planner owns the pool's size), warm GPUs on the fleet's node pools."""
    rules: list[Rule] = [
        Rule(
            name=f"fleet-{p.namespace}-{p.name}"[:60],
            reason=f"{p.priority} pool sized by the fleet planner",
            match=Match(pools=[p.ref.key]),
            replicas=ReplicaBounds(min=1, max=spec.node_pool(p.node_pool).limit_gpus),
        )
        for p in spec.pools
    ]
    if not forbid_node_pools:
        rules.append(
            Rule(
                name="warm-gpus",
                reason="pooled warm capacity per node pool",
                match=Match(
                    tools=[ActionKind.REQUEST_GPU_NODES], node_pools=[n.name for n in spec.node_pools]
                ),
            )
        )
    return Policy(
        name="fleet-replay",
        description="Fleet replay: pools sized together, pooled warm GPUs, batch pools that yield.",
        tools=[ActionKind.PATCH_HPA, ActionKind.SCALE_DEPLOYMENT, ActionKind.REQUEST_GPU_NODES],
        namespaces=sorted({p.namespace for p in spec.pools}),
        node_pools=[n.name for n in spec.node_pools],
        rules=rules,
    )


class FleetPlanner(FleetStrategy):
    """Sizes every pool of the fleet together, through the gate.

    It knows what the causal oracle knows (each pool's true per-replica capacity and the load so far, no
    foresight), so its edge over per-pool ``causal`` is the fleet view alone: interactive pools run at a
    higher utilisation because burst headroom is held once per node pool as warm GPUs, and when a limit
    binds the batch pools yield (down to what drains their backlog by the policy's deadline).
    """

    name = "fleet"
    label = "Fleet planner (pooled warm GPUs per node pool, batch yields to interactive)"

    def __init__(
        self,
        catalogue: PriceCatalogue,
        sizers: dict[str, CausalOracle],
        per_gpu_rps: dict[str, float],
        *,
        sample_s: float = 30.0,
        interval_s: float = 120.0,
        lead_s: float = 420.0,
        settle_s: float = 900.0,
        warm_min: int = 1,
        warm_max_share: float = 0.25,
        policy: FleetPolicy | None = None,
        audit_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.catalogue, self.sizers, self.per_gpu_rps = catalogue, sizers, per_gpu_rps
        self.period_s, self.interval_s, self.lead_s, self.settle_s = sample_s, interval_s, lead_s, settle_s
        self.warm_min, self.warm_max_share = warm_min, warm_max_share
        self.policy = policy or FleetPolicy()
        self._audit_dir = audit_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.need: dict[str, list[float]] = {}
        """GPUs each pool's load needs at full capacity (U = 1), per sample."""
        self.held: dict[str, list[float]] = {}
        """GPUs each pool holds (desired replicas), per sample."""
        self.warm: dict[str, int] = {}
        self.headroom_log: list[dict[str, object]] = []
        self.trades: list[str] = []
        self.pooled: dict[str, int] = {}
        """Pooled headroom per node pool (GPUs): warm placeholders, or a batch pool's spare."""
        self._pooled_why: dict[str, str] = {}
        self._inter: dict[str, list[tuple[float, int]]] = {}
        self._next_plan = 0.0

    def setup(self, twin: Twin, spec: FleetSpec) -> None:
        self.spec = spec
        base = self._audit_dir
        if base is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fleet-gate-")
            base = Path(self._tmp.name)
        audit = base / "fleet-audit.jsonl"
        self._gate = Gate(
            backend=twin.backend,
            policy=fleet_policy(spec),
            audit=AuditLog(audit),
            settings=Settings(state_dir=base / "fleet-state", audit_file=audit, dry_run=False),
            cost_delta=lambda a, p, n: action_cost_delta(a, p, n, self.catalogue),
            clock=lambda: twin.now,
        )
        for p in spec.pools:
            self.need[p.ref.key] = []
            self.held[p.ref.key] = []
            self._submit(
                "patch_hpa",
                {"namespace": p.namespace, "name": p.name, "paused": True},
                f"the fleet planner sizes {p.ref.key} together with the other pools on {p.node_pool}",
                0.0,
                twin,
            )
        for n in spec.node_pools:
            self.warm[n.name] = 0
            self.pooled[n.name] = self.warm_min
            self._inter[n.name] = []
            if any(p.priority == "batch" for p in spec.pools if p.node_pool == n.name):
                continue  # a batch pool's spare is the warm capacity
            if self.warm_min > 0:
                self._warm_to(
                    twin, n.name, self.warm_min, "pooled warm capacity: the prior before any burst", 0.0
                )

    def teardown(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _submit(self, tool: str, args: dict[str, object], rationale: str, t_s: float, twin: Twin) -> bool:
        action = action_from_call(tool, args, rationale, dry_run=False, caller="replay-fleet", now=twin.now)
        result = self._gate.submit(action)
        self.verdicts[result.status.value] += 1
        ok = result.status == ActionStatus.APPLIED
        if ok and tool != "patch_hpa":
            self.actions.add(t_s, f"{tool} {args}: {rationale}")
        return ok

    def _warm_to(self, twin: Twin, node_pool: str, target: int, why: str, t_s: float) -> None:
        add = target - self.warm[node_pool]
        if add <= 0:
            return
        args: dict[str, object] = {"node_pool": node_pool, "gpus": add, "method": "balloon"}
        if self._submit("request_gpu_nodes", args, why, t_s, twin):
            self.warm[node_pool] = target

    def step(self, twin: Twin, t_s: float) -> None:
        backend = twin.backend
        states = {p.ref.key: backend.get_pool(p.ref) for p in self.spec.pools}
        for k, s in self.sizers.items():
            gpr = states[k].gpus_per_replica
            self.need[k].append(float(_need_at_capacity(s, t_s) * gpr))
            self.held[k].append(float(states[k].desired_replicas * gpr))
        if t_s + 1e-9 >= self._next_plan:
            self._next_plan = t_s + self.interval_s
            self._size_warm(twin, t_s)
        if t_s < min(s.window_s for s in self.sizers.values()):
            return  # no load seen yet: an empty window is no evidence to scale in on
        for n in self.spec.node_pools:
            pools = [p for p in self.spec.pools if p.node_pool == n.name]
            targets = {p.ref.key: self.sizers[p.ref.key].target(t_s) for p in pools}
            why: dict[str, str] = {}
            batch = [p for p in pools if p.priority == "batch"]
            if batch:
                # the pooled headroom is the batch pool's spare: it works on its backlog and yields the
                # moment an interactive pool grows (those GPUs are on Ready nodes: no provisioning wait)
                inter = sum(targets[p.ref.key] for p in pools if p.priority == "interactive")
                hist = self._inter[n.name]
                hist.append((t_s, inter))
                while hist and hist[0][0] < t_s - self.lead_s:
                    hist.pop(0)
                grown = inter - min(x for _, x in hist)
                room = n.limit_gpus - sum(targets.values())
                spare = max(0, min(self.pooled[n.name] - grown, room))
                b = batch[0].ref.key
                targets[b] += spare
                if spare:
                    why[b] = (
                        f"{b} holds {spare} spare {n.gpu_type} as the pooled headroom of "
                        f"{', '.join(p.ref.key for p in pools if p.priority == 'interactive')} "
                        f"({self._pooled_why.get(n.name, 'prior')}); it yields them when they burst"
                    )
                elif grown > 0:
                    why[b] = f"{b} yields its spare {n.gpu_type} to interactive pools that grew by {grown}"
            if sum(targets.values()) > n.limit_gpus:
                claims = []
                for p in pools:
                    g = twin.ground_truth(p.ref)
                    claims.append(
                        PoolClaim(
                            key=p.ref.key,
                            priority=p.priority,
                            floor=1,
                            gpus_now=states[p.ref.key].desired_replicas,
                            want=targets[p.ref.key],
                            backlog=g.queue_depth or 0.0,
                            arrival_rps=_rps_now(self.sizers[p.ref.key], t_s),
                            per_gpu_rps=self.per_gpu_rps[p.ref.key],
                        )
                    )
                alloc = allocate(n.limit_gpus, claims, self.policy)
                for tr in alloc.trades:
                    line = tr.sentence(
                        n.gpu_type,
                        (twin.now + timedelta(seconds=tr.giver_drains_in_s)).strftime("%H:%M")
                        if tr.giver_drains_in_s and math.isfinite(tr.giver_drains_in_s)
                        else None,
                    )
                    why[tr.giver] = why[tr.taker] = f"{n.name} at its {n.limit_gpus}-GPU limit: {line}"
                    self.trades.append(f"t={t_s / 60:.0f} min: {line}")
                targets = {k: min(v, alloc.grants[k]) for k, v in targets.items()}
            for p in pools:
                k = p.ref.key
                st = states[k]
                target = max(1, targets[k])
                if target == st.desired_replicas:
                    continue
                rationale = why.get(k) or (
                    f"{k} needs {target} replicas for its load at U={self.sizers[k].u:g}; burst headroom is "
                    f"pooled on {n.name} ({self.pooled[n.name]} GPU)"
                )
                self._submit(
                    "scale_deployment",
                    {"namespace": p.namespace, "name": p.name, "replicas": target},
                    rationale,
                    t_s,
                    twin,
                )

    def _size_warm(self, twin: Twin, t_s: float) -> None:
        lead = max(1, round(self.lead_s / self.period_s))
        skip = round(self.settle_s / self.period_s)  # the start-up ramp is no burst
        for n in self.spec.node_pools:
            pools = [p for p in self.spec.pools if p.node_pool == n.name and p.priority == "interactive"]
            if not pools or min(len(self.need[p.ref.key]) for p in pools) < skip + 4 * lead:
                continue
            excess = {
                p.ref.key: burst_excess(self.need[p.ref.key][skip:], lead, self.held[p.ref.key][skip:])
                for p in pools
            }
            h = pooled_headroom(n.name, excess, self.policy.headroom_quantile)
            self.headroom_log.append(
                {"t_s": t_s, "node_pool": n.name, "pooled": h.pooled_gpus, "per_pool": h.per_pool_gpus}
            )
            target = min(h.pooled_gpus, math.floor(n.limit_gpus * self.warm_max_share))
            self._pooled_why[n.name] = (
                f"q{h.quantile:.2f} of their summed burst excess within {self.lead_s:.0f} s: "
                f"{h.pooled_gpus} GPU against {h.sum_per_pool} held pool by pool"
            )
            self.pooled[n.name] = max(self.warm_min, target)
            if any(p.priority == "batch" for p in self.spec.pools if p.node_pool == n.name):
                continue
            self._warm_to(
                twin,
                n.name,
                target,
                f"pooled warm capacity for {', '.join(h.per_pool_gpus)}: q{h.quantile:.2f} of their summed "
                f"burst excess within {self.lead_s:.0f} s is {h.pooled_gpus} GPU against {h.sum_per_pool} "
                "held pool by pool",
                t_s,
            )


def _need_at_capacity(sizer: CausalOracle, t_s: float) -> int:
    """Replicas the load of the sizer's window needs at full capacity (where the SLO starts to break)."""
    lo, hi = np.searchsorted(sizer.t, [t_s - sizer.window_s, t_s])
    r_in = float(sizer.cum_in[hi] - sizer.cum_in[lo]) / sizer.window_s
    r_out = float(sizer.cum_out[hi] - sizer.cum_out[lo]) / sizer.window_s
    return replicas_needed(r_in, r_out, sizer.c_in, sizer.c_out, 1.0, 0)


def _rps_now(sizer: CausalOracle, t_s: float) -> float:
    """Requests/s over the sizer's window (the load so far, as the causal oracle sees it)."""
    lo, hi = np.searchsorted(sizer.t, [t_s - sizer.window_s, t_s])
    return float(hi - lo) / sizer.window_s
