"""Structural checks of the kustomize tree: it builds from files on disk, runs safe, and keeps no secrets.

No kustomize/kubectl binary is needed: the resolver below follows ``resources`` the way kustomize does
(files, or directories holding a kustomization.yaml) and checks what each overlay patches exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_autoscale.config import Settings
from mcp_autoscale.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
BASE = KUSTOMIZE / "base"
OVERLAYS = {p.name: p for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir()}
RBAC = DEPLOY / "rbac"
PLACEHOLDER = re.compile(r"replace[-_ ]?me|change[-_ ]?me|placeholder|example", re.IGNORECASE)

Doc = dict[str, Any]


def _load_all(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _kustomization(directory: Path) -> Doc:
    path = directory / "kustomization.yaml"
    assert path.is_file(), f"{directory} has no kustomization.yaml"
    [doc] = _load_all(path)
    assert doc["kind"] in ("Kustomization", "Component")
    return doc


def _resolve(directory: Path, seen: set[Path] | None = None) -> list[Doc]:
    """Every object the kustomization's ``resources`` produce (before patches), recursively."""
    seen = set() if seen is None else seen
    directory = directory.resolve()
    assert directory not in seen, f"cycle through {directory}"
    seen.add(directory)
    kz = _kustomization(directory)
    objects: list[Doc] = []
    for entry in kz.get("resources", []):
        target = directory / entry
        assert target.exists(), f"{directory / 'kustomization.yaml'}: resource {entry!r} does not exist"
        if target.is_dir():
            objects += _resolve(target, seen)
        else:
            objects += _load_all(target)
    for gen in kz.get("configMapGenerator", []) + kz.get("secretGenerator", []):
        for f in gen.get("files", []):
            assert (directory / f.split("=")[-1]).is_file(), f"{directory}: generator file {f!r} missing"
    for patch in kz.get("patches", []):
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), f"{directory}: patch {patch['path']!r} missing"
    return objects


def _one(objects: list[Doc], kind: str, name: str | None = None) -> Doc:
    hits = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


@pytest.fixture(scope="module")
def base_objects() -> list[Doc]:
    return _resolve(BASE)


@pytest.fixture(scope="module")
def deployment(base_objects: list[Doc]) -> Doc:
    return _one(base_objects, "Deployment", "mcp-autoscale")


def _container(deployment: Doc) -> Doc:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container["env"]}


# --------------------------------------------------------------------------------------------------


def test_all_yaml_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        docs = _load_all(f)
        assert docs, f"{f} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f
            if f.name != "policy.yaml" and f.parent != DEPLOY / "monitoring":  # policies, Prometheus rules
                assert "kind" in doc and "apiVersion" in doc, f"{f}: not a Kubernetes object"


@pytest.mark.parametrize("directory", [BASE, *OVERLAYS.values()], ids=lambda p: p.name)
def test_every_kustomization_resource_exists(directory: Path) -> None:
    objects = _resolve(directory)
    kinds = {o["kind"] for o in objects}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    } <= kinds


def test_overlays_are_the_two_documented_ones() -> None:
    assert set(OVERLAYS) == {"dry-run-only", "production"}
    for overlay in OVERLAYS.values():
        assert "../../base" in _kustomization(overlay)["resources"]


def test_base_wires_namespace_rbac_and_policy_generator(base_objects: list[Doc]) -> None:
    kz = _kustomization(BASE)
    assert kz["namespace"] == "mcp-autoscale"
    assert "../../rbac" in kz["resources"]
    assert _one(base_objects, "Namespace")["metadata"]["name"] == "mcp-autoscale"
    [gen] = kz["configMapGenerator"]
    assert gen["name"] == "mcp-autoscale-policy" and gen["files"] == ["policy.yaml"]


def test_deployment_shape(deployment: Doc) -> None:
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "mcp-autoscale"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    container = _container(deployment)
    assert container["args"] == [
        "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8080", "--backend", "kubernetes",
    ]  # fmt: skip
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]


@pytest.mark.parametrize("probe", ["readinessProbe", "livenessProbe"])
def test_probes_hit_healthz_on_8080(deployment: Doc, probe: str) -> None:
    get = _container(deployment)[probe]["httpGet"]
    assert get["path"] == "/healthz"
    assert get["port"] == 8080
    assert "httpHeaders" not in get  # probes carry no token: /healthz must not need one


