"""The watch cache of the Kubernetes read path (mcp_autoscale/cluster/kube_cache.py, kube_cached.py),
against the emulator's watch streams: list once then watch, 410 Gone -> relist, fail closed past the
bound, and the gate reading live while the cache lags."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from emulator import Emulator
from kube_objects import default_fleet, deployment
from kubernetes import client
from mcp import Client
from prometheus_client import REGISTRY

from mcp_autoscale.app import build_app
from mcp_autoscale.cluster.kube_cache import Informer, KubeCache, Query, trim_pod
from mcp_autoscale.cluster.kube_cached import CachedKubernetesBackend
from mcp_autoscale.cluster.kubernetes import KubernetesBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.models import PoolRef
from mcp_autoscale.server import create_server
from mcp_autoscale.snapshot import build_snapshot

REF = PoolRef(namespace="batch", name="qwen-7b")


class FakeClock:
    """Monotonic time the test moves: staleness is judged against it, not the wall clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll a condition the cache's threads make true (bounded; fails with ``what``)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def lists(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests("GET") if r.query.get("watch") != "true"]


@pytest.fixture
def fleet(crds: Emulator) -> Emulator:
    for obj in default_fleet():
        crds.seed(obj)
    crds.bookmark_interval_s = 0.2
    return crds


@pytest.fixture
def cached(
    fleet: Emulator, api_client: client.ApiClient
) -> Iterator[tuple[CachedKubernetesBackend, FakeClock]]:
    clock = FakeClock()
    live = KubernetesBackend(Settings(request_timeout_s=5), api_client)
    backend = CachedKubernetesBackend(live, KubeCache(live.watch_queries(), max_stale_s=30, clock=clock))
    yield backend, clock
    backend.close()


def _replicas(backend: CachedKubernetesBackend) -> int:
    return next(p.desired_replicas for p in backend.list_pools() if p.ref.key == REF.key)


def test_list_once_then_a_watch_sees_a_scale_change_without_a_new_list(
    fleet: Emulator, api_client: client.ApiClient, cached: tuple[CachedKubernetesBackend, FakeClock]
) -> None:
    backend, _ = cached
    live, live_node_pools = backend.live.list_pools(), backend.live.list_node_pools()
    fleet.clear_log()
    assert backend.list_pools() == live and backend.read_notes() == []
    assert backend.list_node_pools() == live_node_pools
    first = lists(fleet)
    assert len(first) == len(set(first)) == 7  # one list per query, then watches
    wait_for(lambda: len(fleet.watches()) >= 6, "a watch per listed kind (no NodeClaim CRD here)")

    fleet.clear_log()
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        "qwen-7b", "batch", {"spec": {"replicas": 7}}
    )
    wait_for(lambda: _replicas(backend) == 7, "the MODIFIED event")
    # the change arrived on the watch: no list, and the reads cost no request (NodeClaims, absent here,
    # are only rechecked in the background every bound/3)
    backend.list_node_pools()
    assert [(r.method, r.path) for r in fleet.requests() if "nodeclaims" not in r.path] == [
        ("PATCH", "/apis/apps/v1/namespaces/batch/deployments/qwen-7b/scale")
    ]
    assert backend.cache.stats()["events"] >= 1


def test_410_gone_relists_and_the_cache_converges(
    fleet: Emulator, cached: tuple[CachedKubernetesBackend, FakeClock]
) -> None:
    backend, _ = cached
    backend.list_pools()
    wait_for(lambda: len(fleet.watches()) >= 6, "the watches")
    fleet.clear_log()
    listed = backend.cache.stats()["lists"]
    with fleet.lock:  # while no watch can resume: a new pool appears and the history is compacted
        fleet.break_watches()
        fleet.seed(deployment("batch", "mistral-7b", model="mistral/7b", replicas=3))
        fleet.compact()
    wait_for(lambda: backend.cache.stats()["expired"] >= 6, "410 Expired on every resumed watch")
    wait_for(lambda: backend.cache.stats()["lists"] >= listed + 6, "a relist of every watched kind")
    assert any(p.ref.name == "mistral-7b" for p in backend.list_pools())
    assert "/apis/apps/v1/deployments" in lists(fleet)
    assert backend.read_notes() == []  # the relist kept the cache within its bound: served from it
    assert {p.ref.key for p in backend.list_pools()} == {p.ref.key for p in backend.live.list_pools()}


