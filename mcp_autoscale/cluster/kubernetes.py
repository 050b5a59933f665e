"""The real cluster backend: Deployments, HPAs, KEDA ScaledObjects and Karpenter NodePools, through the
official ``kubernetes`` client.

Why it looks the way it does:
- Writes are called only by the action gate. Each one re-reads the object, carries its
  ``metadata.resourceVersion`` and retries a bounded number of times on 409 Conflict, calling the gate's
  optional ``recheck(obj)`` on every fresh read so policy is judged against what is actually there.
  The attempt count of the last write is on ``last_write_attempts`` (per thread) for the audit record.
- ``dry_run=True`` sends the real request with ``dryRun=All``: the API server validates and admits it
  without persisting, and the returned Changes are "current object -> object the server returned".
- A pool whose replicas an autoscaler owns is never scaled directly (the owner would revert it); patching
  a KEDA-owned pool's autoscaler patches the ScaledObject, never its ``keda-hpa-*`` HPA.
- Responses are read as plain JSON (``_preload_content=False``) rather than typed models: the typed models
  are strict and would reject objects from a newer server, and patches are JSON anyway.
- Every permission the backend uses is listed once, in ``REQUIRED_PERMISSIONS``; the RBAC manifests under
  deploy/rbac/ are tested against it and ``doctor`` can turn it into SelfSubjectAccessReviews.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from mcp_autoscale.cluster import kube_ownership as ko
from mcp_autoscale.cluster.kube_cache import Query, trim_pod
from mcp_autoscale.cluster.kube_errors import TRANSPORT_ERRORS, Target, map_api_error, map_transport_error
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AutoscaleError, ConfigError, InvalidInput, NotFound
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import (
    AutoscalerPatch,
    Change,
    GpuNodeRequest,
    NodePoolState,
    PoolRef,
    PoolState,
)

JSON = dict[str, Any]
Recheck = Callable[[JSON], None]
log = get_logger(__name__)

KEDA = ("keda.sh", "v1alpha1", "scaledobjects")
NODEPOOLS = ("karpenter.sh", "v1", "nodepools")
NODECLAIMS = ("karpenter.sh", "v1", "nodeclaims")
REQUIRED_CRDS = ("scaledobjects.keda.sh", "nodepools.karpenter.sh", "nodeclaims.karpenter.sh")

BALLOON_PRIORITY_CLASS = "mcp-autoscale-balloon"
BALLOON_PRIORITY = -10
BALLOON_IMAGE = "registry.k8s.io/pause:3.10"
PROVISIONING_NOTE = "typical provisioning 2-4 min (Karpenter), +1-2 min until nvidia.com/gpu allocatable"
MAX_WRITE_ATTEMPTS = 3
MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Permission:
    """One RBAC rule the backend needs. ``scope="namespace"`` = the server's own namespace (a Role)."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    scope: Literal["cluster", "namespace"]
    why: str


REQUIRED_PERMISSIONS: tuple[Permission, ...] = (
    Permission("apps", "deployments", ("get", "list", "watch"), "cluster", "discover model pools"),
    Permission(
        "apps", "deployments/scale", ("get", "patch"), "cluster", "scale_deployment (scale subresource)"
    ),
    Permission("", "pods", ("list", "watch"), "cluster", "pending/starting replicas, pods' /metrics URLs"),
    Permission(
        "autoscaling",
        "horizontalpodautoscalers",
        ("get", "list", "watch", "patch"),
        "cluster",
        "HPA ownership, patch_hpa",
    ),
    Permission(
        "keda.sh",
        "scaledobjects",
        ("get", "list", "watch", "patch"),
        "cluster",
        "KEDA ownership, patch_hpa, pause",
    ),
    Permission(
        "karpenter.sh",
        "nodepools",
        ("get", "list", "watch", "patch"),
        "cluster",
        "GPU node pools, limit raise",
    ),
    Permission(
        "karpenter.sh", "nodeclaims", ("list", "watch"), "cluster", "nodes launching vs ready per NodePool"
    ),
    Permission("scheduling.k8s.io", "priorityclasses", ("get", "create"), "cluster", "balloon PriorityClass"),
    Permission("", "events", ("create",), "cluster", "an Event on each acted-on object"),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list",),
        "cluster",
        "doctor: KEDA/Karpenter CRDs",
    ),
    Permission(
        "apps", "deployments", ("create", "patch"), "namespace", "balloon Deployments (own namespace)"
    ),
    Permission(
        "coordination.k8s.io", "leases", ("get", "create", "update"), "namespace", "per-pool Lease locks"
    ),
)
"""Exactly what the backend calls. deploy/rbac/ is tested against this table. ``watch``: the watch cache of
long-running servers (``kube_cache``); without it the cache falls back to live lists (and says so)."""


@dataclass(frozen=True)
class PermissionCheck:
    group: str
    resource: str
    verb: str
    namespace: str | None
    allowed: bool


