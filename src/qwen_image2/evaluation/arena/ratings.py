"""Bradley-Terry ratings on the Elo scale, with bootstrap confidence intervals.

The model: P(a beats b) = 1 / (1 + 10 ** ((R_b - R_a) / 400)), a tie counts as half a win for each side.
As in FastChat (`fastchat/serve/monitor/rating_systems.py`), votes are reduced to unique
(model_a, model_b, outcome) rows weighted by their counts, and the bootstrap re-weights those rows with
one multinomial draw per round, which is the same as resampling votes with replacement but much cheaper.

The fit is Newton's method on the log-likelihood, vectorised over bootstrap rounds: the Hessian is only
n_models x n_models, so a whole bootstrap of a few hundred rounds is a handful of batched solves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit

from qwen_image2.evaluation.arena.votes import Vote

ELO_SCALE = 400.0
ELO_BASE = 10.0
ELO_INIT = 1000.0
# Natural log-odds to Elo points: 400 / ln(10) ~ 173.7.
ELO_PER_LOGIT = ELO_SCALE / math.log(ELO_BASE)
# A model that won (or lost) every vote has no finite maximum; this ridge, worth a thousandth of a vote,
# keeps it finite (about +-500 Elo for a single vote) and moves ratings fitted on a few hundred votes by
# well under 0.1 Elo. It also makes the Hessian invertible without pinning one model to zero.
RIDGE = 1e-3
BOOTSTRAP_CHUNK = 100


@dataclass(frozen=True)
class Rating:
    """One leaderboard row: Elo rating, its 2.5/97.5% bootstrap interval, and the number of votes."""

    model: str
    rating: float
    ci_low: float
    ci_high: float
    votes: int

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "rating": round(self.rating, 2),
            "ci_low": round(self.ci_low, 2),
            "ci_high": round(self.ci_high, 2),
            "votes": self.votes,
        }


@dataclass(frozen=True)
class PairTable:
    """Votes reduced to unique (model_a, model_b, outcome) rows and how often each occurred."""

    models: list[str]
    matchups: np.ndarray  # (rows, 2) int: indices into `models`
    outcomes: np.ndarray  # (rows,) float: model_a's score, 1 / 0.5 / 0
    counts: np.ndarray  # (rows,) float


def build_pair_table(votes: Sequence[Vote]) -> PairTable:
    """Count each distinct (model_a, model_b, outcome) in `votes`; models are sorted by name."""
    models = sorted({vote.model_a for vote in votes} | {vote.model_b for vote in votes})
    index = {model: i for i, model in enumerate(models)}
    rows = np.array([(index[v.model_a], index[v.model_b], 2 * v.score_a) for v in votes], dtype=np.int64)
    unique, counts = np.unique(rows.reshape(-1, 3), axis=0, return_counts=True)
    return PairTable(models, unique[:, :2], unique[:, 2] / 2.0, counts.astype(np.float64))


def _neg_log_likelihood(theta: np.ndarray, table: PairTable, weights: np.ndarray, ridge: float) -> np.ndarray:
    """Penalised negative log-likelihood per bootstrap round. theta: (B, K); weights: (B, rows) -> (B,)."""
    logits = theta[:, table.matchups[:, 0]] - theta[:, table.matchups[:, 1]]
    per_row = table.outcomes * log_expit(logits) + (1.0 - table.outcomes) * log_expit(-logits)
    return -(weights * per_row).sum(axis=1) + 0.5 * ridge * (theta**2).sum(axis=1)


def _gradient_and_hessian(theta: np.ndarray, table: PairTable, weights: np.ndarray, ridge: float):
    """Gradient (B, K) and Hessian (B, K, K) of `_neg_log_likelihood`, accumulated with bincount."""
    rounds, n_models = theta.shape
    a, b = table.matchups[:, 0], table.matchups[:, 1]
    probs = expit(theta[:, a] - theta[:, b])
    residual = weights * (probs - table.outcomes)  # d loss / d logit
    curvature = weights * probs * (1.0 - probs)  # d2 loss / d logit2

    offsets = (np.arange(rounds) * n_models)[:, None]
    grad = np.bincount(
        (offsets + np.concatenate([a, b])[None, :]).ravel(),
        weights=np.concatenate([residual, -residual], axis=1).ravel(),
        minlength=rounds * n_models,
    ).reshape(rounds, n_models)

    cells = np.concatenate([a * n_models + a, b * n_models + b, a * n_models + b, b * n_models + a])
    offsets = (np.arange(rounds) * n_models * n_models)[:, None]
    hess = np.bincount(
        (offsets + cells[None, :]).ravel(),
        weights=np.concatenate([curvature, curvature, -curvature, -curvature], axis=1).ravel(),
        minlength=rounds * n_models * n_models,
    ).reshape(rounds, n_models, n_models)
    return grad + ridge * theta, hess + ridge * np.eye(n_models)


def fit_bradley_terry(
    table: PairTable, weights: np.ndarray, ridge: float = RIDGE, tol: float = 1e-9, max_iter: int = 100
) -> np.ndarray:
    """Bradley-Terry strengths in natural log-odds units, centred at zero, one row per weight vector.

    Damped Newton: a step is halved until the loss does not rise, so it converges from zero even when
    one model won nearly everything. weights: (B, rows) counts -> (B, n_models).
    """
    weights = np.atleast_2d(weights).astype(np.float64)
    theta = np.zeros((weights.shape[0], len(table.models)))
    loss = _neg_log_likelihood(theta, table, weights, ridge)
    for _ in range(max_iter):
        grad, hess = _gradient_and_hessian(theta, table, weights, ridge)
        step = -np.linalg.solve(hess, grad[..., None])[..., 0]
        scale = np.ones(len(theta))
        for _ in range(30):
            new_loss = _neg_log_likelihood(theta + scale[:, None] * step, table, weights, ridge)
            rising = new_loss > loss + 1e-12 * np.abs(loss)
            if not rising.any():
                break
            scale = np.where(rising, scale / 2, scale)
        theta, loss = theta + scale[:, None] * step, new_loss
        if np.abs(scale[:, None] * step).max() < tol:
            break
    return theta - theta.mean(axis=1, keepdims=True)


def to_elo(theta: np.ndarray, models: list[str], anchor: tuple[str, float] | None = None) -> np.ndarray:
    """Natural-unit strengths (B, K) on the Elo scale: mean 1000, or the anchor model at its rating."""
    elo = theta * ELO_PER_LOGIT + ELO_INIT
    if anchor is not None and anchor[0] in models:
        column = models.index(anchor[0])
        elo = elo + (anchor[1] - elo[:, [column]])
    return elo


def rate(
    votes: Sequence[Vote], bootstrap: int = 100, anchor: tuple[str, float] | None = None, seed: int = 0
) -> list[Rating]:
    """The leaderboard for `votes`, best first: the maximum-likelihood rating and a bootstrap interval.

    With `bootstrap=0` the interval collapses to the point estimate.
    """
    if not votes:
        return []
    table = build_pair_table(votes)
    point = to_elo(fit_bradley_terry(table, table.counts), table.models, anchor)[0]
    low, high = point, point
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(int(table.counts.sum()), table.counts / table.counts.sum(), size=bootstrap)
        # Chunks of rounds bound memory: each holds (rounds x unique rows) arrays, ~30 MB for 50 models.
        chunks = np.array_split(draws, math.ceil(bootstrap / BOOTSTRAP_CHUNK))
        samples = np.concatenate([to_elo(fit_bradley_terry(table, c), table.models, anchor) for c in chunks])
        low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    votes_per_model = np.bincount(
        table.matchups.ravel(), weights=np.repeat(table.counts, 2), minlength=len(table.models)
    )
    rows = [
        Rating(model, float(point[i]), float(low[i]), float(high[i]), int(votes_per_model[i]))
        for i, model in enumerate(table.models)
    ]
    return sorted(rows, key=lambda row: -row.rating)
