"""Append-only, hash-chained JSON Lines audit log.

Each line is one ``AuditRecord``. ``hash`` is the SHA-256 of the record's canonical JSON (sorted keys, no
whitespace, without ``hash`` and ``signature``), and that JSON includes ``prev_hash``, the previous record's
hash: changing, removing or reordering any record breaks the chain from there on. With a key, ``signature``
is an HMAC-SHA256 over the same bytes plus the hash, so a forger who rewrites the whole chain is caught too.

Writes take a file lock (several processes may share one log), go out as one ``write`` of one line, then
``flush`` + ``fsync``. A crash mid-write can leave only the last line incomplete; the next ``AuditLog``
moves that fragment aside into ``<file>.truncated.<ms>`` and carries on. A small ``<file>.head`` file holds
the newest seq and hash so that ``verify`` also notices records cut off the end of the log, and, once a
key signs, the first signed seq (``signed_from``), so that ``verify`` without the key fails on a signed log
whose signatures were stripped.

Decisions (cooldowns, budgets, idempotency, rollback by id) read a SQLite sidecar index that each append
updates and that is rebuilt from the log when missing or behind (``audit/index.py``); humans read the log
from its end (``records`` with ``limit``/``since``) and ``verify`` streams it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mcp_autoscale.audit.cache import DecisionWindow
from mcp_autoscale.audit.index import AuditIndex
from mcp_autoscale.errors import AuditUnavailable, NotFound
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import ActionStatus, AuditRecord

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


def seal(
    fields: dict[str, Any], last_seq: int, prev_hash: str, key: bytes | None
) -> tuple[dict[str, Any], bytes]:
    """The next record of a chain: validated, numbered, linked, hashed and signed; and its JSON line.

    Every store (the file, PostgreSQL) seals records the same way, so one verifier checks them all.
    """
    fields = {k: v for k, v in fields.items() if k not in _UNHASHED}
    fields["seq"] = last_seq + 1
    fields["prev_hash"] = prev_hash
    fields.setdefault("id", f"aud-{last_seq + 1:06d}-{uuid.uuid4().hex[:8]}")
    fields.setdefault("ts", datetime.now(UTC))
    data = AuditRecord.model_validate(fields).model_dump(mode="json")
    data["hash"] = record_hash(data)
    data["signature"] = record_signature(data, key) if key else None
    line = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    return data, line.encode("utf-8")


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


def read_head(path: Path) -> dict[str, Any]:
    """The head marker of a log (empty when absent or unreadable: ``verify`` reports an unreadable one)."""
    try:
        marker = json.loads(head_path(path).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _fsync_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if sync:
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
        self.index = AuditIndex(self.path)
        self.window = DecisionWindow()
        self._rebuilds_seen = 0
        self.recovered: Path | None = None
        if recover:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                self.recovered = self._recover()
                self.index.sync()

    @property
    def where(self) -> str:
        """Where the records live, for operators (never shown to the model: it reveals paths)."""
        return str(self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The writers' file lock, given up after ``LOCK_TIMEOUT_S`` with a message instead of a hang."""
        try:
            self._lock.acquire()
        except Timeout:
            raise AuditUnavailable(
                f"audit log {self.path}: lock {self._lock.lock_file} not acquired within "
                f"{LOCK_TIMEOUT_S:g} s (another writer holds it, or the directory does not allow it)"
            ) from None
        except OSError as err:  # (after Timeout, itself an OSError) the lock file cannot be created
            raise AuditUnavailable(
                f"audit log {self.path}: cannot create its lock {self._lock.lock_file} "
                f"({err.strerror or err}); use an audit log in a writable directory"
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
            cut = _complete_end(fh, 65536)
            fh.seek(cut)
            fragment = fh.read()
            aside = self.path.with_name(f"{self.path.name}.truncated.{int(time.time() * 1000)}")
            _fsync_write(aside, fragment)
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        log.warning(
            "audit.recovered_truncated_line", file=str(self.path), moved_to=str(aside), bytes=size - cut
        )
        return aside

    def _tail(self) -> tuple[int, str, int]:
        """(seq, hash) of the last record and the file size."""
        if not self.path.exists():
            return 0, "", 0
        with open(self.path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0, "", 0
            last = json.loads(_last_line(fh, size))
        return int(last["seq"]), str(last["hash"]), size

    def append(self, **fields: Any) -> AuditRecord:
        """Append one record, fsynced; assigns id, seq, ts (unless given), prev_hash, hash and signature.

        Raises ``AuditUnavailable`` when the record could not be made durable (full disk, I/O error).
        """
        try:
            return self._append(fields)
        except OSError as err:
            log.error("audit.append_failed", file=str(self.path), error=str(err))
            raise AuditUnavailable(
                f"the audit record could not be written ({err.strerror or err}); nothing was changed"
            ) from err

    def _append(self, fields: dict[str, Any]) -> AuditRecord:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            aside = self._recover()
            if aside is not None:
                self.recovered = aside
            seq, prev, size = self._tail()
            if not self.index.fresh(size):
                self.index.sync()
            data, line = seal(fields, seq, prev, self.hmac_key)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    os.ftruncate(fd, size)  # a short write is a torn record: take it back
                    raise OSError(28, "short write (disk full?)")
                os.fsync(fd)
            finally:
                os.close(fd)
            marker: dict[str, Any] = {"seq": data["seq"], "hash": data["hash"]}
            signed_from = read_head(self.path).get("signed_from")
            if isinstance(signed_from, int):
                marker["signed_from"] = signed_from
            elif self.hmac_key:
                marker["signed_from"] = data["seq"]
            # replaced atomically but not fsynced: the records are durable by the log's fsync; after a
            # power loss the marker may lag, which only narrows the cut-off check to what it shows
            _fsync_write(head_path(self.path), json.dumps(marker).encode(), sync=False)
            self.index.add(data, size, line)
            return AuditRecord.model_validate(data)

    # ----------------------------------------------------------------------------------------------- read

    def _fresh_index(self) -> AuditIndex:
        """The index, caught up with the log (under the file lock only when it is behind)."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if not self.index.fresh(size):
            with self._locked():
                self.index.sync()
        return self.index

    def _at(self, offset: int) -> AuditRecord | None:
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            raw = fh.readline()
        try:
            return AuditRecord.model_validate_json(raw)
        except ValueError:
            return None

    def iter_records(self) -> Iterator[AuditRecord]:
        """Every complete record, oldest first, streamed (constant memory)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    yield AuditRecord.model_validate_json(raw)
                except ValueError:
                    log.warning("audit.unreadable_line", file=str(self.path))

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
        intents: bool = False,
        decision: str | None = None,
    ) -> list[AuditRecord]:
        """Records oldest first; ``pool`` is 'ns/name' or a bare name; ``limit`` keeps the newest N.

        Read from the end of the file: reading stops once ``limit`` records matched, or one hour (clock
        skew between writers) before ``since``, so recent history stays cheap however long the log is. An
        intent record is left out once its outcome follows (one record per decision) unless ``intents``.
        """
        if limit is not None and limit <= 0:
            return []
        floor = since - CLOCK_SKEW if since is not None else None
        closed: set[str] = set()
        newest_first: list[AuditRecord] = []
        for r in self._reverse():
            if floor is not None and r.ts < floor:
                break
            if r.intent_id:
                closed.add(r.intent_id)
            if not intents and r.status == ActionStatus.INTENT and r.id in closed:
                continue
            if pool is not None and r.target != pool and r.target.rpartition("/")[2] != pool:
                continue
            if tool is not None and r.tool != tool:
                continue
            if status is not None and r.status.value != status:
                continue
            if decision is not None and r.verdict.decision.value != decision:
                continue
            if since is not None and r.ts < since:
                continue
            newest_first.append(r)
            if limit is not None and len(newest_first) >= limit:
                break
        newest_first.reverse()
        return newest_first

    def recent_applied(self, since: datetime) -> list[AuditRecord]:
        """Changes made since ``since`` plus every intent still without an outcome (what decisions count)."""
        index = self._fresh_index()
        if index.rebuilds != self._rebuilds_seen:  # rebuilt from the log: seqs may mean other records
            self._rebuilds_seen = index.rebuilds
            self.window.reset()
        return self.window.records(since, index.counted_after, index.open_intents)

    def open_intents(self) -> list[AuditRecord]:
        """Intent records whose outcome was never written (a crash between the write and its record)."""
        return [AuditRecord.model_validate_json(line) for line in self._fresh_index().open_intents()]

    def get(self, audit_id: str) -> AuditRecord:
        offset = self._fresh_index().offset_of(audit_id) if self.path.exists() else None
        record = self._at(offset) if offset is not None else None
        if record is None or record.id != audit_id:
            raise NotFound(f"no audit record {audit_id!r} in the audit log")
        return record

    def find_idempotent(self, key: str, caller: str | None = None) -> AuditRecord | None:
        """The newest record for this idempotency key (and caller): the latest outcome of that action."""
        if not self.path.exists():
            return None
        offset = self._fresh_index().idempotent_offset(key, caller)
        return self._at(offset) if offset is not None else None
