"""A real PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_server import TempPostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    server = TempPostgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres: TempPostgres) -> str:
    return postgres.new_database()
