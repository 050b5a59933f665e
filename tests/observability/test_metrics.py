"""The server's own metrics: every choke point counts, and a real Prometheus scrapes /metrics.

In-process cases read the default registry before and after (the metrics are process-wide counters); the
integration case starts the Debian ``prometheus`` binary (the signal tests' helper) scraping a served
HTTP transport and a stdio server's ``--metrics-port``, and queries the series back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
import yaml
from kubernetes import client as kube_client
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "signals"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kube"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from emulator import Emulator
from http_helpers import free_port, wait_healthy
from kube_objects import KEDA_CRD, NODEPOOL_CRD, default_fleet
from signals_helpers import poll, start_prometheus, stop_prometheus
from test_transports import serve_args

from mcp_autoscale import metrics
from mcp_autoscale.app import build_app
from mcp_autoscale.cluster.kubernetes import KubernetesBackend
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AuditUnavailable, BackendUnavailable, Forbidden
from mcp_autoscale.models import PoolRef
from mcp_autoscale.server import create_server
from mcp_autoscale.signals.prometheus import PrometheusSource

DEV = {"namespace": "dev", "deployment": "granite-8b"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Counter values now, to compare after the calls under test."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.before = {(n, tuple(sorted(lab.items()))): value(n, **lab) for n, lab in series}

    def __call__(self, name: str, **labels: str) -> float:
        return value(name, **labels) - self.before[(name, tuple(sorted(labels.items())))]


@pytest.mark.anyio
async def test_tool_calls_verdicts_gate_and_snapshot_are_counted(
    make_settings: Callable[..., Settings],
) -> None:
    app = build_app(make_settings())
    tc = "mcp_autoscale_tool_calls_total"
    series = [
        (tc, {"tool": "get_slo_snapshot", "outcome": "ok"}),
        (tc, {"tool": "scale_deployment", "outcome": "ok"}),
        (tc, {"tool": "scale_deployment", "outcome": "error"}),
        (tc, {"tool": "explain_pool", "outcome": "error"}),
        (tc, {"tool": "unknown", "outcome": "error"}),
        ("mcp_autoscale_audit_appends_total", {}),
        ("mcp_autoscale_gate_seconds_count", {"tool": "scale_deployment"}),
        ("mcp_autoscale_snapshot_seconds_count", {}),
        ("mcp_autoscale_tool_call_seconds_count", {"tool": "get_slo_snapshot"}),
    ]
    delta = Delta(*series)
    verdicts_before = _verdicts()
    async with Client(create_server(app)) as c:
        assert not (await c.call_tool("get_slo_snapshot", {"namespace": "dev"})).is_error
        ok = await c.call_tool("scale_deployment", {**DEV, "replicas": 2, "rationale": "m", "dry_run": True})
        assert ok.structured_content["status"] == "dry_run"  # type: ignore[index]
        far = await c.call_tool(
            "scale_deployment", {**DEV, "replicas": 900, "rationale": "m", "dry_run": True}
        )
        assert far.structured_content["status"] == "denied"  # type: ignore[index]
        bad = await c.call_tool(
            "scale_deployment", {**DEV, "replicas": -3, "rationale": "m", "dry_run": False}
        )
        assert bad.is_error
        missing = await c.call_tool("explain_pool", {"namespace": "dev", "deployment": "nope"})
        assert missing.is_error
        unknown = await c.call_tool("no_such_tool_xyz", {})
        assert unknown.is_error
    assert delta(tc, tool="get_slo_snapshot", outcome="ok") == 1
    assert delta(tc, tool="scale_deployment", outcome="ok") == 2  # a denial is a normal answer
    assert delta(tc, tool="scale_deployment", outcome="error") == 1
    assert delta(tc, tool="explain_pool", outcome="error") == 1
    assert delta(tc, tool="unknown", outcome="error") == 1  # the label set does not grow with client input
    assert value(tc, tool="no_such_tool_xyz", outcome="error") == 0
    assert delta("mcp_autoscale_audit_appends_total") == 2
    assert delta("mcp_autoscale_gate_seconds_count", tool="scale_deployment") == 2
    assert delta("mcp_autoscale_snapshot_seconds_count") >= 1
    assert delta("mcp_autoscale_tool_call_seconds_count", tool="get_slo_snapshot") == 1
    after = _verdicts()
    grew = {k: after[k] - verdicts_before.get(k, 0) for k in after if after[k] != verdicts_before.get(k, 0)}
    assert {d for d, _ in grew} == {"allow", "deny"} and sum(grew.values()) >= 2
    assert all(rule for _, rule in grew)  # every verdict is attributed to a rule (or 'none')


def _verdicts() -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in REGISTRY.collect():
        if family.name == "mcp_autoscale_verdicts":
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[(s.labels["decision"], s.labels["rule"])] = s.value
    return out


def test_audit_append_failure_is_counted(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    app = build_app(make_settings())
    lock = Path(str(app.settings.resolved_audit_file) + ".lock")
    lock.unlink(missing_ok=True)
    lock.mkdir()  # the append lock cannot be taken: every append fails for real, reads still work
    delta = Delta(
        ("mcp_autoscale_audit_append_failures_total", {}), ("mcp_autoscale_audit_appends_total", {})
    )
    from mcp_autoscale.actions.build import action_from_call

    action = action_from_call("scale_deployment", {**DEV, "replicas": 2}, "m", dry_run=True)
    with pytest.raises(AuditUnavailable):  # fail closed: no record, no decision
        app.gate.submit(action)
    assert delta("mcp_autoscale_audit_append_failures_total") == 1
    assert delta("mcp_autoscale_audit_appends_total") == 0


def test_pending_approvals_gauge_reads_open_proposals(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    policy = tmp_path / "approve.yaml"
    policy.write_text(
        "version: 1\nname: approve\ntools: [scale_deployment]\nnamespaces: [dev]\nrules:\n"
        "  - name: dev-needs-a-human\n    match: {namespaces: [dev]}\n    replicas: {min: 0, max: 8}\n"
        "    guards: {max_kv_for_scale_in: null, max_queue_for_scale_in: null, max_data_age_s: null}\n"
        "    approval: {when: always}\n"
    )
    app = build_app(make_settings(policy_file=policy))
    metrics.watch_pending(app.gate)
    assert value("mcp_autoscale_pending_approvals") == 0
    from mcp_autoscale.actions.build import action_from_call

    result = app.gate.submit(action_from_call("scale_deployment", {**DEV, "replicas": 3}, "needs a human"))
    assert result.status.value == "pending_approval", result.message
    assert value("mcp_autoscale_pending_approvals") == 1
    assert result.proposal_id is not None
    app.gate.reject(result.proposal_id, "alice", "not now")
    assert value("mcp_autoscale_pending_approvals") == 0


def test_prometheus_query_latency_and_errors(make_settings: Callable[..., Settings]) -> None:
    port = free_port()  # nothing listens: connection refused
    source = PrometheusSource(
        make_settings(prometheus_url=f"http://127.0.0.1:{port}", prometheus_timeout_s=2)
    )
    delta = Delta(
        ("mcp_autoscale_prometheus_query_errors_total", {"reason": "unreachable"}),
        ("mcp_autoscale_prometheus_query_seconds_count", {}),
    )
    report = source.collect([_pool_state()])
    assert report.errors
    assert delta("mcp_autoscale_prometheus_query_errors_total", reason="unreachable") == report.queries
    assert delta("mcp_autoscale_prometheus_query_seconds_count") == report.queries


def _pool_state() -> object:
    from mcp_autoscale.models import PoolState

    return PoolState(ref=PoolRef(namespace="dev", name="p"), model="m", gpu_type="L4", desired_replicas=1,
                     ready_replicas=1)  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    for obj in (KEDA_CRD, NODEPOOL_CRD, *default_fleet()):
        emu.seed(obj)
    yield emu
    emu.stop()


def test_kubernetes_api_errors_by_code(emulator: Emulator, make_settings: Callable[..., Settings]) -> None:
    with kube_client.ApiClient(kube_client.Configuration(host=emulator.url)) as api:
        backend = KubernetesBackend(make_settings(backend="kubernetes"), api_client=api)
        delta = Delta(
            ("mcp_autoscale_kubernetes_api_errors_total", {"code": "403"}),
            ("mcp_autoscale_kubernetes_api_errors_total", {"code": "transport"}),
        )
        emulator.inject("GET", r"/apis/apps/v1/deployments", 403)
        with pytest.raises(Forbidden):
            backend.list_pools()
        assert delta("mcp_autoscale_kubernetes_api_errors_total", code="403") == 1
        assert backend.list_pools()  # the fault was one-shot
    closed = kube_client.Configuration(host=f"http://127.0.0.1:{free_port()}")
    with kube_client.ApiClient(closed) as api:
        backend = KubernetesBackend(make_settings(backend="kubernetes", request_timeout_s=2), api_client=api)
        with pytest.raises(BackendUnavailable, match="unreachable"):
            backend.list_pools()
    assert delta("mcp_autoscale_kubernetes_api_errors_total", code="transport") == 1


# -------------------------------------------------------------------------- a real Prometheus scrapes

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


def dashboard_exprs() -> list[str]:
    """The Grafana dashboard's queries with its variables filled in as Grafana would."""
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 12
    return [e.replace("$instance", ".*").replace("$__rate_interval", "1m") for e in exprs]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "mcp-autoscale-alerts.yaml").read_text())
    return [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]


