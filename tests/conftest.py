"""Shared fixtures: an app on a manual-clock twin with a temp audit log and state dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_autoscale.config import Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "backend": "sim",
            "sim_clock": "manual",
            "audit_file": tmp_path / "audit.jsonl",
            "state_dir": tmp_path / "state",
        }
        base.update(overrides)
        return Settings(**base)

    return factory
