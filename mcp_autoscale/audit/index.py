"""A rebuildable SQLite sidecar that answers the gate's questions without reading the log.

Decisions need three things from the audit: the changes made in the last day (cooldowns, budgets,
max_scale_in), the newest record of an idempotency key, and a record by id (rollback). Parsing the whole
log for them costs seconds at 60k records; this index answers each with one indexed query.

The index is a cache, never the truth: it remembers the byte offset and hash of the last record it holds.
When the log grew (another process appended, or a commit of ours was lost) it reads only the new bytes;
when the log is shorter, or the record before the new bytes is not the one it remembers (the log was
replaced), or the file is missing or unreadable, it is rebuilt from the log. Callers hold the log's file
lock while it writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from mcp_autoscale.logs import get_logger

log = get_logger(__name__)

SCHEMA_VERSION = "2"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, off INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idem (key TEXT NOT NULL, caller TEXT NOT NULL, seq INTEGER NOT NULL,
                                 off INTEGER NOT NULL, PRIMARY KEY (key, caller));
CREATE TABLE IF NOT EXISTS counted (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, line TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS counted_ts ON counted (ts);
CREATE TABLE IF NOT EXISTS intents (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, line TEXT NOT NULL);
"""


def index_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".index.sqlite")


def _ts(value: Any) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _counts(obj: dict[str, Any]) -> bool:
    """Mirror of ``AuditRecord.counts_as_applied`` on the raw JSON (intents are tracked separately)."""
    status = obj.get("status")
    return status == "applied" or (status == "reconciled" and bool(obj.get("changes")))


