"""One SQLAlchemy engine for every store (arena, serving, flywheel): a SQLite file by default, PostgreSQL
by URL, the same tables on both."""

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import sessionmaker

from qwen_image2.errors import UserError


def normalize_db_url(url: str) -> str:
    """Route plain `postgresql://` URLs to psycopg 3 (the driver this package installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str, metadata: MetaData) -> Engine:
    """An engine for `url` with `metadata`'s tables created if missing; a UserError naming the URL when it
    is malformed, names an unknown database kind, or cannot be reached."""
    url = normalize_db_url(url)
    try:
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
