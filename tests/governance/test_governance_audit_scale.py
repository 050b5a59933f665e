"""The audit at scale: decisions read a rebuildable index, `show` reads from the end, `verify` streams;
and `verify` without the key neither blesses a signed log silently nor accepts stripped signatures."""

from __future__ import annotations

import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mcp_autoscale.audit.log as log_module
from mcp_autoscale.audit import AuditLog, verify_file
from mcp_autoscale.audit.index import index_path
from mcp_autoscale.audit.synthetic import write_synthetic_log
from mcp_autoscale.cli import app
from mcp_autoscale.models import ActionStatus, AuditRecord, Decision, Verdict

END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
N = 20_000  # 16 MB, 48 h of records: one applied every 50th (200 per day), a key every 10th


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "audit.jsonl"
    write_synthetic_log(path, N, end=END)
    return path


class Counting:
    """Stands in for ``AuditRecord`` in the log module: counts the records parsed from JSON."""

    parsed = 0
    model_validate = AuditRecord.model_validate

    @staticmethod
    def model_validate_json(*a: Any, **kw: Any) -> AuditRecord:
        Counting.parsed += 1
        return AuditRecord.model_validate_json(*a, **kw)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[Counting]:
    Counting.parsed = 0
    monkeypatch.setattr(log_module, "AuditRecord", Counting)
    return Counting


def entry(i: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ts": END + timedelta(seconds=i),
        "action_id": f"act-{i}",
        "tool": "scale_deployment",
        "target": "dev/granite-8b",
        "arguments": {"replicas": i},
        "rationale": "r",
        "caller": "test",
        "dry_run": False,
        "verdict": Verdict(decision=Decision.ALLOW),
        "status": ActionStatus.APPLIED,
    }
    return base | over


def test_decisions_read_the_index_not_the_log(big: Path, counting: type[Counting], tmp_path: Path) -> None:
    copy = tmp_path / "audit.jsonl"  # this test appends: leave the shared log as it is
    copy.write_bytes(big.read_bytes())
    (tmp_path / "audit.jsonl.head").write_bytes((big.parent / "audit.jsonl.head").read_bytes())
    log = AuditLog(copy)  # first open: builds the index once
    counting.parsed = 0
    recent = log.recent_applied(END - timedelta(days=1, seconds=-1))
    assert len(recent) == N // 2 // 50 and all(r.status == ActionStatus.APPLIED for r in recent)
    assert log.window.parsed == len(recent)  # only what decisions count is parsed, never the dry runs
    assert log.recent_applied(END - timedelta(days=1, seconds=-1)) == recent
    assert log.window.parsed == len(recent)  # and each only once per process
    mine = log.append(**entry(N + 1))
    assert log.recent_applied(END - timedelta(days=1, seconds=-1))[-1] == mine
    assert log.window.parsed == len(recent) + 1  # the next call parses only the new record
    hit = log.find_idempotent("key-100")
    assert hit is not None and hit.seq == 100
    assert log.get("aud-000007-synth").seq == 7
    assert counting.parsed == 2 and log.index.rebuilds == 1  # built once, at the first open


def test_index_rebuilt_when_deleted_and_caught_up_when_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    first = log.append(**entry(1, idempotency_key="k1"))
    log.index.close()
    index_path(path).unlink()
    reopened = AuditLog(path)
    assert reopened.index.rebuilds == 1 and reopened.get(first.id) == first
    other = AuditLog(path)  # another process appends, and its index commit is lost: the index is behind
    with monkeypatch.context() as m:
        m.setattr(other.index, "add", lambda *a: None)
        second = other.append(**entry(2, idempotency_key="k2"))
    lines_before = reopened.index.lines_indexed
    assert reopened.find_idempotent("k2") == second
    assert reopened.index.rebuilds == 1  # caught up with the one new line, not rebuilt
    assert reopened.index.lines_indexed == lines_before + 1
    assert [r.seq for r in reopened.recent_applied(END)] == [1, 2]


def test_index_rebuilt_when_the_log_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    for i in range(1, 4):
        log.append(**entry(i))
    replaced = tmp_path / "b.jsonl"
    other = AuditLog(replaced)
    for i in range(1, 5):
        other.append(**entry(i, status=ActionStatus.DENIED if i != 4 else ActionStatus.APPLIED))
    other.index.close()
    path.write_bytes(replaced.read_bytes())  # same name, other history, longer
    rebuilds = log.index.rebuilds
    assert [r.seq for r in log.recent_applied(END)] == [4]
    assert log.index.rebuilds == rebuilds + 1


def test_show_reads_from_the_end(big: Path, counting: type[Counting]) -> None:
    records = AuditLog(big, recover=False).records(limit=20)
    assert [r.seq for r in records] == list(range(N - 19, N + 1))
    assert counting.parsed == 20
    counting.parsed = 0
    res = CliRunner().invoke(app, ["audit", "show", "--file", str(big), "--limit", "20", "--json"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 20
    assert json.loads(res.stdout.splitlines()[-1])["seq"] == N and counting.parsed == 20
    counting.parsed = 0
    last_hour = AuditLog(big, recover=False).records(since=END - timedelta(hours=1))
    assert abs(len(last_hour) - N / 48) <= 1
    assert counting.parsed < N // 48 + N // 48 + 20  # stops an hour (clock skew) before --since


def test_verify_streams_in_constant_memory(tmp_path: Path) -> None:
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    write_synthetic_log(small, 500, end=END)
    write_synthetic_log(large, 5000, end=END)
    peaks = []
    for path in (small, large):
        tracemalloc.start()
        report = verify_file(path)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.ok
    assert peaks[1] < 1_000_000, peaks  # 4 MB verified within 1 MB of Python memory
    assert peaks[1] < peaks[0] * 1.5, peaks  # 10x the records, about the same peak


def test_verify_without_the_key_says_signatures_were_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "signed.jsonl"
    log = AuditLog(path, hmac_key=b"secret")
    for i in range(1, 4):
        log.append(**entry(i))
    report = verify_file(path)
    assert report.ok and report.signatures_unchecked and "NOT checked" in report.summary(path)
    res = CliRunner(env={"MCP_AUTOSCALE_AUDIT_HMAC_KEY": None}).invoke(app, ["audit", "verify", str(path)])
    assert res.exit_code == 0 and "NOT checked" in res.stdout and "warning" in res.stderr
    assert verify_file(path, b"secret").ok and not verify_file(path, b"secret").signatures_unchecked


def test_verify_fails_on_stripped_signatures(tmp_path: Path) -> None:
    path = tmp_path / "signed.jsonl"
    log = AuditLog(path, hmac_key=b"secret")
    for i in range(1, 4):
        log.append(**entry(i))
    stripped = [{**json.loads(line), "signature": None} for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in stripped))
    report = verify_file(path)  # hashes still match: only the head marker tells it was signed
    assert not report.ok and "signatures were stripped" in (report.problem or "")
    assert report.first_bad_seq == 1
    res = CliRunner(env={"MCP_AUTOSCALE_AUDIT_HMAC_KEY": None}).invoke(app, ["audit", "verify", str(path)])
    assert res.exit_code == 1


def test_a_log_signed_later_checks_only_from_the_first_signed_record(tmp_path: Path) -> None:
    path = tmp_path / "later.jsonl"
    AuditLog(path).append(**entry(1))
    signed = AuditLog(path, hmac_key=b"secret")
    signed.append(**entry(2))
    assert json.loads((tmp_path / "later.jsonl.head").read_text())["signed_from"] == 2
    report = verify_file(path)
    assert report.ok and report.signatures_unchecked
