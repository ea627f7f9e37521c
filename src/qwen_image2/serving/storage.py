"""The server's tables (SQLite by default, PostgreSQL by `--db`): every image it made, the request that
made it (the page's history), and thumbs up/down with comments (the feedback the data flywheel reads).

Image ids are random: an image URL is a capability, shown to whoever made it and never listed to others.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Engine, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from qwen_image2.store import open_engine, random_id, utcnow

VOTES = {"up": 1, "down": -1}


class Base(DeclarativeBase):
    pass


class Generation(Base):
    """One answered request: its model, prompt (and rewrite), settings, and the images it returned."""

    __tablename__ = "serve_generations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "generate" or "edit"
    model: Mapped[str] = mapped_column(String(128), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    revised_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    settings: Mapped[dict] = mapped_column(JSON)
    user: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    images: Mapped[list[StoredImage]] = relationship(order_by="StoredImage.position")


class StoredImage(Base):
    __tablename__ = "serve_images"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    generation_id: Mapped[str] = mapped_column(ForeignKey("serve_generations.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    generation: Mapped[Generation] = relationship(back_populates="images")


class Feedback(Base):
    """A vote on one image: +1 (up) or -1 (down), with an optional comment."""

    __tablename__ = "serve_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("serve_images.id"), index=True)
    vote: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    image: Mapped[StoredImage] = relationship()


def build_engine(url: str) -> Engine:
    return open_engine(url, Base.metadata)
