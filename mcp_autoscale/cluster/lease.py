"""A per-pool lock on a Kubernetes Lease (coordination.k8s.io/v1), so two server replicas (or a CLI and a
server) never act on the same pool at once.

Acquire = create the Lease, or take it over with a resourceVersion-guarded update when it is free, ours or
expired (renewTime + leaseDurationSeconds in the past). A 409 on either means someone else won the race:
re-read and try again until the timeout. Release clears holderIdentity (guarded by rv too); a failed release
only means the Lease expires on its own after ``lease_duration_s``.
Matches the ``PoolLock`` protocol of mcp_autoscale.locks: ``acquire(key, timeout)`` is a context manager.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mcp_autoscale.cluster.kube_errors import TRANSPORT_ERRORS, Target, map_api_error, map_transport_error
from mcp_autoscale.errors import Conflict

JSON = dict[str, Any]
LEASE_PREFIX = "mcp-autoscale-"
MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def lease_name(key: str) -> str:
    """A valid Lease name for a pool key such as ``chat/llama-8b`` (hash suffix when it would be too long)."""
    base = re.sub(r"[^a-z0-9.-]+", ".", key.lower()).strip(".-") or "pool"
    name = LEASE_PREFIX + base
    if len(name) > 253:
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        name = f"{name[:240].rstrip('.-')}-{digest}"
    return name


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


class LeaseLock:
    """``with lock.acquire("chat/llama-8b", timeout=10): ...`` holds the pool's Lease for the block."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        holder: str,
        *,
        lease_duration_s: int = 30,
        request_timeout_s: float = 10.0,
        poll_s: float = 0.2,
    ) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.holder = holder
        self.lease_duration_s = lease_duration_s
        self._timeout = request_timeout_s
        self._poll_s = poll_s

    def _call(self, target: Target, fn: Any, *args: Any) -> JSON:
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self._timeout)
            data = resp.data
            resp.release_conn()
        except ApiException:
            raise
        except TRANSPORT_ERRORS as e:
            raise map_transport_error(e, target, self._timeout) from None
        return dict(json.loads(data))

    def _spec(self, now: datetime, transitions: int) -> JSON:
        stamp = now.strftime(MICROTIME)
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_s,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    def _free_for_us(self, lease: JSON, now: datetime) -> bool:
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if not holder or holder == self.holder:
            return True
        renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.lease_duration_s)
        return renewed is None or renewed + timedelta(seconds=duration) < now

    def try_acquire(self, key: str) -> bool:
        """One attempt: True when we now hold the Lease for ``key``."""
        name = lease_name(key)
        get_t = Target("get", "coordination.k8s.io", "leases", "Lease", name, self.namespace)
        now = datetime.now(UTC)
        try:
            lease = self._call(get_t, self._api.read_namespaced_lease, name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise map_api_error(e, get_t) from None
            body = {"metadata": {"name": name, "namespace": self.namespace}, "spec": self._spec(now, 0)}
            create_t = Target("create", "coordination.k8s.io", "leases", "Lease", name, self.namespace)
            try:
                self._call(create_t, self._api.create_namespaced_lease, self.namespace, body)
                return True
            except ApiException as ce:
                if ce.status == 409:
                    return False
                raise map_api_error(ce, create_t) from None
        if not self._free_for_us(lease, now):
            return False
        spec = lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0) + (
            0 if spec.get("holderIdentity") == self.holder else 1
        )
        lease["spec"] = self._spec(now, transitions)
        update_t = Target("update", "coordination.k8s.io", "leases", "Lease", name, self.namespace)
        try:
            self._call(update_t, self._api.replace_namespaced_lease, name, self.namespace, lease)
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise map_api_error(e, update_t) from None

    def holder_of(self, key: str) -> str | None:
        name = lease_name(key)
        t = Target("get", "coordination.k8s.io", "leases", "Lease", name, self.namespace)
        try:
            lease = self._call(t, self._api.read_namespaced_lease, name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise map_api_error(e, t) from None
        return (lease.get("spec") or {}).get("holderIdentity")

    def release(self, key: str) -> None:
        name = lease_name(key)
        t = Target("update", "coordination.k8s.io", "leases", "Lease", name, self.namespace)
        try:
            lease = self._call(t, self._api.read_namespaced_lease, name, self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") != self.holder:
                return
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["renewTime"] = None
            self._call(t, self._api.replace_namespaced_lease, name, self.namespace, lease)
        except Exception:  # the Lease expires by itself; never mask the action's outcome
            return

    @contextmanager
    def acquire(self, key: str, timeout: float) -> Iterator[None]:
        """Hold the Lease for ``key`` in the block; ``Conflict`` if not free within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        wait = threading.Event()
        while not self.try_acquire(key):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Conflict(
                    f"pool {key} is locked by {self.holder_of(key) or 'another writer'} "
                    f"(Lease {self.namespace}/{lease_name(key)}); try again shortly"
                )
            wait.wait(min(self._poll_s, remaining))
        try:
            yield
        finally:
            self.release(key)
