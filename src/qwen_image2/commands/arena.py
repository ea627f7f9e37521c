"""`qwen-image2 arena ...`: rate votes, serve the web arena, import generation sets, export votes."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import typer

from qwen_image2.commands.options import check_out_file, choice, listen_socket, picture_beside
from qwen_image2.errors import UserError

app = typer.Typer(
    help="Blind pairwise human preference: a web arena and Bradley-Terry ratings with bootstrap intervals.",
    no_args_is_help=True,
)

# One --db option for serve, import and export (as in `commands/options.py`); the default is
# `storage.DEFAULT_DB_URL`, written out so that the CLI starts without importing SQLAlchemy.
DB = typer.Option(
    "sqlite:///arena.db",
    "--db",
    help="SQLAlchemy URL of the vote store: sqlite:///FILE (default ./arena.db) or postgresql://USER:PW@HOST/DB.",
)


@contextmanager
def _one_line_store_errors():
    """A store that cannot be opened is the user's to fix: `open_engine` says so in a UserError, but a
    database driver's message can span lines (libpq adds a hint), and the CLI promises one `error:` line."""
    try:
        yield
    except UserError as err:
        raise UserError(" ".join(str(err).split())) from None


def _open_store(db: str, must_exist: bool = False):
    """Engine and session factory for `db` (`must_exist`: for a job that only reads the store)."""
    from qwen_image2.evaluation.arena.storage import build_engine, build_sessionmaker

    with _one_line_store_errors():
        engine = build_engine(db, must_exist)
    return engine, build_sessionmaker(engine)


def _parse_anchor(anchor: str | None) -> tuple[str, float] | None:
    if anchor is None:
        return None
    model, sep, value = anchor.rpartition("=")
    if sep and model:
        try:
            return model, float(value)
        except ValueError:
            pass
    raise UserError(f"--anchor {anchor!r}: write MODEL=RATING, e.g. --anchor qwen-image-2.0=1168")


