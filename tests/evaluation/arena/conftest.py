"""Fixtures for the arena tests: generation sets on disk, an empty store on SQLite and on PostgreSQL,
and a test client of an arena that holds every set.

PostgreSQL tests use the server named by QWEN_IMAGE2_TEST_POSTGRES_URL (`.ci/run` starts one). Locally they
skip when it is unset; with QWEN_IMAGE2_REQUIRE_SERVICES=1 (set by `.ci/run`) a missing service fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from arena_helpers import MODELS, import_all, make_client, write_set
from fastapi.testclient import TestClient

from qwen_image2.evaluation.arena.storage import Base, build_engine
from web_helpers import empty_store


@pytest.fixture
def set_dirs(tmp_path: Path) -> dict[tuple[str, str], Path]:
    """(model, board) -> folder, for every model in MODELS on both boards."""
    return {
        (model, board): write_set(tmp_path / "sets" / board / model, index, board)
        for index, model in enumerate(MODELS)
        for board in ("t2i", "edit")
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    """An empty store: a fresh SQLite file, or the CI PostgreSQL database with its tables recreated."""
    return empty_store(request.param, tmp_path / "arena.db", build_engine, Base.metadata)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'arena.db'}"


@pytest.fixture
def arena(db_url: str, set_dirs) -> TestClient:
    """A client of an arena whose store holds every set; closed (and its engine disposed) after the test."""
    import_all(db_url, set_dirs)
    with make_client(db_url) as client:
        yield client
    client.app.state.engine.dispose()