def test_a_watch_broken_beyond_the_bound_falls_back_to_live_lists_and_says_so(
    fleet: Emulator, api_client: client.ApiClient, cached: tuple[CachedKubernetesBackend, FakeClock]
) -> None:
    backend, clock = cached
    assert _replicas(backend) == 2
    wait_for(lambda: len(fleet.watches()) >= 6, "the watches")
    fleet.inject("GET", "/deployments$", 503, times=10**6, watch=True)  # lists still work
    fleet.break_watches()
    dep = next(i for i in backend.cache.informers if i.query.what == "deployments")
    wait_for(lambda: dep.broken_since is not None, "the broken watch")
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        "qwen-7b", "batch", {"spec": {"replicas": 9}}
    )

    clock.advance(29)  # within the bound: the cache answers (with what it last knew)
    assert _replicas(backend) == 2 and backend.read_notes() == []
    clock.advance(2)  # past it: live lists, and a note saying why
    fleet.clear_log()
    live_reads = REGISTRY.get_sample_value("mcp_autoscale_kube_cache_reads_total", {"source": "live"}) or 0.0
    assert _replicas(backend) == 9
    assert (
        REGISTRY.get_sample_value("mcp_autoscale_kube_cache_reads_total", {"source": "live"})
        == live_reads + 1
    )
    assert "/apis/apps/v1/deployments" in lists(fleet)
    (note,) = backend.read_notes()
    assert (
        note.startswith("watch cache stale, pools read live") and "deployments" in note and "> 30 s" in note
    )


def test_the_note_shows_in_the_snapshot_without_making_it_partial() -> None:
    from datetime import UTC, datetime

    from mcp_autoscale.models import SignalReport, SloTargets

    snap = build_snapshot(
        [],
        [],
        SignalReport(source="prometheus", pools={}, collected_at=datetime.now(UTC)),
        targets_for=lambda p: SloTargets(),
        cost_for=lambda p: None,
        backend="kubernetes",
        now=datetime.now(UTC),
        notes=["watch cache stale, pools read live from the API server: ..."],
    )
    assert snap.warnings == ["watch cache stale, pools read live from the API server: ..."]
    assert snap.partial is False


