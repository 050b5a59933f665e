"""One protocol for the server's shared state: the audit chain, proposals, and the locks that make
"decide -> act -> record" atomic (which is what makes idempotency keys, cooldowns and budgets hold).

Two stores implement it: the embedded files (``state/files.py``: a JSONL log, one JSON file per proposal,
file locks; the default) and PostgreSQL (``state/postgres.py``, ``MCP_AUTOSCALE_STATE_URL``), which
several server replicas share.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from mcp_autoscale.approvals import Proposal
from mcp_autoscale.locks import PoolLock
from mcp_autoscale.models import AuditRecord


@runtime_checkable
class AuditStore(Protocol):
    """The hash-chained audit: appends are serialised so the chain never forks."""

    @property
    def hmac_key(self) -> bytes | None: ...

    @property
    def where(self) -> str:
        """Where the records live, for operators (a path, or a URL without its password)."""
        ...

    def append(self, **fields: Any) -> AuditRecord:
        """Seal and store the next record durably; ``AuditUnavailable`` when it cannot."""
        ...

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
        """Records oldest first, newest ``limit`` kept; closed intents left out unless ``intents``."""
        ...

    def recent_applied(self, since: datetime) -> list[AuditRecord]:
        """What cooldowns and budgets count: changes made since ``since`` plus every open intent."""
        ...

    def open_intents(self) -> list[AuditRecord]: ...

    def get(self, audit_id: str) -> AuditRecord: ...

    def find_idempotent(self, key: str, caller: str | None = None) -> AuditRecord | None: ...

    def iter_records(self) -> Iterator[AuditRecord]: ...


class Proposals(Protocol):
    """Pending proposals, visible to every process that shares the state."""

    def save(self, proposal: Proposal) -> None: ...

    def get(self, proposal_id: str) -> Proposal: ...

    def all(self) -> list[Proposal]: ...


class StoreCheck(BaseModel):
    """One row of ``doctor`` about the store."""

    name: str
    ok: bool
    detail: str


class StateStore(Protocol):
    """Everything the gate remembers, in one place."""

    @property
    def audit(self) -> AuditStore: ...

    @property
    def proposals(self) -> Proposals: ...

    @property
    def lock(self) -> PoolLock | None:
        """The gate's lock; None: its default (a file lock, or a Lease on Kubernetes)."""
        ...

    def checks(self) -> list[StoreCheck]:
        """What ``doctor`` reports: reachable, schema version, chain head."""
        ...

    def snapshot(self) -> AbstractContextManager[tuple[dict[str, Any], Iterator[bytes]]]:
        """(head marker, the chain as JSON Lines up to it), streamed: ``audit export`` and ``audit verify``.

        The head holds ``seq``, ``hash`` and, once a key signed, ``signed_from``."""
        ...

    def close(self) -> None: ...
