"""Strategies for a many-pool replay: per-pool loops side by side, and the fleet planner.

- ``PerPool``: one single-pool strategy per pool (``keda``, ``planner``, ``causal``, ``oracle``), each blind
  to the others: every pool holds headroom for its own bursts.
- ``FleetPlanner``: the per-pool planner's sizing in every pool (its learned capacity, forecast and
  hysteresis), with burst headroom held once per node pool instead of in every pool: interactive pools run
  hotter (U 0.9 instead of 0.65), and the node pool's pooled reserve (``planner.fleet.pooled_headroom`` on the
  interactive pools' combined burst excess) is a batch pool's spare or warm placeholder GPUs. When a node
  pool's limit binds, ``planner.fleet.allocate`` decides who yields. Every fleet move is an ``Action``
  through ``actions.Gate`` whose rationale names the pools traded off.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.cost.estimate import action_cost_delta
from mcp_autoscale.models import ActionKind, ActionStatus, PoolRef, PoolState
from mcp_autoscale.planner.fleet import FleetPolicy, PoolClaim, allocate, burst_excess, pooled_headroom
from mcp_autoscale.policy import Match, Policy, ReplicaBounds, Rule
from mcp_autoscale.replay.fleet_spec import INSTANCES, FleetSpec, PoolEntry
from mcp_autoscale.replay.strategies import ActionLog, KedaPlusPlanner, Strategy
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
    """The fleet planner on the per-pool planner's sizing: what the planner knows, plus the fleet view.

    Every pool keeps the per-pool planner (``KedaPlusPlanner``: its learned capacity from breach evidence,
    forecast, hysteresis and KEDA as the fast loop), so the fleet knows no more about a pool than the
    planner does. What changes is where burst headroom is held: interactive pools run at a higher target
    utilisation (same floors: at floor 1 the small pools lost TTFT minutes to every burst), and the node
    pool holds one pooled reserve, the q-quantile of the interactive pools' summed burst excess within one
    lead time (``planner.fleet.pooled_headroom`` on their desired replicas). It is a busy batch pool's
    spare (its planner's floor raised: it works on its backlog with those GPUs and yields them through the
    gate the moment an interactive pool grows) or, with no batch pool, warm placeholder GPUs. When the node
    pool's limit binds, ``planner.fleet.allocate`` scales the givers (batch first) down to their grant. The
    fleet's own moves go through one gate with rationales naming the pools; each pool's planner submits
    through its own gate, as per pool.
    """

    name = "fleet"
    label = "Fleet planner (per-pool planner sizing, pooled headroom per node pool, batch yields)"

    def __init__(
        self,
        catalogue: PriceCatalogue,
        inner: dict[str, KedaPlusPlanner],
        *,
        sample_s: float = 30.0,
        interval_s: float = 120.0,
        lead_s: float = 420.0,
        settle_s: float = 900.0,
        warm_max_share: float = 0.25,
        reserve_min: int = 2,
        node_aware: bool = False,
        reserve: Literal["batch", "warm"] = "batch",
        policy: FleetPolicy | None = None,
        audit_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.catalogue, self.inner, self.reserve = catalogue, inner, reserve
        self.period_s, self.interval_s, self.lead_s, self.settle_s = sample_s, interval_s, lead_s, settle_s
        self.warm_max_share = warm_max_share
        self.reserve_min = reserve_min
        self.node_aware = node_aware
        self.policy = policy or FleetPolicy()
        self._audit_dir = audit_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.held: dict[str, list[float]] = {}
        """GPUs each pool's planner and KEDA want (desired replicas x GPUs per replica), per sample."""
        self.warm: dict[str, int] = {}
        self.pooled: dict[str, int] = {}
        self.headroom_log: list[dict[str, object]] = []
        self.trades: list[str] = []
        self._inter: dict[str, list[tuple[float, int]]] = {}
        self._base_floor: dict[str, int] = {}
        self._spare: dict[str, int] = {}
        self._capped: dict[str, int | None] = {}
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
            k = p.ref.key
            self.inner[k].setup(twin, p.ref)
            self.held[k] = []
            self._base_floor[k] = self.inner[k].config.floor(p.namespace)
            self._spare[k] = 0
            self._capped[k] = None
        for n in spec.node_pools:
            self.warm[n.name] = 0
            self.pooled[n.name] = self._reserve_floor(n.name)
            self._inter[n.name] = []
        self._next = dict.fromkeys(self.inner, 0.0)

    def teardown(self) -> None:
        for k, s in self.inner.items():
            s.teardown()
            self.actions.at_s.extend(s.actions.at_s)
            self.actions.what.extend(f"{k}: {w}" for w in s.actions.what)
            self.verdicts.update(s.verdicts)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _submit(self, tool: str, args: dict[str, object], rationale: str, t_s: float, twin: Twin) -> bool:
        action = action_from_call(tool, args, rationale, dry_run=False, caller="replay-fleet", now=twin.now)
        result = self._gate.submit(action)
        self.verdicts[result.status.value] += 1
        ok = result.status == ActionStatus.APPLIED
        if ok:
            self.actions.add(t_s, f"{tool} {args}: {rationale}")
        return ok

    def _resize(self, p: PoolEntry, replicas: int, rationale: str, t_s: float, twin: Twin) -> bool:
        """Scale a giver down now: through its KEDA ScaledObject / HPA when one owns it (max down to
        ``replicas``: the fast loop scales in at its next sync; a direct scale would be reverted, and the
        gate refuses it), else the Deployment itself."""
        owner = twin.backend.get_pool(p.ref).autoscaler
        if owner is not None and not owner.paused:
            args: dict[str, object] = {
                "namespace": p.namespace,
                "deployment": p.name,
                "min_replicas": min(owner.min_replicas, replicas),
                "max_replicas": replicas,
            }
            return self._submit("patch_hpa", args, rationale, t_s, twin)
        args = {"namespace": p.namespace, "name": p.name, "replicas": replicas}
        return self._submit("scale_deployment", args, rationale, t_s, twin)

    def _set_floor(self, key: str, floor: int) -> None:
        s = self.inner[key]
        ns = key.split("/", 1)[0]
        if s.config.floors.get(ns) != floor:
            s.config = s.config.model_copy(update={"floors": {**s.config.floors, ns: floor}})

    def step(self, twin: Twin, t_s: float) -> None:
        states = {p.ref.key: twin.backend.get_pool(p.ref) for p in self.spec.pools}
        for k, st in states.items():
            self.held[k].append(float(st.desired_replicas * st.gpus_per_replica))
        if t_s + 1e-9 >= self._next_plan:
            self._next_plan = t_s + self.interval_s
            self._size_pooled(twin, t_s)
        for n in self.spec.node_pools:
            self._share(twin, n.name, n.limit_gpus, n.gpu_type, t_s, states)
        for p in self.spec.pools:
            k = p.ref.key
            if t_s + 1e-9 >= self._next[k]:
                self.inner[k].step(twin, p.ref, t_s)
                self._next[k] = t_s + self.inner[k].period_s

    def _share(
        self, twin: Twin, node_pool: str, limit: int, gpu_type: str, t_s: float, states: dict[str, PoolState]
    ) -> None:
        """The batch pool's spare is the pooled headroom: raised while the interactive pools are steady,
        given back the moment they grow; when the limit binds, batch pools are capped by ``allocate``."""
        pools = [p for p in self.spec.pools if p.node_pool == node_pool]
        batch = [p for p in pools if p.priority == "batch"]
        inter = [p for p in pools if p.priority == "interactive"]
        want_inter = sum(states[p.ref.key].desired_replicas for p in inter)
        used = sum(states[p.ref.key].desired_replicas for p in pools)
        if used > limit:
            self._allocate(twin, node_pool, limit, gpu_type, t_s, states, pools)
        if self.reserve != "batch" or not batch:
            return
        hist = self._inter[node_pool]
        hist.append((t_s, want_inter))
        while hist and hist[0][0] < t_s - self.lead_s:
            hist.pop(0)
        grown = want_inter - min(x for _, x in hist)
        b = batch[0].ref.key
        spare_now = self._spare[b]
        room = limit - used + spare_now
        # an idle batch pool would hold the spare for nothing: then the interactive pools' own U covers
        busy = self._rps(b) > 0.0 or self._queue(b) > 0.0
        spare = max(0, min(self.pooled[node_pool] - grown, room)) if busy else 0
        per_node = INSTANCES[gpu_type][1] if gpu_type in INSTANCES else 1
        if self.node_aware and per_node > 1:
            # multi-GPU nodes: hold the spare only in GPUs of nodes billed anyway, never a node for it
            spare = min(spare, -(used - spare_now) % per_node)
        if spare != spare_now:
            self._spare[b] = spare
            self._set_floor(b, self._base_floor[b] + spare)
            self.trades.append(
                f"t={t_s / 60:.0f} min: {b} holds {spare} spare {gpu_type} as the pooled headroom of "
                f"{', '.join(p.ref.key for p in inter)}" + (f" (they grew by {grown})" if grown > 0 else "")
            )
            if spare < spare_now:
                # yield now: the batch pool's planner would release them only after its scale-in window
                st = states[b]
                target = max(self._base_floor[b], st.desired_replicas - (spare_now - spare))
                if target < st.desired_replicas:
                    self._resize(
                        batch[0],
                        target,
                        f"{b} yields {spare_now - spare} {gpu_type}{self._usd(gpu_type, spare_now - spare)} "
                        f"of its pooled spare to {', '.join(p.ref.key for p in inter)}, whose replicas grew "
                        f"by {grown} within {self.lead_s:.0f} s",
                        t_s,
                        twin,
                    )

    def _allocate(
        self,
        twin: Twin,
        node_pool: str,
        limit: int,
        gpu_type: str,
        t_s: float,
        states: dict[str, PoolState],
        pools: list[PoolEntry],
    ) -> None:
        """The node pool's limit binds: ``allocate`` decides who yields (batch first, by breach cost)."""
        claims = [
            PoolClaim(
                key=p.ref.key,
                priority=p.priority,
                floor=1,
                gpus_now=states[p.ref.key].desired_replicas,
                want=states[p.ref.key].desired_replicas,
                backlog=self._queue(p.ref.key),
                arrival_rps=self._rps(p.ref.key),
                per_gpu_rps=self._per_replica_rps(p.ref.key, states[p.ref.key].ready_replicas),
            )
            for p in pools
        ]
        alloc = allocate(limit, claims, self.policy)
        for tr in alloc.trades:
            line = tr.sentence(gpu_type, None)
            self.trades.append(f"t={t_s / 60:.0f} min: {line}")
            giver = next(p for p in pools if p.ref.key == tr.giver)
            self._resize(
                giver,
                alloc.grants[tr.giver],
                f"{node_pool} at its {limit}-GPU limit: {line}",
                t_s,
                twin,
            )

    def _queue(self, key: str) -> float:
        """Requests waiting, as the pool's planner last saw them."""
        h = self.inner[key].history
        return (h[-1].queue_depth or 0.0) if h else 0.0

    def _rps(self, key: str) -> float:
        """Finished requests/s the pool's planner last saw (its own history, what it learns from)."""
        h = self.inner[key].history[-4:]
        xs = [x.request_rps for x in h if x.request_rps is not None]
        return sum(xs) / len(xs) if xs else 0.0

    def _per_replica_rps(self, key: str, ready: int) -> float:
        return max(1e-3, self._rps(key) / max(1, ready))

    def _reserve_floor(self, node_pool: str) -> int:
        """The least pooled headroom a node pool with hot interactive pools holds (before the burst
        statistics exist, and when they say none)."""
        inter = any(p.node_pool == node_pool and p.priority == "interactive" for p in self.spec.pools)
        return self.reserve_min if inter else 0

    def _size_pooled(self, twin: Twin, t_s: float) -> None:
        lead = max(1, round(self.lead_s / self.period_s))
        skip = round(self.settle_s / self.period_s)  # the start-up ramp is no burst
        for n in self.spec.node_pools:
            pools = [p for p in self.spec.pools if p.node_pool == n.name and p.priority == "interactive"]
            if not pools:
                continue
            warm = self.reserve == "warm" or not any(
                p.priority == "batch" for p in self.spec.pools if p.node_pool == n.name
            )
            if min(len(self.held[p.ref.key]) for p in pools) < skip + 4 * lead:
                if warm:  # no statistics yet: the reserve floor, as warm placeholders
                    floor = self._reserve_floor(n.name)
                    why = f"pooled warm capacity for {', '.join(p.ref.key for p in pools)}: the reserve floor"
                    self._warm_to(twin, n.name, floor, why + " until their burst statistics exist", t_s)
                continue
            excess = {p.ref.key: burst_excess(self.held[p.ref.key][skip:], lead) for p in pools}
            h = pooled_headroom(n.name, excess, self.policy.headroom_quantile)
            cap = math.floor(n.limit_gpus * self.warm_max_share)
            target = min(max(h.pooled_gpus, self._reserve_floor(n.name)), cap)
            self.headroom_log.append(
                {"t_s": t_s, "node_pool": n.name, "pooled": h.pooled_gpus, "per_pool": h.per_pool_gpus}
            )
            self.pooled[n.name] = target
            if not warm:
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

    def _usd(self, gpu_type: str, gpus: int) -> str:
        """' ($X/h)': what the GPUs a move names cost, for its rationale ('' for an unpriced GPU)."""
        per_gpu = self.catalogue.gpu_hour(gpu_type)
        return "" if per_gpu is None else f" (${gpus * per_gpu:.2f}/h)"

    def _warm_to(self, twin: Twin, node_pool: str, target: int, why: str, t_s: float) -> None:
        add = target - self.warm[node_pool]
        if add <= 0:
            return
        args: dict[str, object] = {"node_pool": node_pool, "gpus": add, "method": "balloon"}
        gpu_type = self.spec.node_pool(node_pool).gpu_type
        why = f"{why}; {add} warm {gpu_type}{self._usd(gpu_type, add)}"
        if self._submit("request_gpu_nodes", args, why, t_s, twin):
            self.warm[node_pool] = target
