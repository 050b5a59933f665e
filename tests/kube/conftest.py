"""Fixtures: the API-server emulator, a real `kubernetes` ApiClient pointed at it, and the e2e switch.

``emu`` always is the in-process emulator (tests that assert the exact requests or inject faults need it).
``cluster`` is what portable tests (marked ``e2e``) use: the emulator by default, or a real cluster when
``MCP_AUTOSCALE_E2E_KUBECONFIG`` names a kubeconfig (a kind cluster with the KEDA and Karpenter CRDs
installed; see docs/kubernetes.md). Portable tests only talk to the API through the client, so both work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from emulator import Emulator
from kube_cluster import Cluster, EmulatedCluster
from kube_objects import KEDA_CRD, NODEPOOL_CRD
from kubernetes import client, config

E2E_ENV = "MCP_AUTOSCALE_E2E_KUBECONFIG"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: portable Kubernetes test; runs on a real cluster when " + E2E_ENV
    )


@pytest.fixture(scope="session")
def _server() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(_server: Emulator) -> Emulator:
    """A fresh (reset) emulator for each test."""
    _server.reset()
    return _server


@pytest.fixture
def api_client(emu: Emulator) -> Iterator[client.ApiClient]:
    cfg = client.Configuration(host=emu.url)
    with client.ApiClient(cfg) as api:
        yield api


@pytest.fixture
def crds(emu: Emulator) -> Emulator:
    """The emulator with the KEDA ScaledObject and Karpenter NodePool CRDs installed."""
    emu.seed(KEDA_CRD)
    emu.seed(NODEPOOL_CRD)
    return emu


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    kubeconfig = os.environ.get(E2E_ENV)
    if not kubeconfig:
        emu = request.getfixturevalue("crds")
        with client.ApiClient(client.Configuration(host=emu.url)) as api:
            yield EmulatedCluster(api=api, emulated=True, emu=emu)
        return
    api = config.new_client_from_config(config_file=kubeconfig)
    cl = Cluster(api=api, emulated=False)
    try:
        yield cl
    finally:
        cl.cleanup()
        api.close()
