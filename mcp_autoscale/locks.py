"""Per-pool locks so two agents (or two servers) never decide and act on one pool at the same time.

The gate holds the lock around "read recent actions -> check cooldown -> execute -> audit", which makes the
cooldown check and the write one atomic step per pool. ``FilePoolLock`` works for every process on one
machine (the simulator, a laptop); a Kubernetes ``Lease`` implementation plugs into the same protocol.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from filelock import FileLock, Timeout

from mcp_autoscale.errors import Conflict


@runtime_checkable
class PoolLock(Protocol):
    def acquire(self, key: str, timeout: float) -> AbstractContextManager[None]:
        """Hold the lock for ``key`` (e.g. 'chat/llama-8b') while the block runs; ``Conflict`` on timeout."""
        ...


def lock_file_name(key: str) -> str:
    """A safe, collision-free file name for a pool key."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:80]
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.lock"


class FilePoolLock:
    """``filelock`` under ``<state_dir>/locks``: safe across threads and processes on one host."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @contextmanager
    def _hold(self, key: str, timeout: float) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.directory / lock_file_name(key)), thread_local=False)
        try:
            lock.acquire(timeout=timeout)
        except Timeout as err:
            raise Conflict(
                f"another agent is acting on {key} (lock held for more than {timeout:g} s); retry shortly"
            ) from err
        try:
            yield
        finally:
            lock.release()

    def acquire(self, key: str, timeout: float) -> AbstractContextManager[None]:
        return self._hold(key, timeout)
