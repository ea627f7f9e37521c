"""What the arena's routes share: the per-request transaction, the voter cookie, templates, admin auth."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.service import create_voter, find_voter
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import Voter

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
VOTER_COOKIE = "arena_voter"
# A year: the token is the voter's only identity, and a new one would reset the daily cap.
VOTER_COOKIE_AGE = 365 * 24 * 3600


def settings_of(request: Request) -> ArenaSettings:
    return request.app.state.settings


@contextmanager
def transaction(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is built so the next request sees it.

    Any exception (an `ArenaError` included) rolls everything back: a refused request changes nothing.
    """
    session = request.app.state.sessionmaker()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def current_voter(session: Session, request: Request) -> Voter | None:
    return find_voter(session, request.cookies.get(VOTER_COOKIE))


def voter_or_new(session: Session, request: Request) -> tuple[Voter, str | None]:
    """The cookie's voter, or a new anonymous one and the token to set as its cookie."""
    voter = current_voter(session, request)
    if voter is not None:
        return voter, None
    return create_voter(session)


def set_voter_cookie(response: Response, token: str | None, settings: ArenaSettings) -> None:
    if token is not None:
        response.set_cookie(
            VOTER_COOKIE,
            token,
            max_age=VOTER_COOKIE_AGE,
            httponly=True,  # page scripts never need it; a script injected into an image page cannot read it
            samesite="lax",
            secure=settings.secure_cookie,
        )


def require_admin(request: Request) -> None:
    """401 unless the request carries `Authorization: Bearer <admin token>` and the server has one set."""
    expected = settings_of(request).admin_token
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not expected:
        raise ArenaError(401, "admin endpoints are disabled: start the server with --admin-token")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), expected.encode()):
        raise ArenaError(401, "admin token required: send 'Authorization: Bearer <token>'")