class AuditIndex:
    """What decisions need, keyed by the log's byte offsets."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.path = index_path(self.log_path)
        self._mutex = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self.rebuilds = 0
        self.lines_indexed = 0

    # ---------------------------------------------------------------------------------- connection

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a cache: a lost commit only leaves it behind
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _meta(self) -> tuple[int, str, str]:
        rows = dict(self._conn().execute("SELECT k, v FROM meta").fetchall())
        if rows.get("version") != SCHEMA_VERSION:
            return -1, "", ""
        return int(rows.get("offset", "0")), str(rows.get("hash", "")), str(rows.get("log", ""))

    # ------------------------------------------------------------------------------------ freshness

    def fresh(self, size: int) -> bool:
        """Cheap check (no lock): the index holds every byte of a log of this size."""
        with self._mutex:
            try:
                return self._meta()[0] == size
            except sqlite3.DatabaseError:
                return False

    def sync(self) -> None:
        """Bring the index up to the log's end (caller holds the log's file lock)."""
        with self._mutex:
            try:
                self._sync()
            except sqlite3.DatabaseError as err:
                log.warning("audit.index_rebuilt", file=str(self.path), reason=f"unreadable: {err}")
                self._rebuild()

    def _sync(self) -> None:
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        offset, last_hash, _ = self._meta()
        if offset == size:
            return
        if offset < 0 or offset > size or not self._continues(offset, last_hash):
            why = "missing or old" if offset < 0 else ("log shorter" if offset > size else "log replaced")
            log.info("audit.index_rebuilt", file=str(self.path), reason=why)
            self._rebuild()
            return
        self._index_from(offset, size)

    def _continues(self, offset: int, last_hash: str) -> bool:
        """The record just before ``offset`` is the one the index remembers."""
        if offset == 0:
            return last_hash == ""
        with open(self.log_path, "rb") as fh:
            start = max(0, offset - 65536)
            fh.seek(start)
            chunk = fh.read(offset - start)
        if not chunk.endswith(b"\n"):
            return False
        line = chunk[:-1].rsplit(b"\n", 1)[-1]
        try:
            return bool(json.loads(line).get("hash") == last_hash)
        except ValueError:
            return False

    def _rebuild(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self.rebuilds += 1
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._index_from(0, size)

    def _index_from(self, offset: int, size: int) -> None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            end, last_hash = offset, None
            for off, raw in _lines(self.log_path, offset, size):
                try:
                    obj = json.loads(raw)
                except ValueError:
                    log.warning("audit.unreadable_line", file=str(self.log_path), offset=off)
                    end = off + len(raw) + 1
                    continue
                self._add(db, obj, off, raw)
                end, last_hash = off + len(raw) + 1, str(obj.get("hash", ""))
            self._set_meta(db, end, last_hash)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --------------------------------------------------------------------------------------- writes

    def add(self, record: dict[str, Any], offset: int, line: bytes) -> None:
        """Index one record just appended at ``offset`` (the caller synced the index before appending)."""
        with self._mutex:
            try:
                db = self._conn()
                if self._meta()[0] != offset:
                    self._sync()
                    return
                db.execute("BEGIN IMMEDIATE")
                self._add(db, record, offset, line.rstrip(b"\n"))
                self._set_meta(db, offset + len(line.rstrip(b"\n")) + 1, str(record["hash"]))
                db.execute("COMMIT")
            except sqlite3.DatabaseError as err:  # the log is the truth: the next reader rebuilds
                log.warning("audit.index_write_failed", file=str(self.path), error=str(err))
                self.close()

    def _add(self, db: sqlite3.Connection, obj: dict[str, Any], off: int, raw: bytes) -> None:
        self.lines_indexed += 1
        rid, seq = str(obj.get("id", "")), int(obj.get("seq", 0))
        db.execute("INSERT OR REPLACE INTO ids VALUES (?, ?)", (rid, off))
        key = obj.get("idempotency_key")
        if key:
            db.execute(
                "INSERT OR REPLACE INTO idem VALUES (?, ?, ?, ?)", (key, str(obj.get("caller", "")), seq, off)
            )
        intent = obj.get("intent_id")
        if intent:
            db.execute("DELETE FROM intents WHERE id = ?", (intent,))
        if obj.get("status") == "intent":
            db.execute("INSERT OR REPLACE INTO intents VALUES (?, ?, ?)", (rid, seq, raw.decode()))
        elif _counts(obj):
            db.execute("INSERT OR REPLACE INTO counted VALUES (?, ?, ?)", (seq, _ts(obj["ts"]), raw.decode()))

    @staticmethod
    def _set_meta(db: sqlite3.Connection, offset: int, last_hash: str | None) -> None:
        rows = [("version", SCHEMA_VERSION), ("offset", str(offset))]
        if last_hash is not None:
            rows.append(("hash", last_hash))
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows)

    # ---------------------------------------------------------------------------------------- reads

    def counted_after(self, seq: int, since: datetime) -> list[str]:
        """Lines of the changes made since ``since`` with a seq above ``seq``, oldest first."""
        with self._mutex:
            rows = (
                self._conn()
                .execute(
                    "SELECT line FROM counted WHERE seq > ? AND ts >= ? ORDER BY seq",
                    (seq, since.timestamp()),
                )
                .fetchall()
            )
        return [str(r[0]) for r in rows]

    def open_intents(self) -> list[str]:
        with self._mutex:
            rows = self._conn().execute("SELECT line FROM intents ORDER BY seq").fetchall()
        return [str(r[0]) for r in rows]

    def offset_of(self, audit_id: str) -> int | None:
        with self._mutex:
            row = self._conn().execute("SELECT off FROM ids WHERE id = ?", (audit_id,)).fetchone()
        return int(row[0]) if row else None

    def idempotent_offset(self, key: str, caller: str | None) -> int | None:
        with self._mutex:
            db = self._conn()
            if caller is None:
                row = db.execute(
                    "SELECT off FROM idem WHERE key = ? ORDER BY seq DESC LIMIT 1", (key,)
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT off FROM idem WHERE key = ? AND caller = ?", (key, caller)
                ).fetchone()
        return int(row[0]) if row else None


def _lines(path: Path, offset: int, size: int, block: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Complete lines between ``offset`` and ``size`` with their start offsets (streamed in blocks)."""
    if size <= offset:
        return
    with open(path, "rb") as fh:
        fh.seek(offset)
        pos, carry = offset, b""
        while pos < size:
            chunk = fh.read(min(block, size - pos))
            if not chunk:
                break
            pos += len(chunk)
            data = carry + chunk
            start = 0
            line_start = pos - len(data)
            while True:
                nl = data.find(b"\n", start)
                if nl < 0:
                    break
                if nl > start:
                    yield line_start + start, data[start:nl]
                start = nl + 1
            carry = data[start:]
