"""Behaviour suite for the API-server emulator (KUBE_TESTING.md's 28 checks, plus RBAC and CRD serving).

Everything goes through the real `kubernetes` client over HTTP, so a change that makes the emulator lenient
(accepting a stale write, persisting a dry run, mutating before a fault) fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
from emulator import Emulator, merge_patch, parse_label_selector, strategic_merge_patch
from kube_objects import deployment, hpa, nodepool, scaled_object
from kubernetes import client
from kubernetes.client.exceptions import ApiException


def _status(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    import json

    body = json.loads(exc.value.body)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    return dict(body)


def _dep(name: str = "web", ns: str = "chat", **labels: str) -> dict[str, Any]:
    d = deployment(ns, name, model="m/x", replicas=2)
    d["metadata"]["labels"].update(labels)
    return d


# C01, C02, C05
def test_typed_model_rv_on_create_and_increment(emu: Emulator, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment("chat", _dep())
    assert isinstance(created, client.V1Deployment)
    assert created.metadata.uid and created.metadata.creation_timestamp and created.metadata.generation == 1
    rv1 = int(created.metadata.resource_version)
    patched = apps.patch_namespaced_deployment("web", "chat", {"metadata": {"labels": {"x": "1"}}})
    assert int(patched.metadata.resource_version) > rv1
    assert patched.metadata.generation == 1  # metadata-only change keeps generation
    bumped = apps.patch_namespaced_deployment("web", "chat", {"spec": {"paused": True}})
    assert bumped.metadata.generation == 2


# C03, C04
def test_label_selectors_equality_and_set_based(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep("a", tier="gold"))
    emu.seed(_dep("b", tier="silver"))
    emu.seed(_dep("c"))
    apps = client.AppsV1Api(api_client)

    def names(sel: str) -> list[str]:
        return [d.metadata.name for d in apps.list_namespaced_deployment("chat", label_selector=sel).items]

    assert names("tier=gold") == ["a"]
    assert names("tier==silver") == ["b"]
    assert names("tier!=gold") == ["b", "c"]
    assert names("tier in (gold, silver)") == ["a", "b"]
    assert names("tier notin (gold)") == ["b", "c"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c"]
    assert names("tier in (gold,silver),app=a") == ["a"]
    with pytest.raises(ApiException) as exc:
        apps.list_namespaced_deployment("chat", label_selector="tier in gold)")
    assert exc.value.status == 400


def test_field_selector_name_and_namespace(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep("a"))
    emu.seed(_dep("a", ns="batch"))
    apps = client.AppsV1Api(api_client)
    got = apps.list_deployment_for_all_namespaces(field_selector="metadata.name=a,metadata.namespace=batch")
    assert [(d.metadata.namespace, d.metadata.name) for d in got.items] == [("batch", "a")]
    with pytest.raises(ApiException) as exc:
        apps.list_deployment_for_all_namespaces(field_selector="spec.replicas=2")
    assert exc.value.status == 400


# C06
def test_put_with_stale_rv_conflicts(emu: Emulator, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    stale = apps.create_namespaced_deployment("chat", _dep())
    apps.patch_namespaced_deployment("web", "chat", {"spec": {"replicas": 3}})
    stale.spec.replicas = 9
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "chat", stale)
    assert exc.value.status == 409 and _status(exc)["reason"] == "Conflict"
    assert emu.get("apps/v1", "deployments", "web", "chat")["spec"]["replicas"] == 3


# C07
def test_patch_carrying_stale_rv_conflicts(emu: Emulator, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    rv = apps.create_namespaced_deployment("chat", _dep()).metadata.resource_version
    emu.bump("apps/v1", "deployments", "web", "chat")
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(
            "web", "chat", {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 7}}
        )
    assert exc.value.status == 409
    assert "the object has been modified" in _status(exc)["message"]
    assert emu.get("apps/v1", "deployments", "web", "chat")["spec"]["replicas"] == 2


# C08
def test_strategic_merge_merges_containers_by_name(emu: Emulator, api_client: client.ApiClient) -> None:
    d = _dep()
    d["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy"})
    emu.seed(d)
    apps = client.AppsV1Api(api_client)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "vllm:new"}]}}}}
    out = apps.patch_namespaced_deployment("web", "chat", patch)
    assert [(c.name, c.image) for c in out.spec.template.spec.containers] == [
        ("vllm", "vllm:new"),
        ("sidecar", "envoy"),
    ]
    assert out.spec.template.spec.containers[0].args == ["--port", "8000"]  # other fields kept
    assert emu.requests("PATCH")[-1].content_type == "application/strategic-merge-patch+json"
    delete = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    out = apps.patch_namespaced_deployment("web", "chat", delete)
    assert [c.name for c in out.spec.template.spec.containers] == ["vllm"]


# C09, C10
def test_merge_patch_null_deletes_and_lists_replace(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep())
    apps = client.AppsV1Api(api_client)
    patch = {
        "metadata": {"labels": {"app": None}},
        "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}},
    }
    out = apps.patch_namespaced_deployment("web", "chat", patch, _content_type="application/merge-patch+json")
    assert "app" not in out.metadata.labels
    assert [c.name for c in out.spec.template.spec.containers] == ["only"]
    assert out.spec.template.spec.containers[0].args is None


# C11, C12
def test_json_patch_and_failing_test_op(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep())
    apps = client.AppsV1Api(api_client)
    out = apps.patch_namespaced_deployment(
        "web",
        "chat",
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
        ],
    )
    assert out.spec.replicas == 5
    assert emu.requests("PATCH")[-1].content_type == "application/json-patch+json"
    rv = emu.get("apps/v1", "deployments", "web", "chat")["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(
            "web",
            "chat",
            [
                {"op": "test", "path": "/spec/replicas", "value": 2},
                {"op": "replace", "path": "/spec/replicas", "value": 9},
            ],
        )
    assert exc.value.status == 422 and _status(exc)["reason"] == "Invalid"
    stored = emu.get("apps/v1", "deployments", "web", "chat")
    assert stored["spec"]["replicas"] == 5 and stored["metadata"]["resourceVersion"] == rv


# C13, C14
def test_scale_subresource_view_and_patch(emu: Emulator, api_client: client.ApiClient) -> None:
    seeded = emu.seed(_dep())
    apps = client.AppsV1Api(api_client)
    scale = apps.read_namespaced_deployment_scale("web", "chat")
    assert isinstance(scale, client.V1Scale)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    out = apps.patch_namespaced_deployment_scale(
        "web", "chat", {"spec": {"replicas": 6}, "metadata": {"labels": {"sneaky": "yes"}}}
    )
    assert out.kind == "Scale" and out.spec.replicas == 6
    stored = emu.get("apps/v1", "deployments", "web", "chat")
    assert stored["spec"]["replicas"] == 6
    assert "sneaky" not in stored["metadata"]["labels"]  # only spec.replicas is copied back
    assert stored["spec"]["template"] == seeded["spec"]["template"]
    assert int(stored["metadata"]["resourceVersion"]) > int(seeded["metadata"]["resourceVersion"])
    assert out.metadata.resource_version == stored["metadata"]["resourceVersion"]
    stale = {"metadata": {"resourceVersion": seeded["metadata"]["resourceVersion"]}, "spec": {"replicas": 1}}
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "chat", stale)
    assert exc.value.status == 409


# C15, C16
def test_dry_run_patch_and_create_not_persisted(emu: Emulator, api_client: client.ApiClient) -> None:
    seeded = emu.seed(_dep())
    rv_before = emu.rv
    apps = client.AppsV1Api(api_client)
    out = apps.patch_namespaced_deployment_scale("web", "chat", {"spec": {"replicas": 9}}, dry_run="All")
    assert out.spec.replicas == 9
    assert emu.get("apps/v1", "deployments", "web", "chat") == seeded
    created = apps.create_namespaced_deployment("chat", _dep("ghost"), dry_run="All")
    assert created.metadata.name == "ghost" and created.metadata.uid
    assert emu.get("apps/v1", "deployments", "ghost", "chat") is None
    assert emu.rv == rv_before
    assert emu.requests("POST")[-1].query == {"dryRun": "All"}
    # the dry run runs the full path: a stale rv still conflicts
    stale = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 3}}
    emu.bump("apps/v1", "deployments", "web", "chat")
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "chat", stale, dry_run="All")
    assert exc.value.status == 409
    with pytest.raises(ApiException) as bad:
        apps.patch_namespaced_deployment_scale("web", "chat", {"spec": {"replicas": 3}}, dry_run="Some")
    assert bad.value.status == 400


# C17
def test_hpa_v2_create_read_patch(emu: Emulator, api_client: client.ApiClient) -> None:
    api = client.AutoscalingV2Api(api_client)
    api.create_namespaced_horizontal_pod_autoscaler(
        "chat", hpa("chat", "h", "web", min_replicas=1, max_replicas=4)
    )
    got = api.read_namespaced_horizontal_pod_autoscaler("h", "chat")
    assert isinstance(got, client.V2HorizontalPodAutoscaler) and got.spec.max_replicas == 4
    out = api.patch_namespaced_horizontal_pod_autoscaler("h", "chat", {"spec": {"maxReplicas": 8}})
    assert out.spec.max_replicas == 8 and out.spec.metrics[0].pods.metric.name == "vllm:num_requests_waiting"
    assert out.spec.behavior.scale_down.stabilization_window_seconds == 300


# C18, C19
def test_scaledobject_custom_resource(crds: Emulator, api_client: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api_client)
    body = scaled_object("chat", "so", "web", min_replicas=1, max_replicas=4)
    created = co.create_namespaced_custom_object("keda.sh", "v1alpha1", "chat", "scaledobjects", body)
    rv = created["metadata"]["resourceVersion"]
    out = co.patch_namespaced_custom_object(
        "keda.sh", "v1alpha1", "chat", "scaledobjects", "so", {"spec": {"maxReplicaCount": 9}}
    )
    assert crds.requests("PATCH")[-1].content_type == "application/merge-patch+json"
    assert out["spec"]["maxReplicaCount"] == 9 and out["spec"]["triggers"][0]["type"] == "prometheus"
    assert int(out["metadata"]["resourceVersion"]) > int(rv)
    out = co.patch_namespaced_custom_object(
        "keda.sh",
        "v1alpha1",
        "chat",
        "scaledobjects",
        "so",
        [{"op": "replace", "path": "/spec/minReplicaCount", "value": 2}],
        _content_type="application/json-patch+json",
    )
    assert out["spec"]["minReplicaCount"] == 2
    assert crds.requests("PATCH")[-1].content_type == "application/json-patch+json"


def test_custom_resources_404_without_crd(emu: Emulator, api_client: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as exc:
        co.list_namespaced_custom_object("keda.sh", "v1alpha1", "chat", "scaledobjects")
    assert exc.value.status == 404 and _status(exc)["reason"] == "NotFound"


# C20
def test_nodepool_cluster_scoped(crds: Emulator, api_client: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api_client)
    co.create_cluster_custom_object(
        "karpenter.sh",
        "v1",
        "nodepools",
        nodepool("gpu-l4", gpu_name="l4", instance_type="g6.xlarge", capacity="on-demand", limit=8),
    )
    out = co.patch_cluster_custom_object(
        "karpenter.sh", "v1", "nodepools", "gpu-l4", {"spec": {"limits": {"nvidia.com/gpu": "12"}}}
    )
    assert out["spec"]["limits"] == {"nvidia.com/gpu": "12"}
    assert "namespace" not in out["metadata"]
    assert [
        i["metadata"]["name"]
        for i in co.list_cluster_custom_object("karpenter.sh", "v1", "nodepools")["items"]
    ] == ["gpu-l4"]
    crds_list = client.ApiextensionsV1Api(api_client).list_custom_resource_definition()
    assert {c.metadata.name for c in crds_list.items} == {"scaledobjects.keda.sh", "nodepools.karpenter.sh"}


# C21, C22
def test_events_core_and_events_k8s_io(emu: Emulator, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_event(
        "chat",
        {
            "metadata": {"generateName": "web."},
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "chat"},
            "reason": "Scaled",
            "message": "why",
            "type": "Normal",
        },
    )
    listed = core.list_namespaced_event("chat", field_selector="involvedObject.name=web")
    assert [(e.reason, e.message) for e in listed.items] == [("Scaled", "why")]
    assert core.list_namespaced_event("chat", field_selector="involvedObject.name=other").items == []
    ev = client.EventsV1Api(api_client).create_namespaced_event(
        "chat",
        {
            "metadata": {"name": "e2"},
            "eventTime": "2026-11-24T00:00:00.000000Z",
            "reportingController": "mcp-autoscale",
            "reportingInstance": "x",
            "action": "Scale",
            "reason": "Scaled",
            "regarding": {"kind": "Deployment", "name": "web", "namespace": "chat"},
        },
    )
    assert isinstance(ev, client.EventsV1Event) and ev.metadata.resource_version


# C23
def test_lease_create_renew_and_stale_renew(emu: Emulator, api_client: client.ApiClient) -> None:
    co = client.CoordinationV1Api(api_client)
    lease = co.create_namespaced_lease(
        "mcp-autoscale",
        {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
    )
    lease.spec.holder_identity = "a"
    renewed = co.replace_namespaced_lease("l", "mcp-autoscale", lease)
    assert int(renewed.metadata.resource_version) > int(lease.metadata.resource_version)
    lease.spec.holder_identity = "b"
    with pytest.raises(ApiException) as exc:
        co.replace_namespaced_lease("l", "mcp-autoscale", lease)  # stale rv
    assert exc.value.status == 409
    assert emu.get("coordination.k8s.io/v1", "leases", "l", "mcp-autoscale")["spec"]["holderIdentity"] == "a"


# C24, C25
def test_not_found_and_already_exists_status(emu: Emulator, api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("nope", "chat")
    body = _status(exc)
    assert exc.value.status == 404 and body["reason"] == "NotFound" and body["code"] == 404
    assert body["message"] == 'deployments.apps "nope" not found'
    apps.create_namespaced_deployment("chat", _dep())
    with pytest.raises(ApiException) as dup:
        apps.create_namespaced_deployment("chat", _dep())
    assert dup.value.status == 409 and _status(dup)["reason"] == "AlreadyExists"


# C26, C27
def test_injected_faults_leave_store_untouched(emu: Emulator, api_client: client.ApiClient) -> None:
    seeded = emu.seed(_dep())
    apps = client.AppsV1Api(api_client)
    emu.inject("PATCH", r"/deployments/web$", 403)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "chat", {"spec": {"replicas": 9}})
    assert exc.value.status == 403 and _status(exc)["reason"] == "Forbidden"
    assert emu.get("apps/v1", "deployments", "web", "chat") == seeded
    # one-shot: the next request goes through
    assert apps.patch_namespaced_deployment("web", "chat", {"spec": {"replicas": 9}}).spec.replicas == 9
    emu.inject("POST", r"/deployments$", 422)
    with pytest.raises(ApiException) as inv:
        apps.create_namespaced_deployment("chat", _dep("other"))
    assert inv.value.status == 422
    assert emu.get("apps/v1", "deployments", "other", "chat") is None


def test_rbac_denial_and_self_subject_access_review(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep())
    emu.deny("patch", "apps", "deployments", namespace="chat", subresource="scale")
    apps = client.AppsV1Api(api_client)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "chat", {"spec": {"replicas": 3}})
    msg = _status(exc)["message"]
    assert 'cannot patch resource "deployments/scale" in API group "apps" in the namespace "chat"' in msg
    assert emu.get("apps/v1", "deployments", "web", "chat")["spec"]["replicas"] == 2
    assert apps.patch_namespaced_deployment("web", "chat", {"spec": {"replicas": 3}}).spec.replicas == 3
    authz = client.AuthorizationV1Api(api_client)

    def allowed(**attrs: str) -> bool:
        review = authz.create_self_subject_access_review({"spec": {"resourceAttributes": attrs}})
        return bool(review.status.allowed)

    assert not allowed(
        verb="patch", group="apps", resource="deployments", subresource="scale", namespace="chat"
    )
    assert allowed(verb="patch", group="apps", resource="deployments", subresource="scale", namespace="batch")
    assert allowed(verb="patch", group="apps", resource="deployments", namespace="chat")


# C28
def test_request_log(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep())
    client.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        "web", "chat", {"spec": {"replicas": 4}}, dry_run="All"
    )
    (req,) = emu.requests("PATCH", r"/scale$")
    assert req.path == "/apis/apps/v1/namespaces/chat/deployments/web/scale"
    assert req.query == {"dryRun": "All"}
    assert req.content_type == "application/strategic-merge-patch+json"
    assert req.body == {"spec": {"replicas": 4}}


def test_server_side_apply_unsupported_and_hooks(emu: Emulator, api_client: client.ApiClient) -> None:
    emu.seed(_dep())
    apps = client.AppsV1Api(api_client)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment(
            "web",
            "chat",
            {"spec": {"replicas": 1}},
            _content_type="application/apply-patch+yaml",
            field_manager="t",
        )
    assert exc.value.status == 415
    seen: list[int] = []
    emu.on("GET", r"/deployments/web$", lambda e: seen.append(e.rv))
    apps.read_namespaced_deployment("web", "chat")
    apps.read_namespaced_deployment("web", "chat")
    assert len(seen) == 1  # one-shot


def test_pure_patch_helpers() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": [1]}}) == {"a": {"c": 2, "d": [1]}}
    merged = strategic_merge_patch(
        {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
    )
    assert merged == {
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    }
    assert strategic_merge_patch({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}
    sel = parse_label_selector("a in (x, y),!b,c!=z")
    assert sel({"a": "x"}) and sel({"a": "y", "c": "q"})
    assert not sel({"a": "x", "b": "1"}) and not sel({"a": "w"}) and not sel({"a": "x", "c": "z"})


# --------------------------------------------------------------------------------------------------
# Watches: the "efficient detection of changes" contract the watch cache relies on
# --------------------------------------------------------------------------------------------------


def _events(api: client.ApiClient, rv: str, **kw: Any) -> list[tuple[str, str, str]]:
    """(type, name, rv) of every event until the server ends the stream (timeoutSeconds)."""
    from kubernetes import watch

    apps = client.AppsV1Api(api)
    out = []
    for ev in watch.Watch(return_type="object").stream(
        apps.list_namespaced_deployment, "chat", resource_version=rv, **kw
    ):
        meta = ev["raw_object"]["metadata"]
        out.append((ev["type"], meta.get("name", ""), meta["resourceVersion"]))
    return out


def test_watch_streams_changes_after_the_lists_rv_and_applies_the_selector(
    emu: Emulator, api_client: client.ApiClient
) -> None:
    apps = client.AppsV1Api(api_client)
    emu.seed(_dep("a", tier="gold"))
    emu.seed(_dep("b", tier="gold"))
    listed = apps.list_namespaced_deployment("chat", label_selector="tier=gold")
    rv = listed.metadata.resource_version
    assert rv == str(emu.rv) and len(listed.items) == 2
    apps.patch_namespaced_deployment_scale("a", "chat", {"spec": {"replicas": 5}})
    apps.patch_namespaced_deployment("b", "chat", {"metadata": {"labels": {"tier": "silver"}}})
    emu.seed(_dep("c", tier="gold"))
    apps.delete_namespaced_deployment("c", "chat")
    got = _events(api_client, rv, label_selector="tier=gold", timeout_seconds=0)
    # b stopped matching the selector: a watcher with that selector sees it leave (DELETED)
    assert [(t, n) for t, n, _ in got] == [
        ("MODIFIED", "a"),
        ("DELETED", "b"),
        ("ADDED", "c"),
        ("DELETED", "c"),
    ]
    assert [int(r) for _, _, r in got] == sorted(int(r) for _, _, r in got)
    assert [r.query.get("watch") for r in emu.watches()] == ["true"]


def test_watch_from_an_expired_rv_gets_410_expired_and_bookmarks_carry_the_rv(
    emu: Emulator, api_client: client.ApiClient
) -> None:
    emu.seed(_dep("a"))
    old = str(emu.rv)
    emu.seed(_dep("b"))
    emu.compact()  # the history before now is gone, as after etcd compaction
    with pytest.raises(ApiException) as exc:
        _events(api_client, old, timeout_seconds=5)
    assert exc.value.status == 410 and "Expired: too old resource version" in str(exc.value.reason)
    emu.bookmark_interval_s = 0.0
    marks = _events(api_client, str(emu.rv), allow_watch_bookmarks=True, timeout_seconds=0)
    assert marks and all(t == "BOOKMARK" and r == str(emu.rv) for t, _, r in marks)
    # without a resourceVersion the watch starts with the current objects as ADDED
    assert [(t, n) for t, n, _ in _events(api_client, "", timeout_seconds=0)] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_history_is_bounded_and_a_lagging_watch_is_expired(
    emu: Emulator, api_client: client.ApiClient
) -> None:
    emu.history_size = 3
    emu.seed(_dep("a"))
    start = str(emu.rv)
    for name in ("b", "c", "d", "e"):
        emu.seed(_dep(name))
    assert len(emu.history) == 3 and emu.history_floor > int(start)
    with pytest.raises(ApiException) as exc:
        _events(api_client, start, timeout_seconds=0)
    assert exc.value.status == 410
    assert [n for _, n, _ in _events(api_client, str(emu.history_floor), timeout_seconds=0)] == [
        "c",
        "d",
        "e",
    ]
