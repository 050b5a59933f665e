"""CLI: policy check / explain, audit verify / show (exit codes and messages)."""

from __future__ import annotations

import json
from pathlib import Path

from governance_fakes import T0
from typer.testing import CliRunner

from mcp_autoscale.audit import AuditLog
from mcp_autoscale.cli import app
from mcp_autoscale.models import ActionStatus, Decision, Verdict

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def test_policy_check_ok() -> None:
    res = runner.invoke(app, ["policy", "check", str(REPO / "policies" / "dev.yaml")])
    assert res.exit_code == 0, res.output
    assert "OK" in res.stdout


def test_policy_check_invalid_exits_2_with_file_line_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - name: r\n    replicas: {min: 3, max: two}\n")
    res = runner.invoke(app, ["policy", "check", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}:4: rules[0].replicas.max:" in res.stderr


def test_policy_explain_names_the_deciding_rule(tmp_path: Path) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(
        "version: 1\nname: x\ntools: [scale_deployment]\nnamespaces: [batch]\nrules:\n"
        "  - name: prod-bounds\n    match: {namespaces: [batch]}\n    replicas: {min: 2, max: 16}\n"
        "    max_step: 4\n  - name: guard\n    match: {namespaces: [batch]}\n"
        "    guards: {max_kv_for_scale_in: 0.75}\n"
    )
    args = '{"namespace":"batch","deployment":"qwen-7b","replicas":40}'
    res = runner.invoke(
        app, ["policy", "explain", str(pol), "--tool", "scale_deployment", "--args", args, "--current", "4"]
    )
    assert res.exit_code == 0, res.output
    assert "decision: DENY" in res.stdout and "rule 'prod-bounds': replicas 40 > max 16" in res.stdout
    assert "decided      prod-bounds" in res.stdout
    kv = runner.invoke(
        app,
        [
            "policy",
            "explain",
            str(pol),
            "--tool",
            "scale_deployment",
            "--json",
            "--args",
            '{"namespace":"batch","deployment":"qwen-7b","replicas":3}',
            "--current",
            "4",
            "--kv",
            "0.8",
            "--queue",
            "0",
        ],
    )
    out = json.loads(kv.stdout)
    assert out["verdict"]["decision"] == "deny" and out["verdict"]["rules"] == ["guard"]
    assert "0.80 > 0.75" in out["verdict"]["reasons"][0]


def test_policy_explain_reads_the_simulated_fleet_and_refuses_impossible_signals() -> None:
    """Issue 19: a harmless call is judged on the sim fleet's signals and their ages, not denied for want
    of them; impossible --kv/--queue/--age are usage errors; an unknown pool is named as such."""
    prod = str(REPO / "policies" / "production.yaml")
    base = ["policy", "explain", prod, "--tool", "scale_deployment"]
    ok = runner.invoke(app, [*base, "--args", '{"namespace":"batch","deployment":"qwen-7b","replicas":3}'])
    assert ok.exit_code == 0, ok.output
    assert "decision: ALLOW" in ok.stdout and "carry no age" not in ok.stdout
    assert "data age 0 s" in ok.stdout and "(simulated fleet)" in ok.stdout
    for flag, value in (("--kv", "1.7"), ("--queue", "-5"), ("--age", "-10"), ("--kv", "nan")):
        res = runner.invoke(app, [*base, "--args", "{}", flag, value])
        assert res.exit_code == 2 and flag in res.output, (flag, value, res.output)
    unknown = runner.invoke(app, [*base, "--args", '{"namespace":"batch","deployment":"nope","replicas":3}'])
    assert "batch/nope is not in the simulated fleet" in unknown.stdout
    assert "price catalogue" not in unknown.stdout and "is not a known pool" in unknown.stdout


def test_policy_explain_bad_args_exit_2(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "policy",
            "explain",
            str(REPO / "policies" / "dev.yaml"),
            "--tool",
            "scale_deployment",
            "--args",
            "{nope",
        ],
    )
    assert res.exit_code == 2 and "--args" in res.stderr


def _log(path: Path) -> AuditLog:
    log = AuditLog(path)
    for i, (target, tool, status) in enumerate(
        [
            ("dev/granite-8b", "scale_deployment", ActionStatus.APPLIED),
            ("chat/llama-8b", "patch_hpa", ActionStatus.DENIED),
            ("dev/granite-8b", "scale_deployment", ActionStatus.DRY_RUN),
        ]
    ):
        log.append(
            ts=T0.replace(minute=i),
            action_id=f"act-{i}",
            tool=tool,
            target=target,
            arguments={},
            rationale=f"because {i}",
            caller="bob",
            dry_run=False,
            status=status,
            verdict=Verdict(decision=Decision.ALLOW, rules=["r"]),
        )
    return log


def test_audit_verify_ok_and_tampered(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _log(path)
    ok = runner.invoke(app, ["audit", "verify", str(path)])
    assert ok.exit_code == 0 and "OK, 3 records" in ok.stdout
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    bad = runner.invoke(app, ["audit", "verify", str(path)])
    assert bad.exit_code == 1 and f"{path}:2: missing record(s): seq 2" in bad.stdout


def test_audit_show_filters(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _log(path)
    res = runner.invoke(app, ["audit", "show", "--file", str(path), "--pool", "dev/granite-8b", "--json"])
    assert res.exit_code == 0
    recs = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["status"] for r in recs] == ["applied", "dry_run"]
    res = runner.invoke(app, ["audit", "show", "--file", str(path), "--tool", "patch_hpa"])
    assert "chat/llama-8b" in res.stdout and "«because 1»" in res.stdout and "granite" not in res.stdout
    res = runner.invoke(
        app,
        [
            "audit",
            "show",
            "--file",
            str(path),
            "--status",
            "applied",
            "--since",
            "2026-11-24T10:00:00+00:00",
            "--json",
        ],
    )
    assert len(res.stdout.splitlines()) == 1
    none = runner.invoke(
        app, ["audit", "show", "--file", str(path), "--since", "2026-11-25T00:00:00", "--json"]
    )
    assert none.exit_code == 0 and none.stdout == ""
    assert runner.invoke(app, ["audit", "show", "--file", str(path), "--since", "90m"]).exit_code == 0
    bad = runner.invoke(app, ["audit", "show", "--file", str(path), "--since", "yesterday-ish"])
    assert bad.exit_code == 2
