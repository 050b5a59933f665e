"""Append-only, hash-chained JSON Lines audit log.

Each line is one ``AuditRecord``. ``hash`` is the SHA-256 of the record's canonical JSON (sorted keys, no
whitespace, without ``hash`` and ``signature``), and that JSON includes ``prev_hash``, the previous record's
hash: changing, removing or reordering any record breaks the chain from there on. With a key, ``signature``
is an HMAC-SHA256 over the same bytes plus the hash, so a forger who rewrites the whole chain is caught too.

Writes take a file lock (several processes may share one log), go out as one ``write`` of one line, then
``flush`` + ``fsync``. A crash mid-write can leave only the last line incomplete; the next ``AuditLog``
moves that fragment aside into ``<file>.truncated.<ms>`` and carries on. A small ``<file>.head`` file holds
the newest seq and hash so that ``verify`` also notices records cut off the end of the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mcp_autoscale.errors import BackendUnavailable, NotFound
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import AuditRecord

log = get_logger(__name__)

_UNHASHED = ("hash", "signature")
CLOCK_SKEW = timedelta(hours=1)
LOCK_TIMEOUT_S = 10.0


def canonical_bytes(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers: canonical JSON of every field except ``hash`` and ``signature``."""
    body = {k: v for k, v in record.items() if k not in _UNHASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def record_signature(record: dict[str, Any], key: bytes) -> str:
    msg = canonical_bytes(record) + b"\n" + str(record.get("hash", "")).encode("ascii")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _last_line(fh: Any, size: int) -> bytes:
    """The last complete line of a file that ends with a newline (reads backwards in blocks)."""
    end = size - 1  # position of the final newline
    pos, chunk, buf = end, 8192, b""
    while pos > 0:
        start = max(0, pos - chunk)
        fh.seek(start)
        buf = fh.read(pos - start) + buf
        nl = buf.rfind(b"\n")
        if nl >= 0:
            return buf[nl + 1 :]
        pos = start
    return buf


def _complete_end(fh: Any, block: int) -> int:
    """Offset just past the last newline: bytes after it are a torn write, not a record."""
    pos = fh.seek(0, os.SEEK_END)
    while pos > 0:
        start = max(0, pos - block)
        fh.seek(start)
        nl = fh.read(pos - start).rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
    return 0


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class AuditLog:
    """The gate's memory: who did what, why, under which verdict, with which result."""

    def __init__(self, path: Path, hmac_key: bytes | None = None, *, recover: bool = True) -> None:
        """Open (or create) a log; ``recover=False`` for readers that must not touch the file."""
        self.path = Path(path)
        self.hmac_key = hmac_key or None
        # A timeout, never a hang: a lock that cannot be created (or is held) fails the call after it.
        self._lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S)
        self.recovered: Path | None = None
        if recover:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                self.recovered = self._recover()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' file lock, given up after ``LOCK_TIMEOUT_S`` with a message instead of a hang."""
        try:
            self._lock.acquire()
        except Timeout:
            raise BackendUnavailable(
                f"audit log {self.path}: lock {self._lock.lock_file} not acquired within "
                f"{LOCK_TIMEOUT_S:g} s (another writer holds it, or the directory does not allow it)"
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    # ---------------------------------------------------------------------------------------------- write

    def _recover(self) -> Path | None:
        """Move an incomplete last line (a crash mid-write) aside; earlier records stay untouched."""
        if not self.path.exists():
            return None
        with open(self.path, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return None
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return None
            fh.seek(0)
            data = fh.read()
            cut = data.rfind(b"\n") + 1
            aside = self.path.with_name(f"{self.path.name}.truncated.{int(time.time() * 1000)}")
            _fsync_write(aside, data[cut:])
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning(
            "audit.recovered_truncated_line", file=str(self.path), moved_to=str(aside), bytes=size - cut
        )
        return aside

    def _tail(self) -> tuple[int, str]:
        if not self.path.exists():
            return 0, ""
        with open(self.path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0, ""
            last = json.loads(_last_line(fh, size))
        return int(last["seq"]), str(last["hash"])

    def append(self, **fields: Any) -> AuditRecord:
        """Append one record; assigns id, seq, ts (unless given), prev_hash, hash and signature."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            aside = self._recover()
            if aside is not None:
                self.recovered = aside
            seq, prev = self._tail()
            fields.pop("hash", None)
            fields.pop("signature", None)
            fields["seq"] = seq + 1
            fields["prev_hash"] = prev
            fields.setdefault("id", f"aud-{seq + 1:06d}-{uuid.uuid4().hex[:8]}")
            fields.setdefault("ts", datetime.now(UTC))
            record = AuditRecord.model_validate(fields)
            data = record.model_dump(mode="json")
            data["hash"] = record_hash(data)
            data["signature"] = record_signature(data, self.hmac_key) if self.hmac_key else None
            line = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_write(
                head_path(self.path), json.dumps({"seq": data["seq"], "hash": data["hash"]}).encode()
            )
            return AuditRecord.model_validate(data)

    # ----------------------------------------------------------------------------------------------- read

    def _iter(self) -> list[AuditRecord]:
        if not self.path.exists():
            return []
        out: list[AuditRecord] = []
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    out.append(AuditRecord.model_validate_json(raw))
                except ValueError:
                    log.warning("audit.unreadable_line", file=str(self.path))
        return out

    def _reverse(self, block: int = 65536) -> Iterator[AuditRecord]:
        """Records newest first, reading the file backwards in blocks (recent history stays cheap)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            pos = _complete_end(fh, block)
            carry = b""
            while pos > 0:
                start = max(0, pos - block)
                fh.seek(start)
                lines = (fh.read(pos - start) + carry).split(b"\n")
                carry = lines.pop(0) if start > 0 else b""  # a partial line: finish it with the next block
                pos = start
                for raw in reversed(lines):
                    if not raw:
                        continue
                    try:
                        yield AuditRecord.model_validate_json(raw)
                    except ValueError:
                        log.warning("audit.unreadable_line", file=str(self.path))

    def records(
        self,
        *,
        pool: str | None = None,
        tool: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records oldest first; ``pool`` is 'ns/name' or a bare name; ``limit`` keeps the newest N.

        With ``since`` the file is read backwards and reading stops one hour (clock skew between writers)
        before ``since``, so the gate's look at the last day does not grow with the log.
        """
        source: Iterable[AuditRecord]
        if since is not None:
            floor = since - CLOCK_SKEW
            newest_first = []
            for r in self._reverse():
                if r.ts < floor:
                    break
                newest_first.append(r)
            source = reversed(newest_first)
        else:
            source = self._iter()
        out = []
        for r in source:
            if pool is not None and r.target != pool and r.target.rpartition("/")[2] != pool:
                continue
            if tool is not None and r.tool != tool:
                continue
            if status is not None and r.status.value != status:
                continue
            if since is not None and r.ts < since:
                continue
            out.append(r)
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out

    def get(self, audit_id: str) -> AuditRecord:
        for r in self._iter():
            if r.id == audit_id:
                return r
        raise NotFound(f"no audit record {audit_id!r} in {self.path}")

    def find_idempotent(self, key: str, caller: str | None = None) -> AuditRecord | None:
        """The newest record for this idempotency key (and caller): the latest outcome of that action."""
        for r in self._reverse():
            if r.idempotency_key == key and (caller is None or r.caller == caller):
                return r
        return None