def load_api_client(settings: Settings) -> client.ApiClient:
    """kubeconfig (settings.kubeconfig, $KUBECONFIG or ~/.kube/config; optional context), else in-cluster."""
    kubeconfig = settings.kubeconfig or (
        Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None
    )
    default = Path.home() / ".kube" / "config"
    use_file = kubeconfig is not None or default.exists()
    if not use_file and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ConfigError(
            "no Kubernetes credentials: no kubeconfig (MCP_AUTOSCALE_KUBECONFIG and $KUBECONFIG are unset "
            f"and {default} does not exist) and not running in a cluster (KUBERNETES_SERVICE_HOST is "
            "unset). Fix: export KUBECONFIG=/path/to/kubeconfig (optionally --context NAME), run inside "
            "the cluster with a service account, or use --backend sim"
        )
    try:
        if use_file:
            path = str(kubeconfig) if kubeconfig is not None else None
            return config.new_client_from_config(config_file=path, context=settings.kube_context)
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)
        return client.ApiClient(cfg)
    except (config.ConfigException, OSError, KeyError, ValueError) as e:
        source = f"kubeconfig {kubeconfig or default}" if use_file else "in-cluster service account"
        where = source + (f" context {settings.kube_context}" if settings.kube_context else "")
        # The exception text names files and fields, never secrets; keep only its first line.
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"cannot load Kubernetes credentials ({where}): {first_line}") from None


def _is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


def _dig(obj: Any, path: Sequence[str]) -> Any:
    for seg in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(seg)
    return obj


def _path_name(path: Sequence[str]) -> str:
    return "".join(f"[{p}]" if "." in p or "/" in p else (f".{p}" if i else p) for i, p in enumerate(path))


def _changes(prefix: str, before: JSON | None, after: JSON, paths: Sequence[Sequence[str]]) -> list[Change]:
    return [
        Change(
            field=f"{prefix} {_path_name(p)}",
            before=_dig(before, p) if before else None,
            after=_dig(after, p),
        )
        for p in paths
    ]


