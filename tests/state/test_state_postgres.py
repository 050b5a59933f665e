"""The PostgreSQL store on a real server: the chain, intents, idempotency, proposals, migrations, locks,
and the same commands as on files (`audit verify/show/export`, `pending`, `approve`, `reject`, `doctor`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from mcp_autoscale.actions import action_from_call
from mcp_autoscale.app import build_app
from mcp_autoscale.cli import app as cli
from mcp_autoscale.config import Settings
from mcp_autoscale.errors import AuditUnavailable, ConfigError, Conflict, NotFound
from mcp_autoscale.models import ActionStatus, Decision, Verdict
from mcp_autoscale.state.migrations import LATEST
from mcp_autoscale.state.postgres import PostgresStateStore

NOW = datetime.now(UTC)

POLICY = """
version: 1
name: pg-approvals
tools: [scale_deployment]
namespaces: [batch, dev]
rules:
  - name: batch
    match: {namespaces: [batch]}
    replicas: {min: 1, max: 8}
  - name: batch-scale-in
    effect: limit
    reason: scale-in is reviewed
    match: {namespaces: [batch]}
    approval: {when: scale_in, via: [cli]}
  - name: dev
    match: {namespaces: [dev]}
    replicas: {min: 0, max: 4}
"""


def entry(i: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ts": NOW + timedelta(seconds=i),
        "action_id": f"act-{i}",
        "tool": "scale_deployment",
        "target": "dev/granite-8b",
        "arguments": {"namespace": "dev", "deployment": "granite-8b", "replicas": i},
        "rationale": "r",
        "caller": "alice",
        "dry_run": False,
        "verdict": Verdict(decision=Decision.ALLOW, rules=["dev"]),
        "status": ActionStatus.DRY_RUN,
    }
    return base | over


def test_chain_intents_and_idempotency(pg_url: str) -> None:
    store = PostgresStateStore(pg_url, hmac_key=b"k")
    audit = store.audit
    audit.append(**entry(1))
    intent = audit.append(**entry(2, status=ActionStatus.INTENT, idempotency_key="key-1"))
    assert [r.id for r in audit.open_intents()] == [intent.id]
    assert [r.id for r in audit.recent_applied(NOW)] == [intent.id]  # an open intent counts (fail closed)
    done = audit.append(**entry(3, status=ActionStatus.APPLIED, idempotency_key="key-1", intent_id=intent.id))
    assert audit.open_intents() == [] and [r.id for r in audit.recent_applied(NOW)] == [done.id]
    assert [r.seq for r in audit.records()] == [1, 3]  # one record per decision
    assert [r.seq for r in audit.records(intents=True)] == [1, 2, 3]
    assert [r.seq for r in audit.records(pool="granite-8b", status="applied", limit=5)] == [3]
    assert audit.find_idempotent("key-1", caller="alice") == done
    assert audit.find_idempotent("key-1", caller="bob") is None
    assert audit.get(done.id) == done
    with pytest.raises(NotFound) as err:
        audit.get("aud-nope")
    assert "127.0.0.1" not in str(err.value)
    assert [r.seq for r in audit.iter_records()] == [1, 2, 3]
    store.close()


def test_export_is_a_log_that_verify_accepts(pg_url: str, tmp_path: Path) -> None:
    store = PostgresStateStore(pg_url, hmac_key=b"secret")
    for i in range(1, 6):
        store.audit.append(**entry(i))
    store.close()
    env = {"MCP_AUTOSCALE_STATE_URL": pg_url, "MCP_AUTOSCALE_AUDIT_HMAC_KEY": "secret"}
    runner = CliRunner(env=env)
    out = tmp_path / "export.jsonl"
    res = runner.invoke(cli, ["audit", "export", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "5 records" in res.stdout and "secret" not in res.stdout
    ok = runner.invoke(cli, ["audit", "verify", str(out)])
    assert ok.exit_code == 0 and "OK, 5 records" in ok.stdout and "signatures valid" in ok.stdout
    assert json.loads((tmp_path / "export.jsonl.head").read_text())["signed_from"] == 1
    direct = runner.invoke(cli, ["audit", "verify"])  # no FILE: the state database itself
    assert direct.exit_code == 0 and "OK, 5 records" in direct.stdout, direct.output
    shown = runner.invoke(cli, ["audit", "show", "--limit", "2", "--json"])
    assert [json.loads(x)["seq"] for x in shown.stdout.splitlines()] == [4, 5]
    with psycopg.connect(pg_url, autocommit=True) as conn:  # an edit in the database is found
        conn.execute(
            'UPDATE audit_records SET line = replace(line, \'"rationale":"r"\', \'"rationale":"x"\') '
            "WHERE seq = 3"
        )
    bad = runner.invoke(cli, ["audit", "verify"])
    assert bad.exit_code == 1 and "seq 3" in bad.stdout and "edited" in bad.stdout


def test_migrations_are_versioned_and_doctor_checks_them(pg_url: str) -> None:
    first = PostgresStateStore(pg_url)
    assert first.migrated == list(range(1, LATEST + 1))
    first.close()
    again = PostgresStateStore(pg_url)
    assert again.migrated == []
    assert [(c.name, c.ok) for c in again.checks()] == [
        ("connection", True),
        ("schema", True),
        ("audit", True),
    ]
    again.close()
    res = CliRunner(env={"MCP_AUTOSCALE_STATE_URL": pg_url}).invoke(cli, ["doctor", "--json"])
    rows = {(c["group"], c["name"]): c for c in json.loads(res.stdout)["checks"]}
    assert (
        rows[("state", "schema")]["status"] == "pass" and "version 1" in rows[("state", "schema")]["detail"]
    )
    assert rows[("state", "chain")]["status"] == "pass"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, description) VALUES (99, 'from the future')")
    with pytest.raises(ConfigError, match="schema version 99, newer than this server knows"):
        PostgresStateStore(pg_url)


def test_unreachable_database_is_a_clear_start_up_error(postgres: Any) -> None:
    url = f"postgresql://postgres@127.0.0.1:{postgres.port + 1}/nowhere"
    with pytest.raises(
        AuditUnavailable, match=r"cannot open the state database postgresql://postgres@127\.0\.0\.1"
    ):
        PostgresStateStore(url, timeout_s=2)


def test_advisory_locks_exclude_across_stores(pg_url: str) -> None:
    a, b = PostgresStateStore(pg_url), PostgresStateStore(pg_url)
    assert a.lock is not None and b.lock is not None
    with a.lock.acquire("batch/qwen-7b", 5):
        with (
            pytest.raises(Conflict, match="another agent is acting on batch/qwen-7b"),
            b.lock.acquire("batch/qwen-7b", 0.3),
        ):
            pass
        with b.lock.acquire("dev/granite-8b", 1):  # another key is free
            pass
    with b.lock.acquire("batch/qwen-7b", 1):  # released
        pass
    a.close()
    b.close()


def test_pending_approve_reject_on_the_state_url(pg_url: str, tmp_path: Path) -> None:
    pol = tmp_path / "policy.yaml"
    pol.write_text(POLICY)
    env = {
        "MCP_AUTOSCALE_POLICY_FILE": str(pol),
        "MCP_AUTOSCALE_STATE_URL": pg_url,
        "MCP_AUTOSCALE_STATE_DIR": str(tmp_path / "state"),
        "MCP_AUTOSCALE_SIM_CLOCK": "manual",
    }
    settings = Settings(policy_file=pol, state_url=pg_url, state_dir=tmp_path / "state", sim_clock="manual")
    gate = build_app(settings).gate
    ids = []
    for replicas in (1, 1):
        res = gate.submit(
            action_from_call(
                "scale_deployment", {"namespace": "batch", "deployment": "qwen-7b", "replicas": replicas},
                f"idle at night {len(ids)}",
            )
        )  # fmt: skip
        assert res.status == ActionStatus.PENDING_APPROVAL and res.proposal_id
        ids.append(res.proposal_id)
    runner = CliRunner(env=env)
    listed = runner.invoke(cli, ["pending"])
    assert listed.exit_code == 0 and all(p in listed.stdout for p in ids), listed.output
    rejected = runner.invoke(cli, ["reject", ids[0], "--reason", "not tonight"])
    assert rejected.exit_code == 0 and rejected.stdout.startswith("rejected:"), rejected.output
    approved = runner.invoke(cli, ["approve", ids[1]])
    assert approved.exit_code == 0, approved.output
    [ran] = build_app(settings).run_approved()  # the server (on any replica) runs it
    assert ran.status == ActionStatus.APPLIED
    assert "no pending proposals" in runner.invoke(cli, ["pending"]).stdout
    assert gate.proposals.all() == []  # closed ones leave the scan every tool call makes
    assert gate.proposals.get(ids[0]).status.value == "rejected"  # still readable by id
    statuses = [r.status for r in gate.audit.records()]
    assert statuses == [
        ActionStatus.PENDING_APPROVAL, ActionStatus.PENDING_APPROVAL, ActionStatus.REJECTED, ActionStatus.APPLIED
    ]  # fmt: skip
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0
    assert not (tmp_path / "state" / "proposals").exists()  # nothing went to local files
