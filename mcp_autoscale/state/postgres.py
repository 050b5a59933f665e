"""The shared store: the audit chain, proposals and the gate's locks in PostgreSQL (psycopg 3 + its pool).

Several server replicas share one database:

* Appends are serialised by a row lock on the chain head (``SELECT ... FROM audit_head FOR UPDATE``): each
  append reads the head, seals the next record on it and moves the head in one transaction, so the chain
  never forks, and a record is acknowledged only once committed.
* The gate's locks (a pool, a budget's scope) are session advisory locks, so "decide -> act -> record"
  is one step across replicas: an idempotency key applies its change once, and cooldowns and budgets hold.
  A process that dies loses its session, and with it its locks.
* Any database error is ``AuditUnavailable``: the call fails closed, before anything is written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from mcp_autoscale.approvals import Proposal
from mcp_autoscale.audit.cache import DecisionWindow
from mcp_autoscale.audit.log import seal
from mcp_autoscale.errors import AuditUnavailable, Conflict, InvalidInput, NotFound
from mcp_autoscale.logs import get_logger
from mcp_autoscale.models import ActionStatus, AuditRecord
from mcp_autoscale.state.base import StoreCheck
from mcp_autoscale.state.migrations import LATEST, current_version, migrate

log = get_logger(__name__)

_DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def describe_url(url: str) -> str:
    """postgresql://user@host:port/db, never the password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


@contextmanager
def unavailable(where: str) -> Iterator[None]:
    """Database trouble becomes one clear, fail-closed error."""
    try:
        yield
    except _DB_ERRORS as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.error("state.unavailable", store=where, error=first)
        raise AuditUnavailable(
            f"state store unavailable ({where}: {first}); nothing was changed, retry when it is back"
        ) from err


def _counts(data: dict[str, Any]) -> bool:
    status = data.get("status")
    return status == ActionStatus.APPLIED.value or (
        status == ActionStatus.RECONCILED.value and bool(data.get("changes"))
    )


