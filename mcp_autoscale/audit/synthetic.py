"""Write a long, valid audit log fast (records serialised directly, one write per block): for the scale
benchmark (``benchmarks/bench_audit.py``) and the tests that need a big log without a day of dry runs.

The mix is what a busy server leaves: mostly dry runs and denials, some applied changes (every 50th) and
idempotency keys (every 10th), spread evenly over ``span``, ending at ``end``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mcp_autoscale.audit.log import canonical_bytes, head_path, record_signature


def synthetic_record(i: int, ts: datetime) -> dict[str, Any]:
    applied = i % 50 == 0
    return {
        "id": f"aud-{i:06d}-synth",
        "seq": i,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "action_id": f"act-{i}",
        "tool": "scale_deployment",
        "target": f"ns{i % 7}/pool-{i % 40}",
        "arguments": {"namespace": f"ns{i % 7}", "deployment": f"pool-{i % 40}", "replicas": 1 + i % 9},
        "rationale": "queue depth above target for 5 minutes; one more replica",
        "caller": f"agent-{i % 3}",
        "dry_run": not applied,
        "verdict": {"decision": "allow", "rules": ["bench"], "reasons": [], "approvers": [], "hint": None},
        "status": "applied" if applied else ("dry_run" if i % 3 else "denied"),
        "changes": [{"field": "replicas", "before": i % 9, "after": 1 + i % 9}],
        "message": "synthetic",
        "evidence": None,
        "inverse": None,
        "attempts": 1,
        "cost_delta_per_hour": 1.0 if applied else None,
        "idempotency_key": f"key-{i}" if i % 10 == 0 else None,
        "proposal_id": None,
        "approver": None,
        "intent_id": None,
    }


def write_synthetic_log(
    path: Path,
    n: int,
    *,
    end: datetime,
    span: timedelta = timedelta(hours=48),
    key: bytes | None = None,
    block: int = 10_000,
) -> None:
    """Create ``path`` with records 1..n (a valid chain, plus its head marker)."""
    prev = ""
    step = span / max(1, n)
    start = end - span
    with open(path, "wb") as fh:
        buf: list[bytes] = []
        for i in range(1, n + 1):
            rec = synthetic_record(i, start + step * i)
            rec["prev_hash"] = prev
            rec["hash"] = hashlib.sha256(canonical_bytes(rec)).hexdigest()
            rec["signature"] = record_signature(rec, key) if key else None
            prev = rec["hash"]
            buf.append(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n")
            if len(buf) >= block:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    marker: dict[str, Any] = {"seq": n, "hash": prev}
    if key:
        marker["signed_from"] = 1
    head_path(path).write_text(json.dumps(marker))