def test_runs_non_root_read_only_without_capabilities(deployment: Doc) -> None:
    pod_sc = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault"
    sc = _container(deployment)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc.get("privileged", False) is False


def test_token_comes_from_the_secret(deployment: Doc) -> None:
    env = _env(_container(deployment))
    ref = env["MCP_AUTOSCALE_HTTP_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mcp-autoscale-token", "key": "token"}
    assert "value" not in env["MCP_AUTOSCALE_HTTP_TOKEN"]
    for name, item in env.items():
        if re.search(r"TOKEN|PASSWORD|SECRET|HMAC", name):
            assert "value" not in item, f"{name} must come from a Secret, not a literal"


def test_policy_and_state_are_mounted_where_the_env_says(base_objects: list[Doc], deployment: Doc) -> None:
    container = _container(deployment)
    env = _env(container)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}

    policy_file = Path(env["MCP_AUTOSCALE_POLICY_FILE"]["value"])
    assert policy_file == Path("/etc/mcp-autoscale/policy.yaml")
    [policy_mount] = [m for m in mounts.values() if m["mountPath"] == str(policy_file.parent)]
    assert policy_mount["readOnly"] is True
    cm = volumes[policy_mount["name"]]["configMap"]
    assert cm["name"] == "mcp-autoscale-policy"
    assert {"key": "policy.yaml", "path": policy_file.name} in cm["items"]

    state_dir = env["MCP_AUTOSCALE_STATE_DIR"]["value"]
    assert state_dir == "/var/lib/mcp-autoscale"
    [state_mount] = [m for m in mounts.values() if m["mountPath"] == state_dir]
    claim = volumes[state_mount["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = _one(base_objects, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # A read-only root filesystem still needs a writable /tmp.
    assert any(m["mountPath"] == "/tmp" and "emptyDir" in volumes[m["name"]] for m in mounts.values())


def test_env_is_what_settings_reads(monkeypatch: pytest.MonkeyPatch, deployment: Doc) -> None:
    """The Deployment's MCP_AUTOSCALE_* variables are real settings and parse (e.g. JSON lists)."""
    env = _env(_container(deployment))
    for name, item in env.items():
        if name.startswith("MCP_AUTOSCALE_"):
            assert name.removeprefix("MCP_AUTOSCALE_").lower() in Settings.model_fields, name
            monkeypatch.setenv(name, item.get("value", "placeholder-token-for-test"))
    settings = Settings()
    assert settings.policy_file == Path("/etc/mcp-autoscale/policy.yaml")
    assert settings.state_dir == Path("/var/lib/mcp-autoscale")
    assert settings.prometheus_url and settings.prometheus_url.startswith("http://")
    assert "mcp-autoscale.mcp-autoscale.svc:8080" in settings.allowed_hosts
    assert settings.http_token is not None
    assert settings.dry_run is False


def test_service_is_cluster_ip_8080_and_selects_the_pod(base_objects: list[Doc], deployment: Doc) -> None:
    svc = _one(base_objects, "Service", "mcp-autoscale")
    assert svc["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert set(ports) == {"http", "metrics"}
    assert ports["http"]["port"] == 8080 and ports["http"]["targetPort"] in ("http", 8080)
    assert ports["metrics"]["targetPort"] == "metrics"
    assert svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("policy", [BASE / "policy.yaml", KUSTOMIZE / "overlays/production/policy.yaml"])
def test_shipped_policies_validate(policy: Path) -> None:
    loaded = load_policy(policy)
    assert loaded.rules
    # The production namespaces keep an HA floor of at least 2 replicas.
    floors = [r.replicas.min for r in loaded.rules if r.replicas and "chat" in r.match.namespaces]
    assert floors and min(floors) >= 2


def test_dry_run_overlay_sets_dry_run_and_binds_read_only_role(base_objects: list[Doc]) -> None:
    overlay = OVERLAYS["dry-run-only"]
    kz = _kustomization(overlay)
    [env_patch] = [_load_all(overlay / p["path"])[0] for p in kz["patches"] if "path" in p]
    assert env_patch["kind"] == "Deployment" and env_patch["metadata"]["name"] == "mcp-autoscale"
    [container] = env_patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "server"  # strategic merge keys on the base container's name
    assert {"name": "MCP_AUTOSCALE_DRY_RUN", "value": "true"} in container["env"]

    [binding_patch] = [p for p in kz["patches"] if p.get("target", {}).get("kind") == "ClusterRoleBinding"]
    ops = yaml.safe_load(binding_patch["patch"])
    assert ops == [{"op": "replace", "path": "/roleRef/name", "value": "mcp-autoscale-readonly"}]
    # The binding and both roles named by the overlay exist in the RBAC it builds on.
    binding = _one(base_objects, "ClusterRoleBinding", binding_patch["target"]["name"])
    assert binding["roleRef"]["kind"] == "ClusterRole"
    readonly = _one(base_objects, "ClusterRole", "mcp-autoscale-readonly")
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in readonly["rules"])
    deletes = [yaml.safe_load(p["patch"]) for p in kz["patches"] if "$patch: delete" in p.get("patch", "")]
    deleted = {(d["kind"], d["metadata"]["name"]) for d in deletes}
    # Every write grant is removed: the cluster-wide write role and the namespaced one (balloons, Leases).
    assert deleted == {
        ("ClusterRole", binding["roleRef"]["name"]),
        ("Role", "mcp-autoscale"),
        ("RoleBinding", "mcp-autoscale"),
    }
    for kind, name in deleted:
        _one(base_objects, kind, name)
    sa = _one(base_objects, "ServiceAccount")
    assert {"kind": "ServiceAccount", "name": sa["metadata"]["name"]}.items() <= binding["subjects"][
        0
    ].items()


def _json_pointer_exists(doc: Any, pointer: str) -> bool:
    for part in pointer.strip("/").split("/"):
        if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return False
    return True


def test_production_overlay_patches_fields_that_exist(base_objects: list[Doc]) -> None:
    overlay = OVERLAYS["production"]
    kz = _kustomization(overlay)
    for patch in kz["patches"]:
        target = _one(base_objects, patch["target"]["kind"], patch["target"]["name"])
        for op in yaml.safe_load(patch["patch"]):
            assert op["op"] == "replace"
            assert _json_pointer_exists(target, op["path"]), op["path"]
    gens = {g["name"]: g for g in kz["configMapGenerator"]}
    policy_cm = _kustomization(BASE)["configMapGenerator"][0]["name"]
    assert set(gens) == {policy_cm, "mcp-autoscale-oidc"}
    assert gens[policy_cm]["behavior"] == "replace"
    [netpol] = [o for o in _resolve(overlay) if o["kind"] == "NetworkPolicy"]
    pod_labels = _one(base_objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert netpol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert netpol["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_no_secret_value_is_committed() -> None:
    """Secrets in deploy/ hold only an obvious placeholder, and none is part of a kustomization."""
    referenced: set[Path] = set()
    for kz_path in KUSTOMIZE.rglob("kustomization.yaml"):
        for entry in _kustomization(kz_path.parent).get("resources", []):
            referenced.add((kz_path.parent / entry).resolve())
    secrets = 0
    for f in sorted(DEPLOY.rglob("*.yaml")):
        for doc in _load_all(f):
            if doc.get("kind") != "Secret":
                continue
            secrets += 1
            assert f.resolve() not in referenced, f"{f} is applied by a kustomization"
            for value in {**doc.get("stringData", {}), **doc.get("data", {})}.values():
                assert PLACEHOLDER.search(str(value)), f"{f}: Secret value is not an obvious placeholder"
    assert secrets == 1  # the documented example
    # Nothing that looks like a real credential anywhere under deploy/: a long run of letters and digits
    # (hex, base64 or a random token) or a bearer header.
    for f in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = f.read_text(encoding="utf-8")
        for run in re.findall(r"[A-Za-z0-9+=_-]{32,}", text):
            random_looking = re.search(r"\d", run) and re.search(r"[A-Za-z]", run)
            assert not random_looking or PLACEHOLDER.search(run), f"{f}: {run[:8]}..."
        assert "Bearer " not in text, f


def test_allowed_hosts_cover_the_service_names(deployment: Doc) -> None:
    hosts = json.loads(_env(_container(deployment))["MCP_AUTOSCALE_ALLOWED_HOSTS"]["value"])
    svc, ns = "mcp-autoscale", "mcp-autoscale"
    assert f"{svc}.{ns}.svc:8080" in hosts and f"{svc}:8080" in hosts
