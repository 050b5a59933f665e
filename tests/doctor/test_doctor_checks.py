"""``mcp-autoscale doctor`` on healthy and broken setups: the right rows fail, and the exit code says so.

The Kubernetes cases run against the in-process API-server emulator (tests/kube/emulator.py) through a
real kubeconfig file, so credentials loading, SelfSubjectAccessReview and CRD listing are exercised on the
wire exactly as against a cluster.
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube"))

from emulator import Emulator
from kube_objects import KEDA_CRD, NODEPOOL_CRD, crd, default_fleet

from mcp_autoscale.cli import app as cli
from mcp_autoscale.cluster.kubernetes import REQUIRED_PERMISSIONS
from mcp_autoscale.config import Settings
from mcp_autoscale.doctor import (
    Status,
    check_dependencies,
    dialects_seen,
    run_checks,
)

NODECLAIM_CRD = crd("karpenter.sh", "v1", "nodeclaims", "NodeClaim", scope="Cluster")


def doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args], env=env)
    return result.exit_code, json.loads(result.stdout)


def statuses(out: dict[str, Any]) -> dict[str, str]:
    return {f"{c['group']}:{c['name']}": c["status"] for c in out["checks"]}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture
def fake_prometheus() -> Iterator[tuple[str, list[str]]]:
    """A loopback Prometheus HTTP API: /-/ready and /api/v1/query answering the series names it holds."""
    series: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/-/ready":
                body = b"Prometheus Server is Ready.\n"
            elif self.path.startswith("/api/v1/query"):
                result = [{"metric": {"__name__": n}, "value": [0, "1"]} for n in series]
                body = json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": result}}
                ).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", series
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def kube(emulator: Emulator, tmp_path: Path) -> tuple[Emulator, dict[str, str]]:
    """A fresh emulated cluster with the CRDs and the default fleet, and env pointing a kubeconfig at it."""
    emulator.reset()
    for obj in (KEDA_CRD, NODEPOOL_CRD, NODECLAIM_CRD):
        emulator.seed(obj)
    for obj in default_fleet():
        emulator.seed(obj)
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    env = {"KUBECONFIG": str(kubeconfig), "MCP_AUTOSCALE_STATE_DIR": str(tmp_path / "state")}
    return emulator, env


# ------------------------------------------------------------------------------------------ unit checks


def test_dependency_versions_are_checked_against_the_declared_range() -> None:
    ok = check_dependencies({"pydantic": "pydantic"}, {"pydantic": ">=2.0"})
    assert ok[0].status is Status.PASS and ok[0].detail.startswith("2.")
    too_old = check_dependencies({"pydantic": "pydantic"}, {"pydantic": ">=99"})
    assert too_old[0].status is Status.FAIL and ">=99 required" in too_old[0].detail
    missing = check_dependencies({"no-such-dist-xyz": "no_such_module_xyz"}, {})
    assert missing[0].status is Status.FAIL and "not importable" in missing[0].detail


def test_dialects_seen_lists_every_engine_present() -> None:
    assert dialects_seen(["vllm:kv_cache_usage_perc", "up"]) == ["vllm"]
    assert dialects_seen(["up"]) == []


# ------------------------------------------------------------------------------------------ sim backend


def test_healthy_sim_setup(tmp_path: Path, fake_prometheus: tuple[str, list[str]]) -> None:
    url, series = fake_prometheus
    series.extend(["vllm:kv_cache_usage_perc", "vllm:num_requests_waiting"])
    policy = Path(__file__).resolve().parents[2] / "policies" / "read-only.yaml"
    code, out = doctor(
        "--policy", str(policy), "--audit", str(tmp_path / "a" / "audit.jsonl"), "--prometheus", url
    )
    st = statuses(out)
    assert code == 0, out
    assert st["policy:policy"] == "pass" and st["audit:writable"] == "pass" and st["audit:chain"] == "pass"
    assert st["deps:mcp"] == "pass" and st["prometheus:reachable"] == "pass"
    dialect_row = next(c for c in out["checks"] if c["name"] == "dialects")
    assert dialect_row["status"] == "pass" and "vllm" in dialect_row["detail"]
    assert not any(k.startswith(("rbac:", "crds:", "kubernetes:")) for k in st)  # not relevant on the sim


def test_healthy_sim_setup_with_an_existing_audit_chain(make_settings: Callable[..., Settings]) -> None:
    from mcp_autoscale.app import build_app

    settings = make_settings()
    app = build_app(settings)
    app.audit.append(
        action_id="act-1",
        tool="scale_deployment",
        target="dev/granite-8b",
        arguments={"replicas": 2},
        rationale="doctor test",
        caller="test",
        dry_run=True,
        verdict={"decision": "allow"},
        status="dry_run",
    )
    report = run_checks(settings)
    chain = next(c for c in report.checks if c.group == "audit" and c.name == "chain")
    assert chain.status is Status.PASS and "1 records" in chain.detail and report.exit_code == 0


def test_broken_sim_setup(tmp_path: Path, closed_port: int) -> None:
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("version: 1\nrules:\n  - name: x\n    tools: [delete_everything]\n")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit directory should be")
    code, out = doctor(
        "--policy",
        str(bad_policy),
        "--audit",
        str(blocker / "audit.jsonl"),
        "--prometheus",
        f"http://127.0.0.1:{closed_port}",
    )
    assert code == 1
    failed = {f"{c['group']}:{c['name']}": c["detail"] for c in out["checks"] if c["status"] == "fail"}
    assert set(failed) == {"policy:policy", "audit:writable", "prometheus:reachable"}, failed
    assert "bad.yaml:4" in failed["policy:policy"]
    assert "not-a-dir" in failed["audit:writable"]
    assert "connection refused" in failed["prometheus:reachable"]


def test_tampered_audit_chain_fails(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text('{"seq": 1, "id": "aud-1", "hash": "forged"}\n')
    report = run_checks(make_settings(audit_file=audit))
    chain = next(c for c in report.checks if c.group == "audit" and c.name == "chain")
    assert chain.status is Status.FAIL and report.exit_code == 1


def test_table_output_names_failures(tmp_path: Path, closed_port: int) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "doctor",
            "--audit",
            str(tmp_path / "audit.jsonl"),
            "--prometheus",
            f"http://127.0.0.1:{closed_port}",
        ],
    )
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if "reachable" in x)
    assert line.startswith("FAIL") and "connection refused" in line
    assert "FAILED: " in result.stdout and "1 failed" in result.stdout


# ---------------------------------------------------------------------------------- kubernetes backend


def test_healthy_kubernetes_setup(kube: tuple[Emulator, dict[str, str]], tmp_path: Path) -> None:
    emu, env = kube
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    st = statuses(out)
    assert code == 0, [c for c in out["checks"] if c["status"] == "fail"]
    rbac = {k: v for k, v in st.items() if k.startswith("rbac:")}
    assert len(rbac) == sum(len(p.verbs) for p in REQUIRED_PERMISSIONS)
    assert set(rbac.values()) == {"pass"}
    assert st["crds:scaledobjects.keda.sh"] == "pass" and st["crds:nodepools.karpenter.sh"] == "pass"
    assert st["kubernetes:pools"] == "pass"
    reviews = emu.requests("POST", "selfsubjectaccessreviews")
    assert len(reviews) == len(rbac)
    assert {"verb": "patch", "group": "apps", "resource": "deployments", "subresource": "scale"} in [
        r.body["spec"]["resourceAttributes"] for r in reviews
    ]
    assert not [r for r in emu.writes() if "selfsubjectaccessreviews" not in r.path]  # doctor never writes
    assert st["prometheus:configured"] == "warn"  # no --prometheus: a warning, not a failure


def test_kubernetes_rbac_denial_and_missing_keda(
    kube: tuple[Emulator, dict[str, str]], tmp_path: Path
) -> None:
    emu, env = kube
    emu.deny("patch", "apps", "deployments", subresource="scale")
    emu.store = {k: v for k, v in emu.store.items() if k[4] != "scaledobjects.keda.sh"}
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    assert code == 1
    failed = {f"{c['group']}:{c['name']}": c["detail"] for c in out["checks"] if c["status"] == "fail"}
    assert set(failed) == {
        "rbac:patch deployments/scale.apps (cluster-wide)",
        "crds:scaledobjects.keda.sh",
    }, failed
    assert "scale_deployment" in failed["rbac:patch deployments/scale.apps (cluster-wide)"]
    assert "install KEDA" in failed["crds:scaledobjects.keda.sh"]


def test_kubernetes_unreachable_api_server(tmp_path: Path, closed_port: int) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{closed_port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    env = {"KUBECONFIG": str(kubeconfig), "MCP_AUTOSCALE_REQUEST_TIMEOUT_S": "2"}
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    assert code == 1
    st = statuses(out)
    assert st["kubernetes:credentials"] == "pass" and st["kubernetes:reachable"] == "fail"


def test_kubernetes_bad_kubeconfig(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "missing-kubeconfig")}
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    assert code == 1 and statuses(out)["kubernetes:credentials"] == "fail"


def test_recording_rules_row_when_the_setting_is_on(
    tmp_path: Path, fake_prometheus: tuple[str, list[str]]
) -> None:
    from mcp_autoscale.signals import dialects
    from mcp_autoscale.signals.promql import PoolGrouping
    from mcp_autoscale.signals.rules import recording_rules

    url, series = fake_prometheus
    series.extend(["vllm:kv_cache_usage_perc", "vllm:num_requests_waiting"])
    policy = Path(__file__).resolve().parents[2] / "policies" / "read-only.yaml"
    args = ("--policy", str(policy), "--audit", str(tmp_path / "a.jsonl"), "--prometheus", url)
    on = {"MCP_AUTOSCALE_PROMETHEUS_RECORDING_RULES": "true", "MCP_AUTOSCALE_RATE_WINDOW": "90s"}

    code, out = doctor(*args)
    assert "prometheus:recording-rules" not in statuses(out)  # off by default: no row
    code, out = doctor(*args, env=on)
    row = next(c for c in out["checks"] if c["name"] == "recording-rules")
    assert code == 1 and row["status"] == "fail"
    assert "none of the" in row["detail"] and "mcp-autoscale signals rules --window 90s" in row["detail"]

    recorded = [r["record"] for r in recording_rules([dialects.get("vllm")], PoolGrouping(), "90s")]
    series.extend(recorded[:-1])
    code, out = doctor(*args, env=on)
    row = next(c for c in out["checks"] if c["name"] == "recording-rules")
    assert code == 0 and row["status"] == "warn" and recorded[-1] in row["detail"]
    series.append(recorded[-1])
    code, out = doctor(*args, env=on)
    assert statuses(out)["prometheus:recording-rules"] == "pass"


# ------------------------------------------------------------------- CRDs: optional unless relied on


def _only(emu: Emulator, *objs: dict[str, Any]) -> None:
    """The emulator holding just these objects (no CRDs unless listed)."""
    emu.reset()
    for obj in objs:
        emu.seed(obj)


def test_missing_crds_only_warn_when_nothing_relies_on_them(
    kube: tuple[Emulator, dict[str, str]], tmp_path: Path
) -> None:
    emu, env = kube
    from kube_objects import deployment, hpa

    _only(
        emu,
        NODECLAIM_CRD,
        deployment("chat", "plain", model="m/plain", replicas=2),
        hpa("chat", "plain", "plain", min_replicas=1, max_replicas=4),
    )
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    st = statuses(out)
    assert st["crds:scaledobjects.keda.sh"] == "warn" and st["crds:nodepools.karpenter.sh"] == "warn"
    assert code == 0, [c for c in out["checks"] if c["status"] == "fail"]
    detail = {c["name"]: c["detail"] for c in out["checks"] if c["group"] == "crds"}
    assert "nothing here relies on it" in detail["scaledobjects.keda.sh"]


def test_missing_karpenter_fails_when_a_pool_or_the_policy_relies_on_it(
    kube: tuple[Emulator, dict[str, str]], tmp_path: Path
) -> None:
    emu, env = kube
    from kube_objects import deployment

    _only(emu, KEDA_CRD, deployment("chat", "placed", model="m/p", node_pool="gpu-l4", gpu_name="l4"))
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    failed = {c["name"]: c["detail"] for c in out["checks"] if c["status"] == "fail"}
    assert code == 1 and set(failed) == {"nodepools.karpenter.sh"}
    assert "pool chat/placed runs on NodePool gpu-l4" in failed["nodepools.karpenter.sh"]
    assert "install Karpenter" in failed["nodepools.karpenter.sh"]

    # No pool on a NodePool, but the policy lets the agent pre-provision GPU nodes: still needed.
    _only(emu, KEDA_CRD, deployment("chat", "plain", model="m/plain"))
    policy = tmp_path / "gpu.yaml"
    policy.write_text(
        "version: 1\nname: gpu\ntools: [request_gpu_nodes]\nnode_pools: ['gpu-*']\n"
        "rules:\n  - name: headroom\n    match: {tools: [request_gpu_nodes]}\n    budget: {max_gpus: 4}\n"
    )
    args = ["--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl")]
    code, out = doctor(*args, "--policy", str(policy), env=env)
    failed = {c["name"]: c["detail"] for c in out["checks"] if c["status"] == "fail"}
    assert code == 1 and "policy 'gpu' allows request_gpu_nodes" in failed["nodepools.karpenter.sh"]
    code, out = doctor(*args, env=env)  # the built-in read-only policy: only a warning
    assert code == 0 and statuses(out)["crds:nodepools.karpenter.sh"] == "warn"


def test_missing_keda_fails_when_an_hpa_is_keda_managed(
    kube: tuple[Emulator, dict[str, str]], tmp_path: Path
) -> None:
    emu, env = kube
    from kube_objects import deployment, hpa

    orphan = hpa("chat", "llm-scaler", "llm", min_replicas=1, max_replicas=4)
    orphan["metadata"]["ownerReferences"] = [
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "llm", "uid": "u-1"}
    ]
    _only(emu, NODEPOOL_CRD, deployment("chat", "llm", model="m/llm"), orphan)
    code, out = doctor("--backend", "kubernetes", "--audit", str(tmp_path / "audit.jsonl"), env=env)
    failed = {c["name"]: c["detail"] for c in out["checks"] if c["status"] == "fail"}
    assert code == 1 and set(failed) == {"scaledobjects.keda.sh"}
    assert "HPA chat/llm-scaler is managed by a KEDA ScaledObject" in failed["scaledobjects.keda.sh"]
