"""A client that drops its cookie: no fresh quota, and no rows written until it votes."""

from __future__ import annotations

import re

from arena_helpers import import_all, make_client
from sqlalchemy import func, select

from qwen_image2.evaluation.arena.storage import Battle, Voter

T2I = {"board": "t2i"}


def rows(client, table) -> int:
    with client.app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(table))


def vote_forgetting_the_cookie(client, headers: dict | None = None):
    """Draw a battle, vote on it with the cookie just set, then forget the cookie."""
    shown = client.get("/api/battle", params=T2I, headers=headers)
    if shown.status_code != 200:
        client.cookies.clear()
        return shown
    ticket = shown.json()["battle_id"]
    voted = client.post("/api/vote", json={"battle_id": ticket, "choice": "left"}, headers=headers)
    client.cookies.clear()
    return voted


def test_a_client_dropping_its_cookie_is_still_held_to_the_vote_rate(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    with make_client(sqlite_url, votes_per_minute=3) as client:
        statuses = [vote_forgetting_the_cookie(client).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_a_client_dropping_its_cookie_is_still_held_to_the_daily_cap(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    with make_client(sqlite_url, daily_vote_cap=2, votes_per_minute=100) as client:
        answers = [vote_forgetting_the_cookie(client) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert "daily cap" in answers[-1].json()["error"]


def test_a_client_dropping_its_cookie_is_still_held_to_the_battle_rate(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    with make_client(sqlite_url, battles_per_minute=5) as client:
        statuses = []
        for _ in range(6):
            statuses.append(client.get("/", params=T2I).status_code)
            client.cookies.clear()
    assert statuses == [200] * 5 + [429]


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    claims = [{"X-Forwarded-For": f"10.0.0.{i}"} for i in range(3)]
    with make_client(sqlite_url, votes_per_minute=2) as client:
        assert [vote_forgetting_the_cookie(client, h).status_code for h in claims] == [200, 200, 429]
    with make_client(sqlite_url, votes_per_minute=2, trust_forwarded_for=True) as client:
        # Behind a trusted proxy each address has its own quota (the earlier votes were from "testclient").
        assert [vote_forgetting_the_cookie(client, h).status_code for h in claims] == [200, 200, 200]


def test_cookieless_page_views_write_nothing_until_a_vote(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    with make_client(sqlite_url) as client:
        for _ in range(10):
            assert client.get("/", params=T2I).status_code == 200
            client.cookies.clear()
        assert client.get("/api/battle", params=T2I).status_code == 200
        assert (rows(client, Voter), rows(client, Battle)) == (0, 0)
        page = client.get("/", params=T2I)
        [ticket] = re.findall(r'data-battle-id="([^"]+)"', page.text)
        assert client.post("/api/vote", json={"battle_id": ticket, "choice": "tie"}).status_code == 200
        assert (rows(client, Voter), rows(client, Battle)) == (1, 1)


def test_a_forged_an_altered_or_a_replayed_ticket_is_refused(sqlite_url, set_dirs):
    import_all(sqlite_url, set_dirs)
    with make_client(sqlite_url) as client:
        ticket = client.get("/api/battle", params=T2I).json()["battle_id"]
        battle_id, prompt, models, issued, mac = ticket.split(".")
        altered = ".".join([battle_id, str(int(prompt) % 4 + 1), models, issued, mac])
        forged = ".".join([battle_id, prompt, models, issued, "0" * len(mac)])
        for bad in (altered, forged):
            refused = client.post("/api/vote", json={"battle_id": bad, "choice": "left"})
            assert refused.status_code == 403 and "not issued to you" in refused.json()["error"]
        assert client.post("/api/vote", json={"battle_id": ticket, "choice": "left"}).status_code == 200
        replayed = client.post("/api/vote", json={"battle_id": ticket, "choice": "right"})
        assert replayed.status_code == 409 and "already has your vote" in replayed.json()["error"]
        assert (rows(client, Voter), rows(client, Battle)) == (1, 1)