@app.command("ratings")
def ratings(
    votes: Path = typer.Argument(
        ..., help="JSON-lines votes: {model_a, model_b, winner[, board, category, voter, prompt]}."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the ratings JSON."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Leaderboard PNG; default: NAME.leaderboard.png beside OUT."
    ),
    bootstrap: int = typer.Option(100, "--bootstrap", min=0, help="Bootstrap rounds for the 95% intervals."),
    anchor: str | None = typer.Option(
        None, "--anchor", help="MODEL=RATING: pin one model's rating (default: mean 1000)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of prompt down-sampling."),
    no_guards: bool = typer.Option(
        False, "--no-guards", help="Skip the voter outlier test and prompt down-sampling."
    ),
) -> None:
    """Bradley-Terry ratings per board and category, with bootstrap intervals and a leaderboard PNG.

    Examples:

      qwen-image2 arena ratings votes.jsonl --out ratings.json

      qwen-image2 arena ratings votes.jsonl --out ratings.json --bootstrap 1000 --anchor qwen-image-2.0=1168

      qwen-image2 arena export --db sqlite:///arena.db --out votes.jsonl && qwen-image2 arena ratings votes.jsonl --out r.json
    """
    from qwen_image2.evaluation.arena.leaderboard import compute_leaderboards
    from qwen_image2.evaluation.arena.plot import save_leaderboard_png
    from qwen_image2.evaluation.arena.votes import load_votes

    pinned = _parse_anchor(anchor)
    check_out_file(out)
    if plot is not None:
        check_out_file(plot, "--plot")
        if plot.suffix.lower() != ".png":
            raise UserError(f"--plot {plot}: the leaderboard is a PNG; give a name ending in .png")
    all_votes = load_votes(votes)
    if pinned and not any(pinned[0] in (vote.model_a, vote.model_b) for vote in all_votes):
        raise UserError(f"--anchor model {pinned[0]!r} has no votes in {votes}")
    boards = compute_leaderboards(
        all_votes, bootstrap=bootstrap, anchor=pinned, seed=seed, guard=not no_guards
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(boards.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    png = save_leaderboard_png(boards.flat(), plot or picture_beside(out, "leaderboard"))
    print(json.dumps({**boards.summary(), "out": str(out), "plot": str(png)}, ensure_ascii=False))


@app.command("serve")
def serve(
    db: str = DB,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    admin_token: str | None = typer.Option(
        None, "--admin-token", envvar="QWEN_IMAGE2_ARENA_ADMIN_TOKEN", help="Bearer token for /api/admin/*."
    ),
    daily_cap: int = typer.Option(200, "--daily-cap", min=1, help="Votes per voter per UTC day."),
    votes_per_minute: int = typer.Option(20, "--votes-per-minute", min=1, help="Per-voter rate limit."),
) -> None:
    """Serve the web arena: battles, votes, leaderboard; admin import/export/bans behind a token.

    Examples:

      qwen-image2 arena serve

      qwen-image2 arena serve --db postgresql://arena:pw@localhost/arena --host 0.0.0.0 --port 8080

      QWEN_IMAGE2_ARENA_ADMIN_TOKEN=s3cret qwen-image2 arena serve --daily-cap 100
    """
    import uvicorn

    from qwen_image2.evaluation.arena.app import build_app
    from qwen_image2.evaluation.arena.settings import ArenaSettings

    settings = ArenaSettings(
        db_url=db, admin_token=admin_token, daily_vote_cap=daily_cap, votes_per_minute=votes_per_minute
    )
    # The store is opened and the port bound before uvicorn starts, so a bad --db or a taken port is one
    # `error:` line and exit 2 rather than a traceback or uvicorn's exit 1.
    with _one_line_store_errors():
        arena = build_app(settings)
    listening = listen_socket(host, port)
    print(f"arena on http://{host}:{port}/ (store: {db})", file=sys.stderr)
    uvicorn.Server(uvicorn.Config(arena, log_level="info")).run(sockets=[listening])


@app.command("import")
def import_(
    directory: Path = typer.Argument(
        ..., help="Folder with the images and prompts.jsonl (or NAME.txt per image)."
    ),
    model: str = typer.Option(..., "--model", help="Name of the model that made these images."),
    board: str = typer.Option(
        "t2i",
        "--board",
        callback=choice("t2i", "edit"),
        help="t2i, or edit (prompts.jsonl lines then name 'sources').",
    ),
    db: str = DB,
) -> None:
    """Add one model's generation set to the arena; sets of different models pair up by prompt.

    Examples:

      qwen-image2 arena import outputs/eval/qwen-image-2.0 --model qwen-image-2.0

      qwen-image2 arena import outputs/edit-set --model my-edit-lora --board edit --db postgresql://arena@db/arena
    """
    from qwen_image2.evaluation.arena.importer import import_set, read_set_dir

    if not directory.is_dir():
        raise UserError(f"{directory} " + ("is not a folder" if directory.exists() else "does not exist"))
    items = read_set_dir(directory, board)
    engine, sessions = _open_store(db)
    with sessions.begin() as session:
        report = import_set(session, items, model, board)
    engine.dispose()
    print(json.dumps(report.to_json(), ensure_ascii=False))


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="Where to write the votes, one JSON object a line."),
    db: str = DB,
    include_banned: bool = typer.Option(
        False, "--include-banned", help="Also export votes of banned voters."
    ),
) -> None:
    """Export raw votes in the format `arena ratings` reads.

    Examples:

      qwen-image2 arena export --out votes.jsonl

      qwen-image2 arena export --db postgresql://arena@db/arena --out votes.jsonl --include-banned
    """
    from qwen_image2.evaluation.arena.service import collect_votes
    from qwen_image2.evaluation.arena.votes import vote_to_json

    check_out_file(out)
    engine, sessions = _open_store(db, must_exist=True)
    with sessions() as session:
        votes = collect_votes(session, include_banned)
    engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(vote_to_json(vote) + "\n" for vote in votes), encoding="utf-8")
    print(json.dumps({"votes": len(votes), "out": str(out)}))
