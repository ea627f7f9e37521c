"""Battles and votes behind the online guards. Every function works in the caller's session/transaction.

Guards, in the order a vote meets them: a known voter token; not banned; the battle exists; it was
issued to this voter; it has no vote yet (also a unique constraint, so two racing requests cannot both
count); the per-minute rate limit; the daily cap. A refused vote raises `ArenaError` before anything
is written.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import Battle, Generation, Prompt, Voter, VoteRow, utcnow
from qwen_image2.evaluation.arena.votes import Vote

WINNER_OF_CHOICE = {"left": "model_a", "right": "model_b", "tie": "tie", "both_bad": "tie"}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def find_voter(session: Session, token: str | None) -> Voter | None:
    if not token:
        return None
    return session.scalar(select(Voter).where(Voter.token_hash == hash_token(token)))


def create_voter(session: Session) -> tuple[Voter, str]:
    """A new anonymous voter and the token for its cookie (only the token's hash is stored)."""
    token = secrets.token_urlsafe(32)
    voter = Voter(token_hash=hash_token(token))
    session.add(voter)
    session.flush()
    return voter, token


def _check_not_banned(voter: Voter) -> None:
    if voter.banned:
        raise ArenaError(403, "this voter is banned")


def _start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _count_since(session: Session, column, voter_id_column, voter: Voter, since: datetime) -> int:
    return session.scalar(select(func.count()).where(voter_id_column == voter.id, column >= since)) or 0


def _check_limits(session: Session, voter: Voter, settings: ArenaSettings, now: datetime) -> None:
    """429 when the voter is over the per-minute vote rate or today's cap."""
    today = _start_of_day(now)
    if _count_since(session, VoteRow.created_at, VoteRow.voter_id, voter, today) >= settings.daily_vote_cap:
        wait = int((today + timedelta(days=1) - now).total_seconds()) + 1
        raise ArenaError(
            429, f"daily cap of {settings.daily_vote_cap} votes reached; come back tomorrow", wait
        )
    last_minute = now - timedelta(minutes=1)
    if (
        _count_since(session, VoteRow.created_at, VoteRow.voter_id, voter, last_minute)
        >= settings.votes_per_minute
    ):
        raise ArenaError(429, f"over {settings.votes_per_minute} votes a minute; slow down", 60)


def issue_battle(
    session: Session, voter: Voter, board: str, settings: ArenaSettings, rng: random.Random | None = None
) -> Battle:
    """Draw a prompt that at least two models answered, and two of its images in random order."""
    rng = rng or random.SystemRandom()
    _check_not_banned(voter)
    now = utcnow()
    _check_limits(session, voter, settings, now)
    recent = _count_since(session, Battle.created_at, Battle.voter_id, voter, now - timedelta(minutes=1))
    if recent >= settings.battles_per_minute:
        raise ArenaError(429, f"over {settings.battles_per_minute} battles a minute; slow down", 60)
    eligible = session.scalars(
        select(Generation.prompt_id)
        .join(Prompt)
        .where(Prompt.board == board)
        .group_by(Generation.prompt_id)
        .having(func.count(Generation.id) >= 2)
    ).all()
    if not eligible:
        raise ArenaError(404, f"no battles on board {board!r} yet: import image sets from two or more models")
    prompt_id = rng.choice(eligible)
    generations = session.scalars(select(Generation).where(Generation.prompt_id == prompt_id)).all()
    left, right = rng.sample(list(generations), 2)
    battle = Battle(
        voter_id=voter.id, prompt_id=prompt_id, left_id=left.id, right_id=right.id, created_at=now
    )
    session.add(battle)
    session.flush()
    return battle


def record_vote(
    session: Session, voter: Voter | None, battle_id: str, choice: str, settings: ArenaSettings
) -> Battle:
    """Count `choice` for a battle issued to `voter`, once; returns the battle (its models may now be shown)."""
    if voter is None:
        raise ArenaError(401, "no voter token: open the arena page first, it sets the voter cookie")
    # Serialise one voter's votes so that the cap holds under concurrent requests (PostgreSQL row lock;
    # SQLite already serialises writers).
    session.refresh(voter, with_for_update=True)
    _check_not_banned(voter)
    battle = session.get(Battle, battle_id)
    if battle is None:
        raise ArenaError(404, "unknown battle")
    if battle.voter_id != voter.id:
        raise ArenaError(403, "this battle was not issued to you")
    if session.scalar(select(VoteRow.id).where(VoteRow.battle_id == battle_id)) is not None:
        raise ArenaError(409, "this battle already has your vote")
    _check_limits(session, voter, settings, utcnow())
    try:
        with session.begin_nested():
            session.add(VoteRow(battle_id=battle_id, voter_id=voter.id, choice=choice))
    except IntegrityError:
        raise ArenaError(409, "this battle already has your vote") from None
    return battle


def set_ban(session: Session, voter_id: int, banned: bool) -> Voter:
    voter = session.get(Voter, voter_id)
    if voter is None:
        raise ArenaError(404, f"no voter {voter_id}")
    voter.banned = banned
    session.flush()
    return voter


def collect_votes(session: Session, include_banned: bool = False) -> list[Vote]:
    """All votes in the order they were cast, as `Vote` records (voters by their anonymous number)."""
    left, right = aliased(Generation), aliased(Generation)
    query = (
        select(
            VoteRow.choice,
            VoteRow.voter_id,
            left.model,
            right.model,
            Prompt.board,
            Prompt.category,
            Prompt.text,
        )
        .join(Battle, Battle.id == VoteRow.battle_id)
        .join(left, left.id == Battle.left_id)
        .join(right, right.id == Battle.right_id)
        .join(Prompt, Prompt.id == Battle.prompt_id)
        .join(Voter, Voter.id == VoteRow.voter_id)
        .order_by(VoteRow.id)
    )
    if not include_banned:
        query = query.where(Voter.banned.is_(False))
    return [
        Vote(
            model_a=model_a,
            model_b=model_b,
            winner=WINNER_OF_CHOICE[choice],
            board=board,
            category=category,
            voter=str(voter_id),
            prompt=text,
            both_bad=choice == "both_bad",
        )
        for choice, voter_id, model_a, model_b, board, category, text in session.execute(query)
    ]
