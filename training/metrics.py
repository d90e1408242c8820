"""The numbers a bank reads off a scoring model, computed from labels and scores.

Every function takes ``y`` (0/1 outcomes) and ``score`` (a probability or any score where higher
means "more likely the event"), as array-likes of equal length. Ranking metrics (AUC, KS, lift) only
use the order of the scores; calibration metrics (Brier, calibration table) need probabilities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def _arrays(y, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    if y.shape != score.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {score.shape}")
    return y, score


def roc_auc(y, score) -> float:
    """Probability that a random positive scores above a random negative (NaN if one class)."""
    y, score = _arrays(y, score)
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def gini(y, score) -> float:
    """Accuracy ratio, the credit-risk way of writing AUC: ``2 * AUC - 1``."""
    return 2.0 * roc_auc(y, score) - 1.0


def pr_auc(y, score) -> float:
    """Average precision: area under the precision-recall curve (random = the base rate)."""
    y, score = _arrays(y, score)
    return float(average_precision_score(y, score)) if y.sum() > 0 else float("nan")


def ks_statistic(y, score) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of positives and negatives.

    Evaluated at every distinct score, so tied scores move both CDFs together.
    """
    y, score = _arrays(y, score)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    score, y = score[order], y[order]
    # Only the last position of each run of equal scores is a valid threshold.
    last_of_tie = np.r_[score[1:] != score[:-1], True]
    cdf_pos = np.cumsum(y)[last_of_tie] / n_pos
    cdf_neg = np.cumsum(1 - y)[last_of_tie] / n_neg
    return float(np.max(np.abs(cdf_pos - cdf_neg)))


def brier(y, probability) -> float:
    """Mean squared error of the probabilities: 0 is perfect, the base rate's variance is naive."""
    y, probability = _arrays(y, probability)
    return float(brier_score_loss(y, probability))


def _deciles(score: np.ndarray, bins: int) -> np.ndarray:
    """Bin 1 = the highest scores. Ranks break ties by position so bins have equal sizes."""
    rank = pd.Series(score).rank(method="first", ascending=False).to_numpy()
    return np.ceil(rank * bins / len(score)).astype(int)


def lift_table(y, score, bins: int = 10) -> pd.DataFrame:
    """Lift and cumulative gain by score decile (decile 1 = the top-scored tenth).

    Columns: decile, customers, events, event_rate, lift (event rate / overall rate), cum_customers,
    cum_events, cum_gain (share of all events captured down to this decile), cum_lift.
    """
    y, score = _arrays(y, score)
    frame = pd.DataFrame({"decile": _deciles(score, bins), "y": y})
    table = frame.groupby("decile").agg(customers=("y", "size"), events=("y", "sum")).reset_index()
    overall = y.mean()
    table["event_rate"] = table["events"] / table["customers"]
    table["lift"] = table["event_rate"] / overall if overall > 0 else np.nan
    table["cum_customers"] = table["customers"].cumsum()
    table["cum_events"] = table["events"].cumsum()
    table["cum_gain"] = table["cum_events"] / y.sum() if y.sum() > 0 else np.nan
    cum_rate = table["cum_events"] / table["cum_customers"]
    table["cum_lift"] = cum_rate / overall if overall > 0 else np.nan
    return table


def top_decile_lift(y, score) -> float:
    """Event rate among the top-scored 10% divided by the overall event rate."""
    return float(lift_table(y, score)["lift"].iloc[0])


def calibration_table(y, probability, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed event rate in equal-count probability bins (low to high)."""
    y, probability = _arrays(y, probability)
    frame = pd.DataFrame({"bin": bins + 1 - _deciles(probability, bins), "y": y, "p": probability})
    return (
        frame.groupby("bin")
        .agg(customers=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
        .reset_index()
    )


def psi(expected, actual, bins: int = 10) -> float:
    """Population stability index of a score between a reference (train) and a new (test) sample.

    Bins are the reference sample's deciles (:class:`training.stability.ColumnReference`);
    ``PSI = sum((a - e) * ln(a / e))`` over bins, bin shares floored so an empty bin does not give
    infinity. Rule of thumb: < 0.1 stable, 0.1-0.25 watch, > 0.25 shifted.
    """
    from training.stability import ColumnReference

    return ColumnReference.of(np.asarray(expected, dtype=float), bins).index(actual)


def classification_metrics(y, probability) -> dict[str, float]:
    """The headline numbers of one score on one sample, as a flat dict ready for MLflow."""
    y, probability = _arrays(y, probability)
    return {
        "auc": roc_auc(y, probability),
        "gini": gini(y, probability),
        "pr_auc": pr_auc(y, probability),
        "ks": ks_statistic(y, probability),
        "brier": brier(y, probability),
        "top_decile_lift": top_decile_lift(y, probability),
        "event_rate": float(y.mean()),
        "rows": float(len(y)),
    }


def auc_interval(
    y, score, groups=None, rounds: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval of the ROC-AUC.

    With ``groups`` (customer ids) whole groups are resampled: the rows of one customer are not
    independent (consecutive snapshots share one future event), and resampling rows would make
    the interval too narrow. Each round weighs the rows by how often their group was drawn, so a
    million rows cost no copies. Rounds with one class drawn are skipped.
    """
    y, score = _arrays(y, score)
    codes = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    # Scores sorted once: a weighted AUC is then two bincounts and a cumulative sum per round.
    levels, level_of = np.unique(score, return_inverse=True)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        weight = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes]
        pos = np.bincount(level_of, weight * y, len(levels))
        neg = np.bincount(level_of, weight * (1 - y), len(levels))
        if pos.sum() > 0 and neg.sum() > 0:
            below = np.cumsum(neg) - neg  # negative weight strictly below each score level
            values.append(float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum())))
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
