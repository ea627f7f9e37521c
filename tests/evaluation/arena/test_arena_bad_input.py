"""Every bad input gets a 4xx with a JSON error and leaves every table exactly as it was."""

from __future__ import annotations

import json

import pytest
from arena_helpers import admin_headers, make_client, png_bytes, snapshot, write_set

T2I = {"board": "t2i"}


def assert_refused(client, response, status: int, before: dict) -> None:
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]
    assert snapshot(client) == before


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("{not json", "application/json"),
        (json.dumps({"choice": "left"}), "application/json"),
        (json.dumps({"battle_id": "BATTLE", "choice": "up"}), "application/json"),
        (json.dumps({"battle_id": "BATTLE", "choice": "left", "extra": 1}), "application/json"),
        (json.dumps({"battle_id": ["BATTLE"], "choice": "left"}), "application/json"),
        (json.dumps({"battle_id": "x" * 129, "choice": "left"}), "application/json"),
        ("battle_id=BATTLE&choice=left", "application/x-www-form-urlencoded"),
    ],
)
def test_a_malformed_vote_is_refused(arena, body, content_type):
    battle_id = arena.get("/api/battle", params=T2I).json()["battle_id"]
    before = snapshot(arena)
    response = arena.post(
        "/api/vote", content=body.replace("BATTLE", battle_id), headers={"content-type": content_type}
    )
    assert_refused(arena, response, 422, before)


def test_a_vote_for_an_unknown_battle_is_refused(arena):
    arena.get("/")  # a voter with a cookie
    before = snapshot(arena)
    assert_refused(
        arena, arena.post("/api/vote", json={"battle_id": "0" * 32, "choice": "left"}), 404, before
    )


def test_a_replayed_vote_is_refused(arena):
    battle_id = arena.get("/api/battle", params=T2I).json()["battle_id"]
    assert arena.post("/api/vote", json={"battle_id": battle_id, "choice": "left"}).status_code == 200
    before = snapshot(arena)
    for choice in ("left", "right"):
        assert_refused(
            arena, arena.post("/api/vote", json={"battle_id": battle_id, "choice": choice}), 409, before
        )


def test_a_vote_for_a_battle_issued_to_someone_else_is_refused(arena, db_url):
    battle_id = arena.get("/api/battle", params=T2I).json()["battle_id"]
    with make_client(db_url) as stranger:
        stranger.get("/")  # has a voter token of its own
        before = snapshot(arena)
        response = stranger.post("/api/vote", json={"battle_id": battle_id, "choice": "left"})
        assert_refused(arena, response, 403, before)
        stranger.cookies.clear()  # and with no token at all
        response = stranger.post("/api/vote", json={"battle_id": battle_id, "choice": "left"})
        assert_refused(arena, response, 401, before)


def upload(client, files: list[tuple[str, bytes]], manifest: list[dict], board: str = "t2i"):
    parts = [("manifest", ("prompts.jsonl", "\n".join(map(json.dumps, manifest)).encode(), "text/plain"))]
    parts += [("files", (name, data, "image/png")) for name, data in files]
    return client.post(
        "/api/admin/import", data={"model": "model-new", "board": board}, files=parts, headers=admin_headers()
    )


def test_an_oversized_upload_is_refused(db_url, set_dirs):
    from arena_helpers import import_all

    import_all(db_url, set_dirs)
    with make_client(db_url, max_image_bytes=2_000) as client:
        before = snapshot(client)
        small, large = png_bytes((1, 2, 3)), png_bytes((9, 9, 9), size=(64, 64), fmt="BMP")
        assert len(small) < 2_000 < len(large)
        manifest = [{"image": "ok.png", "prompt": "fine"}, {"image": "big.png", "prompt": "too big"}]
        assert_refused(client, upload(client, [("ok.png", small), ("big.png", large)], manifest), 413, before)


@pytest.mark.parametrize(
    "data",
    [
        b"this is a text file, not a picture",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        png_bytes((0, 0, 0), fmt="GIF"),
    ],
    ids=["text", "truncated-png", "gif"],
)
def test_a_non_image_upload_is_refused(arena, data):
    before = snapshot(arena)
    manifest = [{"image": "ok.png", "prompt": "a new prompt"}, {"image": "bad.png", "prompt": "another"}]
    response = upload(arena, [("ok.png", png_bytes((5, 5, 5))), ("bad.png", data)], manifest)
    assert_refused(arena, response, 415, before)


@pytest.mark.parametrize(
    "manifest, board",
    [
        ([{"image": "missing.png", "prompt": "p"}], "t2i"),
        ([{"image": "ok.png"}], "t2i"),
        ([{"image": "ok.png", "prompt": "p"}], "edit"),  # an edit needs its source image
        ([{"image": "ok.png", "prompt": "p", "sources": ["ok.png"]}], "t2i"),
        ([{"image": "ok.png", "prompt": "p"}, {"image": "ok.png", "prompt": "p"}], "t2i"),
        ([{"image": "ok.png", "prompt": "p"}], "video"),
    ],
)
def test_an_inconsistent_import_is_refused(arena, manifest, board):
    before = snapshot(arena)
    assert_refused(arena, upload(arena, [("ok.png", png_bytes((5, 5, 5)))], manifest, board), 422, before)


def test_a_manifest_line_that_is_not_json_is_refused(arena, tmp_path):
    folder = write_set(tmp_path / "set", 5, "t2i")
    before = snapshot(arena)
    parts = [
        ("manifest", ("prompts.jsonl", b'{"image": "0000.png", "prompt": "p"}\nnot json\n', "text/plain"))
    ]
    parts.append(("files", ("0000.png", (folder / "0000.png").read_bytes(), "image/png")))
    response = arena.post(
        "/api/admin/import", data={"model": "m", "board": "t2i"}, files=parts, headers=admin_headers()
    )
    assert_refused(arena, response, 422, before)
    assert "prompts.jsonl:2" in response.json()["error"]
