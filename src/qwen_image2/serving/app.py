"""The server as a FastAPI app: `build_app(settings, workers)`, served by `qwen-image2 serve`.

Every refusal is OpenAI's envelope `{"error": {message, type, param, code}}`; a body over the limit is
refused as it streams in, and a missing or wrong API key before the body is read.
"""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwen_image2.enhancer.loading import load_enhancer
from qwen_image2.enhancer.rewrite import PromptEnhancer
from qwen_image2.pipelines.requests import RequestSampler
from qwen_image2.serving import gallery, routes
from qwen_image2.serving.engine import Engine
from qwen_image2.serving.errors import ApiError
from qwen_image2.serving.metrics import Metrics
from qwen_image2.serving.settings import ServeSettings
from qwen_image2.serving.storage import build_engine
from qwen_image2.store import build_sessionmaker

PAGE = Path(__file__).parent / "page"
# Reachable without a key: the page itself, liveness, metrics, and image URLs (random ids, as capabilities).
OPEN_PATHS = ("/", "/health", "/metrics", "/page/", "/docs", "/openapi.json")


def _open_path(path: str) -> bool:
    if path.startswith("/v1/images/") and path.endswith("/content"):
        return True
    return path in OPEN_PATHS or path.startswith("/page/")


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes is a 413, by its Content-Length or as it arrives."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers", [])).get(b"content-length")
        too_large = ApiError(413, f"The request body is over {self.limit:,} bytes.", code="payload_too_large")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            if not length.isdigit():
                return await ApiError(400, "Bad Content-Length header.", code="invalid_request").response()(
                    scope, receive, send
                )
            return await too_large.response()(scope, receive, send)
        seen, over, started = 0, False, False

        async def limited_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise too_large
            return message

        async def guarded_send(message):
            # Once the body overran, whatever the app made of the error raised in its read (a route's own
            # 400, or a 500 where middleware wrapped it in an ExceptionGroup) gives way to the 413.
            nonlocal started
            if over and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await too_large.response()(scope, receive, send)


class ApiKeys:
    """ASGI middleware: a 401 before the body is read, unless 'Authorization: Bearer KEY' names a key.

    Plain ASGI, not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware hides the client's disconnect
    from `request.is_disconnected()`, and a gone client must cancel its request."""

    def __init__(self, app, keys: frozenset[str], metrics: Metrics):
        self.app, self.keys, self.metrics = app, keys, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not _open_path(scope["path"]):
            given = dict(scope.get("headers", [])).get(b"authorization", b"")
            token = given[7:] if given[:7].lower() == b"bearer " else b""
            if not any(hmac.compare_digest(token, key.encode()) for key in self.keys):
                error = ApiError(
                    401, "Missing or wrong API key: send 'Authorization: Bearer KEY'.", code="invalid_api_key"
                )
                self.metrics.errors.labels("401").inc()
                return await error.response()(scope, receive, send)
        await self.app(scope, receive, send)


def _add_error_handlers(app: FastAPI) -> None:
    def answer(err: ApiError) -> Response:
        app.state.metrics.errors.labels(str(err.status)).inc()
        return err.response()

    @app.exception_handler(ApiError)
    def api_error(_request: Request, err: ApiError) -> Response:
        return answer(err)

    @app.exception_handler(RequestValidationError)
    def invalid_request(_request: Request, err: RequestValidationError) -> Response:
        problem = (err.errors() or [{}])[0]
        param = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path")) or None
        return answer(
            ApiError(
                400, f"Invalid value for '{param}': {problem.get('msg')}.", param=param, code="invalid_value"
            )
        )

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, err: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return answer(ApiError(err.status_code, str(err.detail), code=code))

    @app.exception_handler(Exception)
    def internal_error(_request: Request, err: Exception) -> Response:
        return answer(ApiError(500, f"internal error: {type(err).__name__}", code="internal_error"))


def build_app(
    settings: ServeSettings, workers: list[dict[str, RequestSampler]], enhancer: PromptEnhancer | None = None
) -> FastAPI:
    """The API and page over already loaded `workers` (one dict of samplers per device); `enhancer` (or the
    one `settings.enhancer` names) rewrites prompts first."""
    metrics = Metrics()
    engine = Engine(workers, max_queue=settings.max_queue, max_batch=settings.max_batch, metrics=metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        engine.start()
        yield
        engine.stop()
        _app.state.db.dispose()

    app = FastAPI(title="qwen-image2", version="1", lifespan=lifespan, redoc_url=None)
    app.state.settings, app.state.metrics, app.state.engine = settings, metrics, engine
    app.state.samplers = workers[0]
    app.state.db = build_engine(settings.db_url)
    app.state.sessionmaker = build_sessionmaker(app.state.db)
    app.state.safety = None
    if enhancer is None and settings.enhancer:
        enhancer = load_enhancer(settings.enhancer, model=settings.enhancer_model)
    app.state.enhancer = enhancer
    app.state.started = time.time()
    if settings.safety:
        from qwen_image2.data.curation.nsfw import NudeNetModel

        app.state.safety = NudeNetModel()

    if settings.api_keys:
        app.add_middleware(ApiKeys, keys=settings.api_keys, metrics=metrics)

    _add_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(gallery.router)

    @app.get("/v1/models")
    def models() -> dict:
        created = int(app.state.started)
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "qwen-image2"}
                for name in workers[0]
            ],
        }

    @app.get("/health")
    def health() -> dict:
        alive = engine.alive()
        if not alive:
            raise ApiError(503, "A worker has stopped.", code="unavailable", retry_after=5)
        return {
            "status": "ok",
            "models": list(workers[0]),
            "workers": len(workers),
            "queue": engine.queue_depth,
            "running": engine.running,
            "steps": engine.steps,
            "last_cancel_lag": engine.last_cancel_lag,
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE / "index.html")

    app.mount("/page", StaticFiles(directory=PAGE), name="page")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    return app
