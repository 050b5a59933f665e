"""The embedded store (the default): the JSONL audit log, one JSON file per proposal, file locks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from mcp_autoscale.approvals import ProposalStore
from mcp_autoscale.audit import AuditLog
from mcp_autoscale.audit.log import read_head
from mcp_autoscale.locks import PoolLock
from mcp_autoscale.state.base import StoreCheck


class FileStateStore:
    """State under one directory, shared by the processes of one host."""

    def __init__(
        self, audit_file: Path, state_dir: Path, hmac_key: bytes | None = None, *, recover: bool = True
    ) -> None:
        self.audit = AuditLog(audit_file, hmac_key=hmac_key, recover=recover)
        self.proposals = ProposalStore(Path(state_dir) / "proposals")
        self.lock: PoolLock | None = None

    def checks(self) -> list[StoreCheck]:
        return [StoreCheck(name="files", ok=True, detail=f"audit log {self.audit.where}")]

    @contextmanager
    def _snapshot(self) -> Iterator[tuple[dict[str, Any], Iterator[bytes]]]:
        head = read_head(self.audit.path)
        if not self.audit.path.exists():
            yield head, iter(())
            return
        with open(self.audit.path, "rb") as fh:
            yield head, (raw for raw in fh if raw.endswith(b"\n"))

    def snapshot(self) -> AbstractContextManager[tuple[dict[str, Any], Iterator[bytes]]]:
        return self._snapshot()

    def close(self) -> None:
        self.audit.index.close()
