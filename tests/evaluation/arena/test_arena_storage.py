"""The store, on SQLite and on a real PostgreSQL server: import, battles, votes, bans, export."""

from __future__ import annotations

import pytest
from arena_helpers import EDIT_PROMPTS, MODELS, T2I_PROMPTS, import_all, service_voter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.importer import MULTI_IMAGE_EDIT, import_set, read_set_dir
from qwen_image2.evaluation.arena.service import (
    collect_votes,
    issue_battle,
    record_vote,
    set_ban,
)
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import (
    Battle,
    Generation,
    Image,
    Prompt,
    VoteRow,
    build_engine,
    build_sessionmaker,
)


@pytest.fixture
def sessions(db_url, set_dirs):
    import_all(db_url, set_dirs)
    engine = build_engine(db_url)
    yield build_sessionmaker(engine)
    engine.dispose()


def count(session, column) -> int:
    return session.scalar(select(func.count(column)))


def test_sets_of_different_models_pair_up_by_prompt(sessions):
    with sessions() as session:
        assert count(session, Prompt.id) == len(T2I_PROMPTS) + len(EDIT_PROMPTS)
        assert count(session, Generation.id) == len(MODELS) * (len(T2I_PROMPTS) + len(EDIT_PROMPTS))
        # Three source images shared by every model's edit set are stored once.
        assert count(session, Image.id) == len(MODELS) * (len(T2I_PROMPTS) + len(EDIT_PROMPTS)) + 3
        multi = session.scalar(select(Prompt).where(Prompt.text == EDIT_PROMPTS[1][0]))
        assert multi.category == MULTI_IMAGE_EDIT
        assert [source.position for source in multi.sources] == [0, 1]


def test_reimporting_a_set_skips_what_is_stored(sessions, set_dirs):
    folder = set_dirs[(MODELS[0], "t2i")]
    with sessions.begin() as session:
        report = import_set(session, read_set_dir(folder, "t2i"), MODELS[0], "t2i")
    assert (report.new_prompts, report.new_generations, report.skipped_existing) == (0, 0, len(T2I_PROMPTS))
    with sessions() as session:
        assert count(session, Generation.id) == len(MODELS) * (len(T2I_PROMPTS) + len(EDIT_PROMPTS))


def test_a_vote_is_stored_once_and_exported_with_its_hidden_models(sessions):
    settings = ArenaSettings()
    with sessions.begin() as session:
        tickets, throttle, voter = service_voter(session)
        shown = issue_battle(session, tickets, throttle, voter, "edit", settings)
        left, right = shown.left.model, shown.right.model
        battle = record_vote(session, tickets, voter, shown.ticket, "right", settings)
        voter_id = battle.voter_id
    with sessions.begin() as session, pytest.raises(ArenaError) as replay:
        record_vote(session, tickets, voter, shown.ticket, "left", settings)
    assert replay.value.status == 409
    with sessions() as session:
        [vote] = collect_votes(session)
    assert (vote.model_a, vote.model_b, vote.winner, vote.board) == (left, right, "model_b", "edit")
    assert vote.prompt in {prompt for prompt, _ in EDIT_PROMPTS}
    assert vote.voter == str(voter_id)


def test_the_database_itself_refuses_a_second_vote_on_a_battle(sessions):
    settings = ArenaSettings()
    with sessions.begin() as session:
        tickets, throttle, voter = service_voter(session)
        shown = issue_battle(session, tickets, throttle, voter, "t2i", settings)
        battle = record_vote(session, tickets, voter, shown.ticket, "tie", settings)
        battle_id, voter_id = battle.id, battle.voter_id
    with sessions() as session, pytest.raises(IntegrityError):
        session.add(VoteRow(battle_id=battle_id, voter_id=voter_id, client_hash="x", choice="left"))
        session.commit()


def test_banned_voters_votes_leave_the_export_unless_asked_for(sessions):
    settings = ArenaSettings()
    with sessions.begin() as session:
        tickets, throttle, voter = service_voter(session)
        shown = issue_battle(session, tickets, throttle, voter, "t2i", settings)
        battle = record_vote(session, tickets, voter, shown.ticket, "both_bad", settings)
        set_ban(session, battle.voter_id, True)
    with sessions() as session:
        assert collect_votes(session) == []
        [vote] = collect_votes(session, include_banned=True)
        assert vote.winner == "tie" and vote.both_bad
        assert count(session, Battle.id) == 1


def test_a_store_made_before_the_per_address_limits_gains_the_column_and_keeps_its_rows(tmp_path):
    from sqlalchemy import create_engine, inspect, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = build_engine(url)
    with engine.begin() as connection:  # the store as it was: votes without a client address hash
        connection.execute(text("DROP INDEX ix_arena_votes_client_hash"))
        connection.execute(text("ALTER TABLE arena_votes DROP COLUMN client_hash"))
    engine.dispose()
    assert "client_hash" not in {c["name"] for c in inspect(create_engine(url)).get_columns("arena_votes")}
    engine = build_engine(url)
    assert "client_hash" in {c["name"] for c in inspect(engine).get_columns("arena_votes")}
    build_engine(url).dispose()  # a second opening adds nothing twice
