"""What the arena's routes share: the per-request transaction, the client (voter cookie and address),
templates, admin auth."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import Request, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.service import Client, new_voter_token
from qwen_image2.evaluation.arena.settings import ArenaSettings

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
VOTER_COOKIE = "arena_voter"
# A year: the token is the voter's only identity, and a new one would reset the daily cap.
VOTER_COOKIE_AGE = 365 * 24 * 3600
# `new_voter_token` makes 43 characters; far shorter or longer cookies were not set by this server.
MIN_TOKEN_CHARS, MAX_TOKEN_CHARS = 20, 128


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


def client_address(request: Request, settings: ArenaSettings) -> str:
    """The peer's address; behind a trusted proxy, the last X-Forwarded-For entry (the one it appended)."""
    forwarded = request.headers.get("x-forwarded-for", "") if settings.trust_forwarded_for else ""
    if forwarded.strip():
        return forwarded.rsplit(",", 1)[-1].strip()
    return request.client.host if request.client else "unknown"


def client_of(request: Request) -> Client:
    """The cookie's voter token (None without a plausible one) and the hashed address of the request."""
    token = request.cookies.get(VOTER_COOKIE)
    if token is not None and not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        token = None  # not one this server sets: treated like no cookie
    address = client_address(request, settings_of(request))
    return Client(token, request.app.state.tickets.client_hash(address))


def client_or_new(request: Request) -> tuple[Client, str | None]:
    """The request's client, with a new voter token (to set as its cookie) when it brought none."""
    client = client_of(request)
    if client.token is not None:
        return client, None
    token = new_voter_token()
    return Client(token, client.address_hash), token


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
