"""The vote record and its JSON-lines format, shared by `arena export` (writes) and `arena ratings` (reads).

One line per vote:
    {"model_a": "m1", "model_b": "m2", "winner": "model_a" | "model_b" | "tie",
     "board": "t2i", "category": "portrait", "voter": "v17", "prompt": "a cat", "both_bad": false}
Only the first three fields are required. FastChat's "tie (bothbad)" winner is read as a tie with
`both_bad` set, so FastChat battle logs load as they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from qwen_image2.errors import UserError

WINNERS = ("model_a", "model_b", "tie")
DEFAULT_BOARD = "all"


@dataclass(frozen=True)
class Vote:
    """One judgement between two models; a tie counts as half a win for each side."""

    model_a: str
    model_b: str
    winner: str
    board: str = DEFAULT_BOARD
    category: str | None = None
    voter: str | None = None
    prompt: str | None = None
    both_bad: bool = False

    @property
    def score_a(self) -> float:
        """Model A's share of the point: 1, 0 or 0.5 for a tie (both-bad included)."""
        return {"model_a": 1.0, "model_b": 0.0}.get(self.winner, 0.5)


def parse_vote(row: object) -> Vote:
    """A validated `Vote` from one decoded JSON line; `ValueError` says which field is wrong.

    >>> parse_vote({"model_a": "x", "model_b": "y", "winner": "tie"}).score_a
    0.5
    """
    if not isinstance(row, dict):
        raise ValueError("a vote must be a JSON object")
    for key in ("model_a", "model_b"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"'{key}' must be a non-empty string")
    if row["model_a"] == row["model_b"]:
        raise ValueError("'model_a' and 'model_b' must differ")
    winner, both_bad = row.get("winner"), bool(row.get("both_bad", False))
    if winner == "tie (bothbad)":
        winner, both_bad = "tie", True
    if winner not in WINNERS:
        raise ValueError(f"'winner' must be one of {', '.join(WINNERS)}; got {winner!r}")
    optional = {}
    for key in ("board", "category", "voter", "prompt"):
        value = row.get(key)
        if value is not None and not isinstance(value, str | int):
            raise ValueError(f"'{key}' must be a string")
        optional[key] = None if value is None else str(value)
    return Vote(
        model_a=row["model_a"],
        model_b=row["model_b"],
        winner=winner,
        board=optional["board"] or DEFAULT_BOARD,
        category=optional["category"] or None,
        voter=optional["voter"],
        prompt=optional["prompt"],
        both_bad=both_bad,
    )


def load_votes(path: Path) -> list[Vote]:
    """Every vote in a JSON-lines file; a bad line is a `UserError` naming the file, line and field."""
    if not path.is_file():
        raise UserError(
            f"{path}: no such file; pass the JSON-lines file written by `qwen-image2 arena export`"
        )
    votes = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                votes.append(parse_vote(json.loads(line)))
            except (json.JSONDecodeError, ValueError) as err:
                raise UserError(f"{path}:{number}: {err}") from None
    if not votes:
        raise UserError(
            f"{path}: no votes; each line must be a JSON vote like {{'model_a','model_b','winner'}}"
        )
    return votes


def vote_to_json(vote: Vote) -> str:
    """One JSON line for `vote`, without the empty optional fields."""
    fields = {key: value for key, value in asdict(vote).items() if value is not None}
    if not vote.both_bad:
        fields.pop("both_bad")
    return json.dumps(fields, ensure_ascii=False)