def test_pods_are_kept_trimmed() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "n",
            "labels": {"app": "x"},
            "annotations": {"prometheus.io/port": "9000", "big": "x" * 1000},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 1}]}],
        },
        "status": {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True", "reason": "r"}]},
    }
    kept = trim_pod(pod)
    assert kept["metadata"] == {
        "name": "p",
        "namespace": "n",
        "labels": {"app": "x"},
        "annotations": {"prometheus.io/port": "9000"},
    }
    assert kept["spec"] == {"nodeName": "n1", "containers": [{"ports": [{"containerPort": 1}]}]}
    assert kept["status"] == {"podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}


POLICY = """
version: 1
tools: [scale_deployment]
namespaces: [chat, batch]
rules:
  - name: prod
    match: {namespaces: [chat, batch]}
    replicas: {min: 1, max: 20}
    max_step: 4
"""


@pytest.fixture
def app_settings(fleet: Emulator, tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    kubeconfig = fleet.write_kubeconfig(tmp_path / "kubeconfig")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return make_settings(backend="kubernetes", kubeconfig=kubeconfig, policy_file=policy)


@pytest.mark.anyio
async def test_the_gate_reads_live_while_the_cache_lags(fleet: Emulator, app_settings: Settings) -> None:
    one_shot = build_app(app_settings, read_only=True)
    assert isinstance(one_shot.backend, KubernetesBackend)  # snapshot, doctor: no cache
    off = build_app(app_settings.model_copy(update={"kube_cache": False}), long_running=True, read_only=True)
    assert isinstance(off.backend, KubernetesBackend)  # serve --no-kube-cache
    app = build_app(app_settings, long_running=True)
    backend = app.backend
    assert isinstance(backend, CachedKubernetesBackend) and app.gate.backend is backend.live
    try:
        assert _replicas(backend) == 2
        wait_for(lambda: len(fleet.watches()) >= 6, "the watches")
        fleet.inject("GET", "/deployments$", 503, times=10**6, watch=True)
        fleet.break_watches()
        dep = next(i for i in backend.cache.informers if i.query.what == "deployments in batch")
        wait_for(lambda: dep.broken_since is not None, "the broken watch")
        scale = client.AppsV1Api(backend.api_client)
        scale.patch_namespaced_deployment_scale("qwen-7b", "batch", {"spec": {"replicas": 10}})
        assert _replicas(backend) == 2  # the cache lags (within its bound)...

        async with Client(create_server(app)) as c:
            out = await c.call_tool(
                "scale_deployment",
                {
                    "namespace": "batch",
                    "deployment": "qwen-7b",
                    "replicas": 12,
                    "rationale": "q",
                    "dry_run": False,
                },
            )
        result = out.structured_content
        assert result is not None and result["status"] == "applied", out.content
        # ...but the gate judged the step (10 -> 12, within max_step 4) on what the API server has
        (change,) = [c for c in result["changes"] if c["field"].endswith("spec.replicas")]
        assert (change["before"], change["after"]) == (10, 12)
        assert fleet.get("apps/v1", "deployments", "qwen-7b", "batch")["spec"]["replicas"] == 12  # type: ignore[index]
    finally:
        backend.close()


def test_the_agent_passes_the_flag_to_its_server() -> None:
    from mcp_autoscale.commands.agent import serve_args

    common = ("kubernetes", None, None, None, False, None, None, None, None, "info")
    assert "--no-kube-cache" in serve_args(*common, kube_cache=False)
    assert "--kube-cache" in serve_args(*common, kube_cache=True)
    assert not any("kube-cache" in a for a in serve_args(*common))  # unset: the server's default (on)


def test_several_clusters_keep_a_cache_each_and_the_gate_gets_them_live(
    fleet: Emulator, api_client: client.ApiClient
) -> None:
    from mcp_autoscale.cluster.multi import MultiClusterBackend

    clock = FakeClock()
    members = {}
    for name in ("eu", "us"):
        live = KubernetesBackend(Settings(request_timeout_s=5), api_client)
        members[name] = CachedKubernetesBackend(
            live, KubeCache(live.watch_queries(), max_stale_s=30, clock=clock)
        )
    multi = MultiClusterBackend(members, default="eu")
    try:
        assert {p.ref.cluster for p in multi.list_pools()} == {"eu", "us"} and multi.read_notes() == []
        gate_view = multi.live
        assert all(gate_view.clusters[n] is members[n].live for n in members)
        fleet.inject("GET", "/pods$", 503, times=10**6, watch=True)
        fleet.break_watches()
        pods = [next(i for i in m.cache.informers if i.query.what == "pods") for m in members.values()]
        wait_for(lambda: all(i.broken_since is not None for i in pods), "both pod watches broken")
        clock.advance(31)
        assert len(multi.list_pools()) == 2 * len(default_fleet_pools())
        notes = multi.read_notes()
        assert sorted(n.split(":")[0] for n in notes) == ["cluster eu", "cluster us"]
        assert all("pods: watch broken" in n for n in notes)
    finally:
        for m in members.values():
            m.close()


def default_fleet_pools() -> list[str]:
    return [
        o["metadata"]["name"]
        for o in default_fleet()
        if o["kind"] == "Deployment" and o["metadata"].get("labels", {}).get("mcp-autoscale/pool") == "true"
    ]


class RecordedStop(threading.Event):
    """The informer's stop event, recording its back-off waits instead of sleeping them."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


class EmptyStream:
    """A watch response the server (or a proxy) ends at once, with no event and no error."""

    status = 200

    def stream(self, amt: object = None, decode_content: object = None) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _informer(watch_fn: Callable[..., object], clock: FakeClock, calls: list[str]) -> Informer:
    def list_call() -> dict[str, object]:
        calls.append("list")
        return {"items": [], "metadata": {"resourceVersion": "5"}}

    query = Query("deployments", "deployments", list_call, watch_fn)
    inf = Informer(query, threading.Lock(), max_stale_s=30, resync_s=0, connect_timeout_s=1, clock=clock)
    inf._stop = RecordedStop()
    return inf


def test_a_watch_that_ends_at_once_without_events_is_backed_off_and_vouches_for_nothing() -> None:
    clock, calls = FakeClock(), list[str]()

    def watch_fn(*args: object, **kwargs: object) -> EmptyStream:
        calls.append("watch")
        clock.advance(40)  # each empty stream "ends" past the bound
        if calls.count("watch") == 5:
            inf._stop.set()
        return EmptyStream()

    inf = _informer(watch_fn, clock, calls)
    inf._run()
    assert calls.count("watch") == 5
    stop = inf._stop
    assert isinstance(stop, RecordedStop) and len(stop.waits) >= 4 and all(w > 0 for w in stop.waits)
    assert not inf.fresh() and inf.last_error == "ShortWatch"  # the cache falls back to live reads


def test_410_on_every_fresh_list_backs_off_instead_of_relisting_in_a_hot_loop() -> None:
    from kubernetes.client.exceptions import ApiException

    clock, calls = FakeClock(), list[str]()

    def watch_fn(*args: object, **kwargs: object) -> None:
        calls.append("watch")
        if calls.count("watch") == 6:
            inf._stop.set()
        raise ApiException(status=410, reason="Expired")

    inf = _informer(watch_fn, clock, calls)
    inf._run()
    assert calls.count("list") == 6
    stop = inf._stop
    assert isinstance(stop, RecordedStop) and len(stop.waits) == 5  # the first 410 relists at once
    assert all(w > 0 for w in stop.waits)


class OpenStream(EmptyStream):
    """A watch response that would block until the server's timeout unless it was closed first."""

    def __init__(self) -> None:
        self.closed = False
        self.read_while_open = False

    def stream(self, amt: object = None, decode_content: object = None) -> Iterator[bytes]:
        self.read_while_open = not self.closed
        return iter(())

    def close(self) -> None:
        self.closed = True


def test_a_stop_during_the_watch_request_closes_the_stream_instead_of_waiting_for_its_timeout() -> None:
    clock, calls, responses = FakeClock(), list[str](), list[OpenStream]()

    def watch_fn(*args: object, **kwargs: object) -> OpenStream:
        calls.append("watch")
        inf.stop()  # close() arrives while the watch request is in flight: no response to shut yet
        responses.append(OpenStream())
        return responses[-1]

    inf = _informer(watch_fn, clock, calls)
    inf._run()
    assert calls == ["list", "watch"]
    assert not responses[0].read_while_open  # with a real server: blocked until timeoutSeconds
