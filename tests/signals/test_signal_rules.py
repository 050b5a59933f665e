"""The recording-rules generator: names, expressions, agreement with the query plan, the shipped file, CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mcp_autoscale.cli import app
from mcp_autoscale.models import SIGNAL_NAMES
from mcp_autoscale.signals import dialects
from mcp_autoscale.signals.dialects.spec import Dialect, Kind, gauge, latency, rate
from mcp_autoscale.signals.promql import PoolGrouping, bucket_rate_expr, plan
from mcp_autoscale.signals.rules import (
    RECORDED_KINDS,
    duration,
    prometheus_rule,
    recording_rules,
    render,
    rules_file,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "prometheus" / "mcp-autoscale-rules.yaml"
DERIVED = PoolGrouping()
LABELLED = PoolGrouping("app_kubernetes_io_instance")
POD_RE = '"^(.+)-[a-z0-9]{1,10}-[a-z0-9]{5}$"'
ALL = dialects.DIALECTS.values()


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not on PATH; it comes with `sudo apt-get install prometheus`")
    return binary


def records(grouping: PoolGrouping, window: str = "2m") -> dict[str, str]:
    return {r["record"]: r["expr"] for r in recording_rules(ALL, grouping, window)}


def test_histogram_rule_is_the_query_builders_bucket_rates_over_every_namespace() -> None:
    rules = records(DERIVED)
    expr = rules["namespace_pool_le:vllm:time_to_first_token_seconds_bucket:rate2m"]
    assert expr == (
        "sum by (le, namespace, pool) (label_replace(rate(vllm:time_to_first_token_seconds_bucket[2m]), "
        f'"pool", "$1", "pod", {POD_RE}))'
    )
    # the same text the raw query uses, minus the namespace filter the source adds when reading
    spec = latency("vllm:time_to_first_token_seconds", None)["ttft_p90_s"]
    assert bucket_rate_expr(spec, ["chat"], DERIVED, "2m").replace('{namespace=~"chat"}', "") == expr


def test_counter_rule_drops_total_and_keeps_scale_out() -> None:
    rules = records(LABELLED, "90s")
    assert rules["namespace_app_kubernetes_io_instance:vllm:num_preemptions:rate90s"] == (
        "sum by (namespace, app_kubernetes_io_instance) (rate(vllm:num_preemptions_total[90s]))"
    )
    assert rules["namespace_app_kubernetes_io_instance:vllm:num_preemptions_total:max_timestamp"] == (
        "max by (namespace, app_kubernetes_io_instance) (timestamp(vllm:num_preemptions_total))"
    )
    assert not any("60 *" in e for e in rules.values())


def test_names_follow_level_metric_operations_and_are_unique() -> None:
    rules = recording_rules(ALL, DERIVED, "2m")
    names = [r["record"] for r in rules]
    assert len(names) == len(set(names))
    for name in names:
        level, _, ops = re.fullmatch(r"([a-z_]+):(.+):([a-z0-9_]+)", name).groups()  # type: ignore[union-attr]
        assert level in ("namespace_pool", "namespace_pool_le"), name
        assert ops in ("rate2m", "max_timestamp"), name
    # gauges are not recorded (measured: no gain, one evaluation interval of extra age)
    assert not any("num_requests_waiting" in n or "kv_cache_usage" in n for n in names)


def test_every_recorded_series_the_source_reads_has_a_rule() -> None:
    for grouping in (DERIVED, LABELLED):
        for window in ("2m", "30s"):
            qp = plan(SIGNAL_NAMES, ALL, ["chat", "batch"], grouping, window, RECORDED_KINDS)
            read = set()
            for q in qp.queries.values():
                read |= set(re.findall(r"(namespace_[a-z_]+:[a-zA-Z0-9_:]+?:(?:rate\w+|max_timestamp))\{", q))
            assert read, qp.queries
            assert read <= set(records(grouping, window)), read - set(records(grouping, window))
            # every histogram and counter spec of every dialect is read recorded: nothing raw but gauges
            for key, q in qp.queries.items():
                if key not in ("detect", "kv_usage", "queue_depth", "running"):
                    assert "rate(" not in q and "timestamp(" not in q, (key, q)


def test_recorded_plan_keeps_the_constant_query_count() -> None:
    raw = plan(SIGNAL_NAMES, ALL, [f"ns-{i}" for i in range(500)], DERIVED, "2m")
    rec = plan(SIGNAL_NAMES, ALL, [f"ns-{i}" for i in range(500)], DERIVED, "2m", RECORDED_KINDS)
    assert len(raw.queries) == len(rec.queries) == 10
    assert raw.answered_by == rec.answered_by
    assert rec.queries["detect"] == raw.queries["detect"]  # detection reads the raw marker series
    assert rec.queries["queue_depth"] == raw.queries["queue_depth"]
    assert "60 * namespace_pool:vllm:num_preemptions:rate2m{" in rec.queries["preemptions_per_min"]


def test_specs_filtering_one_label_differently_share_a_rule_that_keeps_the_label() -> None:
    d = Dialect(
        name="t",
        engine="t",
        markers=("m",),
        signals={
            "queue_depth": gauge("req", request_type="waiting"),
            "running": gauge("req", request_type="active"),
            "request_rps": rate("done_total", code="200"),
        },
    )
    kinds = frozenset({Kind.GAUGE, Kind.RATE})
    rules = {r["record"]: r["expr"] for r in recording_rules([d], LABELLED, "1m", kinds)}
    assert rules["namespace_app_kubernetes_io_instance_request_type:req:sum"] == (
        'sum by (namespace, app_kubernetes_io_instance, request_type) (req{request_type=~"active|waiting"})'
    )
    assert rules["namespace_app_kubernetes_io_instance_code:done:rate1m"] == (
        'sum by (namespace, app_kubernetes_io_instance, code) (rate(done_total{code="200"}[1m]))'
    )
    q = plan(["queue_depth"], [d], ["chat"], LABELLED, "1m", kinds).queries["queue_depth"]
    assert (
        'namespace_app_kubernetes_io_instance_request_type:req:sum{namespace=~"chat", request_type="waiting"}'
        in q
    )


def test_rules_file_and_prometheus_rule_carry_the_same_group() -> None:
    plain = rules_file(ALL, DERIVED, "2m", "30s")
    obj = prometheus_rule(ALL, DERIVED, "2m", "30s", namespace="monitoring")
    assert obj["kind"] == "PrometheusRule" and obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["metadata"]["namespace"] == "monitoring"
    assert obj["spec"]["groups"] == plain["groups"]
    assert plain["groups"][0]["name"] == "mcp-autoscale" and plain["groups"][0]["interval"] == "30s"
    assert "interval" not in rules_file(ALL, DERIVED, "2m")["groups"][0]


def test_render_round_trips_and_refuses_bad_input() -> None:
    text = render("1m", "deployment", "20s")
    assert text.startswith("# Generated by `mcp-autoscale signals rules --window 1m --pool-label deployment")
    assert yaml.safe_load(text) == rules_file(ALL, PoolGrouping("deployment"), "1m", "20s")
    with pytest.raises(ValueError, match="format"):
        render("1m", fmt="json")
    with pytest.raises(ValueError, match="duration"):
        render("1m", interval="15 seconds")
    with pytest.raises(ValueError, match="pool_label"):
        render("1m", "a-b")


def test_duration() -> None:
    assert duration(15.0) == "15s" and duration(0.5) == "500ms" and duration(60) == "60s"
    with pytest.raises(ValueError):
        duration(0)


def test_shipped_rules_match_the_generator() -> None:
    expected = render("2m", "", "15s", "prometheusrule")
    assert SHIPPED.read_text(encoding="utf-8") == expected, (
        "deploy/prometheus/mcp-autoscale-rules.yaml is out of date: mcp-autoscale signals rules "
        "--window 2m --interval 15s --format prometheusrule > deploy/prometheus/mcp-autoscale-rules.yaml"
    )


def test_promtool_accepts_the_shipped_and_generated_rules(tmp_path: Path) -> None:
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    files = {"shipped.yaml": yaml.safe_dump({"groups": shipped["spec"]["groups"]})}
    files["labelled.yaml"] = render("30s", "app_kubernetes_io_instance", "10s")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        out = subprocess.run(
            [promtool(), "check", "rules", str(tmp_path / name)], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr
        n = len(yaml.safe_load(text)["groups"][0]["rules"])
        assert f"SUCCESS: {n} rules found" in out.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: promtool does parse the expressions."""
    doc = rules_file(ALL, DERIVED, "2m")
    doc["groups"][0]["rules"][0]["expr"] += ")"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(doc))
    out = subprocess.run([promtool(), "check", "rules", str(tmp_path / "broken.yaml")], capture_output=True)
    assert out.returncode != 0


def test_cli_prints_rules_for_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_AUTOSCALE_POOL_LABEL", "deployment")
    monkeypatch.setenv("MCP_AUTOSCALE_SCRAPE_INTERVAL_S", "30")
    result = CliRunner().invoke(app, ["signals", "rules", "--window", "1m"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc == rules_file(ALL, PoolGrouping("deployment"), "1m", "30s")
    result = CliRunner().invoke(app, ["signals", "rules", "--format", "prometheusrule", "--namespace", "mon"])
    assert result.exit_code == 0 and yaml.safe_load(result.stdout)["metadata"]["namespace"] == "mon"
    for bad in (["--format", "json"], ["--window", "2 minutes"], ["--interval", "soon"]):
        result = CliRunner().invoke(app, ["signals", "rules", *bad])
        assert result.exit_code == 2, (bad, result.output)
