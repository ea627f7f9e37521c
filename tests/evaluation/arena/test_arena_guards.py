"""Offline guards: the per-voter outlier test, prompt down-sampling, and the vote file format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qwen_image2.errors import UserError
from qwen_image2.evaluation.arena.guards import downsample_prompts, outlier_voters
from qwen_image2.evaluation.arena.leaderboard import compute_leaderboards
from qwen_image2.evaluation.arena.votes import Vote, load_votes, parse_vote, vote_to_json

STRENGTH = {"ace": 1300.0, "bold": 1100.0, "calm": 900.0, "dull": 700.0}


def honest_votes(rng: np.random.Generator, voters: int, per_voter: int) -> list[Vote]:
    """Votes drawn from the Bradley-Terry probabilities, interleaved across voters as they would arrive."""
    models, votes = list(STRENGTH), []
    for _ in range(per_voter):
        for voter in range(voters):
            i, j = rng.choice(len(models), size=2, replace=False)
            a, b = models[i], models[j]
            p = 1.0 / (1.0 + 10 ** ((STRENGTH[b] - STRENGTH[a]) / 400.0))
            votes.append(Vote(a, b, "model_a" if rng.random() < p else "model_b", voter=f"h{voter}"))
    return votes


def rigging_votes(voter: str, target: str, n: int) -> list[Vote]:
    """A voter who always picks `target`, whichever side it is shown on."""
    others = [model for model in STRENGTH if model != target]
    return [Vote(others[k % 3], target, "model_b", voter=voter) for k in range(n)]


def test_outlier_test_flags_a_voter_against_the_crowd_and_spares_honest_voters():
    rng = np.random.default_rng(0)
    votes = honest_votes(rng, voters=40, per_voter=30) + rigging_votes("rigger", "dull", 30)
    flagged = outlier_voters(votes)
    assert "rigger" in flagged
    # Ville's inequality bounds each honest voter's false alarm at alpha = 5%: 2 of 40 expected.
    assert len(flagged - {"rigger"}) <= 6


def test_voters_with_fewer_than_five_votes_are_not_tested():
    votes = honest_votes(np.random.default_rng(1), voters=20, per_voter=20) + rigging_votes(
        "brief", "dull", 4
    )
    assert "brief" not in outlier_voters(votes)


def test_rigging_votes_are_excluded_from_ratings():
    votes = honest_votes(np.random.default_rng(2), voters=40, per_voter=20)
    rigged = votes + rigging_votes("rigger", "dull", 400)
    unguarded = compute_leaderboards(rigged, bootstrap=0, guard=False).boards["all"]["overall"]
    guarded = compute_leaderboards(rigged, bootstrap=0).boards["all"]["overall"]
    assert unguarded[-1].model != "dull"  # 400 rigged votes lift the weakest model off the bottom ...
    assert [row.model for row in guarded] == list(STRENGTH)  # ... and the guard restores the true order
    summary = compute_leaderboards(rigged, bootstrap=0).summary()
    assert "rigger" in summary["outlier_voters"]
    assert summary["votes_rated"] <= len(votes)


def test_an_over_frequent_prompt_is_downsampled_to_the_cutoff():
    votes = [Vote("ace", "bold", "model_a", prompt=f"p{i}") for i in range(100) for _ in range(5)]
    votes += [Vote("ace", "bold", "model_b", prompt="spam") for _ in range(400)]
    kept, dropped = downsample_prompts(votes)
    assert dropped == 400 - 15  # down to 3x the median count of 5
    assert sum(vote.prompt == "spam" for vote in kept) == 15
    assert [vote for vote in kept if vote.prompt != "spam"] == votes[:500]


def test_a_small_board_is_not_downsampled():
    votes = [Vote("ace", "bold", "tie", prompt=p) for p in ["a", "a", "a", "b", "c", "d"]]
    assert downsample_prompts(votes) == (votes, 0)


def test_even_prompt_counts_and_votes_without_prompts_are_untouched():
    votes = [Vote("ace", "bold", "tie", prompt=f"p{i % 50}") for i in range(500)]
    votes += [Vote("ace", "bold", "tie") for _ in range(300)]
    kept, dropped = downsample_prompts(votes)
    assert dropped == 0 and kept == votes


def test_vote_lines_round_trip_and_fastchat_bothbad_reads_as_a_tie(tmp_path):
    vote = Vote("x", "y", "tie", board="edit", category="portrait", voter="7", prompt="p", both_bad=True)
    assert parse_vote(json.loads(vote_to_json(vote))) == vote
    assert parse_vote({"model_a": "x", "model_b": "y", "winner": "tie (bothbad)"}).both_bad
    path = tmp_path / "votes.jsonl"
    path.write_text(vote_to_json(vote) + "\n\n" + vote_to_json(Vote("x", "y", "model_a")) + "\n")
    assert len(load_votes(path)) == 2


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"model_a": "x", "model_b": "y", "winner": "left"}', "'winner' must be one of"),
        ('{"model_a": "x", "winner": "tie"}', "'model_b' must be a non-empty string"),
        ('{"model_a": "x", "model_b": "x", "winner": "tie"}', "must differ"),
        ("not json", "Expecting value"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_a_bad_vote_line_is_a_user_error_naming_the_line(tmp_path, line, message):
    path = tmp_path / "votes.jsonl"
    path.write_text('{"model_a": "x", "model_b": "y", "winner": "tie"}\n' + line + "\n")
    with pytest.raises(UserError, match=rf"votes.jsonl:2: .*{message}"):
        load_votes(path)
