"""Offline guards applied to votes before they are rated, after FastChat's `elo_analysis.py`.

- `outlier_voters`: a sequential test per voter of "this voter votes like the crowd does on each pair".
- `downsample_prompts`: prompts voted on far more often than the rest are subsampled, so that one
  prompt (one voter's favourite, a scripted loop) cannot dominate a board.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from qwen_image2.evaluation.arena.votes import Vote

# FastChat's defaults: voters with fewer than 5 votes are not tested, at most the first 100 are read.
OUTLIER_MIN_VOTES = 5
OUTLIER_MAX_VOTES = 100
OUTLIER_ALPHA = 0.05
# FastChat tags prompts above the 99.99th percentile of counts. An image arena draws from a fixed prompt
# pool, so counts are about Poisson around their median and the 99th percentile already reaches the tail;
# a prompt must also exceed 3x the median count and 10 votes, so small or young boards are left alone.
PROMPT_PERCENTILE = 99.0
PROMPT_MEDIAN_FACTOR = 3.0
PROMPT_MIN_CUTOFF = 10


def _pair_key(vote: Vote) -> tuple[tuple[str, str], float]:
    """The unordered pair and the score of its alphabetically first model (1, 0.5 or 0)."""
    pair = tuple(sorted((vote.model_a, vote.model_b)))
    score = vote.score_a if vote.model_a == pair[0] else 1.0 - vote.score_a
    return pair, score


def _decided_counts(votes: Sequence[Vote]) -> Counter:
    """(pair, 1) and (pair, 0) -> how often the pair's first model won / lost; ties are left out, as in
    FastChat, which compares against decided votes only."""
    counts: Counter = Counter()
    for vote in votes:
        pair, score = _pair_key(vote)
        if score != 0.5:
            counts[pair, int(score)] += 1
    return counts


def _is_outlier(own: Sequence[Vote], reference: Counter, threshold: float) -> bool:
    """Run the two products of 1 / (2p) over `own` votes; True as soon as either log exceeds `threshold`."""
    log_upper = log_lower = 0.0
    for vote in own:
        pair, score = _pair_key(vote)
        won, lost = reference[pair, 1], reference[pair, 0]
        if won + lost == 0:
            continue
        # The reference is `won` ones and `lost` zeros; `score` is 1, 0.5 or 0.
        p_upper = (lost + (won if score == 1.0 else 0)) / (won + lost)  # P(ref <= score)
        p_lower = (won + (lost if score == 0.0 else 0)) / (won + lost)  # P(ref >= score)
        log_upper += -math.log(2.0 * p_upper) if p_upper > 0 else math.inf
        log_lower += -math.log(2.0 * p_lower) if p_lower > 0 else math.inf
        if log_upper > threshold or log_lower > threshold:
            return True
    return False


def outlier_voters(
    votes: Sequence[Vote],
    alpha: float = OUTLIER_ALPHA,
    min_votes: int = OUTLIER_MIN_VOTES,
    max_votes: int = OUTLIER_MAX_VOTES,
) -> set[str]:
    """Voters whose votes disagree with the other voters' pair win rates more than chance allows.

    For each of a voter's votes (in order) on a pair, with the pair's decided votes as the reference
    distribution, p_upper = P(ref <= vote) and p_lower = P(ref >= vote). Under the null (the voter draws
    like the crowd) each factor 1 / (2p) has expectation at most 1, so the running products are
    non-negative supermartingales and, by Ville's inequality, either exceeds 1/alpha with probability at
    most alpha per product. A voter is flagged when one does.

    Unlike FastChat, the reference leaves out the voter's own votes: a voter who casts a third of a pair's
    votes would otherwise pull the reference towards themselves and pass (see the rigging test).
    """
    everyone = _decided_counts(votes)
    by_voter: dict[str, list[Vote]] = defaultdict(list)
    for vote in votes:
        if vote.voter is not None:
            by_voter[vote.voter].append(vote)
    threshold = math.log(1.0 / alpha)
    return {
        voter
        for voter, own in by_voter.items()
        if len(own) >= min_votes and _is_outlier(own[:max_votes], everyone - _decided_counts(own), threshold)
    }


def downsample_prompts(
    votes: Sequence[Vote], percentile: float = PROMPT_PERCENTILE, seed: int = 0
) -> tuple[list[Vote], int]:
    """Votes with each over-frequent prompt subsampled to the percentile cutoff; also how many were dropped.

    The cutoff is the `percentile` of per-prompt vote counts (FastChat's `deduplication.py`), raised to at
    least 3x the median count and 10; a prompt above it keeps a seeded random `cutoff` of its votes.
    Votes without a prompt are kept.
    """
    counts = Counter(vote.prompt for vote in votes if vote.prompt is not None)
    if not counts:
        return list(votes), 0
    values = list(counts.values())
    cutoff = int(
        max(np.percentile(values, percentile), PROMPT_MEDIAN_FACTOR * np.median(values), PROMPT_MIN_CUTOFF)
    )
    frequent = {prompt for prompt, count in counts.items() if count > cutoff}
    if not frequent:
        return list(votes), 0
    positions: dict[str, list[int]] = defaultdict(list)
    for i, vote in enumerate(votes):
        if vote.prompt in frequent:
            positions[vote.prompt].append(i)
    rng = np.random.default_rng(seed)
    keep = set()
    for prompt in sorted(frequent):
        keep.update(rng.choice(positions[prompt], size=cutoff, replace=False).tolist())
    kept = [vote for i, vote in enumerate(votes) if vote.prompt not in frequent or i in keep]
    return kept, len(votes) - len(kept)
