"""Kubernetes API requests and time per snapshot at 10, 100 and 1,000 pools, against the test emulator:
live lists, the watch cache's first snapshot, and the cache's steady state under churn.

The emulator (tests/kube/emulator.py) serves the real HTTP wire to the real ``kubernetes`` client, watches
included, so the request count is exact; the time is the client's parsing plus the emulator's (a real API
server is faster per request and slower per round trip). A snapshot here is what ``Snapshotter.take`` asks
of the backend: ``list_pools`` plus ``list_node_pools``.

- live: ``KubernetesBackend`` (one list per kind, every snapshot);
- cache, first: ``CachedKubernetesBackend`` from cold: one list per kind, then one watch per kind opens;
- cache, steady: ``--snapshots`` snapshots, each after ``--churn`` scale changes made through the API; a
  snapshot is taken once the cache has received those events (so it shows them), and costs no request.

    .venv/bin/python benchmarks/bench_kube_fleet.py [--sizes 10,100,1000] [--namespaces 40]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kube"))

from emulator import Emulator
from kube_fleet import fleet_objects
from kube_objects import KEDA_CRD, NODEPOOL_CRD
from kubernetes import client

from mcp_autoscale.cluster.kube_cache import KubeCache
from mcp_autoscale.cluster.kube_cached import CachedKubernetesBackend
from mcp_autoscale.cluster.kubernetes import KubernetesBackend
from mcp_autoscale.config import Settings


def _lists(emu: Emulator) -> int:
    return sum(1 for r in emu.requests("GET") if r.query.get("watch") != "true")


def _until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the cache did not catch up")
        time.sleep(0.002)


def _snapshot(backend: KubernetesBackend | CachedKubernetesBackend) -> tuple[int, float]:
    t = time.perf_counter()
    found = backend.list_pools()
    backend.list_node_pools()
    return len(found), time.perf_counter() - t


def measure(
    emu: Emulator, pools: int, namespaces: int, runs: int, snapshots: int, churn: int
) -> dict[str, str]:
    emu.reset()
    emu.seed(KEDA_CRD)
    emu.seed(NODEPOOL_CRD)
    for obj in fleet_objects(pools, namespaces=min(pools, namespaces)):
        emu.seed(obj)
    settings = Settings(request_timeout_s=60)
    row: dict[str, str] = {"pools": str(pools), "namespaces": str(min(pools, namespaces))}
    with client.ApiClient(client.Configuration(host=emu.url)) as api:
        live = KubernetesBackend(settings, api)
        times: list[float] = []
        for _ in range(runs):
            emu.clear_log()
            found, seconds = _snapshot(live)
            times.append(seconds)
            assert found == pools
        row["live requests"] = str(len(emu.requests()))
        row["live s (median)"] = f"{statistics.median(times):.3f}"

        emu.clear_log()
        watch_client = live.watch_client()
        cache = KubeCache(live.watch_queries(watch_client), max_stale_s=90, sync_timeout_s=60)
        cached = CachedKubernetesBackend(live, cache, watch_client)
        try:
            found, seconds = _snapshot(cached)
            assert found == pools and not cached.read_notes()
            watched = sum(1 for i in cache.informers if not i.unavailable and i.resource_version)
            _until(lambda: len(emu.watches()) >= watched)
            row["cache first: lists + watches"] = f"{_lists(emu)} + {len(emu.watches())}"
            row["cache first s"] = f"{seconds:.3f}"

            apps = client.AppsV1Api(api)
            rng = random.Random(7)
            events_before = cache.stats()["events"]
            steady: list[float] = []
            reads = 0
            for _ in range(snapshots):
                target = cache.stats()["events"] + churn
                for _ in range(churn):
                    i = rng.randrange(pools)
                    ns, name = f"team-{i % min(pools, namespaces):02d}", f"llm-{i:04d}"
                    apps.patch_namespaced_deployment_scale(
                        name, ns, {"spec": {"replicas": rng.randint(1, 6)}}
                    )
                _until(lambda target=target: cache.stats()["events"] >= target)  # type: ignore[misc]
                emu.clear_log()
                found, seconds = _snapshot(cached)
                reads += len(emu.requests())
                steady.append(seconds)
                assert found == pools and not cached.read_notes()
            row["cache steady requests/snapshot"] = f"{reads / max(1, snapshots):g}"
            row["cache steady s (median)"] = f"{statistics.median(steady):.3f}"
            row["watch events delivered"] = str(cache.stats()["events"] - events_before)
            objects = [o for i in cache.informers for o in i.objects.values()]
            row["cached objects (KB JSON)"] = f"{len(objects)} ({len(json.dumps(objects)) // 1024})"
        finally:
            cached.close()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--namespaces", type=int, default=40)
    ap.add_argument("--runs", type=int, default=5, help="live snapshots per size")
    ap.add_argument("--snapshots", type=int, default=20, help="steady-state cache snapshots per size")
    ap.add_argument("--churn", type=int, default=5, help="scale changes before each steady snapshot")
    args = ap.parse_args()
    emu = Emulator().start()
    try:
        rows = [
            measure(emu, int(n), args.namespaces, args.runs, args.snapshots, args.churn)
            for n in args.sizes.split(",")
        ]
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "---|" * len(rows[0]))
        for row in rows:
            print("| " + " | ".join(row.values()) + " |")
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