class PgAudit:
    """The audit chain as rows; each row keeps the exact sealed JSON line, so exports verify as files do."""

    def __init__(self, pool: ConnectionPool[Any], where: str, hmac_key: bytes | None = None) -> None:
        self.pool = pool
        self._where = where
        self.hmac_key = hmac_key or None
        self.window = DecisionWindow()

    @property
    def where(self) -> str:
        return self._where

    def append(self, **fields: Any) -> AuditRecord:
        with unavailable(self._where), self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT seq, hash, signed_from FROM audit_head WHERE id = 1 FOR UPDATE"
            ).fetchone()
            assert row is not None, "audit_head row missing: the schema migration did not run"
            seq, prev, signed_from = int(row[0]), str(row[1]), row[2]
            data, line = seal(fields, seq, prev, self.hmac_key)
            if signed_from is None and self.hmac_key:
                signed_from = data["seq"]
            conn.execute(
                "INSERT INTO audit_records (seq, id, ts, tool, target, status, decision, caller, "
                "idempotency_key, intent_id, counts, line) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    data["seq"], data["id"], data["ts"], data["tool"], data["target"], data["status"],
                    data["verdict"]["decision"], data["caller"], data["idempotency_key"], data["intent_id"],
                    _counts(data), line.decode("utf-8").rstrip("\n"),
                ),
            )  # fmt: skip
            if data["status"] == ActionStatus.INTENT.value:
                conn.execute("INSERT INTO audit_open_intents VALUES (%s, %s)", (data["id"], data["seq"]))
            if data["intent_id"]:
                conn.execute("DELETE FROM audit_open_intents WHERE id = %s", (data["intent_id"],))
            conn.execute(
                "UPDATE audit_head SET seq = %s, hash = %s, signed_from = %s WHERE id = 1",
                (data["seq"], data["hash"], signed_from),
            )
        return AuditRecord.model_validate(data)

    def _lines(self, sql: str, params: tuple[Any, ...] = ()) -> list[str]:
        with unavailable(self._where), self.pool.connection() as conn:
            return [str(r[-1]) for r in conn.execute(sql, params).fetchall()]

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
        if limit is not None and limit <= 0:
            return []
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if pool is not None:
            where.append("(target = %s OR split_part(target, '/', 2) = %s)")
            params += [pool, pool]
        for column, value in (("tool", tool), ("status", status), ("decision", decision)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("ts >= %s")
            params.append(since)
        if not intents:
            where.append("(status <> 'intent' OR id IN (SELECT id FROM audit_open_intents))")
        sql = f"SELECT seq, line FROM audit_records WHERE {' AND '.join(where)} ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        lines = self._lines(sql, tuple(params))
        return [AuditRecord.model_validate_json(line) for line in reversed(lines)]

    def recent_applied(self, since: datetime) -> list[AuditRecord]:
        return self.window.records(since, self._counted_after, self._open_intent_lines)

    def _counted_after(self, seq: int, since: datetime) -> list[str]:
        return self._lines(
            "SELECT seq, line FROM audit_records WHERE counts AND seq > %s AND ts >= %s ORDER BY seq",
            (seq, since),
        )

    def _open_intent_lines(self) -> list[str]:
        return self._lines(
            "SELECT r.seq, r.line FROM audit_records r JOIN audit_open_intents o ON o.id = r.id ORDER BY 1"
        )

    def open_intents(self) -> list[AuditRecord]:
        return [AuditRecord.model_validate_json(line) for line in self._open_intent_lines()]

    def get(self, audit_id: str) -> AuditRecord:
        lines = self._lines("SELECT line FROM audit_records WHERE id = %s", (audit_id,))
        if not lines:
            raise NotFound(f"no audit record {audit_id!r} in the audit log")
        return AuditRecord.model_validate_json(lines[0])

    def find_idempotent(self, key: str, caller: str | None = None) -> AuditRecord | None:
        if caller is None:
            lines = self._lines(
                "SELECT line FROM audit_records WHERE idempotency_key = %s ORDER BY seq DESC LIMIT 1", (key,)
            )
        else:
            lines = self._lines(
                "SELECT line FROM audit_records WHERE idempotency_key = %s AND caller = %s "
                "ORDER BY seq DESC LIMIT 1",
                (key, caller),
            )
        return AuditRecord.model_validate_json(lines[0]) if lines else None

    def iter_records(self) -> Iterator[AuditRecord]:
        with snapshot(self.pool, self._where) as (_, lines):
            for line in lines:
                yield AuditRecord.model_validate_json(line)


@contextmanager
def snapshot(pool: ConnectionPool[Any], where: str) -> Iterator[tuple[dict[str, Any], Iterator[bytes]]]:
    """(head, the chain's lines up to that head) from one repeatable-read snapshot, streamed by a server
    cursor: what ``audit export`` writes and ``audit verify`` checks, whatever appends meanwhile."""
    with unavailable(where), pool.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT seq, hash, signed_from FROM audit_head WHERE id = 1").fetchone()
        head: dict[str, Any] = {"seq": int(row[0]), "hash": str(row[1])} if row else {"seq": 0, "hash": ""}
        if row and row[2] is not None:
            head["signed_from"] = int(row[2])
        with conn.cursor(name="audit_export") as cur:
            cur.itersize = 2000
            cur.execute("SELECT line FROM audit_records WHERE seq <= %s ORDER BY seq", (head["seq"],))
            yield head, (str(line).encode("utf-8") + b"\n" for (line,) in cur)


class PgProposals:
    """Proposals as JSON rows; status changes happen under the gate's advisory lock on the target."""

    def __init__(self, pool: ConnectionPool[Any], where: str) -> None:
        self.pool = pool
        self.where = where

    @staticmethod
    def _check_id(proposal_id: str) -> None:
        if not proposal_id.replace("-", "").isalnum():
            raise InvalidInput(f"{proposal_id!r} is not a proposal id (they look like prop-1a2b3c4d5e6f)")

    def save(self, proposal: Proposal) -> None:
        self._check_id(proposal.id)
        with unavailable(self.where), self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO proposals (id, status, created_at, body) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, body = EXCLUDED.body",
                (proposal.id, proposal.status.value, proposal.created_at, proposal.model_dump_json()),
            )

    def get(self, proposal_id: str) -> Proposal:
        self._check_id(proposal_id)
        with unavailable(self.where), self.pool.connection() as conn:
            row = conn.execute("SELECT body::text FROM proposals WHERE id = %s", (proposal_id,)).fetchone()
        if row is None:
            raise NotFound(f"no proposal {proposal_id!r} in the state database (see `mcp-autoscale pending`)")
        return Proposal.model_validate_json(row[0])

    def all(self) -> list[Proposal]:
        with unavailable(self.where), self.pool.connection() as conn:
            rows = conn.execute(  # open ones only: every tool call scans them, closed ones pile up
                "SELECT body::text FROM proposals WHERE status IN ('pending', 'approved') ORDER BY created_at"
            ).fetchall()
        return [Proposal.model_validate_json(r[0]) for r in rows]


