"""Check an audit log end to end and name the first record that is wrong, and how."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from pydantic import BaseModel, Field

from mcp_autoscale.audit.log import head_path, record_hash, record_signature
from mcp_autoscale.errors import NotFound


class VerifyReport(BaseModel):
    ok: bool
    records: int = Field(description="Complete records that verified before the first problem")
    first_bad_line: int | None = None
    first_bad_seq: int | None = None
    problem: str | None = None
    truncated: bool = Field(default=False, description="The last line is an incomplete write")
    signed: bool = Field(default=False, description="Signatures were checked with a key")

    def summary(self, path: Path) -> str:
        if self.ok:
            sig = ", signatures valid" if self.signed else ""
            return f"{path}: OK, {self.records} records, hash chain intact{sig}"
        return f"{path}:{self.first_bad_line}: {self.problem} ({self.records} records before it verified)"


def verify_file(path: Path, hmac_key: bytes | None = None) -> VerifyReport:
    """Walk the chain: seq order, prev_hash links, content hashes, signatures, head marker, torn tail."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"audit file {path} does not exist")
    raw_lines = path.read_bytes().split(b"\n")
    torn = raw_lines[-1] != b""  # content after the final newline = an incomplete write
    complete = raw_lines[:-1]
    parsed: list[dict[str, object] | None] = []
    for raw in complete:
        try:
            obj = json.loads(raw)
            parsed.append(obj if isinstance(obj, dict) else None)
        except ValueError:
            parsed.append(None)
    seq_lines: dict[int, int] = {}
    for i, obj in enumerate(parsed):
        if obj is not None and isinstance(obj.get("seq"), int):
            seq_lines.setdefault(int(obj["seq"]), i + 1)  # type: ignore[call-overload]

    def bad(line: int, problem: str, seq: int | None = None, count: int = 0) -> VerifyReport:
        return VerifyReport(
            ok=False,
            records=count,
            first_bad_line=line,
            first_bad_seq=seq,
            problem=problem,
            signed=bool(hmac_key),
        )

    prev = ""
    count = 0
    for i, obj in enumerate(parsed):
        line = i + 1
        expected = count + 1
        if obj is None:
            return bad(line, "not valid JSON: the record was edited or corrupted", expected, count)
        seq, h, ph = obj.get("seq"), obj.get("hash"), obj.get("prev_hash")
        if not isinstance(seq, int) or not isinstance(h, str) or not isinstance(ph, str):
            return bad(line, "not an audit record (seq, hash or prev_hash missing)", expected, count)
        if seq != expected:
            later = seq_lines.get(expected)
            if later is not None and later > line:
                return bad(
                    line,
                    f"out of order: seq {seq} where seq {expected} was expected "
                    f"(seq {expected} is at line {later}); records were reordered",
                    seq,
                    count,
                )
            if seq > expected:
                gap = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
                return bad(
                    line, f"missing record(s): {gap} deleted before this line (found seq {seq})", seq, count
                )
            return bad(
                line,
                f"seq {seq} repeats or goes backwards (expected {expected}): duplicated record",
                seq,
                count,
            )
        if ph != prev:
            return bad(
                line,
                f"seq {seq}: prev_hash does not match the previous record's hash: the chain is "
                "broken here (the record before was changed, or this one was spliced in)",
                seq,
                count,
            )
        if record_hash(obj) != h:
            return bad(
                line,
                f"seq {seq} (id {obj.get('id')}): content does not match its hash: the record was edited",
                seq,
                count,
            )
        if hmac_key:
            sig = obj.get("signature")
            if not isinstance(sig, str):
                return bad(line, f"seq {seq}: record is not signed but a signing key was given", seq, count)
            if not hmac.compare_digest(sig, record_signature(obj, hmac_key)):
                return bad(
                    line,
                    f"seq {seq}: HMAC signature does not verify (wrong key, or the record and "
                    "its hashes were rewritten)",
                    seq,
                    count,
                )
        prev = h
        count += 1
    if torn:
        return VerifyReport(
            ok=False,
            records=count,
            first_bad_line=len(complete) + 1,
            first_bad_seq=count + 1,
            problem="truncated last line (an incomplete write, e.g. a crash); the next start of the server "
            "moves it aside and keeps every complete record",
            truncated=True,
            signed=bool(hmac_key),
        )
    head = head_path(path)
    if head.exists():
        try:
            marker = json.loads(head.read_text())
            hseq, hhash = int(marker["seq"]), str(marker["hash"])
        except (ValueError, KeyError, TypeError):
            return bad(len(complete) + 1, f"head marker {head.name} is unreadable", None, count)
        if hseq > count:
            return bad(
                len(complete) + 1,
                f"records cut off the end: the log ends at seq {count} but its head marker says seq {hseq}",
                count + 1,
                count,
            )
        at = parsed[seq_lines[hseq] - 1] if hseq in seq_lines else None
        if hseq > 0 and (at is None or at.get("hash") != hhash):
            return bad(
                seq_lines.get(hseq, 1),
                f"seq {hseq} differs from the head marker: history rewritten",
                hseq,
                count,
            )
    return VerifyReport(ok=True, records=count, signed=bool(hmac_key))
