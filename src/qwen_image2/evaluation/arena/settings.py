"""The web arena's one config: where votes are stored and how hard the guards are."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qwen_image2.evaluation.arena.storage import DEFAULT_DB_URL, MAX_IMAGE_BYTES


class ArenaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    db_url: str = Field(
        DEFAULT_DB_URL, description="SQLAlchemy URL: sqlite:///FILE or postgresql://USER:PW@HOST/DB."
    )
    admin_token: str | None = Field(
        None, description="Bearer token for /api/admin/*; without one the admin endpoints answer 401."
    )
    votes_per_minute: int = Field(
        20,
        ge=1,
        description="Per-voter and per-address rate limit; two images need a few seconds to judge.",
    )
    battles_per_minute: int = Field(
        40, ge=1, description="Per-voter and per-address limit on battles drawn (page loads)."
    )
    daily_vote_cap: int = Field(
        200,
        ge=1,
        description="Votes one voter, or one address, may cast per UTC day (FastChat caps judges per day).",
    )
    max_image_bytes: int = Field(MAX_IMAGE_BYTES, ge=1, description="Largest image accepted by import.")
    leaderboard_bootstrap: int = Field(
        100, ge=0, description="Bootstrap rounds for the leaderboard's intervals."
    )
    secure_cookie: bool = Field(False, description="Mark the voter cookie Secure (serve over HTTPS).")
    trust_forwarded_for: bool = Field(
        False,
        description="Take the client address from the last X-Forwarded-For entry (set only behind a proxy "
        "that appends it; otherwise any client could claim a fresh address per request).",
    )
