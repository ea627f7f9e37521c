"""Public routes: the arena page, images, the battle and vote API, and the leaderboard (page, PNG, JSON)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.leaderboard import OVERALL, Leaderboards, compute_leaderboards
from qwen_image2.evaluation.arena.plot import render_leaderboard_png
from qwen_image2.evaluation.arena.ratings import Rating
from qwen_image2.evaluation.arena.service import (
    Client,
    DrawnBattle,
    collect_votes,
    issue_battle,
    record_vote,
)
from qwen_image2.evaluation.arena.storage import Image, Voter, VoteRow
from qwen_image2.evaluation.arena.web import (
    TEMPLATES,
    client_of,
    client_or_new,
    set_voter_cookie,
    settings_of,
    transaction,
)

router = APIRouter()
Board = Literal["t2i", "edit"]
BOARD_TITLES = {"t2i": "Text to image", "edit": "Image editing"}
MAX_TICKET_CHARS = 128  # a ticket is about 80; see `tickets`


class VoteIn(BaseModel):
    """A vote as the page posts it; unknown fields are refused so a malformed client fails loudly."""

    model_config = ConfigDict(extra="forbid")

    battle_id: str = Field(min_length=1, max_length=MAX_TICKET_CHARS)
    choice: Literal["left", "right", "tie", "both_bad"]


def _battle_json(battle: DrawnBattle) -> dict:
    """What a voter may see before voting: the prompt and images, never the model names."""
    prompt = battle.prompt
    return {
        "battle_id": battle.ticket,
        "board": prompt.board,
        "prompt": prompt.text,
        "category": prompt.category,
        "sources": [f"/images/{source.image_id}" for source in prompt.sources],
        "left": f"/images/{battle.left.image_id}",
        "right": f"/images/{battle.right.image_id}",
    }


def _issue(request: Request, session: Session, client: Client, board: str) -> DrawnBattle:
    state = request.app.state
    return issue_battle(session, state.tickets, state.throttle, client, board, state.settings)


@router.get("/", response_class=HTMLResponse)
def arena_page(request: Request, board: Board = "t2i") -> Response:
    """The arena: a fresh battle rendered on the server; voting and the reveal are a little JavaScript."""
    settings, status, battle, error = settings_of(request), 200, None, None
    client, token = client_or_new(request)
    with transaction(request) as session:
        try:
            battle = _battle_json(_issue(request, session, client, board))
        except ArenaError as err:
            status, error = err.status, str(err)
    context = {"board": board, "boards": BOARD_TITLES, "battle": battle, "error": error, "page": "arena"}
    response = TEMPLATES.TemplateResponse(request, "arena.html", context, status_code=status)
    set_voter_cookie(response, token, settings)
    return response


@router.get("/api/battle")
def new_battle(request: Request, board: Board = "t2i") -> JSONResponse:
    settings = settings_of(request)
    client, token = client_or_new(request)
    with transaction(request) as session:
        battle = _battle_json(_issue(request, session, client, board))
    response = JSONResponse(battle)
    set_voter_cookie(response, token, settings)
    return response


@router.post("/api/vote")
def vote(request: Request, body: VoteIn) -> dict:
    """Record the vote, then reveal which model made which image."""
    with transaction(request) as session:
        battle = record_vote(
            session,
            request.app.state.tickets,
            client_of(request),
            body.battle_id,
            body.choice,
            settings_of(request),
        )
        return {
            "battle_id": body.battle_id,
            "choice": body.choice,
            "left": battle.left.model,
            "right": battle.right.model,
        }


@router.get("/images/{image_id}")
def image(request: Request, image_id: str) -> Response:
    with transaction(request) as session:
        row = session.get(Image, image_id[:64])
        if row is None:
            raise ArenaError(404, "unknown image")
        # Content never changes for an id, so browsers may keep it; nosniff stops a forged type being run.
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        return Response(row.data, media_type=row.mime, headers=headers)


def leaderboards(request: Request) -> Leaderboards:
    """Ratings over the stored votes, recomputed only when a vote or a ban changed them."""
    state = request.app.state
    with transaction(request) as session:
        signature = (
            session.scalar(select(func.count(VoteRow.id))),
            session.scalar(select(func.max(VoteRow.id))),
            session.scalar(select(func.count(Voter.id)).where(Voter.banned.is_(True))),
        )
        with state.leaderboard_lock:
            if state.leaderboard_cache is None or state.leaderboard_cache[0] != signature:
                boards = compute_leaderboards(
                    collect_votes(session), bootstrap=settings_of(request).leaderboard_bootstrap
                )
                state.leaderboard_cache = (signature, boards)
            return state.leaderboard_cache[1]


def _ranked(rows: list[Rating]) -> list[tuple[int, Rating]]:
    """FastChat's rank: one plus the number of models whose whole interval lies above this one's."""
    return [(1 + sum(other.ci_low > row.ci_high for other in rows), row) for row in rows]


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(
    request: Request, board: Board = "t2i", category: str = Query(OVERALL, max_length=64)
) -> Response:
    boards = leaderboards(request)
    slices = boards.boards.get(board, {})
    context = {
        "page": "leaderboard",
        "board": board,
        "boards": BOARD_TITLES,
        "category": category,
        "categories": [OVERALL, *sorted(name for name in slices if name != OVERALL)],
        "rows": _ranked(slices.get(category, [])),
        "summary": boards.summary(),
    }
    return TEMPLATES.TemplateResponse(request, "leaderboard.html", context)


@router.get("/leaderboard.png")
def leaderboard_png(request: Request, board: Board = "t2i") -> Response:
    slices = leaderboards(request).boards.get(board, {})
    png = render_leaderboard_png(slices, title=f"Arena: {BOARD_TITLES[board]}")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/api/leaderboard")
def leaderboard_json(request: Request) -> dict:
    boards = leaderboards(request)
    return {"ratings": boards.to_json(), "summary": boards.summary()}
