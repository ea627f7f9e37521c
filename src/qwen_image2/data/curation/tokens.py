"""`tokens`: caption length under the Qwen tokenizer. Empty or missing captions and those over the
stage's limit (the report's prompts reach 1K tokens) are rejected.

The tokenizer is any folder `transformers.AutoTokenizer.from_pretrained` loads — the Qwen3-VL
processor's tokenizer in production, a small one in tests.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from qwen_image2.data.curation.config import TokenThresholds
from qwen_image2.errors import UserError


def keep_tokens(columns: Mapping[str, np.ndarray], thresholds: TokenThresholds) -> np.ndarray:
    score = np.asarray(columns["tokens_score"], dtype=np.float64)
    return ((score >= thresholds.min_tokens) & (score <= thresholds.max_tokens)) | np.isnan(score)


def check_tokenizer_settings(path: str | None) -> None:
    """The user-fixable mistake, found without loading anything."""
    if not path:
        raise UserError(
            "the tokens filter needs the Qwen tokenizer: pass --tokenizer FOLDER (a folder that "
            "transformers.AutoTokenizer loads), or leave the filter out with --filters"
        )


def load_tokenizer(path: str | None):
    check_tokenizer_settings(path)
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:  # what transformers raises for a folder without one
        raise UserError(
            f"--tokenizer {path}: cannot load a tokenizer from it ({type(err).__name__}: {err})"
        ) from None


class TokenFilter:
    """Adds `tokens_score` (number of tokens, special tokens excluded) and `tokens_keep`."""

    name = "tokens"

    def __init__(self, tokenizer_path: str | None, thresholds: TokenThresholds = TokenThresholds()) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.thresholds = thresholds

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        captions = [c if isinstance(c, str) else "" for c in batch["caption"]]
        ids = self.tokenizer(captions, add_special_tokens=False)["input_ids"] if captions else []
        out = {**batch, "tokens_score": np.array([len(x) for x in ids], dtype=np.float64)}
        out["tokens_keep"] = keep_tokens(out, self.thresholds)
        return out
