"""Where the gate's state lives: embedded files by default, PostgreSQL when ``state_url`` is set."""

from __future__ import annotations

from mcp_autoscale.config import Settings
from mcp_autoscale.state.base import AuditStore, Proposals, StateStore, StoreCheck
from mcp_autoscale.state.files import FileStateStore


def hmac_key_of(settings: Settings) -> bytes | None:
    return settings.audit_hmac_key.get_secret_value().encode() if settings.audit_hmac_key else None


def open_store(settings: Settings, *, read_only: bool = False) -> StateStore:
    """The configured store, opened (PostgreSQL: connected and migrated) or a clear error.

    ``read_only``: the file store opens its audit log without the writers' lock (a reader such as
    ``snapshot`` must work where it may not write)."""
    if settings.state_url is not None:
        from mcp_autoscale.state.postgres import PostgresStateStore

        return PostgresStateStore(
            settings.state_url.get_secret_value(), hmac_key_of(settings), timeout_s=settings.state_timeout_s
        )
    return FileStateStore(
        settings.resolved_audit_file, settings.state_dir, hmac_key_of(settings), recover=not read_only
    )


__all__ = [
    "AuditStore",
    "FileStateStore",
    "Proposals",
    "StateStore",
    "StoreCheck",
    "hmac_key_of",
    "open_store",
]
