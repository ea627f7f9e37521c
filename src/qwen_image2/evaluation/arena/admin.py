"""Admin routes, all behind the bearer token: import a generation set, export raw votes, ban voters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.importer import MANIFEST, import_set, parse_manifest
from qwen_image2.evaluation.arena.service import collect_votes, set_ban
from qwen_image2.evaluation.arena.votes import vote_to_json
from qwen_image2.evaluation.arena.web import require_admin, settings_of, transaction

router = APIRouter(prefix="/api/admin", dependencies=[Depends(require_admin)])
# A manifest is a few hundred bytes a line; 8 MiB is tens of thousands of prompts.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024


class BanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voter: int
    banned: bool = True


def _read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refusing (413) before reading when the declared size is over the limit."""
    if upload.size is not None and upload.size > limit:
        raise ArenaError(413, f"{upload.filename}: {upload.size} bytes is over the {limit}-byte limit")
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ArenaError(413, f"{upload.filename}: over the {limit}-byte limit")
    return data


@router.post("/import", status_code=201)
def import_upload(
    request: Request,
    model: str = Form(..., min_length=1, max_length=128),
    board: str = Form(...),
    manifest: UploadFile = File(..., description=f"the set's {MANIFEST}"),
    files: list[UploadFile] = File(..., description="the images it names, uploaded under those names"),
) -> dict:
    """The HTTP twin of `qwen-image2 arena import`; all files are checked before anything is stored.

    Each file is matched to the manifest by its upload file name, so sources in a subfolder are sent
    under that relative name, e.g. `curl -F "files=@inputs/cat.png;filename=inputs/cat.png"`.
    """
    limit = settings_of(request).max_image_bytes
    try:
        text = _read_upload(manifest, MAX_MANIFEST_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise ArenaError(415, f"{MANIFEST} must be UTF-8 JSON lines") from None
    contents = {upload.filename or "": _read_upload(upload, limit) for upload in files}
    items = parse_manifest(text, contents, board, limit)
    with transaction(request) as session:
        return import_set(session, items, model, board).to_json()


@router.get("/votes", response_class=PlainTextResponse)
def export_votes(request: Request, include_banned: bool = False) -> PlainTextResponse:
    """Raw votes as JSON lines, the format `qwen-image2 arena ratings` reads."""
    with transaction(request) as session:
        lines = [vote_to_json(vote) + "\n" for vote in collect_votes(session, include_banned)]
    return PlainTextResponse("".join(lines), media_type="application/x-ndjson")


@router.post("/bans")
def ban(request: Request, body: BanIn) -> dict:
    """Ban (or with `"banned": false`, unban) a voter by the number that exported votes carry."""
    with transaction(request) as session:
        voter = set_ban(session, body.voter, body.banned)
        return {"voter": voter.id, "banned": voter.banned}
