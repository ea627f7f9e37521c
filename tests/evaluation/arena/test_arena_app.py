"""The web arena over HTTP: blind battles, votes, the leaderboard, and every guard and refusal."""

from __future__ import annotations

import json
import re

import pytest
from arena_helpers import MODELS, admin_headers, import_all, make_client, service_voter, snapshot, write_set

from qwen_image2.evaluation.arena.service import issue_battle

T2I = {"board": "t2i"}


def battle(client, board: str = "t2i") -> dict:
    response = client.get("/api/battle", params={"board": board})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_page_shows_two_anonymous_images_and_reveals_models_after_the_vote(arena):
    page = arena.get("/")
    assert page.status_code == 200 and "arena_voter" in page.cookies
    assert not any(model in page.text for model in MODELS)
    [battle_id] = re.findall(r'data-battle-id="([0-9a-f.]+)"', page.text)
    images = re.findall(r'<img src="(/images/[0-9a-f]+)" alt="candidate', page.text)
    assert len(images) == 2 and images[0] != images[1]
    for url in images:
        image = arena.get(url)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    revealed = arena.post("/api/vote", json={"battle_id": battle_id, "choice": "left"})
    assert revealed.status_code == 200
    assert {revealed.json()["left"], revealed.json()["right"]} <= set(MODELS)


def test_the_edit_board_shows_the_instruction_and_its_source_images(arena):
    page = arena.get("/", params={"board": "edit"})
    assert "Instruction" in page.text
    assert len(re.findall(r'alt="source image \d"', page.text)) in (1, 2)
    assert len(battle(arena, "edit")["sources"]) in (1, 2)


def test_a_vote_moves_the_leaderboard_and_its_categories(arena):
    before = arena.get("/api/leaderboard").json()
    assert before["ratings"] == {}
    for _ in range(6):
        shown = battle(arena)
        assert (
            arena.post("/api/vote", json={"battle_id": shown["battle_id"], "choice": "right"}).status_code
            == 200
        )
    after = arena.get("/api/leaderboard").json()
    assert sum(row["votes"] for row in after["ratings"]["t2i"]) == 12  # each vote counts for two models
    page = arena.get("/leaderboard", params={"board": "t2i"})
    assert page.status_code == 200 and "<table" in page.text
    category = next(name.split("/", 1)[1] for name in after["ratings"] if "/" in name)
    assert category in page.text
    png = arena.get("/leaderboard.png", params=T2I)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_a_thousand_votes_from_one_voter_are_capped(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    cap = 50
    with make_client(
        sqlite_url, daily_vote_cap=cap, votes_per_minute=10_000, battles_per_minute=10_000
    ) as client:
        # The battles are issued through the service in one transaction: the guard under test is the vote
        # endpoint, and 1,000 page loads would only slow the test down.
        with client.app.state.sessionmaker.begin() as session:
            tickets, throttle, voter = service_voter(session)
            settings = client.app.state.settings
            battle_ids = [
                issue_battle(session, tickets, throttle, voter, "t2i", settings).ticket for _ in range(1000)
            ]
        client.cookies.set("arena_voter", voter.token)
        votes = [client.post("/api/vote", json={"battle_id": b, "choice": "left"}) for b in battle_ids]
        assert [vote.status_code for vote in votes[:cap]] == [200] * cap
        assert {vote.status_code for vote in votes[cap:]} == {429}
        assert "daily cap" in votes[-1].json()["error"]
        ratings = client.get("/api/leaderboard").json()["ratings"]["t2i"]
        assert sum(row["votes"] for row in ratings) == 2 * cap
        # Once capped, the voter is not even given new battles.
        assert client.get("/api/battle", params=T2I).status_code == 429


def test_the_per_minute_rate_limit_answers_429_with_retry_after(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    with make_client(sqlite_url, votes_per_minute=3) as client:
        battle_ids = [battle(client)["battle_id"] for _ in range(4)]
        votes = [client.post("/api/vote", json={"battle_id": b, "choice": "tie"}) for b in battle_ids]
        assert [vote.status_code for vote in votes] == [200, 200, 200, 429]
        assert votes[-1].headers["retry-after"] == "60" and "a minute" in votes[-1].json()["error"]
        assert client.get("/api/battle", params=T2I).status_code == 429


def test_a_banned_voter_cannot_vote_and_their_votes_leave_the_ratings(arena):
    shown = battle(arena)
    arena.post("/api/vote", json={"battle_id": shown["battle_id"], "choice": "left"})
    [line] = arena.get("/api/admin/votes", headers=admin_headers()).text.splitlines()
    voter = int(json.loads(line)["voter"])
    banned = arena.post("/api/admin/bans", json={"voter": voter}, headers=admin_headers())
    assert banned.json() == {"voter": voter, "banned": True}
    assert arena.get("/api/leaderboard").json()["ratings"] == {}
    assert arena.get("/api/battle", params=T2I).status_code == 403


def import_request(set_dir, model: str = "model-new", board: str = "t2i") -> dict:
    """Multipart fields for /api/admin/import built from a set folder."""
    lines = (set_dir / "prompts.jsonl").read_text()
    files = [("manifest", ("prompts.jsonl", lines.encode(), "application/x-ndjson"))]
    for row in map(json.loads, lines.splitlines()):
        for name in [row["image"], *row.get("sources", [])]:
            files.append(("files", (name, (set_dir / name).read_bytes(), "image/png")))
    return {"data": {"model": model, "board": board}, "files": files}


@pytest.mark.parametrize("board, images", [("t2i", 4), ("edit", 2)])
def test_admin_import_adds_a_model_that_then_meets_the_others(arena, tmp_path, board, images):
    folder = write_set(tmp_path / "new", 4, board)
    response = arena.post("/api/admin/import", headers=admin_headers(), **import_request(folder, board=board))
    assert response.status_code == 201, response.text
    assert response.json()["new_generations"] == images and response.json()["new_prompts"] == 0
    seen = set()
    for _ in range(15):  # P(the new model is never drawn) = (3/6) ** 15, about 3e-5
        shown = battle(arena, board)
        seen |= set(
            arena.post("/api/vote", json={"battle_id": shown["battle_id"], "choice": "tie"}).json().values()
        )
    assert "model-new" in seen


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}]
)
def test_admin_endpoints_answer_401_without_the_token(arena, tmp_path, headers):
    folder = write_set(tmp_path / "new", 4, "t2i")
    before = snapshot(arena)
    calls = [
        arena.post("/api/admin/import", headers=headers, **import_request(folder)),
        arena.get("/api/admin/votes", headers=headers),
        arena.post("/api/admin/bans", json={"voter": 1}, headers=headers),
    ]
    assert [call.status_code for call in calls] == [401, 401, 401]
    assert all("error" in call.json() for call in calls)
    assert snapshot(arena) == before


def test_admin_endpoints_are_closed_when_the_server_has_no_token(sqlite_url):
    with make_client(sqlite_url, admin_token=None) as client:
        response = client.get("/api/admin/votes", headers={"Authorization": "Bearer "})
    assert response.status_code == 401 and "--admin-token" in response.json()["error"]
