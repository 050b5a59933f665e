"""Audit log: hash chain, fsync'd appends, filters, and tamper detection that names the exact line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from governance_fakes import T0

from mcp_autoscale.audit import AuditLog, record_hash, verify_file
from mcp_autoscale.errors import NotFound
from mcp_autoscale.models import ActionStatus, Decision, Verdict


def fields(i: int, **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ts": T0 + timedelta(seconds=i),
        "action_id": f"act-{i}",
        "tool": "scale_deployment" if i % 2 else "patch_hpa",
        "target": "chat/llama-8b" if i % 3 else "dev/granite-8b",
        "arguments": {"replicas": i},
        "rationale": f"reason {i}",
        "caller": "test",
        "dry_run": False,
        "verdict": Verdict(decision=Decision.ALLOW, rules=["r"]),
        "status": ActionStatus.APPLIED if i % 2 else ActionStatus.DENIED,
    }
    base.update(over)
    return base


def filled(path: Path, n: int = 6, key: bytes | None = None) -> AuditLog:
    log = AuditLog(path, hmac_key=key)
    for i in range(1, n + 1):
        log.append(**fields(i))
    return log


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_append_assigns_chain_fields(tmp_path: Path) -> None:
    log = filled(tmp_path / "a.jsonl", 3)
    recs = log.records()
    assert [r.seq for r in recs] == [1, 2, 3]
    assert recs[0].prev_hash == "" and recs[1].prev_hash == recs[0].hash and recs[2].prev_hash == recs[1].hash
    raw = [json.loads(x) for x in lines(tmp_path / "a.jsonl")]
    assert all(record_hash(r) == r["hash"] for r in raw)
    assert len({r.id for r in recs}) == 3
    assert verify_file(tmp_path / "a.jsonl").ok


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    filled(tmp_path / "a.jsonl", 2)
    rec = AuditLog(tmp_path / "a.jsonl").append(**fields(3))
    assert rec.seq == 3
    report = verify_file(tmp_path / "a.jsonl")
    assert report.ok and report.records == 3


def test_filters_and_get(tmp_path: Path) -> None:
    log = filled(tmp_path / "a.jsonl", 6)
    assert {r.target for r in log.records(pool="chat/llama-8b")} == {"chat/llama-8b"}
    assert [r.seq for r in log.records(pool="granite-8b")] == [3, 6]
    assert all(r.tool == "patch_hpa" for r in log.records(tool="patch_hpa"))
    assert [r.seq for r in log.records(status="applied")] == [1, 3, 5]
    assert [r.seq for r in log.records(since=T0 + timedelta(seconds=5))] == [5, 6]
    assert [r.seq for r in log.records(limit=2)] == [5, 6]
    first = log.records()[0]
    assert log.get(first.id) == first
    with pytest.raises(NotFound):
        log.get("aud-nope")


def test_idempotency_lookup(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    log.append(**fields(1, idempotency_key="k1"))
    log.append(**fields(2, idempotency_key="k2", caller="other"))
    found = log.find_idempotent("k1")
    assert found is not None and found.action_id == "act-1"
    assert log.find_idempotent("k2", caller="test") is None
    assert log.find_idempotent("k3") is None


def test_edit_is_found_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path)
    ls = lines(path)
    ls[3] = ls[3].replace('"rationale":"reason 4"', '"rationale":"nothing to see"')
    path.write_text("".join(ls))
    report = verify_file(path)
    assert not report.ok and report.first_bad_line == 4 and report.records == 3
    assert "edited" in (report.problem or "")


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path)
    ls = lines(path)
    rec = json.loads(ls[2])
    rec["rationale"] = "forged"
    rec["hash"] = record_hash(rec)
    ls[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text("".join(ls))
    report = verify_file(path)
    assert not report.ok and report.first_bad_line == 4 and "prev_hash" in (report.problem or "")


def test_delete_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path)
    ls = lines(path)
    del ls[2]
    path.write_text("".join(ls))
    report = verify_file(path)
    assert not report.ok and report.first_bad_line == 3 and report.first_bad_seq == 4
    assert "missing record(s): seq 3 deleted" in (report.problem or "")


def test_reorder_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path)
    ls = lines(path)
    ls[1], ls[2] = ls[2], ls[1]
    path.write_text("".join(ls))
    report = verify_file(path)
    assert not report.ok and report.first_bad_line == 2
    assert "out of order" in (report.problem or "") and "seq 2 is at line 3" in (report.problem or "")


def test_torn_last_line_is_reported_then_recovered(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path, 3)
    torn = json.dumps({"seq": 4, "rationale": "half-written"}).encode()[:25]
    with open(path, "ab") as fh:  # what a crash in the middle of write() leaves behind
        fh.write(torn)
    report = verify_file(path)
    assert not report.ok and report.truncated and report.first_bad_line == 4 and report.records == 3
    log = AuditLog(path)
    assert log.recovered is not None and log.recovered.read_bytes() == torn
    assert verify_file(path).ok and verify_file(path).records == 3
    assert log.append(**fields(9)).seq == 4
    assert verify_file(path).ok


def test_tampered_truncation_of_a_complete_record_is_not_hidden_by_recovery(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path, 4)
    path.write_bytes(path.read_bytes()[:-40])
    assert verify_file(path).truncated
    AuditLog(path)  # recovery moves the fragment aside ...
    report = verify_file(path)  # ... but the head marker still knows seq 4 existed
    assert not report.ok and "head marker says seq 4" in (report.problem or "")


def test_records_cut_off_the_end_are_found(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path, 5)
    path.write_text("".join(lines(path)[:3]))
    report = verify_file(path)
    assert not report.ok and report.first_bad_line == 4 and "head marker says seq 5" in (report.problem or "")


def test_garbage_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path, 3)
    ls = lines(path)
    ls.insert(1, "{not json\n")
    path.write_text("".join(ls))
    report = verify_file(path)
    assert not report.ok and report.first_bad_line == 2 and "not valid JSON" in (report.problem or "")


def test_hmac_signatures(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path, 3, key=b"s3cret")
    assert verify_file(path, b"s3cret").ok and verify_file(path, b"s3cret").signed
    assert verify_file(path).ok  # the chain alone still verifies without the key
    bad = verify_file(path, b"wrong")
    assert not bad.ok and bad.first_bad_line == 1 and "HMAC" in (bad.problem or "")
    # a forger without the key rewrites a record and re-chains everything after it: only HMAC catches it
    ls = [json.loads(x) for x in lines(path)]
    ls[1]["rationale"] = "forged"
    prev = ls[0]["hash"]
    for rec in ls[1:]:
        rec["prev_hash"] = prev
        rec["hash"] = record_hash(rec)
        prev = rec["hash"]
    path.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in ls))
    (tmp_path / "a.jsonl.head").write_text(json.dumps({"seq": 3, "hash": prev}))
    assert verify_file(path).ok
    forged = verify_file(path, b"s3cret")
    assert not forged.ok and forged.first_bad_line == 2


def test_unsigned_log_fails_when_a_key_is_required(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    filled(path, 2)
    report = verify_file(path, b"k")
    assert not report.ok and "not signed" in (report.problem or "")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        verify_file(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("block", [64, 300, 65536])
def test_reverse_reading_matches_forward_reading(tmp_path: Path, block: int) -> None:
    path = tmp_path / "a.jsonl"
    log = filled(path, 12)
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 13, "torn')  # a torn tail is never returned
    forward = log.records()
    assert [r.seq for r in log._reverse(block)] == [r.seq for r in reversed(forward)]
    since = T0 + timedelta(seconds=7)
    assert log.records(since=since) == [r for r in forward if r.ts >= since]
    assert log.records(since=since, pool="granite-8b", limit=1) == [forward[11]]
    only_torn = tmp_path / "b.jsonl"
    only_torn.write_bytes(b'{"seq": 1')
    assert list(AuditLog(only_torn, recover=False)._reverse(block)) == []
