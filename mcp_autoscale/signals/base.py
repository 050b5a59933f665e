"""The protocol every signal source implements.

``collect`` must return within its own timeout and must not raise for a dead backend: a failure becomes
``SignalReport.errors`` plus per-pool ``missing`` reasons, so the snapshot can be partial and say why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from mcp_autoscale.models import PoolState, SignalReport


@runtime_checkable
class SignalSource(Protocol):
    name: str

    def collect(self, pools: Sequence[PoolState]) -> SignalReport: ...