def declared_series() -> set[str]:
    """Every sample name the metrics module can expose (counters that have not moved yet included)."""
    out: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("mcp_autoscale_"):
            out |= {family.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
    return out


def test_dashboard_names_only_series_the_server_declares() -> None:
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert board["uid"] and board["title"]
    used = {m for e in dashboard_exprs() for m in re.findall(r"mcp_autoscale_[a-z_]+", e)}
    assert used <= declared_series(), used - declared_series()
    for family in ("tool_calls", "verdicts", "gate_seconds", "prometheus_query_seconds",
                   "prometheus_query_errors", "kubernetes_api_errors", "audit_appends",
                   "audit_append_failures", "pending_approvals", "snapshot_seconds"):  # fmt: skip
        assert any(f"mcp_autoscale_{family}" in m for m in used), family


@pytest.mark.integration
@pytest.mark.anyio
async def test_real_prometheus_scrapes_http_and_stdio_metrics(tmp_path: Path) -> None:
    """Prometheus scrapes an HTTP server's /metrics and a stdio server's --metrics-port; both answer."""
    http_port, stdio_metrics_port = free_port(), free_port()
    token = "metrics-test-token"
    (tmp_path / "h").mkdir()
    (tmp_path / "prom").mkdir()
    proc = subprocess.Popen(  # boots while the stdio server and Prometheus start
        [sys.executable, *serve_args(tmp_path / "h", "--transport", "http", "--port", str(http_port))],
        env={**os.environ, "MCP_AUTOSCALE_HTTP_TOKEN": token},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{http_port}"
    prom = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{http_port}", f"127.0.0.1:{stdio_metrics_port}"])
    try:
        params = StdioServerParameters(
            command=sys.executable, args=serve_args(tmp_path, "--metrics-port", str(stdio_metrics_port))
        )
        async with Client(params) as stdio:  # type: ignore[arg-type]
            r = await stdio.call_tool(
                "scale_deployment", {**DEV, "replicas": 2, "rationale": "m", "dry_run": True}
            )
            assert not r.is_error
            wait_healthy(f"{base}/healthz", proc)
            scraped = httpx.get(f"{base}/metrics", timeout=5)  # no token needed, like /healthz
            assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
            names = {f.name for f in text_string_to_metric_families(scraped.text)}
            assert {"mcp_autoscale_tool_calls", "mcp_autoscale_pending_approvals"} <= names
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
                Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c,
            ):
                assert not (await c.call_tool("get_slo_snapshot", {"namespace": "dev"})).is_error

            def scraped_both() -> bool:
                rows = prom.query('mcp_autoscale_tool_calls_total{outcome="ok"}')
                tools = {str(r["metric"]["tool"]) for r in rows}  # type: ignore[index]
                return {"get_slo_snapshot", "scale_deployment"} <= tools

            poll(scraped_both, 20, "Prometheus to scrape both servers' tool-call counters")
            up = prom.query("up")
            assert len(up) == 2 and all(r["value"][1] == "1" for r in up)  # type: ignore[index]
            verdicts = prom.query('sum by (decision) (mcp_autoscale_verdicts_total{decision="allow"})')
            assert verdicts and float(verdicts[0]["value"][1]) >= 1  # type: ignore[index]
            # Every dashboard panel and alert expression is valid PromQL on the scraped series.
            for expr in dashboard_exprs() + alert_exprs():
                prom.query(expr)  # raises on a 400 (bad PromQL)
            served = prom.query('{__name__=~"mcp_autoscale_.+"}')
            names = {str(r["metric"]["__name__"]) for r in served}  # type: ignore[index]
            for expr in dashboard_exprs():
                for used in re.findall(r"mcp_autoscale_[a-z_]+", expr):
                    assert used in names or used in declared_series(), used
    finally:
        stop_prometheus(prom)
        proc.terminate()
        proc.wait(timeout=10)
