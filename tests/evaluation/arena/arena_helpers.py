"""Helpers shared by the arena tests: tiny generation sets, a client factory, table snapshots.

(A module of its own rather than conftest.py, so tests can import it by a name unique in the test tree.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from qwen_image2.evaluation.arena.app import build_app
from qwen_image2.evaluation.arena.importer import import_set, read_set_dir
from qwen_image2.evaluation.arena.service import Client, new_voter_token
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import Base, build_engine, build_sessionmaker
from qwen_image2.evaluation.arena.throttle import Throttle
from qwen_image2.evaluation.arena.tickets import Tickets, load_tickets

ADMIN_TOKEN = "test-admin-token"
MODELS = ("model-red", "model-green", "model-blue")
T2I_PROMPTS = [
    ("a shop sign reading OPEN", "text rendering"),
    ("a poster with the words SUMMER SALE", "text rendering"),
    ("a portrait of an old fisherman", "portrait"),
    ("a photo of a rainy street at night", "photorealism"),
]
EDIT_PROMPTS = [
    ("make the sky purple", ["inputs/street.png"]),
    ("put the hat from image 2 on the cat in image 1", ["inputs/cat.png", "inputs/hat.png"]),
]


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (48, 32), fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def _color(model_index: int, prompt_index: int) -> tuple[int, int, int]:
    return (40 + 60 * model_index, 30 * prompt_index % 255, 200 - 50 * model_index)


def write_set(root: Path, model_index: int, board: str) -> Path:
    """One model's generation set: images plus prompts.jsonl (edit sets share their source images)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    if board == "t2i":
        for i, (prompt, category) in enumerate(T2I_PROMPTS):
            (root / f"{i:04d}.png").write_bytes(png_bytes(_color(model_index, i)))
            lines.append({"image": f"{i:04d}.png", "prompt": prompt, "category": category})
    else:
        (root / "inputs").mkdir(exist_ok=True)
        for name, color in [("street", (90, 90, 90)), ("cat", (200, 150, 90)), ("hat", (10, 10, 120))]:
            (root / "inputs" / f"{name}.png").write_bytes(png_bytes(color))
        for i, (prompt, sources) in enumerate(EDIT_PROMPTS):
            (root / f"edit{i}.png").write_bytes(png_bytes(_color(model_index, i + 7)))
            lines.append({"image": f"edit{i}.png", "prompt": prompt, "sources": sources})
    (root / "prompts.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return root


def import_all(url: str, set_dirs: dict[tuple[str, str], Path]) -> None:
    engine = build_engine(url)
    with build_sessionmaker(engine).begin() as session:
        for (model, board), folder in set_dirs.items():
            import_set(session, read_set_dir(folder, board), model, board)
    engine.dispose()


def make_client(url: str, **overrides) -> TestClient:
    """A test client of an arena over `url`; settings default to the admin token and a short bootstrap."""
    fields = {"db_url": url, "admin_token": ADMIN_TOKEN, "leaderboard_bootstrap": 20, **overrides}
    return TestClient(build_app(ArenaSettings(**fields)))


def snapshot(client: TestClient) -> dict[str, list[tuple]]:
    """Every row of every arena table, to assert that a refused request changed nothing."""
    engine = client.app.state.engine
    with engine.connect() as connection:
        return {
            table.name: sorted(tuple(map(repr, row)) for row in connection.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def service_voter(session, address: str = "testclient") -> tuple[Tickets, Throttle, Client]:
    """What the service functions need to act for a new voter at `address` (TestClient's by default)."""
    tickets = load_tickets(session)
    return tickets, Throttle(), Client(new_voter_token(), tickets.client_hash(address))
