"""Battles and votes behind the online guards. Every function works in the caller's session/transaction.

Drawing a battle writes nothing: it is a signed ticket (see `tickets`), and the vote stores the voter,
the battle and the vote together, so a crawler or a cookieless client leaves no rows behind. Guards, in
the order a vote meets them: a voter cookie; a ticket this server issued to that cookie, not expired;
not banned; no vote on the battle yet (also a primary key, so two racing requests cannot both count);
the per-minute rate and the daily cap, each per voter and per client address. A refused vote raises
`ArenaError` before anything is written.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import (
    Battle,
    Generation,
    Prompt,
    Voter,
    VoteRow,
)
from qwen_image2.evaluation.arena.throttle import Throttle
from qwen_image2.evaluation.arena.tickets import Ticket, Tickets
from qwen_image2.evaluation.arena.votes import Vote
from qwen_image2.store import random_id, utcnow

WINNER_OF_CHOICE = {"left": "model_a", "right": "model_b", "tie": "tie", "both_bad": "tie"}


@dataclass(frozen=True)
class Client:
    """Who asks: the voter cookie's token (None without one) and the keyed hash of the network address."""

    token: str | None
    address_hash: str


@dataclass(frozen=True)
class DrawnBattle:
    """A battle as shown before the vote: its ticket, the prompt and the two generations."""

    ticket: str
    prompt: Prompt
    left: Generation
    right: Generation


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_voter_token() -> str:
    """A token for a new voter's cookie; its voter row is written with the first vote."""
    return secrets.token_urlsafe(32)


def find_voter(session: Session, token: str | None) -> Voter | None:
    if not token:
        return None
    return session.scalar(select(Voter).where(Voter.token_hash == hash_token(token)))


def _voter_of(session: Session, token: str) -> Voter:
    """The token's voter, written now if this is its first vote (only the token's hash is stored)."""
    voter = find_voter(session, token)
    if voter is None:
        voter = Voter(token_hash=hash_token(token))
        session.add(voter)
        session.flush()
    return voter


def _check_not_banned(voter: Voter | None) -> None:
    if voter is not None and voter.banned:
        raise ArenaError(403, "this voter is banned")


def _start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _votes_since(session: Session, voter: Voter | None, address_hash: str, since: datetime) -> int:
    """The larger of the voter's and the address's votes since `since`: either one reaching a limit stops."""
    counts = [VoteRow.client_hash == address_hash]
    if voter is not None:
        counts.append(VoteRow.voter_id == voter.id)
    return max(
        session.scalar(select(func.count()).where(which, VoteRow.created_at >= since)) or 0
        for which in counts
    )


def _check_limits(
    session: Session, voter: Voter | None, address_hash: str, settings: ArenaSettings, now: datetime
) -> None:
    """429 when the voter or the address is over the per-minute vote rate or today's cap."""
    today = _start_of_day(now)
    if _votes_since(session, voter, address_hash, today) >= settings.daily_vote_cap:
        wait = int((today + timedelta(days=1) - now).total_seconds()) + 1
        raise ArenaError(
            429, f"daily cap of {settings.daily_vote_cap} votes reached; come back tomorrow", wait
        )
    if _votes_since(session, voter, address_hash, now - timedelta(minutes=1)) >= settings.votes_per_minute:
        raise ArenaError(429, f"over {settings.votes_per_minute} votes a minute; slow down", 60)


def _generations(session: Session, prompt_id: int) -> list[Generation]:
    """The prompt's generations in import order: a ticket's pair indexes into this list."""
    return list(
        session.scalars(select(Generation).where(Generation.prompt_id == prompt_id).order_by(Generation.id))
    )


def issue_battle(
    session: Session,
    tickets: Tickets,
    throttle: Throttle,
    client: Client,
    board: str,
    settings: ArenaSettings,
    rng: random.Random | None = None,
) -> DrawnBattle:
    """Draw a prompt that at least two models answered and sign a ticket for two of its images."""
    rng = rng or random.SystemRandom()
    voter = find_voter(session, client.token)
    _check_not_banned(voter)
    _check_limits(session, voter, client.address_hash, settings, utcnow())
    keys = [f"address:{client.address_hash}", f"voter:{client.token}"]
    if not throttle.allow(keys, settings.battles_per_minute):
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
    generations = _generations(session, prompt_id)
    ticket = Ticket(random_id(), prompt_id, len(generations), int(time.time()))
    left, right = tickets.pair(ticket)
    return DrawnBattle(
        tickets.sign(ticket, client.token), generations[left].prompt, generations[left], generations[right]
    )


def record_vote(
    session: Session, tickets: Tickets, client: Client, ticket_text: str, choice: str, settings: ArenaSettings
) -> Battle:
    """Count `choice` for a ticket issued to `client`, once; returns the stored battle (models may now show)."""
    if client.token is None:
        raise ArenaError(401, "no voter token: open the arena page first, it sets the voter cookie")
    ticket = tickets.check(ticket_text, client.token, int(time.time()))
    voter = _voter_of(session, client.token)
    # Serialise one voter's votes so that the cap holds under concurrent requests (PostgreSQL row lock;
    # SQLite already serialises writers).
    session.refresh(voter, with_for_update=True)
    _check_not_banned(voter)
    if session.get(Battle, ticket.battle_id) is not None:
        raise ArenaError(409, "this battle already has your vote")
    generations = _generations(session, ticket.prompt_id)
    if len(generations) < ticket.models:
        raise ArenaError(404, "this battle's images are no longer in the arena: load a new one")
    _check_limits(session, voter, client.address_hash, settings, utcnow())
    left, right = tickets.pair(ticket)
    battle = Battle(
        id=ticket.battle_id,
        voter_id=voter.id,
        prompt_id=ticket.prompt_id,
        left_id=generations[left].id,
        right_id=generations[right].id,
        created_at=datetime.fromtimestamp(ticket.issued, UTC).replace(tzinfo=None),
    )
    try:
        with session.begin_nested():
            session.add(battle)
            session.flush()
            session.add(
                VoteRow(
                    battle_id=battle.id, voter_id=voter.id, client_hash=client.address_hash, choice=choice
                )
            )
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
