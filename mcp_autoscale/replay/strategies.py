"""The three ways of sizing a pool that the replay compares, each acting on the twin through its backend.

1. ``KedaOnly``: the twin's own KEDA ScaledObject (queue AverageValue 5 per replica, 30 s polling, 300 s
   scale-down stabilisation). The outer loop does nothing.
2. ``KedaPlusPlanner``: the same KEDA, with this project's planner as the outer loop. Every ``sample_s`` it
   takes a snapshot through the same ``Snapshotter`` the MCP server uses (history for learning and
   forecasting); every ``interval_s`` it asks ``planner.recommend`` and submits the recommended tool call
   (``patch_hpa`` on the ScaledObject's min/max) as an ``Action`` through ``actions.Gate``: the production
   path, with a replay policy (the evaluated pool, within its floor and the node pool's GPU limit), the
   hash-chained audit log and the gate's locks. ``request_gpu_nodes`` prerequisites are not submitted:
   pending pods already make the node pool launch nodes, and balloons would hold GPUs the evaluation counts.
3. ``Oracle``: KEDA paused; it knows the whole trace and the twin's true per-replica capacity (measured by
   a probe run) and sets replicas to the most any minute within one cold start ahead needs. It cannot
   beat the cold start: it only orders early.
4. ``CausalOracle``: KEDA paused; the same true capacity and the exact load so far, but no foresight. It
   shows what any outer loop that cannot see the future pays for the same SLO.
"""

from __future__ import annotations

import math
import tempfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcp_autoscale.actions import Gate, action_from_call
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.config import Settings
from mcp_autoscale.cost.catalogue import PriceCatalogue
from mcp_autoscale.cost.estimate import action_cost_delta, pool_cost_per_hour
from mcp_autoscale.models import ActionKind, ActionStatus, PoolRef, PoolSnapshot, SloTargets
from mcp_autoscale.planner import PlannerConfig, PoolSample, recommend, replicas_needed
from mcp_autoscale.planner.backlog import arrival_rates, tokens_per_request
from mcp_autoscale.planner.evidence import SampleHistory
from mcp_autoscale.planner.seasonality import MinuteDemand
from mcp_autoscale.policy import Match, Policy, ReplicaBounds, Rule
from mcp_autoscale.replay.trace import Trace
from mcp_autoscale.sim import Twin
from mcp_autoscale.snapshot import Snapshotter


@dataclass
class ActionLog:
    """Outer-loop writes made by a strategy (the fast loop's own changes are counted by the evaluator)."""

    at_s: list[float] = field(default_factory=list)
    what: list[str] = field(default_factory=list)

    def add(self, t: float, what: str) -> None:
        self.at_s.append(t)
        self.what.append(what)

    def __len__(self) -> int:
        return len(self.at_s)


class Strategy:
    """Base: ``setup`` once before the trace starts, ``step`` every ``period_s`` of simulated time."""

    name = "base"
    label = "base"
    period_s = 30.0

    def __init__(self) -> None:
        self.actions = ActionLog()

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        return None

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        return None

    def teardown(self) -> None:
        """Release what ``setup`` acquired (called once the replay ends, also on errors)."""
        return None


def replay_policy(ref: PoolRef, floor: int, max_replicas: int) -> Policy:
    """The replay's policy: the planner may move the evaluated pool's owner bounds within [floor, max]."""
    return Policy(
        name="replay",
        description="Trace replay: the planner acts on the evaluated pool only, within its bounds.",
        tools=[ActionKind.PATCH_HPA, ActionKind.SCALE_DEPLOYMENT],
        namespaces=[ref.namespace],
        rules=[
            Rule(
                name="replay-pool",
                reason="the replayed pool, between its floor and the node pool's GPU limit",
                match=Match(pools=[ref.key]),
                replicas=ReplicaBounds(min=floor, max=max_replicas),
            )
        ],
    )


class KedaOnly(Strategy):
    name = "keda"
    label = "KEDA only (queue AverageValue 5, 30 s poll, 300 s scale-down window)"