class _KeyedMutex:
    """One in-process lock per key, so threads of one replica queue here, not on database connections."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, list[Any]] = {}

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[bool]:
        with self._mutex:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            got = entry[0].acquire(timeout=max(0.0, timeout))
            try:
                yield got
            finally:
                if got:
                    entry[0].release()
        finally:
            with self._mutex:
                entry[1] -= 1
                if entry[1] == 0:
                    self._locks.pop(key, None)


class PgAdvisoryLock:
    """``PoolLock`` over session advisory locks: held across replicas, released when a process dies."""

    def __init__(self, pool: ConnectionPool[Any], where: str) -> None:
        self.pool = pool
        self.where = where
        self._local = _KeyedMutex()

    def _busy(self, key: str, timeout: float) -> Conflict:
        return Conflict(
            f"another agent is acting on {key} (lock held for more than {timeout:g} s); retry shortly"
        )

    @contextmanager
    def _hold(self, key: str, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        with self._local.hold(key, timeout) as got:
            if not got:
                raise self._busy(key, timeout)
            with unavailable(self.where):
                conn = self.pool.getconn(timeout=max(0.1, deadline - time.monotonic()))
            try:
                with unavailable(self.where):
                    ms = max(1, int((deadline - time.monotonic()) * 1000))
                    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{ms}ms",))
                    try:
                        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
                    except pg_errors.LockNotAvailable:
                        raise self._busy(key, timeout) from None
                try:
                    yield
                finally:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                        conn.execute("SELECT set_config('lock_timeout', '0', false)")
                    except psycopg.Error as err:  # the session is gone, and its locks with it
                        log.warning("state.unlock_failed", key=key, error=str(err).splitlines()[0:1])
            finally:
                self.pool.putconn(conn)

    def acquire(self, key: str, timeout: float) -> AbstractContextManager[None]:
        return self._hold(key, timeout)


class PostgresStateStore:
    """Audit, proposals and locks in one PostgreSQL database, schema migrated at start-up."""

    def __init__(
        self, url: str, hmac_key: bytes | None = None, *, pool_size: int = 10, timeout_s: float = 10.0
    ) -> None:
        self.where = describe_url(url)
        try:
            with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn:
                self.migrated = migrate(conn)
        except psycopg.Error as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise AuditUnavailable(f"cannot open the state database {self.where}: {first}") from err
        kwargs = {"autocommit": True, "connect_timeout": max(1, int(timeout_s))}
        self.pool: ConnectionPool[Any] = ConnectionPool(
            url, min_size=1, max_size=pool_size, timeout=timeout_s, kwargs=kwargs, open=False,
            check=ConnectionPool.check_connection, name="mcp-autoscale-state",
        )  # fmt: skip
        self.lock_pool: ConnectionPool[Any] = ConnectionPool(
            url, min_size=0, max_size=pool_size * 2, timeout=timeout_s, kwargs=kwargs, open=False,
            check=ConnectionPool.check_connection, name="mcp-autoscale-locks",
        )  # fmt: skip
        self.pool.open()
        self.lock_pool.open()
        self.audit = PgAudit(self.pool, self.where, hmac_key)
        self.proposals = PgProposals(self.pool, self.where)
        self.lock: PgAdvisoryLock | None = PgAdvisoryLock(self.lock_pool, self.where)
        if self.migrated:
            log.info("state.migrated", store=self.where, versions=self.migrated)

    def checks(self) -> list[StoreCheck]:
        try:
            with unavailable(self.where), self.pool.connection() as conn:
                version = current_version(conn)
                server = conn.execute("SHOW server_version").fetchone()
                head = conn.execute("SELECT seq FROM audit_head WHERE id = 1").fetchone()
        except AuditUnavailable as err:
            return [StoreCheck(name="connection", ok=False, detail=str(err))]
        rows = [
            StoreCheck(
                name="connection", ok=True, detail=f"{self.where} (PostgreSQL {server[0] if server else '?'})"
            )
        ]
        rows.append(
            StoreCheck(
                name="schema",
                ok=version == LATEST,
                detail=f"schema version {version} (this server: {LATEST})",
            )
        )
        rows.append(StoreCheck(name="audit", ok=True, detail=f"chain head at seq {head[0] if head else 0}"))
        return rows

    def snapshot(self) -> AbstractContextManager[tuple[dict[str, Any], Iterator[bytes]]]:
        return snapshot(self.pool, self.where)

    def close(self) -> None:
        self.pool.close()
        self.lock_pool.close()
