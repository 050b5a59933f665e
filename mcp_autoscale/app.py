"""Application wiring: build every part from ``Settings`` once, at start-up.

Configuration errors (bad policy file, unreadable price catalogue, unknown backend) surface here, before
the server accepts its first request, as ``ConfigError``/``InvalidInput`` (exit code 2 in the CLI).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from mcp_autoscale.actions import Gate
from mcp_autoscale.actions.gate import HISTORY
from mcp_autoscale.cluster.base import ClusterBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.cost import PriceCatalogue, action_cost_delta, load_catalogue, pool_cost_per_hour
from mcp_autoscale.errors import ConfigError, InvalidInput
from mcp_autoscale.locks import PoolLock
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import Action, ActionResult, NodePoolState, PoolState, SloTargets
from mcp_autoscale.paging import PageStore
from mcp_autoscale.policy import Policy, builtin_policy, default_policy_name, load_policy
from mcp_autoscale.preflight import readable_file, writable_dir, writable_file
from mcp_autoscale.ratelimit import TokenBucket
from mcp_autoscale.runbooks import Runbook, merged_runbooks
from mcp_autoscale.signals.base import SignalSource
from mcp_autoscale.sim import Twin
from mcp_autoscale.snapshot import Snapshotter
from mcp_autoscale.state import AuditStore, StateStore, open_store

log = get_logger(__name__)


@dataclass
class AutoscaleApp:
    """Everything a tool needs, built once. Tools read from here; only ``gate`` may write."""

    settings: Settings
    backend: ClusterBackend
    signals: SignalSource
    policy: Policy
    policy_source: str
    audit: AuditStore
    catalogue: PriceCatalogue
    snapshotter: Snapshotter
    gate: Gate
    twin: Twin | None = None
    notes: list[str] = field(default_factory=list)
    store: StateStore | None = None
    runbooks: list[Runbook] | None = None  # shipped + --runbooks DIR; None: the shipped ones
    pages: PageStore = field(default_factory=PageStore)
    """Answers with more than one page, so that a cursor continues the same answer."""

    def run_approved(self) -> list[ActionResult]:
        """Run proposals a human approved out of band with ``approve --defer`` (the server owns the backend:
        on the simulator the fleet lives in this process). Called at the start of every tool call."""
        return self.gate.execute_approved()


def resolve_policy(settings: Settings) -> tuple[Policy, str]:
    """The policy file if given; otherwise a safe built-in: permissive on the simulator, read-only on a cluster."""
    if settings.policy_file is not None:
        return load_policy(Path(settings.policy_file)), str(settings.policy_file)
    name = default_policy_name(settings.backend, settings.sim_scenario)
    return builtin_policy(name), f"builtin:{name}"


def _build_backend(
    settings: Settings, twin: Twin | None, namespaces: list[str] | None, kube_cache: bool = False
) -> tuple[ClusterBackend, Twin | None]:
    if settings.backend == "sim":
        if twin is None:
            twin = Twin(scenario=settings.sim_scenario, seed=settings.sim_seed, clock=settings.sim_clock)
            if settings.sim_warmup_s:
                twin.advance(settings.sim_warmup_s)
        return twin.backend, twin
    if settings.backend == "kubernetes" and settings.clusters:
        from mcp_autoscale.cluster.multi import multi_cluster_backend

        return multi_cluster_backend(settings, namespaces, cache=kube_cache), None
    if settings.backend == "kubernetes":
        from mcp_autoscale.cluster.kubernetes import KubernetesBackend

        live = KubernetesBackend(settings, namespaces=namespaces, server_namespace=settings.kube_namespace)
        if kube_cache:
            from mcp_autoscale.cluster.kube_cached import CachedKubernetesBackend

            return CachedKubernetesBackend.build(live, settings), None
        return live, None
    raise InvalidInput(f"unknown backend {settings.backend!r}: use 'sim' or 'kubernetes'")


def _build_signals(settings: Settings, twin: Twin | None) -> SignalSource:
    kind = settings.resolved_signal_source
    if kind == "sim":
        if twin is None:
            raise ConfigError("signal source 'sim' needs --backend sim (or give --prometheus URL)")
        return twin.signals
    if kind == "prometheus":
        if not settings.prometheus_url:
            raise ConfigError(
                "signal source 'prometheus' needs --prometheus URL (MCP_AUTOSCALE_PROMETHEUS_URL)"
            )
        from mcp_autoscale.signals.prometheus import PrometheusSource

        return PrometheusSource(settings, dialect_overrides=settings.dialect_overrides)
    from mcp_autoscale.signals.scrape import ScrapeSource

    return ScrapeSource(
        settings, dialect_overrides=settings.dialect_overrides, timeout_s=settings.scrape_timeout_s
    )


def _pool_lock(settings: Settings, backend: ClusterBackend) -> PoolLock | None:
    """Agents on different machines share a cluster, not a disk: on Kubernetes the per-pool lock is a
    Lease in the server's namespace; elsewhere the gate's default file lock under the state dir."""
    api_client = getattr(backend, "api_client", None)
    if settings.backend != "kubernetes" or api_client is None:
        return None
    from mcp_autoscale.cluster.lease import LeaseLock

    holder = f"mcp-autoscale-{socket.gethostname()}-{os.getpid()}"
    return LeaseLock(
        api_client, settings.kube_namespace, holder, request_timeout_s=settings.request_timeout_s
    )


def check_state_paths(settings: Settings, *, read_only: bool = False) -> None:
    """The audit log and the state dir, checked before the first lock or write (``InvalidInput``, exit 2).

    A read-only reader (``snapshot``) needs neither to be writable: it never takes a lock or writes."""
    audit_flag = "--audit" if settings.audit_file is not None else "audit log (under --state-dir)"
    shared = settings.state_url is not None  # PostgreSQL holds the audit records: no local log
    if read_only:
        if not shared:
            readable_file(settings.resolved_audit_file, audit_flag, must_exist=False)
        return
    writable_dir(settings.state_dir, "--state-dir (MCP_AUTOSCALE_STATE_DIR)")
    if not shared:
        writable_file(settings.resolved_audit_file, audit_flag)


def build_app(
    settings: Settings, *, twin: Twin | None = None, read_only: bool = False, long_running: bool = False
) -> AutoscaleApp:
    """Build and validate everything; raise ``ConfigError`` with file/line/field on bad input.

    ``read_only``: for commands that only read (``snapshot``): the audit log is opened without its lock
    and nothing is created on disk. ``long_running`` (``serve``): fleet reads on Kubernetes come from a
    watch cache when ``settings.kube_cache`` (a one-shot command would pay a list and a watch per kind
    for one read); the gate is given the live backend either way."""
    check_state_paths(settings, read_only=read_only)
    policy, policy_source = resolve_policy(settings)
    catalogue = load_catalogue(settings.price_catalogue)
    runbooks = merged_runbooks(settings.runbooks_dir)  # a broken team runbook stops start-up
    backend, twin = _build_backend(
        settings, twin, policy.visible_namespaces(), kube_cache=long_running and settings.kube_cache
    )
    signals = _build_signals(settings, twin)
    store = open_store(settings, read_only=read_only)
    audit = store.audit

    def targets_for(pool: PoolState) -> SloTargets:
        return policy.slo_for(pool.ref) or settings.slo

    snapshotter = Snapshotter(
        backend,
        signals,
        targets_for=targets_for,
        cost_for=lambda pool: pool_cost_per_hour(pool, catalogue),
        namespaces=policy.visible_namespaces(),
        clock=(lambda: twin.now) if twin is not None else None,
        consistency=twin.lock if twin is not None else None,
    )

    def cost_delta(action: Action, pool: PoolState | None, node_pool: NodePoolState | None) -> float | None:
        return action_cost_delta(action, pool, node_pool, catalogue)

    gate = Gate(
        backend=getattr(backend, "live", backend),  # never the watch cache: actions are judged live
        policy=policy,
        audit=audit,
        settings=settings,
        evidence=snapshotter.pool,
        cost_delta=cost_delta,
        lock=store.lock or _pool_lock(settings, backend),
        proposals=store.proposals,
        webhook_url=settings.approval_webhook_url,
        rate_limit=(
            TokenBucket(settings.audit_rate_per_s, settings.audit_burst)
            if settings.audit_rate_per_s
            else None
        ),
    )
    reconciled = [] if read_only else gate.reconcile()  # a reader never repairs: the next writer does
    if not read_only:
        audit.recent_applied(gate.clock() - HISTORY)  # parse the day's changes now, not on the first call
    log.info(
        "app.ready",
        backend=backend.name,
        signals=signals.name,
        policy=policy_source,
        audit=audit.where,
        dry_run=settings.dry_run,
        reconciled=len(reconciled),
    )
    return AutoscaleApp(
        settings=settings,
        backend=backend,
        signals=signals,
        policy=policy,
        policy_source=policy_source,
        audit=audit,
        catalogue=catalogue,
        snapshotter=snapshotter,
        gate=gate,
        twin=twin,
        store=store,
        runbooks=runbooks,
    )