class KedaPlusPlanner(Strategy):
    name = "planner"
    label = "KEDA + planner outer loop"

    def __init__(
        self,
        catalogue: PriceCatalogue,
        slo: SloTargets,
        *,
        interval_s: float = 120.0,
        sample_s: float = 30.0,
        config: PlannerConfig | None = None,
        history_len: int = 2880,
        audit_dir: Path | None = None,
        scale_out_every_sample: bool = True,
    ) -> None:
        super().__init__()
        if not 60.0 <= interval_s <= 180.0:
            raise ValueError("the planner's interval must be 60-180 s")
        self.catalogue = catalogue
        self.slo = slo
        self.interval_s = interval_s
        self.period_s = sample_s
        self.config = (config or PlannerConfig()).model_copy(
            update={"slo": slo, "control_interval_s": interval_s}
        )
        self.history = SampleHistory()
        """Samples, oldest first; a ``SampleHistory`` keeps the capacity evidence up to date."""
        self.history_len = history_len
        self.scale_out_every_sample = scale_out_every_sample
        self._next_plan = 0.0
        self._next_minute = 60.0
        self.minutes = MinuteDemand()
        """Demand per minute, for the planner's periodic model."""
        self._snapshotter: Snapshotter | None = None
        self._gate: Gate | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._audit_dir = audit_dir
        self._evidence: dict[str, PoolSnapshot] = {}
        self.audit_path: Path | None = None
        self.verdicts: Counter[str] = Counter()
        """Gated submissions by outcome (ActionStatus value: applied, denied, ...)."""

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        cat = self.catalogue
        self._snapshotter = Snapshotter(
            twin.backend,
            twin.signals,
            targets_for=lambda _p: self.slo,
            cost_for=lambda p: pool_cost_per_hour(p, cat),
            clock=lambda: twin.now,
        )
        if self._audit_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="replay-gate-")
            base = Path(self._tmp.name)
        else:
            base = self._audit_dir
        state = twin.backend.get_pool(ref)
        node_pool = next((n for n in twin.backend.list_node_pools() if n.name == state.node_pool), None)
        limit = node_pool.gpu_limit if node_pool is not None and node_pool.gpu_limit else 1000
        floor = self.config.floor(ref.namespace, state.labels)
        if state.autoscaler is not None and ref.key not in self.config.owner_max:
            # remember the fast loop's configured max, so a raised max comes back down
            owner_max = {**self.config.owner_max, ref.key: state.autoscaler.max_replicas}
            self.config = self.config.model_copy(update={"owner_max": owner_max})
        self.audit_path = base / "audit.jsonl"
        self._gate = Gate(
            backend=twin.backend,
            policy=replay_policy(ref, floor, max(floor, limit // max(1, state.gpus_per_replica))),
            audit=AuditLog(self.audit_path),
            settings=Settings(state_dir=base / "state", audit_file=self.audit_path, dry_run=False),
            evidence=lambda r: self._evidence.get(r.key),
            cost_delta=lambda a, p, n: action_cost_delta(a, p, n, cat),
            clock=lambda: twin.now,
        )

    def _record_minute(self) -> None:
        """The last minute's demand: served tokens corrected by the queue's change (growth adds the
        arrivals not served, a drain takes off what was served from the backlog)."""
        hist = self.history
        cutoff = hist[-1].t_s - 60.0
        per_request = tokens_per_request(hist)
        first = len(hist)
        while first > 1 and hist[first - 1].t_s > cutoff:  # the last minute's samples (time order)
            first -= 1
        pairs = [
            arrival_rates(hist[i - 1], hist[i], per_request)
            for i in range(first, len(hist))
            if hist[i].t_s > cutoff
        ]
        ins = [a for a, _ in pairs if a is not None]
        outs = [b for _, b in pairs if b is not None]
        m = self.minutes
        last_in = m.prompt_tps[-1] if len(m) else 0.0
        last_out = m.gen_tps[-1] if len(m) else 0.0
        m.add(sum(ins) / len(ins) if ins else last_in, sum(outs) / len(outs) if outs else last_out)

    def teardown(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        assert self._snapshotter is not None
        snap = self._snapshotter.take(namespace=ref.namespace, name=ref.name)
        pool = snap.pool(ref)
        if pool is None:
            return
        self.history.append(PoolSample.from_snapshot(pool, t_s))
        del self.history[: -self.history_len]
        if t_s + 1e-9 >= self._next_minute:
            self._next_minute = t_s + 60.0
            self._record_minute()
        full_pass = t_s + 1e-9 >= self._next_plan
        if not full_pass and not self.scale_out_every_sample:
            return
        if full_pass:
            self._next_plan = t_s + self.interval_s
        state = twin.backend.get_pool(ref)
        (rec,) = recommend(
            snap,
            [state],
            snap.node_pools,
            self.catalogue,
            {ref.key: self.history},
            self.config,
            {ref.key: self.minutes},
        )
        if rec.tool_call is None or (not full_pass and rec.replicas_target <= rec.replicas_now):
            return
        assert self._gate is not None
        args = dict(rec.tool_call.arguments)
        rationale = str(args.pop("rationale", "") or f"planner: {ref.key} -> {rec.replicas_target}")
        args.pop("dry_run", None)
        self._evidence[ref.key] = pool
        action = action_from_call(
            rec.tool_call.tool, args, rationale, dry_run=False, caller="replay-planner", now=twin.now
        )
        result = self._gate.submit(action)
        self.verdicts[result.status.value] += 1
        if result.status == ActionStatus.APPLIED and result.changes:
            what = ", ".join(f"{c.field}={c.after}" for c in result.changes)
            self.actions.add(t_s, f"{rec.tool_call.tool} {what}")


class _Yardstick(Strategy, ABC):
    """A reference sizer: KEDA paused, it alone sets the pool's replicas to ``target(t)`` each step (through
    the twin's experiment control, not the gate: it is a yardstick, not a candidate)."""

    @abstractmethod
    def target(self, t_s: float) -> int:
        """Replicas the pool should have at ``t_s``."""

    def setup(self, twin: Twin, ref: PoolRef) -> None:
        twin.pin_replicas(ref, twin.backend.get_pool(ref).desired_replicas)

    def step(self, twin: Twin, ref: PoolRef, t_s: float) -> None:
        want = self.target(t_s)
        if twin.pin_replicas(ref, want):
            self.actions.add(t_s, f"scale_deployment replicas={want}")


class Oracle(_Yardstick):
    name = "oracle"
    label = "Oracle (perfect foresight, bounded by cold start)"

    def __init__(
        self,
        demand_in: Sequence[float],
        demand_out: Sequence[float],
        c_in: float,
        c_out: float,
        *,
        lead_s: float,
        floor: int,
        utilisation: float = 0.9,
        max_replicas: int = 1000,
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.lead_s, self.floor, self.u = c_in, c_out, lead_s, floor, utilisation
        need = [
            min(max_replicas, replicas_needed(r_in, r_out, c_in, c_out, utilisation, floor))
            for r_in, r_out in zip(demand_in, demand_out, strict=True)
        ]
        self.need = np.asarray(need, dtype=np.int64)

    def target(self, t_s: float) -> int:
        """The most any minute from now to one lead time ahead needs (replicas ordered now serve then)."""
        lo = max(0, int(t_s // 60))
        hi = min(len(self.need), math.ceil((t_s + self.lead_s) / 60.0) + 1)
        if lo >= len(self.need):
            return self.floor
        return int(self.need[lo:hi].max())


class CausalOracle(_Yardstick):
    """What perfect measurement buys without foresight: the best a planner that cannot see ahead can do.

    KEDA paused. It knows the twin's true per-replica capacity (the oracle's probe) and the exact token
    load of the last ``window_s`` seconds of the trace, with no scrape or rate-window lag, and sizes for
    that load at ``utilisation`` every sample. It keeps the most any sample in the last ``hold_s`` needed
    (the planner's scale-in window). It does not know what comes next: its gap to ``Oracle`` is the price
    of having no foresight, which no outer loop can avoid. Set against the planner, it shows what
    measurement lag and a learned capacity cost, and what a forecast and hysteresis win back.
    """

    name = "causal"
    label = "Causal oracle (true capacity, exact load so far, no foresight)"

    def __init__(
        self,
        trace: Trace,
        c_in: float,
        c_out: float,
        *,
        floor: int,
        utilisation: float = 0.65,
        hold_s: float = 600.0,
        window_s: float = 60.0,
        max_replicas: int = 1000,
    ) -> None:
        super().__init__()
        self.t = np.asarray(trace.t_s, dtype=float)
        self.cum_in = np.concatenate([[0.0], np.cumsum(np.asarray(trace.context, dtype=float))])
        self.cum_out = np.concatenate([[0.0], np.cumsum(np.asarray(trace.generated, dtype=float))])
        self.c_in, self.c_out, self.floor, self.u = c_in, c_out, floor, utilisation
        self.hold_s, self.window_s, self.max_replicas = hold_s, window_s, max_replicas
        self._needs: list[tuple[float, int]] = []

    def need_now(self, t_s: float) -> int:
        """Replicas the load of the last ``window_s`` seconds needs at the target utilisation."""
        lo, hi = np.searchsorted(self.t, [t_s - self.window_s, t_s])
        r_in = float(self.cum_in[hi] - self.cum_in[lo]) / self.window_s
        r_out = float(self.cum_out[hi] - self.cum_out[lo]) / self.window_s
        need = replicas_needed(r_in, r_out, self.c_in, self.c_out, self.u, self.floor)
        return min(self.max_replicas, need)

    def target(self, t_s: float) -> int:
        self._needs = [(t, n) for t, n in self._needs if t > t_s - self.hold_s]
        self._needs.append((t_s, self.need_now(t_s)))
        return max(n for _, n in self._needs)
