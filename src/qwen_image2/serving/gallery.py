"""The page's own endpoints: stored images by id, the history of what was made, and feedback votes."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from qwen_image2.serving.errors import ApiError
from qwen_image2.serving.protocol import validation_error
from qwen_image2.serving.storage import VOTES, Feedback, Generation, StoredImage

router = APIRouter()
MAX_HISTORY = 200


@router.get("/v1/images/{image_id}/content")
def image_content(image_id: str, request: Request) -> Response:
    with request.app.state.sessionmaker() as session:
        image = session.get(StoredImage, image_id)
        if image is None:
            raise ApiError(
                404, f"No image {image_id!r} on this server.", param="image_id", code="image_not_found"
            )
        return Response(
            image.data, media_type=image.mime, headers={"Cache-Control": "private, max-age=86400"}
        )


@router.get("/v1/history")
def history(request: Request, limit: int = 50, user: str | None = None) -> dict:
    """The newest generations first (the page's gallery), with their images' URLs and settings."""
    if not 1 <= limit <= MAX_HISTORY:
        raise ApiError(
            400, f"Invalid value for 'limit': 1 to {MAX_HISTORY}.", param="limit", code="invalid_value"
        )
    query = select(Generation).options(selectinload(Generation.images)).order_by(Generation.created_at.desc())
    if user is not None:
        query = query.where(Generation.user == user)
    with request.app.state.sessionmaker() as session:
        rows = session.scalars(query.limit(limit)).all()
        return {
            "data": [
                {
                    "id": g.id,
                    "created": int(g.created_at.timestamp()),
                    "kind": g.kind,
                    "model": g.model,
                    "prompt": g.prompt,
                    "revised_prompt": g.revised_prompt,
                    "settings": g.settings,
                    "images": [{"id": i.id, "url": f"/v1/images/{i.id}/content"} for i in g.images],
                }
                for g in rows
            ]
        }


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_id: str = Field(..., max_length=32)
    vote: str = Field(..., pattern="^(up|down)$")
    comment: str | None = Field(None, max_length=4000)


@router.post(
    "/v1/feedback",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeedbackBody.model_json_schema()}},
        }
    },
)
async def feedback(request: Request) -> dict:
    """Thumbs up or down on one image, with an optional comment: a row the data flywheel reads."""
    try:
        body = FeedbackBody.model_validate(json.loads(await request.body()))
    except ValueError as err:
        if isinstance(err, ValidationError):
            raise validation_error(err) from None
        raise ApiError(400, f"The body is not valid JSON ({err}).", code="invalid_json") from None
    with request.app.state.sessionmaker.begin() as session:
        if session.get(StoredImage, body.image_id) is None:
            raise ApiError(
                404, f"No image {body.image_id!r} on this server.", param="image_id", code="image_not_found"
            )
        row = Feedback(image_id=body.image_id, vote=VOTES[body.vote], comment=body.comment or None)
        session.add(row)
        session.flush()
        return {"id": row.id, "image_id": body.image_id, "vote": body.vote}