class KubernetesBackend:
    """``ClusterBackend`` for a real cluster (see module docstring)."""

    name = "kubernetes"
    handles_conflicts = True  # retries 409 with fresh reads, takes recheck=, reports attempts and notes

    def __init__(
        self,
        settings: Settings,
        api_client: client.ApiClient | None = None,
        namespaces: Sequence[str] | None = None,
        *,
        server_namespace: str = "mcp-autoscale",
        max_attempts: int = MAX_WRITE_ATTEMPTS,
    ) -> None:
        self._settings = settings
        self.api_client = api_client if api_client is not None else load_api_client(settings)
        self._namespaces = sorted(set(namespaces)) if namespaces is not None else None
        self.server_namespace = server_namespace
        self._timeout = settings.request_timeout_s
        self._max_attempts = max_attempts
        self._apps = client.AppsV1Api(self.api_client)
        self._core = client.CoreV1Api(self.api_client)
        self._hpa = client.AutoscalingV2Api(self.api_client)
        self._custom = client.CustomObjectsApi(self.api_client)
        self._scheduling = client.SchedulingV1Api(self.api_client)
        self._ext = client.ApiextensionsV1Api(self.api_client)
        self._authz = client.AuthorizationV1Api(self.api_client)
        self._local = threading.local()

    # ------------------------------------------------------------------------------------------ state
    @property
    def last_write_attempts(self) -> int:
        """Write attempts of this thread's last write (1 = no conflict); the gate copies it to the audit."""
        return int(getattr(self._local, "attempts", 0))

    @property
    def last_notes(self) -> list[str]:
        """Notes from this thread's last write (redirects, provisioning times) for ActionResult.notes."""
        return list(getattr(self._local, "notes", []))

    def _begin_write(self) -> None:
        self._local.attempts = 0
        self._local.notes = []

    def _note(self, text: str) -> None:
        self._local.notes.append(text)

    # ------------------------------------------------------------------------------------------ transport
    def _call(self, target: Target, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
        """Call one client method and return the JSON body; ApiException propagates, transport errors map."""
        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            data = resp.data
            resp.release_conn()
        except ApiException:
            raise
        except TRANSPORT_ERRORS as e:
            raise map_transport_error(e, target, self._timeout) from None
        out = json.loads(data) if data else {}
        return out if isinstance(out, dict) else {"items": out}

    def _read(self, target: Target, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
        try:
            return self._call(target, fn, *args, **kwargs)
        except ApiException as e:
            raise map_api_error(e, target) from None

    def _list(
        self, target: Target, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kw: Any
    ) -> list[JSON]:
        """Items of a list call; ``missing_ok``: a 404 means the resource type (CRD) is not installed."""
        try:
            return list(self._call(target, fn, *args, **kw).get("items") or [])
        except ApiException as e:
            if missing_ok and e.status == 404:
                return []
            raise map_api_error(e, target) from None

    def _write(self, target: Target, attempt: Callable[[], list[Change]]) -> list[Change]:
        """Run ``attempt`` (re-read + conditional write) until it avoids 409, at most max_attempts times."""
        counter = {"n": 0}

        def run() -> list[Change]:
            counter["n"] += 1
            self._local.attempts = counter["n"]
            return attempt()

        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts),
            retry=retry_if_exception(_is_conflict),
            wait=wait_random_exponential(multiplier=0.02, max=0.25),
            reraise=True,
        )
        try:
            return retrying(run)
        except ApiException as e:
            raise map_api_error(e, target, counter["n"]) from None

    def _dry(self, dry_run: bool) -> dict[str, str]:
        return {"dry_run": "All"} if dry_run else {}

    def _namespaces_for(self) -> list[str | None]:
        return list(self._namespaces) if self._namespaces is not None else [None]

    def _check_ns(self, ref: PoolRef) -> None:
        if self._namespaces is not None and ref.namespace not in self._namespaces:
            raise NotFound(
                f"Deployment {ref} not found: namespace {ref.namespace} is not in the allowed namespaces"
            )

    # ------------------------------------------------------------------------------------------ listing
    def _deployments(self, namespace: str | None, field_selector: str | None = None) -> list[JSON]:
        sel = self._settings.pool_selector
        t = Target("list", "apps", "deployments", "Deployment", namespace=namespace)
        kw: dict[str, Any] = {"label_selector": sel}
        if field_selector:
            kw["field_selector"] = field_selector
        if namespace is None:
            return self._list(t, self._apps.list_deployment_for_all_namespaces, **kw)
        return self._list(t, self._apps.list_namespaced_deployment, namespace, **kw)

    def _scaled_objects(self, namespace: str | None) -> list[JSON]:
        g, v, p = KEDA
        t = Target("list", g, p, "ScaledObject", namespace=namespace)
        if namespace is None:
            return self._list(t, self._custom.list_cluster_custom_object, g, v, p, missing_ok=True)
        return self._list(t, self._custom.list_namespaced_custom_object, g, v, namespace, p, missing_ok=True)

    def _hpas(self, namespace: str | None) -> list[JSON]:
        t = Target(
            "list", "autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler", namespace=namespace
        )
        if namespace is None:
            return self._list(t, self._hpa.list_horizontal_pod_autoscaler_for_all_namespaces)
        return self._list(t, self._hpa.list_namespaced_horizontal_pod_autoscaler, namespace)

    def _pods(self, namespace: str) -> list[JSON]:
        t = Target("list", "", "pods", "Pod", namespace=namespace)
        return self._list(t, self._core.list_namespaced_pod, namespace)

    def _all_pods(self, namespace: str | None) -> list[JSON]:
        """Pods of one namespace, or of every namespace in one request."""
        if namespace is not None:
            return self._pods(namespace)
        t = Target("list", "", "pods", "Pod")
        return self._list(t, self._core.list_pod_for_all_namespaces)

    def _nodepools(self) -> dict[str, JSON]:
        g, v, p = NODEPOOLS
        items = self._list(
            Target("list", g, p, "NodePool"),
            self._custom.list_cluster_custom_object,
            g,
            v,
            p,
            missing_ok=True,
        )
        return {str(ko.meta(n).get("name")): n for n in items}

    def _nodeclaims(self) -> list[JSON] | None:
        g, v, p = NODECLAIMS
        try:
            return list(
                self._call(
                    Target("list", g, p, "NodeClaim"), self._custom.list_cluster_custom_object, g, v, p
                ).get("items")
                or []
            )
        except ApiException as e:
            log.info("nodeclaims unavailable; node counts from NodePool status", status=e.status)
            return None

    def _balloons(self) -> list[JSON]:
        t = Target("list", "apps", "deployments", "Deployment", namespace=self.server_namespace)
        return self._list(
            t, self._apps.list_namespaced_deployment, self.server_namespace, label_selector=ko.BALLOON_LABEL
        )

    def _owner(self, namespace: str, name: str) -> JSON | None:
        return ko.find_owner(name, self._scaled_objects(namespace), self._hpas(namespace))

    # ------------------------------------------------------------------------------------------ reads
    def list_pools(self) -> list[PoolState]:
        """Every pool with its owner and pods, in a number of API requests that does not grow with the pools.

        Cluster-wide: one list each of Deployments, ScaledObjects, HPAs and Pods (plus NodePools). With an
        allowed-namespace list: those four per allowed namespace (the list is configuration, not fleet size).
        """
        deployments: list[JSON] = []
        scaled: list[JSON] = []
        hpas: list[JSON] = []
        pods: list[JSON] = []
        for ns in self._namespaces_for():
            found = self._deployments(ns)
            deployments += found
            if found:
                scaled += self._scaled_objects(ns)
                hpas += self._hpas(ns)
                pods += self._all_pods(ns)
        nodepools = self._nodepools() if deployments else {}
        return assemble_pools(deployments, scaled, hpas, pods, nodepools)

    def get_pool(self, ref: PoolRef) -> PoolState:
        self._check_ns(ref)
        found = self._deployments(ref.namespace, field_selector=f"metadata.name={ref.name}")
        if not found:
            self._read(
                Target("get", "apps", "deployments", "Deployment", ref.name, ref.namespace),
                self._apps.read_namespaced_deployment,
                ref.name,
                ref.namespace,
            )
            raise NotFound(
                f"Deployment {ref} exists but is not a model pool (it does not match the pool selector "
                f"{self._settings.pool_selector!r})"
            )
        owner = self._owner(ref.namespace, ref.name)
        return ko.pool_state(found[0], owner, self._pods(ref.namespace), self._nodepools())

    def list_node_pools(self) -> list[NodePoolState]:
        nodepools = self._nodepools()
        if not nodepools:
            return []
        return assemble_node_pools(nodepools, self._nodeclaims(), self._balloons())

    def watch_client(self) -> client.ApiClient:
        """A client for the watch cache's long-lived streams: same credentials, its own connection pool
        (one connection per watch), so streams never crowd out the requests of the gate."""
        cfg = copy.copy(self.api_client.configuration)
        per_ns = len(self._namespaces_for())
        cfg.connection_pool_maxsize = max(int(cfg.connection_pool_maxsize or 1), 4 * per_ns + 3 + 2)
        return client.ApiClient(cfg)

    def watch_queries(self, watch_client: client.ApiClient | None = None) -> list[Query]:
        """The lists ``list_pools`` and ``list_node_pools`` make, as watchable queries (the watch cache):
        lists through this backend, watches through ``watch_client`` (default: this backend's client).
        Roles: deployments, scaledobjects, hpas, pods, nodepools, nodeclaims, balloons."""
        wc = watch_client or self.api_client
        lists: dict[str, Any] = {
            "apps": self._apps,
            "core": self._core,
            "hpa": self._hpa,
            "custom": self._custom,
        }
        streams: dict[str, Any] = {
            "apps": client.AppsV1Api(wc),
            "core": client.CoreV1Api(wc),
            "hpa": client.AutoscalingV2Api(wc),
            "custom": client.CustomObjectsApi(wc),
        }

        def query(role: str, t: Target, api: str, method: str, *args: Any, **kw: Any) -> Query:
            flags = {k: kw.pop(k) for k in ("optional", "soft", "trim") if k in kw}
            where = f" in {t.namespace}" if t.namespace else ""
            fn = getattr(lists[api], method)
            return Query(
                role,
                f"{t.resource}{where}",
                lambda: self._call(t, fn, *args, **kw),
                getattr(streams[api], method),
                args,
                kw,
                **flags,
            )

        sel = self._settings.pool_selector
        g, v, p = KEDA
        out: list[Query] = []
        for ns in self._namespaces_for():
            dep_t = Target("list", "apps", "deployments", "Deployment", namespace=ns)
            so_t = Target("list", g, p, "ScaledObject", namespace=ns)
            hpa_t = Target(
                "list", "autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler", namespace=ns
            )
            pod_t = Target("list", "", "pods", "Pod", namespace=ns)
            if ns is None:
                out += [
                    query(
                        "deployments", dep_t, "apps", "list_deployment_for_all_namespaces", label_selector=sel
                    ),
                    query(
                        "scaledobjects", so_t, "custom", "list_cluster_custom_object", g, v, p, optional=True
                    ),
                    query("hpas", hpa_t, "hpa", "list_horizontal_pod_autoscaler_for_all_namespaces"),
                    query("pods", pod_t, "core", "list_pod_for_all_namespaces", trim=trim_pod),
                ]
            else:
                out += [
                    query("deployments", dep_t, "apps", "list_namespaced_deployment", ns, label_selector=sel),
                    query(
                        "scaledobjects",
                        so_t,
                        "custom",
                        "list_namespaced_custom_object",
                        g,
                        v,
                        ns,
                        p,
                        optional=True,
                    ),
                    query("hpas", hpa_t, "hpa", "list_namespaced_horizontal_pod_autoscaler", ns),
                    query("pods", pod_t, "core", "list_namespaced_pod", ns, trim=trim_pod),
                ]
        ng, nv, np_ = NODEPOOLS
        cg, cv, cp = NODECLAIMS
        balloon_t = Target("list", "apps", "deployments", "Deployment", namespace=self.server_namespace)
        out += [
            query(
                "nodepools", Target("list", ng, np_, "NodePool"), "custom", "list_cluster_custom_object",
                ng, nv, np_, optional=True,
            ),
            query(
                "nodeclaims", Target("list", cg, cp, "NodeClaim"), "custom", "list_cluster_custom_object",
                cg, cv, cp, soft=True,
            ),
            query(
                "balloons", balloon_t, "apps", "list_namespaced_deployment", self.server_namespace,
                label_selector=ko.BALLOON_LABEL,
            ),
        ]  # fmt: skip
        return out

    def installed_crds(self) -> dict[str, bool]:
        """Which of the CRDs this backend uses are installed (for ``doctor``)."""
        t = Target("list", "apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition")
        names = {
            str(ko.meta(c).get("name")) for c in self._list(t, self._ext.list_custom_resource_definition)
        }
        return {crd: crd in names for crd in REQUIRED_CRDS}

    def keda_managed_hpas(self) -> list[str]:
        """HPAs (``ns/name``) that a KEDA ScaledObject owns: KEDA is relied on even if its CRD is gone."""
        out: list[str] = []
        for ns in self._namespaces_for():
            for h in self._hpas(ns):
                m = ko.meta(h)
                owners = {o.get("kind") for o in m.get("ownerReferences") or []}
                labelled = "scaledobject.keda.sh/name" in (m.get("labels") or {})
                if "ScaledObject" in owners or labelled or str(m.get("name", "")).startswith("keda-hpa-"):
                    out.append(f"{m.get('namespace')}/{m.get('name')}")
        return sorted(out)

    def check_permissions(self) -> list[PermissionCheck]:
        """One SelfSubjectAccessReview per (verb, resource) in REQUIRED_PERMISSIONS (for ``doctor``)."""
        out: list[PermissionCheck] = []
        for perm in REQUIRED_PERMISSIONS:
            resource, _, sub = perm.resource.partition("/")
            ns = self.server_namespace if perm.scope == "namespace" else None
            for verb in perm.verbs:
                attrs: JSON = {"verb": verb, "group": perm.group, "resource": resource}
                if sub:
                    attrs["subresource"] = sub
                if ns:
                    attrs["namespace"] = ns
                body = {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attrs},
                }
                t = Target(
                    "create", "authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"
                )
                review = self._read(t, self._authz.create_self_subject_access_review, body)
                allowed = bool((review.get("status") or {}).get("allowed"))
                out.append(PermissionCheck(perm.group, perm.resource, verb, ns, allowed))
        return out

    # ------------------------------------------------------------------------------------------ writes
    def scale_deployment(
        self, ref: PoolRef, replicas: int, *, dry_run: bool, recheck: Recheck | None = None
    ) -> list[Change]:
        """Set replicas through the scale subresource; refuses when an autoscaler owns the replica count."""
        self._begin_write()
        self._check_ns(ref)
        owner = self._owner(ref.namespace, ref.name)
        if owner is not None:
            raise InvalidInput(self._owned_message(ref, owner, replicas))
        read_t = Target("get", "apps", "deployments/scale", "Deployment", ref.name, ref.namespace)
        write_t = Target("patch", "apps", "deployments/scale", "Deployment", ref.name, ref.namespace)

        def attempt() -> list[Change]:
            scale = self._read(read_t, self._apps.read_namespaced_deployment_scale, ref.name, ref.namespace)
            if recheck is not None:
                recheck(scale)
            body = {
                "metadata": {"resourceVersion": ko.meta(scale)["resourceVersion"]},
                "spec": {"replicas": replicas},
            }
            out = self._call(
                write_t,
                self._apps.patch_namespaced_deployment_scale,
                ref.name,
                ref.namespace,
                body,
                **self._dry(dry_run),
            )
            return _changes(f"Deployment {ref}", scale, out, [("spec", "replicas")])

        return self._write(write_t, attempt)

    def _owned_message(self, ref: PoolRef, owner: JSON, replicas: int) -> str:
        a = ko.autoscaler_of(owner)
        kind = "KEDA ScaledObject" if a.kind.value == "ScaledObject" else "HorizontalPodAutoscaler"
        alt = f"patch_hpa with min_replicas={replicas} to raise the floor, or max_replicas to cap it"
        if a.kind.value == "ScaledObject":
            alt += ", or pause it (paused=true) if policy allows"
        return (
            f"refusing to scale {ref} to {replicas}: its replicas are owned by {kind} "
            f"{ref.namespace}/{a.name} (min {a.min_replicas}, max {a.max_replicas}), "
            "which would revert a direct change within seconds. "
            f"Instead: {alt}."
        )

    def patch_autoscaler(
        self, ref: PoolRef, patch: AutoscalerPatch, *, dry_run: bool, recheck: Recheck | None = None
    ) -> list[Change]:
        """Patch the pool's HPA, or its ScaledObject when KEDA owns the HPA (never the keda-hpa-* HPA)."""
        self._begin_write()
        self._check_ns(ref)
        fields = (
            "min_replicas",
            "max_replicas",
            "scale_down_stabilization_s",
            "scale_up_stabilization_s",
            "paused",
        )
        if all(getattr(patch, f) is None for f in fields):
            raise InvalidInput(
                "the autoscaler patch changes nothing: set min/max replicas, a window, or paused"
            )
        owner = self._owner(ref.namespace, ref.name)
        if owner is None:
            raise InvalidInput(
                f"no HPA or KEDA ScaledObject targets Deployment {ref}: nothing to patch "
                "(use scale_deployment)"
            )
        if owner.get("kind") == "ScaledObject":
            return self._patch_scaled_object(ref, str(ko.meta(owner)["name"]), patch, dry_run, recheck)
        if patch.paused is not None:
            raise InvalidInput(
                f"HorizontalPodAutoscaler {ref.namespace}/{ko.meta(owner)['name']} has no pause switch; "
                "pausing is KEDA-only (autoscaling.keda.sh/paused). Change min/max replicas instead."
            )
        return self._patch_hpa(ref.namespace, str(ko.meta(owner)["name"]), patch, dry_run, recheck)

    @staticmethod
    def _check_bounds(new_min: int, new_max: int, what: str) -> None:
        if new_min > new_max:
            raise InvalidInput(f"{what}: min replicas {new_min} would exceed max replicas {new_max}")

    def _patch_hpa(
        self, namespace: str, name: str, patch: AutoscalerPatch, dry_run: bool, recheck: Recheck | None
    ) -> list[Change]:
        read_t = Target(
            "get", "autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler", name, namespace
        )
        write_t = Target(
            "patch", "autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler", name, namespace
        )

        def attempt() -> list[Change]:
            cur = self._read(read_t, self._hpa.read_namespaced_horizontal_pod_autoscaler, name, namespace)
            if recheck is not None:
                recheck(cur)
            spec = cur.get("spec") or {}
            self._check_bounds(
                patch.min_replicas if patch.min_replicas is not None else int(spec.get("minReplicas", 1)),
                patch.max_replicas if patch.max_replicas is not None else int(spec.get("maxReplicas", 1)),
                f"HorizontalPodAutoscaler {namespace}/{name}",
            )
            body_spec: JSON = {}
            paths: list[tuple[str, ...]] = []
            if patch.min_replicas is not None:
                body_spec["minReplicas"] = patch.min_replicas
                paths.append(("spec", "minReplicas"))
            if patch.max_replicas is not None:
                body_spec["maxReplicas"] = patch.max_replicas
                paths.append(("spec", "maxReplicas"))
            for direction, value in (
                ("scaleDown", patch.scale_down_stabilization_s),
                ("scaleUp", patch.scale_up_stabilization_s),
            ):
                if value is not None:
                    body_spec.setdefault("behavior", {})[direction] = {"stabilizationWindowSeconds": value}
                    paths.append(("spec", "behavior", direction, "stabilizationWindowSeconds"))
            body = {"metadata": {"resourceVersion": ko.meta(cur)["resourceVersion"]}, "spec": body_spec}
            # A dict body makes the client send strategic-merge-patch: behavior.scaleDown.policies survive.
            out = self._call(
                write_t,
                self._hpa.patch_namespaced_horizontal_pod_autoscaler,
                name,
                namespace,
                body,
                **self._dry(dry_run),
            )
            return _changes(f"HorizontalPodAutoscaler {namespace}/{name}", cur, out, paths)

        return self._write(write_t, attempt)

    def _patch_scaled_object(
        self, ref: PoolRef, name: str, patch: AutoscalerPatch, dry_run: bool, recheck: Recheck | None
    ) -> list[Change]:
        g, v, p = KEDA
        ns = ref.namespace
        read_t = Target("get", g, p, "ScaledObject", name, ns)
        write_t = Target("patch", g, p, "ScaledObject", name, ns)

        def attempt() -> list[Change]:
            cur = self._read(read_t, self._custom.get_namespaced_custom_object, g, v, ns, p, name)
            if recheck is not None:
                recheck(cur)
            spec = cur.get("spec") or {}
            self._check_bounds(
                patch.min_replicas
                if patch.min_replicas is not None
                else int(spec.get("minReplicaCount", ko.KEDA_DEFAULT_MIN)),
                patch.max_replicas
                if patch.max_replicas is not None
                else int(spec.get("maxReplicaCount", ko.KEDA_DEFAULT_MAX)),
                f"ScaledObject {ns}/{name}",
            )
            body_spec: JSON = {}
            paths: list[tuple[str, ...]] = []
            if patch.min_replicas is not None:
                body_spec["minReplicaCount"] = patch.min_replicas
                paths.append(("spec", "minReplicaCount"))
            if patch.max_replicas is not None:
                body_spec["maxReplicaCount"] = patch.max_replicas
                paths.append(("spec", "maxReplicaCount"))
            behavior: JSON = {}
            for direction, value in (
                ("scaleDown", patch.scale_down_stabilization_s),
                ("scaleUp", patch.scale_up_stabilization_s),
            ):
                if value is not None:
                    behavior[direction] = {"stabilizationWindowSeconds": value}
                    paths.append(
                        (
                            "spec",
                            "advanced",
                            "horizontalPodAutoscalerConfig",
                            "behavior",
                            direction,
                            "stabilizationWindowSeconds",
                        )
                    )
            if behavior:
                body_spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
            meta: JSON = {"resourceVersion": ko.meta(cur)["resourceVersion"]}
            if patch.paused is True:
                meta["annotations"] = {ko.KEDA_PAUSED: "true"}
                paths.append(("metadata", "annotations", ko.KEDA_PAUSED))
            elif patch.paused is False:
                meta["annotations"] = {
                    ko.KEDA_PAUSED: None,
                    ko.KEDA_PAUSED_REPLICAS: None,
                }  # merge patch: delete
                paths.append(("metadata", "annotations", ko.KEDA_PAUSED))
                if ko.KEDA_PAUSED_REPLICAS in ko.annots(cur):
                    paths.append(("metadata", "annotations", ko.KEDA_PAUSED_REPLICAS))
            body: JSON = {"metadata": meta}
            if body_spec:
                body["spec"] = body_spec
            out = self._call(
                write_t, self._custom.patch_namespaced_custom_object, g, v, ns, p, name, body,
                _content_type=MERGE_PATCH, **self._dry(dry_run),
            )  # fmt: skip
            return _changes(f"ScaledObject {ns}/{name}", cur, out, paths)

        changes = self._write(write_t, attempt)
        self._note(
            f"KEDA owns the replicas of {ref} through ScaledObject {ns}/{name} and its HPA keda-hpa-{name}: "
            f"patched the ScaledObject (KEDA reverts direct edits to its HPA)."
        )
        return changes

    def request_gpu_nodes(
        self, request: GpuNodeRequest, *, dry_run: bool, recheck: Recheck | None = None
    ) -> list[Change]:
        """Raise the NodePool's GPU limit when it is the bottleneck and/or size a placeholder (balloon)."""
        self._begin_write()
        g, v, p = NODEPOOLS
        name = request.node_pool
        read_t = Target("get", g, p, "NodePool", name)
        try:
            np = self._call(read_t, self._custom.get_cluster_custom_object, g, v, p, name)
        except ApiException as e:
            if e.status == 404:
                raise NotFound(
                    f"NodePool {name} not found (is Karpenter v1, karpenter.sh/v1 nodepools, installed?)"
                ) from None
            raise map_api_error(e, read_t) from None
        if recheck is not None:
            recheck(np)
        per_node = ko.gpus_per_node(np)
        nodes = ko.balloon_replicas(request.gpus, per_node)
        limit, used = ko.gpu_limit(np), ko.gpus_in_use(np)
        needed_limit = used + nodes * per_node
        bottleneck = limit is not None and needed_limit > limit
        changes: list[Change] = []
        if request.method in ("auto", "limit"):
            if bottleneck:
                changes += self._raise_limit(name, needed_limit, dry_run, recheck)
            elif request.method == "limit":
                self._note(
                    f"NodePool {name} limit {limit if limit is not None else 'unset'} already allows "
                    f"{request.gpus} more GPUs; no change"
                )
        if request.method in ("auto", "balloon"):
            if request.method == "balloon" and bottleneck:
                self._note(
                    f"NodePool {name} limit {limit} GPUs with {used} in use leaves no room for "
                    f"{nodes * per_node} more: "
                    "Karpenter will not launch nodes for the placeholder pods until the limit is raised"
                )
            changes += self._ensure_priority_class(dry_run)
            changes += self._ensure_balloon(np, request.gpus, nodes, dry_run)
        if changes:
            changes.append(
                Change(field=f"NodePool {name} provisioning", before=None, after=PROVISIONING_NOTE)
            )
            self._note(
                f"Karpenter launches {nodes} node(s) of {per_node} GPU(s) in NodePool {name}: "
                + PROVISIONING_NOTE
            )
        return changes

    def _raise_limit(self, name: str, new_limit: int, dry_run: bool, recheck: Recheck | None) -> list[Change]:
        g, v, p = NODEPOOLS
        read_t = Target("get", g, p, "NodePool", name)
        write_t = Target("patch", g, p, "NodePool", name)

        def attempt() -> list[Change]:
            cur = self._read(read_t, self._custom.get_cluster_custom_object, g, v, p, name)
            if recheck is not None:
                recheck(cur)
            body = {
                "metadata": {"resourceVersion": ko.meta(cur)["resourceVersion"]},
                "spec": {"limits": {ko.GPU_RESOURCE: str(new_limit)}},
            }
            out = self._call(
                write_t, self._custom.patch_cluster_custom_object, g, v, p, name, body,
                _content_type=MERGE_PATCH, **self._dry(dry_run),
            )  # fmt: skip
            return _changes(f"NodePool {name}", cur, out, [("spec", "limits", ko.GPU_RESOURCE)])

        return self._write(write_t, attempt)

    def _ensure_priority_class(self, dry_run: bool) -> list[Change]:
        read_t = Target(
            "get", "scheduling.k8s.io", "priorityclasses", "PriorityClass", BALLOON_PRIORITY_CLASS
        )
        try:
            self._call(read_t, self._scheduling.read_priority_class, BALLOON_PRIORITY_CLASS)
            return []
        except ApiException as e:
            if e.status != 404:
                raise map_api_error(e, read_t) from None
        body = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {
                "name": BALLOON_PRIORITY_CLASS,
                "labels": {"app.kubernetes.io/managed-by": "mcp-autoscale"},
            },
            "value": BALLOON_PRIORITY,
            "preemptionPolicy": "Never",
            "globalDefault": False,
            "description": "Placeholder pods holding GPU nodes warm; any real workload pre-empts them.",
        }
        create_t = Target(
            "create", "scheduling.k8s.io", "priorityclasses", "PriorityClass", BALLOON_PRIORITY_CLASS
        )
        try:
            out = self._call(create_t, self._scheduling.create_priority_class, body, **self._dry(dry_run))
        except ApiException as e:
            if e.status == 409:  # created concurrently: fine
                return []
            raise map_api_error(e, create_t) from None
        return [
            Change(
                field=f"PriorityClass {BALLOON_PRIORITY_CLASS}",
                before=None,
                after={"value": out.get("value"), "preemptionPolicy": out.get("preemptionPolicy")},
            )
        ]

    def _balloon_manifest(self, np: JSON, name: str, replicas: int, per_pod: int) -> JSON:
        pool = str(ko.meta(np)["name"])
        taints = (((np.get("spec") or {}).get("template") or {}).get("spec") or {}).get("taints") or []
        tolerations = [
            {"key": t["key"], "operator": "Exists", "effect": t["effect"]}
            for t in taints
            if t.get("key") and t.get("effect")
        ]
        gpus = {ko.GPU_RESOURCE: str(per_pod)}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": self.server_namespace,
                "labels": {ko.BALLOON_LABEL: pool, "app.kubernetes.io/managed-by": "mcp-autoscale"},
                "annotations": {"mcp-autoscale/purpose": f"GPU headroom placeholder for NodePool {pool}"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {ko.BALLOON_LABEL: pool}},
                "template": {
                    "metadata": {"labels": {ko.BALLOON_LABEL: pool}},
                    "spec": {
                        "priorityClassName": BALLOON_PRIORITY_CLASS,
                        "terminationGracePeriodSeconds": 0,
                        "nodeSelector": {ko.NODEPOOL_KEY: pool},
                        "tolerations": tolerations,
                        "containers": [
                            {
                                "name": "placeholder",
                                "image": BALLOON_IMAGE,
                                "resources": {"requests": gpus, "limits": gpus},
                            }
                        ],
                    },
                },
            },
        }

    def _ensure_balloon(self, np: JSON, gpus: int, nodes: int, dry_run: bool) -> list[Change]:
        """Create or resize the pool's balloon so it holds ``gpus`` GPUs spread over ``nodes`` pods."""
        pool = str(ko.meta(np)["name"])
        name = f"mcp-autoscale-balloon-{pool}"
        ns = self.server_namespace
        per_pod = math.ceil(gpus / nodes)
        read_t = Target("get", "apps", "deployments", "Deployment", name, ns)
        create_t = Target("create", "apps", "deployments", "Deployment", name, ns)
        patch_t = Target("patch", "apps", "deployments", "Deployment", name, ns)
        prefix = f"Deployment {ns}/{name}"

        def attempt() -> list[Change]:
            try:
                cur: JSON | None = self._call(read_t, self._apps.read_namespaced_deployment, name, ns)
            except ApiException as e:
                if e.status != 404:
                    raise map_api_error(e, read_t) from None
                cur = None
            if cur is None:
                body = self._balloon_manifest(np, name, nodes, per_pod)
                out = self._call(
                    create_t, self._apps.create_namespaced_deployment, ns, body, **self._dry(dry_run)
                )
                return [
                    Change(
                        field=f"{prefix} spec.replicas", before=None, after=_dig(out, ("spec", "replicas"))
                    ),
                    Change(
                        field=f"{prefix} nvidia.com/gpu per placeholder pod", before=None, after=_gpu_of(out)
                    ),
                ]
            gpu_res = {ko.GPU_RESOURCE: str(per_pod)}
            container = {"name": "placeholder", "resources": {"requests": gpu_res, "limits": gpu_res}}
            body = {
                "metadata": {"resourceVersion": ko.meta(cur)["resourceVersion"]},
                "spec": {"replicas": nodes, "template": {"spec": {"containers": [container]}}},
            }
            out = self._call(
                patch_t, self._apps.patch_namespaced_deployment, name, ns, body, **self._dry(dry_run)
            )
            return [
                Change(
                    field=f"{prefix} spec.replicas",
                    before=_dig(cur, ("spec", "replicas")),
                    after=_dig(out, ("spec", "replicas")),
                ),
                Change(
                    field=f"{prefix} nvidia.com/gpu per placeholder pod",
                    before=_gpu_of(cur),
                    after=_gpu_of(out),
                ),
            ]

        return self._write(patch_t, attempt)

    # ------------------------------------------------------------------------------------------ events
    def record_event(self, ref: PoolRef, reason: str, message: str) -> None:
        """Post a core/v1 Event on the Deployment with the action's rationale. Best effort: never raises."""
        try:
            uid = None
            try:
                dep = self._call(
                    Target("get", "apps", "deployments", "Deployment", ref.name, ref.namespace),
                    self._apps.read_namespaced_deployment,
                    ref.name,
                    ref.namespace,
                )
                uid = ko.meta(dep).get("uid")
            except (ApiException, AutoscaleError):
                uid = None
            involved = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": ref.name,
                "namespace": ref.namespace,
            }
            if uid:
                involved["uid"] = uid
            self._post_event(ref.namespace, involved, reason, message)
        except Exception as e:  # an Event must never fail the action it describes
            log.warning(
                "could not post Kubernetes Event", target=str(ref), reason=reason, error=type(e).__name__
            )

    def record_node_pool_event(self, node_pool: str, reason: str, message: str) -> None:
        """Post an Event on a (cluster-scoped) NodePool; core Events for cluster objects go to ``default``."""
        try:
            involved = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "name": node_pool}
            self._post_event("default", involved, reason, message)
        except Exception as e:
            log.warning(
                "could not post Kubernetes Event", target=f"nodepool/{node_pool}", error=type(e).__name__
            )

    def _post_event(self, namespace: str, involved: JSON, reason: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason[:128],
            "message": message[:1024],
            "type": "Normal",
            "source": {"component": "mcp-autoscale"},
            "reportingComponent": "mcp-autoscale",
            "reportingInstance": os.environ.get("HOSTNAME", "mcp-autoscale"),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        t = Target("create", "", "events", "Event", namespace=namespace)
        try:
            self._call(t, self._core.create_namespaced_event, namespace, body)
        except ApiException as e:
            raise map_api_error(e, t) from None


def assemble_pools(
    deployments: list[JSON],
    scaled: list[JSON],
    hpas: list[JSON],
    pods: list[JSON],
    nodepools: dict[str, JSON],
) -> list[PoolState]:
    """Pools from listed objects (live or cached): owners matched per namespace, pods through an index
    of (namespace, label, value), so the join stays linear in the objects at 1,000 pools. Pure."""
    by_ns: dict[str, tuple[list[JSON], list[JSON]]] = {}
    for i, objects in enumerate((scaled, hpas)):
        for o in objects:
            by_ns.setdefault(str(ko.meta(o).get("namespace")), ([], []))[i].append(o)
    pod_index: dict[tuple[str, str, str], list[JSON]] = {}
    for pod in pods:
        pod_ns = str(ko.meta(pod).get("namespace"))
        for k, v in ko.labels(pod).items():
            pod_index.setdefault((pod_ns, k, str(v)), []).append(pod)
    pools: list[PoolState] = []
    for d in deployments:
        m = ko.meta(d)
        ns, name = str(m["namespace"]), str(m["name"])
        ns_scaled, ns_hpas = by_ns.get(ns, ([], []))
        owner = ko.find_owner(name, ns_scaled, ns_hpas)
        want = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        # the fewest pods that carry one of the selector's labels; pool_state checks the whole selector
        candidates = min((pod_index.get((ns, k, str(v)), []) for k, v in want.items()), key=len, default=[])
        pools.append(ko.pool_state(d, owner, candidates, nodepools))
    return sorted(pools, key=lambda p: p.ref.key)


def assemble_node_pools(
    nodepools: dict[str, JSON], claims: list[JSON] | None, balloons: list[JSON]
) -> list[NodePoolState]:
    """Node pools from listed objects (live or cached); ``claims`` None: NodeClaims unavailable. Pure."""
    return [ko.node_pool_state(np, claims, balloons) for _, np in sorted(nodepools.items())]


def _gpu_of(deploy: JSON) -> int:
    return ko.gpus_per_pod(ko.pod_spec(deploy))
