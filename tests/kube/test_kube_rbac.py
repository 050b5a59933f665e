"""deploy/rbac/ must grant exactly REQUIRED_PERMISSIONS: nothing missing, nothing extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_autoscale.cluster.kubernetes import REQUIRED_PERMISSIONS

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac"
READ_VERBS = {"get", "list", "watch"}
Triple = tuple[str, str, str]


def _docs() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(RBAC.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def _granted(role: dict[str, Any]) -> set[Triple]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _required(scope: str) -> set[Triple]:
    return {(p.group, p.resource, v) for p in REQUIRED_PERMISSIONS if p.scope == scope for v in p.verbs}


@pytest.fixture(scope="module")
def docs() -> dict[tuple[str, str], dict[str, Any]]:
    return _docs()


def test_cluster_role_grants_exactly_the_table(docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    granted = _granted(docs[("ClusterRole", "mcp-autoscale")])
    assert granted == _required("cluster")
    assert not any("*" in part for triple in granted for part in triple)


def test_namespace_role_grants_exactly_the_table(docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    role = docs[("Role", "mcp-autoscale")]
    assert role["metadata"]["namespace"] == "mcp-autoscale"
    assert _granted(role) == _required("namespace")


def test_readonly_role_is_the_read_half(docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    readonly = _granted(docs[("ClusterRole", "mcp-autoscale-readonly")])
    assert readonly == {t for t in _required("cluster") if t[2] in READ_VERBS}
    assert all(verb in READ_VERBS for _, _, verb in readonly)


def test_bindings_point_at_the_service_account(docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    sa = docs[("ServiceAccount", "mcp-autoscale")]
    assert sa["metadata"]["namespace"] == "mcp-autoscale"
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = docs[(kind, "mcp-autoscale")]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": "mcp-autoscale",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "mcp-autoscale", "namespace": "mcp-autoscale"}
        ]


def test_kustomization_lists_every_manifest() -> None:
    kz = yaml.safe_load((RBAC / "kustomization.yaml").read_text())
    files = {p.name for p in RBAC.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kz["resources"]) == files
