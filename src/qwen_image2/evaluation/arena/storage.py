"""The arena's tables: one SQLAlchemy schema for SQLite (the default file) and PostgreSQL (by URL).

Images live in the database as bytes, so a store is one file (SQLite) or one server (PostgreSQL) that
several web workers share, and a backup is a database backup. Image and battle ids are random, so
neither an image URL nor a battle id says which model made the picture or when it was imported.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from qwen_image2.store import build_sessionmaker, open_engine, random_id, utcnow

__all__ = ["build_engine", "build_sessionmaker"]

DEFAULT_DB_URL = "sqlite:///arena.db"
BOARDS = ("t2i", "edit")
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # the largest image a store accepts
CHOICES = ("left", "right", "tie", "both_bad")


class Base(DeclarativeBase):
    pass


class Image(Base):
    __tablename__ = "arena_images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Prompt(Base):
    """A prompt on one board; for editing, with its ordered source images. `key` pairs up model sets."""

    __tablename__ = "arena_prompts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    board: Mapped[str] = mapped_column(String(16), index=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sources: Mapped[list[PromptSource]] = relationship(order_by="PromptSource.position")


class PromptSource(Base):
    __tablename__ = "arena_prompt_sources"

    prompt_id: Mapped[int] = mapped_column(ForeignKey("arena_prompts.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("arena_images.id"))


class Generation(Base):
    """One model's image for one prompt."""

    __tablename__ = "arena_generations"
    __table_args__ = (UniqueConstraint("prompt_id", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("arena_prompts.id"), index=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("arena_images.id"))
    prompt: Mapped[Prompt] = relationship()


class Voter(Base):
    """An anonymous voter: only a hash of the cookie token is stored, so a leaked table names nobody."""

    __tablename__ = "arena_voters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    banned: Mapped[bool] = mapped_column(Boolean, default=False)


class Secret(Base):
    """Server secrets shared by every worker over this store (the battle-ticket key)."""

    __tablename__ = "arena_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


class Battle(Base):
    """Two generations for one prompt, shown to one voter with the models hidden; stored with its vote."""

    __tablename__ = "arena_battles"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    voter_id: Mapped[int] = mapped_column(ForeignKey("arena_voters.id"), index=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("arena_prompts.id"))
    left_id: Mapped[int] = mapped_column(ForeignKey("arena_generations.id"))
    right_id: Mapped[int] = mapped_column(ForeignKey("arena_generations.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    prompt: Mapped[Prompt] = relationship()
    left: Mapped[Generation] = relationship(foreign_keys=[left_id])
    right: Mapped[Generation] = relationship(foreign_keys=[right_id])


class VoteRow(Base):
    """A vote; the unique battle id is what makes a replayed vote fail in the database itself."""

    __tablename__ = "arena_votes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    battle_id: Mapped[str] = mapped_column(ForeignKey("arena_battles.id"), unique=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("arena_voters.id"), index=True)
    # Keyed hash of the client address, so rate limits hold for a client that drops its cookie.
    client_hash: Mapped[str] = mapped_column(String(64), index=True)
    choice: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    battle: Mapped[Battle] = relationship()


# Columns added since the first stores were made: (table, column) -> SQL type with a default for old rows.
ADDED_COLUMNS = {("arena_votes", "client_hash"): "VARCHAR(64) NOT NULL DEFAULT ''"}


def build_engine(url: str = DEFAULT_DB_URL, must_exist: bool = False) -> Engine:
    """An engine for `url` with the arena's tables created if missing (`must_exist`: a reader's), and the
    columns added since an older store was made (its rows keep their values; new columns get defaults)."""
    engine = open_engine(url, Base.metadata, must_exist)
    inspector = inspect(engine)
    with engine.begin() as connection:
        for (table, column), sql_type in ADDED_COLUMNS.items():
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
                connection.execute(text(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})"))
    return engine
