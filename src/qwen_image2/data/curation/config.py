"""Curation settings: per-stage thresholds (YAML, re-appliable to stored scores) and run settings.

Two kinds of settings, kept apart on purpose:

- `StageThresholds` only decide `passed`/`reason` from stored scores. Changing them never needs a
  decode or a model: `--rethreshold` applies another stage to an existing manifest.
- `RunSettings` change what the scores are (which filters ran, which models, the decode size). They are
  written to `OUT/run.json`; resuming with different ones is refused rather than mixing two runs.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qwen_image2.errors import UserError

# The report's eight filters in its order (§Dataset), plus `pair` for editing data. `reason` holds one of
# these names; `--filters` selects among them.
FILTER_ORDER: tuple[str, ...] = (
    "broken",
    "resolution",
    "pair",
    "duplicate",
    "nsfw",
    "orientation",
    "entropy",
    "clip",
    "tokens",
)
DEFAULT_FILTERS: tuple[str, ...] = FILTER_ORDER
ALWAYS_ON: tuple[str, ...] = ("broken", "orientation")


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResolutionThresholds(_Strict):
    min_side: int = Field(256, ge=1, description="Shorter side in pixels, after orientation correction.")
    max_aspect: float | None = Field(None, ge=1.0, description="Longer/shorter side; None: no limit.")


class PairThresholds(_Strict):
    max_aspect_change: float = Field(
        1.1, ge=1.0, description="Largest ratio between the aspect ratios of target and each condition."
    )
    min_similarity: float = Field(
        0.0, ge=0.0, le=1.0, description="pHash similarity (1 - hamming/64) of target to closest condition."
    )
    # pair_change (pair.pixel_change, grey levels), measured on 105 synthetic edit pairs (write_text_dataset,
    # seeds 0 and 1, short side 192..640): identical pairs 0; the same source re-encoded as JPEG q90 / q75 /
    # q50: max 6 / 7 / 10 (95th pct 4 / 5 / 6); edits: min 13 (a changed colour and a changed word),
    # 5th pct 23, median 101. 12 keeps every edit and rejects every same-size re-encode. A copy resized to
    # 3/4 and re-encoded at q75 reaches 18 (95th pct 11): such pairs can pass as changed. Images with a
    # short side under 192 px are noisier (re-encodes up to 17), but the resolution filter drops them.
    min_change: float = Field(
        12.0, ge=0.0, le=255.0, description="Below this the 'edit' changed nothing visible (pixel change)."
    )


class DuplicateThresholds(_Strict):
    phash_distance: int = Field(
        6, ge=0, le=11, description="Near-duplicate when pHash Hamming distance <= this (index exact to 11)."
    )
    semantic_similarity: float | None = Field(
        None, gt=0.0, le=1.0, description="CLIP image cosine similarity for semantic dedup; None: off."
    )


class NsfwThresholds(_Strict):
    max_score: float = Field(0.5, ge=0.0, le=1.0, description="Highest allowed detector confidence.")


class EntropyThresholds(_Strict):
    min_score: float = Field(3.0, ge=0.0, le=8.0, description="Grey-level Shannon entropy in bits (0..8).")


class ClipThresholds(_Strict):
    min_score: float = Field(0.2, ge=-1.0, le=1.0, description="Cosine similarity of image and caption.")


class TokenThresholds(_Strict):
    min_tokens: int = Field(1, ge=0, description="Fewer caption tokens are rejected (1: empty rejected).")
    max_tokens: int = Field(1024, ge=1, description="More are rejected (the report's 1K-token prompts).")

    @model_validator(mode="after")
    def _ordered(self) -> TokenThresholds:
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) > max_tokens ({self.max_tokens})")
        return self


class StageThresholds(_Strict):
    """The decision thresholds of one stage; each filter receives only its own part."""

    resolution: ResolutionThresholds = ResolutionThresholds()
    pair: PairThresholds = PairThresholds()
    duplicate: DuplicateThresholds = DuplicateThresholds()
    nsfw: NsfwThresholds = NsfwThresholds()
    entropy: EntropyThresholds = EntropyThresholds()
    clip: ClipThresholds = ClipThresholds()
    tokens: TokenThresholds = TokenThresholds()


class RunSettings(_Strict):
    """What changes the scores; stored in OUT/run.json and compared when a run resumes."""

    filters: tuple[str, ...] = DEFAULT_FILTERS
    tokenizer: str | None = Field(None, description="Folder loadable by transformers.AutoTokenizer.")
    clip_model: str = Field("ViT-B-32", description="open_clip model name, or a path to a model config JSON.")
    clip_weights: str | None = Field(None, description="Checkpoint path, or 'random' (tests, timing only).")
    nsfw_model: str | None = Field(
        None, description="ONNX detector in NudeNet's format; None: the bundled one."
    )
    max_pixels: int = Field(100_000_000, ge=1, description="Images claiming more are rejected before decode.")
    max_file_bytes: int = Field(256 * 2**20, ge=1, description="Larger files are rejected unread.")
    work_side: int = Field(384, ge=32, description="Shorter side of the working copy the scorers see.")

    @model_validator(mode="after")
    def _known_filters(self) -> RunSettings:
        for name in self.filters:
            if name not in FILTER_ORDER:
                hint = _did_you_mean(name, FILTER_ORDER)
                raise ValueError(f"unknown filter {name!r}{hint}; choose from {', '.join(FILTER_ORDER)}")
        return self


def parse_filters(text: str | None) -> tuple[str, ...]:
    """`"broken,entropy"` -> the names in the report's order.

    `broken` and `orientation` always run: every other filter needs a decoded, upright image, and
    neither rejects anything that could have passed (broken files cannot be scored at all).
    """
    if not text:
        return DEFAULT_FILTERS
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in FILTER_ORDER:
            hint = _did_you_mean(name, FILTER_ORDER)
            raise UserError(
                f"--filters: unknown filter {name!r}{hint}; choose from {', '.join(FILTER_ORDER)}"
            )
    chosen = set(names) | set(ALWAYS_ON)
    return tuple(n for n in FILTER_ORDER if n in chosen)


def _describe_validation_error(err: ValidationError, model: type[BaseModel], where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        parent = model
        for part in first["loc"][:-1]:
            annotation = parent.model_fields[str(part)].annotation
            parent = annotation if isinstance(annotation, type) else parent
        close = difflib.get_close_matches(str(first["loc"][-1]), list(parent.model_fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{where}: unknown key {loc!r}{hint}"
    return f"{where}: {loc}: {first['msg']}"


def default_stages_file() -> Path:
    return Path(str(resources.files("qwen_image2.data.curation") / "stages.yaml"))


def load_stages(path: str | Path | None = None) -> dict[str, StageThresholds]:
    """Read a stages file: `defaults:` (thresholds all stages share) and `stages:` (per-stage overrides).

    >>> sorted(load_stages())[:2]
    ['s1-256p', 's2-256p']
    """
    path = Path(path) if path else default_stages_file()
    if not path.is_file():
        raise UserError(f"stages file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"defaults", "stages"}
    if unknown:
        raise UserError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected 'defaults' and 'stages'"
        )
    defaults = raw.get("defaults") or {}
    stages = {}
    for name, overrides in (raw.get("stages") or {}).items():
        merged = {k: {**(defaults.get(k) or {}), **(v or {})} for k, v in (overrides or {}).items()}
        merged = {**defaults, **merged}
        try:
            stages[str(name)] = StageThresholds.model_validate(merged)
        except ValidationError as err:
            raise UserError(
                _describe_validation_error(err, StageThresholds, f"{path}: stage {name}")
            ) from None
    if not stages:
        raise UserError(f"{path} defines no stages")
    return stages


def stage_thresholds(stage: str, stages_file: str | Path | None = None) -> StageThresholds:
    stages = load_stages(stages_file)
    if stage not in stages:
        hint = _did_you_mean(stage, stages)
        raise UserError(f"--stage: unknown stage {stage!r}{hint}; the stages file has {', '.join(stages)}")
    return stages[stage]
