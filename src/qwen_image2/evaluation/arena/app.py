"""The web arena as a FastAPI app: `build_app(ArenaSettings(...))`, served by `qwen-image2 arena serve`.

Every refusal is a 4xx with a JSON body `{"error": "..."}`; the routes live in `pages` (public) and
`admin` (behind the token).
"""

from __future__ import annotations

import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwen_image2.evaluation.arena import admin, pages
from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.settings import ArenaSettings
from qwen_image2.evaluation.arena.storage import build_engine, build_sessionmaker
from qwen_image2.evaluation.arena.throttle import Throttle
from qwen_image2.evaluation.arena.tickets import load_tickets
from qwen_image2.evaluation.arena.web import HERE, require_admin


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for problem in err.errors():
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
    return "; ".join(parts) or "invalid request"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ArenaError)
    def arena_error(_request: Request, err: ArenaError) -> JSONResponse:
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        return _error(err.status, str(err), headers)

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(err))

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))


def build_app(settings: ArenaSettings | None = None) -> FastAPI:
    """The arena app over the store at `settings.db_url` (tables are created if missing)."""
    settings = settings or ArenaSettings()
    app = FastAPI(title="qwen-image2 arena", docs_url="/api/docs", redoc_url=None)
    engine = build_engine(settings.db_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = build_sessionmaker(engine)
    with app.state.sessionmaker.begin() as session:
        app.state.tickets = load_tickets(session)
    app.state.throttle = Throttle()
    app.state.leaderboard_lock = threading.Lock()
    app.state.leaderboard_cache = None

    @app.middleware("http")
    async def admin_token_first(request: Request, call_next):
        # Check the token before the body is read, so an anonymous client cannot make the server
        # parse a large upload; the routes check it again as a dependency.
        if request.url.path.startswith("/api/admin"):
            try:
                require_admin(request)
            except ArenaError as err:
                return _error(err.status, str(err))
        return await call_next(request)

    _add_error_handlers(app)
    app.include_router(pages.router)
    app.include_router(admin.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
