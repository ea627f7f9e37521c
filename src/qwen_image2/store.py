"""One SQLAlchemy engine for every store (arena, serving, flywheel): a SQLite file by default, PostgreSQL
by URL, the same tables on both."""

import secrets
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import sessionmaker

from qwen_image2.errors import UserError


def normalize_db_url(url: str) -> str:
    """Route plain `postgresql://` URLs to psycopg 3 (the driver this package installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for other databases and for in-memory SQLite)."""
    database = make_url(normalize_db_url(url)).database if url.startswith("sqlite") else None
    return Path(database) if database and database != ":memory:" else None


def open_engine(url: str, metadata: MetaData, must_exist: bool = False) -> Engine:
    """An engine for `url` with `metadata`'s tables created if missing; a UserError naming the URL when it
    is malformed, names an unknown database kind, or cannot be reached. `must_exist`: a job that only
    reads (an export) refuses a SQLite file that is not there instead of creating an empty store."""
    url = normalize_db_url(url)
    try:
        file = sqlite_file(url)
        if must_exist and file is not None and not file.is_file():
            raise UserError(f"--db {url}: no such database file {file}")
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        metadata.create_all(engine)
    except (ArgumentError, NoSuchModuleError) as err:
        raise UserError(
            f"--db {url} is not a database URL (sqlite:///FILE or postgresql://USER:PW@HOST/DB): {err}"
        ) from None
    except OperationalError as err:
        raise UserError(f"--db {url}: cannot open the database ({err.orig})") from None
    return engine


def _sqlite_pragmas(connection, _record) -> None:
    # SQLite ignores foreign keys unless asked; WAL lets readers go on while a row is written.
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def build_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is stored and compared as naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def random_id() -> str:
    """A random row id (32 hex digits): an id that says nothing of what it names or when it was made."""
    return secrets.token_hex(16)
