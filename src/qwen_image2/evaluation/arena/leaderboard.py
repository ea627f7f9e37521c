"""Leaderboards for every board and category: guards first, then Bradley-Terry with bootstrap intervals.

Used by both `qwen-image2 arena ratings` (votes from a JSON-lines file) and the web arena's leaderboard
page (votes from the store), so the two always agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from qwen_image2.evaluation.arena.guards import downsample_prompts, outlier_voters
from qwen_image2.evaluation.arena.ratings import Rating, rate
from qwen_image2.evaluation.arena.votes import Vote

OVERALL = "overall"


@dataclass
class Leaderboards:
    """Ratings per board and category (`boards[board][category or "overall"]`) and what the guards did."""

    boards: dict[str, dict[str, list[Rating]]] = field(default_factory=dict)
    votes_read: int = 0
    votes_rated: int = 0
    outlier_voters: list[str] = field(default_factory=list)
    prompts_downsampled_votes: int = 0

    def flat(self) -> dict[str, list[Rating]]:
        """Slices named `board` (overall) and `board/category`, in board order."""
        return {
            board if name == OVERALL else f"{board}/{name}": rows
            for board, slices in self.boards.items()
            for name, rows in slices.items()
        }

    def to_json(self) -> dict[str, list[dict]]:
        """`{"t2i": [rows], "t2i/portrait": [rows], ...}`: one list per board and per board/category."""
        return {name: [row.to_json() for row in rows] for name, rows in self.flat().items()}

    def summary(self) -> dict:
        return {
            "votes_read": self.votes_read,
            "votes_rated": self.votes_rated,
            "outlier_voters": self.outlier_voters,
            "prompt_downsampled_votes": self.prompts_downsampled_votes,
            "boards": {board: sorted(slices) for board, slices in self.boards.items()},
        }


def compute_leaderboards(
    votes: Sequence[Vote],
    bootstrap: int = 100,
    anchor: tuple[str, float] | None = None,
    seed: int = 0,
    guard: bool = True,
) -> Leaderboards:
    """Rate each board overall and per category, after the outlier test and prompt down-sampling.

    Guards run per board, because a pair's win rate on T2I says nothing about the same pair on editing.
    """
    result = Leaderboards(votes_read=len(votes))
    by_board: dict[str, list[Vote]] = defaultdict(list)
    for vote in votes:
        by_board[vote.board].append(vote)

    for board in sorted(by_board):
        board_votes = by_board[board]
        if guard:
            flagged = outlier_voters(board_votes)
            result.outlier_voters.extend(sorted(flagged - set(result.outlier_voters)))
            board_votes = [vote for vote in board_votes if vote.voter not in flagged]
            board_votes, dropped = downsample_prompts(board_votes, seed=seed)
            result.prompts_downsampled_votes += dropped
        result.votes_rated += len(board_votes)

        slices = {OVERALL: rate(board_votes, bootstrap, anchor, seed)}
        categories = sorted({vote.category for vote in board_votes if vote.category})
        for category in categories:
            in_category = [vote for vote in board_votes if vote.category == category]
            slices[category] = rate(in_category, bootstrap, anchor, seed)
        result.boards[board] = slices
    return result
