"""Generation sets into the arena: one model's images for a set of prompts, on one board.

A set is a folder (or the same files uploaded to the admin endpoint):

    prompts.jsonl   one line per image:
                    {"image": "0001.png", "prompt": "a neon sign reading OPEN", "category": "text rendering"}
                    editing adds its source image(s), in order: "sources": ["inputs/cat.png", "inputs/hat.png"]
    0001.png ...    the images (PNG, JPEG or WebP)

Without `prompts.jsonl`, every image with a sibling `NAME.txt` is read as a T2I image and its prompt.
Sets from different models pair up by prompt: the same board, prompt text and source images make the
same prompt, so any two models that share a prompt can meet in a battle.

Everything is validated before anything is written, and the write is one transaction: a bad file
changes nothing. Re-importing skips (prompt, model) pairs already stored and never overwrites them.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from qwen_image2.data.images import IMAGE_ERRORS
from qwen_image2.evaluation.arena.errors import ArenaError
from qwen_image2.evaluation.arena.storage import (
    BOARDS,
    MAX_IMAGE_BYTES,
    Generation,
    Image,
    Prompt,
    PromptSource,
)

MANIFEST = "prompts.jsonl"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# 64 megapixels: above the 2048x2048 outputs of the report by 16x, below PIL's decompression-bomb limit.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
MULTI_IMAGE_EDIT = "multi-image edit"


@dataclass(frozen=True)
class CheckedImage:
    name: str
    data: bytes
    sha256: str
    mime: str
    width: int
    height: int


@dataclass(frozen=True)
class SetItem:
    """One image of a set, its prompt and (for editing) its ordered source images."""

    prompt: str
    image: CheckedImage
    category: str | None
    sources: tuple[CheckedImage, ...] = ()

    def prompt_key(self, board: str) -> str:
        text = "\n".join([board, self.prompt, *(source.sha256 for source in self.sources)])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ImportReport:
    model: str
    board: str
    images: int
    new_prompts: int
    new_generations: int
    skipped_existing: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


def check_image(name: str, data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> CheckedImage:
    """Validate one image file: size (413), a decodable PNG/JPEG/WebP (415), and its pixel count (413)."""
    from PIL import Image as PILImage

    if len(data) > max_bytes:
        raise ArenaError(413, f"{name}: {len(data)} bytes is over the {max_bytes}-byte limit per image")
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ArenaError(413, f"{name}: {width}x{height} is over {MAX_IMAGE_PIXELS} pixels")
            image.verify()
    except ArenaError:
        raise
    except (*IMAGE_ERRORS, PILImage.DecompressionBombError) as err:  # what PIL raises for a non-image
        raise ArenaError(415, f"{name}: not a readable image ({type(err).__name__})") from None
    if kind not in MIME:
        raise ArenaError(415, f"{name}: {kind} images are not accepted; use PNG, JPEG or WebP")
    digest = hashlib.sha256(data).hexdigest()
    return CheckedImage(name, data, digest, MIME[kind], width, height)


def parse_manifest(
    text: str, files: dict[str, bytes], board: str, max_bytes: int = MAX_IMAGE_BYTES
) -> list[SetItem]:
    """Items from `prompts.jsonl` text and the files it names (`files`: relative path -> bytes)."""
    if board not in BOARDS:
        raise ArenaError(422, f"board must be one of {', '.join(BOARDS)}; got {board!r}")
    items, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{MANIFEST}:{number}"
        row = _manifest_row(line, where)
        sources = tuple(_lookup(files, name, where, max_bytes) for name in row.get("sources", []))
        if board == "edit" and not sources:
            raise ArenaError(422, f"{where}: an edit prompt needs 'sources', its input image(s)")
        if board == "t2i" and sources:
            raise ArenaError(422, f"{where}: a t2i prompt takes no 'sources'; import it with --board edit")
        category = (row.get("category") or "").strip().lower() or None
        if category is None and len(sources) > 1:
            category = MULTI_IMAGE_EDIT
        item = SetItem(row["prompt"], _lookup(files, row["image"], where, max_bytes), category, sources)
        key = item.prompt_key(board)
        if key in seen:
            raise ArenaError(422, f"{where}: the same prompt appears twice in this set")
        seen.add(key)
        items.append(item)
    if not items:
        raise ArenaError(422, f"{MANIFEST} lists no images")
    return items


def _manifest_row(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ArenaError(422, f"{where}: not JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise ArenaError(422, f"{where}: each line must be a JSON object")
    for key in ("image", "prompt"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise ArenaError(422, f"{where}: '{key}' must be a non-empty string")
    sources = row.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(name, str) for name in sources):
        raise ArenaError(422, f"{where}: 'sources' must be a list of file names")
    if row.get("category") is not None and not isinstance(row["category"], str):
        raise ArenaError(422, f"{where}: 'category' must be a string")
    return row


def _lookup(files: dict[str, bytes], name: str, where: str, max_bytes: int) -> CheckedImage:
    if name not in files:
        raise ArenaError(422, f"{where}: names {name!r}, which is not in the set")
    return check_image(name, files[name], max_bytes)


def read_set_dir(path: Path, board: str, max_bytes: int = MAX_IMAGE_BYTES) -> list[SetItem]:
    """Items of a generation-set folder: `prompts.jsonl` if present, else `NAME.png` + `NAME.txt` pairs."""
    if not path.is_dir():
        raise ArenaError(422, f"{path}: not a folder; pass a folder of images with {MANIFEST}")
    manifest = path / MANIFEST
    if manifest.is_file():
        text = manifest.read_text(encoding="utf-8")
        files = {name: (path / name).read_bytes() for name in _named_files(text) if _inside(path, name)}
        return parse_manifest(text, files, board, max_bytes)
    lines, files = [], {}
    for image in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        sidecar = image.with_suffix(".txt")
        if sidecar.is_file():
            lines.append(
                json.dumps({"image": image.name, "prompt": sidecar.read_text(encoding="utf-8").strip()})
            )
            files[image.name] = image.read_bytes()
    if not lines:
        raise ArenaError(422, f"{path}: no {MANIFEST} and no image with a NAME.txt prompt beside it")
    return parse_manifest("\n".join(lines), files, board, max_bytes)


def _named_files(manifest: str) -> set[str]:
    """Every file a manifest names; malformed lines are skipped here and reported by `parse_manifest`."""
    names = set()
    for line in manifest.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            sources = row.get("sources") if isinstance(row.get("sources"), list) else []
            names.update(name for name in [row.get("image"), *sources] if isinstance(name, str))
    return names


def _inside(root: Path, name: str) -> bool:
    """Only files under the set folder are read; `../secret` in a manifest reads nothing."""
    target = (root / name).resolve()
    return target.is_file() and target.is_relative_to(root.resolve())


def import_set(session: Session, items: list[SetItem], model: str, board: str) -> ImportReport:
    """Write validated items for `model` in the caller's transaction; existing (prompt, model) pairs are kept."""
    if not model.strip() or len(model) > 128:
        raise ArenaError(422, "model name must be 1 to 128 characters")
    new_prompts = new_generations = skipped = 0
    for item in items:
        key = item.prompt_key(board)
        prompt = session.scalar(select(Prompt).where(Prompt.key == key))
        if prompt is None:
            prompt = Prompt(board=board, key=key, text=item.prompt, category=item.category)
            session.add(prompt)
            session.flush()
            for position, source in enumerate(item.sources):
                session.add(
                    PromptSource(prompt_id=prompt.id, position=position, image_id=_store(session, source))
                )
            new_prompts += 1
        existing = session.scalar(
            select(Generation).where(Generation.prompt_id == prompt.id, Generation.model == model)
        )
        if existing is not None:
            skipped += 1
            continue
        session.add(Generation(prompt_id=prompt.id, model=model, image_id=_store(session, item.image)))
        new_generations += 1
    session.flush()
    return ImportReport(model, board, len(items), new_prompts, new_generations, skipped)


def _store(session: Session, image: CheckedImage) -> str:
    """The id of an identical stored image, or of a new row: shared source images are stored once."""
    found = session.scalar(select(Image.id).where(Image.sha256 == image.sha256))
    if found is not None:
        return found
    row = Image(sha256=image.sha256, mime=image.mime, width=image.width, height=image.height, data=image.data)
    session.add(row)
    session.flush()
    return row.id
