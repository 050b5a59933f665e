"""Fixtures: the API-server emulator, a real `kubernetes` ApiClient pointed at it, and the e2e switch.

``emu`` always is the in-process emulator (tests that assert the exact requests or inject faults need it).
``cluster`` is what portable tests (marked ``e2e``) use: the emulator by default, or a real cluster when
``MCP_AUTOSCALE_E2E_KUBECONFIG`` names a kubeconfig (a kind cluster with the KEDA and Karpenter CRDs
installed; see docs/kubernetes.md). Portable tests only talk to the API through the client, so both work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from emulator import Emulator
from kube_objects import KEDA_CRD, NODEPOOL_CRD
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

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


@dataclass
class Cluster:
    """What portable tests may use: an ApiClient, a way to create objects, and cleanup."""

    api: client.ApiClient
    emulated: bool
    created: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (and its namespace); status, if given, is written through the status subresource."""
        from kubernetes.dynamic import DynamicClient

        dyn = DynamicClient(self.api)
        obj = dict(obj)
        ns = obj["metadata"].get("namespace")
        if ns:
            try:
                client.CoreV1Api(self.api).create_namespace(
                    client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))
                )
            except ApiException as e:
                if e.status != 409:
                    raise
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        status = obj.pop("status", None)
        created = dyn.create(res, body=obj, namespace=ns).to_dict()
        self.created.append((obj["apiVersion"], obj["kind"], ns, obj["metadata"]["name"]))
        if status is not None:
            created["status"] = status
            created = dyn.replace(res.subresources["status"], body=created, namespace=ns).to_dict()
        return dict(created)

    def cleanup(self) -> None:
        from kubernetes.dynamic import DynamicClient

        dyn = DynamicClient(self.api)
        for api_version, kind, ns, name in reversed(self.created):
            try:
                dyn.delete(dyn.resources.get(api_version=api_version, kind=kind), name=name, namespace=ns)
            except ApiException as e:
                if e.status != 404:
                    raise


@dataclass
class _EmulatedCluster(Cluster):
    emu: Emulator | None = None

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.emu is not None
        return self.emu.seed(obj)

    def cleanup(self) -> None:
        return


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    kubeconfig = os.environ.get(E2E_ENV)
    if not kubeconfig:
        emu = request.getfixturevalue("crds")
        with client.ApiClient(client.Configuration(host=emu.url)) as api:
            yield _EmulatedCluster(api=api, emulated=True, emu=emu)
        return
    api = config.new_client_from_config(config_file=kubeconfig)
    cl = Cluster(api=api, emulated=False)
    try:
        yield cl
    finally:
        cl.cleanup()
        api.close()
