"""Leader election for the agent loop (a Kubernetes Lease), against the API-server emulator: one replica
acts, the others stand by, a dead leader's Lease expires and a standby takes over, and a candidate that
cannot reach the API stands by (fail closed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube"))

from emulator import Emulator
from test_agent_e2e import agent, audit_records

from mcp_autoscale.agent.leader import LeaseElector, lease_duration_for
from mcp_autoscale.cluster.lease import LeaseLock

NS = "mcp-autoscale"
LEASE_KEY = ("coordination.k8s.io", "v1", "leases", NS, "mcp-autoscale-agent")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    server = Emulator().start()
    yield server
    server.stop()


@pytest.fixture
def api(emu: Emulator) -> Iterator[client.ApiClient]:
    emu.reset()
    with client.ApiClient(client.Configuration(host=emu.url)) as api_client:
        yield api_client


def elector(api: client.ApiClient, who: str, duration_s: int = 30) -> LeaseElector:
    return LeaseElector(LeaseLock(api, NS, who, lease_duration_s=duration_s, request_timeout_s=5))


def test_one_leads_the_other_stands_by_until_the_lease_is_free(api: client.ApiClient, emu: Emulator) -> None:
    a, b = elector(api, "replica-a"), elector(api, "replica-b")
    assert a.campaign().leading
    standby = b.campaign()
    assert not standby.leading and standby.holder == "replica-a" and standby.error is None
    first_renew = emu.store[LEASE_KEY]["spec"]["renewTime"]
    assert a.campaign().leading  # the leader renews at each pass
    assert emu.store[LEASE_KEY]["spec"]["renewTime"] >= first_renew
    assert not b.campaign().leading
    b.resign()  # a standby's resign never frees someone else's Lease
    assert emu.store[LEASE_KEY]["spec"]["holderIdentity"] == "replica-a"
    a.resign()
    assert b.campaign().leading and not a.campaign().leading
    assert emu.store[LEASE_KEY]["spec"]["leaseTransitions"] == 1


def test_a_dead_leaders_lease_expires_and_a_standby_takes_over(api: client.ApiClient, emu: Emulator) -> None:
    a, b = elector(api, "replica-a", duration_s=30), elector(api, "replica-b", duration_s=30)
    assert a.campaign().leading
    # replica-a stops renewing: its last renewal is now older than the Lease's duration.
    stale = (datetime.now(UTC) - timedelta(seconds=31)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    emu.store[LEASE_KEY]["spec"]["renewTime"] = stale
    took = b.campaign()
    assert took.leading and emu.store[LEASE_KEY]["spec"]["holderIdentity"] == "replica-b"
    back = a.campaign()  # the old leader comes back: it must not act any more
    assert not back.leading and back.holder == "replica-b"


def test_a_candidate_that_cannot_ask_stands_by(api: client.ApiClient, emu: Emulator) -> None:
    emu.inject("GET", r"/leases/mcp-autoscale-agent$", 503, times=2)
    outcome = elector(api, "replica-a").campaign()
    assert not outcome.leading and outcome.error and "unavailable" in outcome.error


def test_lease_outlasts_two_intervals() -> None:
    assert lease_duration_for(300) >= 600 and lease_duration_for(1) == 15


def test_agent_replicas_standby_then_act(tmp_path: Path, api: client.ApiClient, emu: Emulator) -> None:
    """Two agent replicas: while another holds the Lease, this one starts no server, reads and calls
    nothing (exit 0, a standby report); once the Lease is free it leads and acts."""
    kubeconfig = emu.write_kubeconfig(tmp_path / "kubeconfig", token="t")
    env = {"KUBECONFIG": str(kubeconfig), "HOSTNAME": "replica-b"}
    audit = tmp_path / "audit.jsonl"
    other = elector(api, "replica-a", duration_s=600)
    assert other.campaign().leading

    code, md, js = agent(tmp_path, "--leader-elect", "--audit", str(audit), env=env)
    [it] = js["iterations"]
    assert code == 0 and it["standby"] is True and it["leader"] == "replica-a"
    assert it["pools"] == [] and it["proposals"] == [] and audit_records(audit) == []
    assert "**Standby**: replica-a leads" in md

    other.resign()
    code, md, js = agent(tmp_path, "--leader-elect", "--audit", str(audit), env=env)
    [it] = js["iterations"]
    assert it["standby"] is False and it["pools"], md
    assert code in (0, 3)
    # It resigned when its loop ended, so the next replica does not wait for the Lease to expire.
    assert not emu.store[LEASE_KEY]["spec"].get("holderIdentity")
