"""Leader election for the agent loop: with several replicas, one acts and the others stand by.

The leader holds one Kubernetes Lease (``mcp-autoscale-agent`` in the server's namespace, by default) and
renews it at the start of every pass; a standby tries to take it at the start of its passes and succeeds
only once the Lease is free or has expired (``lease_duration_s`` after the leader's last renewal, which
must outlast one interval). The Lease logic is ``cluster.lease.LeaseLock``'s: create, or a
resourceVersion-guarded update, so two candidates never both win. If the API cannot be asked, the
candidate fails closed: it stands by.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field

from mcp_autoscale.cluster.lease import LeaseLock, lease_name
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.logs import get_logger

log = get_logger(__name__)

ELECTION_KEY = "agent"
"""Lease ``mcp-autoscale-agent`` (LeaseLock prefixes ``mcp-autoscale-``)."""


def default_identity() -> str:
    """The pod name in a cluster (HOSTNAME), else host and pid: unique per candidate."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


def lease_duration_for(interval_s: float) -> int:
    """Long enough that a live leader renews in time (two intervals plus slack), short enough to fail over."""
    return max(15, math.ceil(2 * interval_s + 10))


@dataclass
class Campaign:
    """The outcome of one attempt: leading, or standing by behind ``holder`` (or because of ``error``)."""

    leading: bool
    holder: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


class LeaseElector:
    """``campaign()`` before each pass (acquire or renew); ``resign()`` when the loop ends."""

    def __init__(self, lock: LeaseLock, key: str = ELECTION_KEY) -> None:
        self.lock = lock
        self.key = key

    @property
    def identity(self) -> str:
        return self.lock.holder

    @property
    def lease(self) -> str:
        return f"{self.lock.namespace}/{lease_name(self.key)}"

    def campaign(self) -> Campaign:
        try:
            if self.lock.try_acquire(self.key):
                return Campaign(leading=True, holder=self.identity)
            return Campaign(leading=False, holder=self.lock.holder_of(self.key))
        except AutoscaleError as err:  # fail closed: a candidate that cannot ask does not act
            log.warning("leader.campaign_failed", lease=self.lease, error=str(err))
            return Campaign(leading=False, error=str(err))

    def resign(self) -> None:
        """Free the Lease so a standby takes over at its next pass (best effort; it expires anyway)."""
        self.lock.release(self.key)


def lease_elector(settings: Settings, interval_s: float, identity: str | None = None) -> LeaseElector:
    """An elector on the cluster of ``settings`` (kubeconfig and context, or in-cluster), in
    ``settings.kube_namespace``."""
    from mcp_autoscale.cluster.kubernetes import load_api_client

    lock = LeaseLock(
        load_api_client(settings),
        settings.kube_namespace,
        identity or default_identity(),
        lease_duration_s=lease_duration_for(interval_s),
        request_timeout_s=settings.request_timeout_s,
    )
    return LeaseElector(lock)
