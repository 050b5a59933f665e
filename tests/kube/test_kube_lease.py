"""LeaseLock: a per-pool lock on coordination.k8s.io/v1 Leases, against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from emulator import Emulator
from kubernetes import client

from mcp_autoscale.cluster.lease import LeaseLock, lease_name
from mcp_autoscale.errors import Conflict
from mcp_autoscale.locks import PoolLock

NS = "mcp-autoscale"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


def _lease(emu: Emulator, key: str = "chat/llama-8b") -> dict:  # type: ignore[type-arg]
    obj = emu.get("coordination.k8s.io/v1", "leases", lease_name(key), NS)
    assert obj is not None
    return obj


def test_lease_name_is_valid_and_bounded() -> None:
    assert lease_name("chat/llama-8b") == "mcp-autoscale-chat.llama-8b"
    long = lease_name("ns/" + "x" * 400)
    assert len(long) <= 253 and long != lease_name("ns/" + "x" * 401)


def test_acquire_holds_and_releases(emu: Emulator, api_client: client.ApiClient) -> None:
    a = LeaseLock(api_client, NS, "server-a")
    assert isinstance(a, PoolLock)
    with a.acquire("chat/llama-8b", timeout=1):
        held = _lease(emu)
        assert held["spec"]["holderIdentity"] == "server-a" and held["spec"]["leaseDurationSeconds"] == 30
        (create,) = emu.requests("POST")
        assert create.path == LEASES
    assert _lease(emu)["spec"].get("holderIdentity") is None  # released: no holder
    (release,) = emu.requests("PUT")
    assert release.body["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]


def test_second_holder_waits_then_conflicts(emu: Emulator, api_client: client.ApiClient) -> None:
    a = LeaseLock(api_client, NS, "server-a")
    b = LeaseLock(api_client, NS, "server-b", poll_s=0.05)
    with a.acquire("chat/llama-8b", timeout=1):
        with pytest.raises(Conflict, match="locked by server-a"), b.acquire("chat/llama-8b", timeout=0.2):
            pytest.fail("must not enter while server-a holds the lease")
        assert _lease(emu)["spec"]["holderIdentity"] == "server-a"
    with b.acquire("chat/llama-8b", timeout=1):
        taken = _lease(emu)
        assert taken["spec"]["holderIdentity"] == "server-b" and taken["spec"]["leaseTransitions"] == 1
    with a.acquire("chat/other", timeout=1):  # other pools are independent
        assert _lease(emu, "chat/other")["spec"]["holderIdentity"] == "server-a"


def test_expired_lease_is_taken_over(emu: Emulator, api_client: client.ApiClient) -> None:
    old = (datetime.now(UTC) - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    emu.seed(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": lease_name("chat/llama-8b"), "namespace": NS},
            "spec": {"holderIdentity": "crashed", "leaseDurationSeconds": 30, "renewTime": old},
        }
    )
    with LeaseLock(api_client, NS, "server-a").acquire("chat/llama-8b", timeout=1):
        assert _lease(emu)["spec"]["holderIdentity"] == "server-a"


def test_create_race_and_stale_update_retry(emu: Emulator, api_client: client.ApiClient) -> None:
    lock = LeaseLock(api_client, NS, "server-a", poll_s=0.01)
    emu.inject("POST", r"/leases$", 409)  # another replica created it first (then went away)
    with lock.acquire("chat/llama-8b", timeout=2):
        assert _lease(emu)["spec"]["holderIdentity"] == "server-a"
    assert len(emu.requests("POST")) == 2
    emu.on(
        "PUT",
        r"/leases/",
        lambda e: e.bump("coordination.k8s.io/v1", "leases", lease_name("chat/llama-8b"), NS),
    )
    with lock.acquire("chat/llama-8b", timeout=2):  # first update loses the rv race, the second wins
        assert _lease(emu)["spec"]["holderIdentity"] == "server-a"
    puts = emu.requests("PUT")
    assert len(puts) >= 3  # release, lost update, winning update (+ release)
