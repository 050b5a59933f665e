"""Versioned schema migrations for the PostgreSQL store, applied in order at start-up.

A migration is never edited once released: a change is a new version. Replicas starting together take a
transaction-level advisory lock, so exactly one applies each version; a database whose version is newer
than this server knows is refused (an older replica must not write into a schema it does not understand).
"""

from __future__ import annotations

from typing import Any

from mcp_autoscale.errors import ConfigError

MIGRATION_LOCK = 7_360_001  # pg_advisory_xact_lock key held while migrating

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "audit chain with its head row, open intents, proposals",
        """
        CREATE TABLE audit_records (
            seq             bigint PRIMARY KEY,
            id              text NOT NULL UNIQUE,
            ts              timestamptz NOT NULL,
            tool            text NOT NULL,
            target          text NOT NULL,
            status          text NOT NULL,
            decision        text NOT NULL,
            caller          text NOT NULL,
            idempotency_key text,
            intent_id       text,
            counts          boolean NOT NULL,
            line            text NOT NULL
        );
        CREATE INDEX audit_records_counted ON audit_records (seq) WHERE counts;
        CREATE INDEX audit_records_idempotency ON audit_records (idempotency_key, caller, seq)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX audit_records_target ON audit_records (target, seq);
        CREATE TABLE audit_head (
            id          int PRIMARY KEY CHECK (id = 1),
            seq         bigint NOT NULL,
            hash        text NOT NULL,
            signed_from bigint
        );
        INSERT INTO audit_head VALUES (1, 0, '', NULL);
        CREATE TABLE audit_open_intents (
            id  text PRIMARY KEY REFERENCES audit_records (id),
            seq bigint NOT NULL
        );
        CREATE TABLE proposals (
            id         text PRIMARY KEY,
            status     text NOT NULL,
            created_at timestamptz NOT NULL,
            body       jsonb NOT NULL
        );
        CREATE INDEX proposals_status ON proposals (status, created_at);
        """,
    ),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: Any) -> int:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Any) -> list[int]:
    """Bring the schema to ``LATEST``; returns the versions applied now (none when already there)."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, description text NOT "
            "NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = current_version(conn)
        if version > LATEST:
            raise ConfigError(
                f"the state database has schema version {version}, newer than this server knows "
                f"({LATEST}): upgrade mcp-autoscale before pointing it at this database"
            )
        for number, description, sql in MIGRATIONS:
            if number <= version:
                continue
            conn.execute(sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)", (number, description)
            )
            applied.append(number)
    return applied
