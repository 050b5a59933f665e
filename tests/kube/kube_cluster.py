"""The ``cluster`` fixture's object: an ApiClient plus create/cleanup, for the emulator or a real cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator import Emulator
from kubernetes import client
from kubernetes.client.exceptions import ApiException


@dataclass
class Cluster:
    """What portable tests may use: an ApiClient, a way to create objects, and cleanup."""

    api: client.ApiClient
    emulated: bool
    created: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

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
                self.namespaces.append(ns)
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
        for ns in self.namespaces:  # also removes what the code under test created there (Leases)
            client.CoreV1Api(self.api).delete_namespace(ns)


@dataclass
class EmulatedCluster(Cluster):
    emu: Emulator | None = None

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert self.emu is not None
        return self.emu.seed(obj)

    def cleanup(self) -> None:
        return
