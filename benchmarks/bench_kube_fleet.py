"""Kubernetes API requests and time per snapshot at 10, 100 and 1,000 pools, against the test emulator.

The emulator (tests/kube/emulator.py) serves the real HTTP wire to the real ``kubernetes`` client, so the
request count is exact; the time is the client's parsing plus the emulator's (a real API server is faster
per request and slower per round trip). A snapshot here is what ``Snapshotter.take`` asks of the backend:
``list_pools`` plus ``list_node_pools``.

    .venv/bin/python benchmarks/bench_kube_fleet.py [--sizes 10,100,1000] [--namespaces 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kube"))

from emulator import Emulator
from kube_fleet import fleet_objects
from kube_objects import KEDA_CRD, NODEPOOL_CRD
from kubernetes import client

from mcp_autoscale.cluster.kubernetes import KubernetesBackend
from mcp_autoscale.config import Settings


def measure(emu: Emulator, pools: int, namespaces: int, runs: int) -> tuple[int, int, float, float]:
    emu.reset()
    emu.seed(KEDA_CRD)
    emu.seed(NODEPOOL_CRD)
    for obj in fleet_objects(pools, namespaces=min(pools, namespaces)):
        emu.seed(obj)
    with client.ApiClient(client.Configuration(host=emu.url)) as api:
        backend = KubernetesBackend(Settings(request_timeout_s=60), api)
        times: list[float] = []
        requests = 0
        for _ in range(runs):
            emu.clear_log()
            t = time.perf_counter()
            found = backend.list_pools()
            backend.list_node_pools()
            times.append(time.perf_counter() - t)
            requests = len(emu.requests())
        assert len(found) == pools
    return pools, requests, statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--namespaces", type=int, default=40)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    emu = Emulator().start()
    try:
        print("| pools | namespaces | API requests per snapshot | median s | max s |")
        print("|---|---|---|---|---|")
        for n in (int(s) for s in args.sizes.split(",")):
            pools, requests, median, worst = measure(emu, n, args.namespaces, args.runs)
            ns = min(n, args.namespaces)
            print(f"| {pools} | {ns} | {requests} | {median:.2f} | {worst:.2f} |")
    finally:
        emu.stop()


if __name__ == "__main__":
    main()
