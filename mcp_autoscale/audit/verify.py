"""Check an audit log end to end and name the first record that is wrong, and how.

The walk streams the file (constant memory whatever its length): each line is parsed, checked against the
one before it, and dropped. Only when a sequence number is out of place does a second pass look ahead, to
say whether the record was reordered or deleted.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

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
    signatures_unchecked: bool = Field(
        default=False, description="The log carries signatures (or its head says so) but no key was given"
    )

    def summary(self, path: Path | str) -> str:
        if self.ok:
            sig = ", signatures valid" if self.signed else ""
            if self.signatures_unchecked:
                sig = (
                    ", signatures NOT checked: the log is signed but no key was given "
                    "(set MCP_AUTOSCALE_AUDIT_HMAC_KEY); only the hash chain was verified"
                )
            return f"{path}: OK, {self.records} records, hash chain intact{sig}"
        return f"{path}:{self.first_bad_line}: {self.problem} ({self.records} records before it verified)"


def _lines(path: Path) -> Iterator[tuple[bytes, bool]]:
    """(line without newline, complete?) for every line; only the last can be incomplete."""
    with open(path, "rb") as fh:
        for raw in fh:
            yield (raw[:-1], True) if raw.endswith(b"\n") else (raw, False)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _line_of_seq(path: Path, seq: int) -> int | None:
    """The first line holding ``seq`` (the slow second pass, only when the chain is already broken)."""
    for i, (raw, complete) in enumerate(_lines(path)):
        obj = _parse(raw) if complete else None
        if obj is not None and obj.get("seq") == seq:
            return i + 1
    return None


def verify_file(path: Path, hmac_key: bytes | None = None) -> VerifyReport:
    """Walk the chain: seq order, prev_hash links, content hashes, signatures, head marker, torn tail."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"audit file {path} does not exist")
    marker, marker_problem = _read_marker(path)
    return verify_records(
        ((raw, complete) for raw, complete in _lines(path)),
        hmac_key,
        marker=marker,
        marker_problem=marker_problem,
        head_name=head_path(path).name,
        seq_lookup=lambda seq: _line_of_seq(path, seq),
    )


def _read_marker(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    head = head_path(path)
    if not head.exists():
        return None, None
    try:
        marker = json.loads(head.read_text())
        int(marker["seq"]), str(marker["hash"])
    except (ValueError, KeyError, TypeError):
        return None, f"head marker {head.name} is unreadable"
    return marker, None


def verify_records(
    lines: Iterable[tuple[bytes, bool]],
    hmac_key: bytes | None = None,
    *,
    marker: dict[str, Any] | None = None,
    marker_problem: str | None = None,
    head_name: str = "head",
    seq_lookup: Any = None,
) -> VerifyReport:
    """The chain check over any stream of serialised records (a file, or an export from PostgreSQL)."""
    signed = bool(hmac_key)
    signed_from = marker.get("signed_from") if marker else None
    signed_from = signed_from if isinstance(signed_from, int) else None

    def bad(line: int, problem: str, seq: int | None = None, count: int = 0) -> VerifyReport:
        return VerifyReport(
            ok=False, records=count, first_bad_line=line, first_bad_seq=seq, problem=problem, signed=signed
        )

    prev, count, line, saw_signature = "", 0, 0, False
    head_hash: str | None = None
    hseq = int(marker["seq"]) if marker else 0
    for raw, complete in lines:
        line += 1
        if not complete:
            return VerifyReport(
                ok=False,
                records=count,
                first_bad_line=line,
                first_bad_seq=count + 1,
                problem="truncated last line (an incomplete write, e.g. a crash); the next start of the "
                "server moves it aside and keeps every complete record",
                truncated=True,
                signed=signed,
            )
        expected = count + 1
        obj = _parse(raw)
        if obj is None:
            return bad(line, "not valid JSON: the record was edited or corrupted", expected, count)
        seq, h, ph = obj.get("seq"), obj.get("hash"), obj.get("prev_hash")
        if not isinstance(seq, int) or not isinstance(h, str) or not isinstance(ph, str):
            return bad(line, "not an audit record (seq, hash or prev_hash missing)", expected, count)
        if seq != expected:
            later = seq_lookup(expected) if seq_lookup is not None else None
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
        sig = obj.get("signature")
        saw_signature = saw_signature or isinstance(sig, str)
        if hmac_key:
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
        elif signed_from is not None and seq >= signed_from and not isinstance(sig, str):
            return bad(
                line,
                f"seq {seq}: the head marker says records from seq {signed_from} on are signed, but this "
                "one carries no signature: signatures were stripped",
                seq,
                count,
            )
        if seq == hseq:
            head_hash = h
        prev = h
        count += 1
    if marker_problem is not None:
        return bad(line + 1, marker_problem, None, count)
    if marker is not None:
        if hseq > count:
            return bad(
                line + 1,
                f"records cut off the end: the log ends at seq {count} but its head marker says seq {hseq}",
                count + 1,
                count,
            )
        if hseq > 0 and head_hash != str(marker["hash"]):
            at = seq_lookup(hseq) if seq_lookup is not None else None
            return bad(
                at or 1,
                f"seq {hseq} differs from the head marker ({head_name}): history rewritten",
                hseq,
                count,
            )
    unchecked = not hmac_key and (saw_signature or signed_from is not None)
    return VerifyReport(ok=True, records=count, signed=signed, signatures_unchecked=unchecked)
