"""The numbers a bank reads off a scoring model, computed from labels and scores.

Every function takes ``y`` (0/1 outcomes) and ``score`` (a probability or any score where higher
means "more likely the event"), as array-likes of equal length. Ranking metrics (AUC, KS, lift) only
use the order of the scores; calibration metrics (Brier, calibration table) need probabilities.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

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


class RankedScore:
    """One score over fixed rows, sorted once. AUC, KS, PR-AUC and Brier of any weighting of those
    rows (a bootstrap resample weighs each row by how often it was drawn) are then two bincounts
    and a few cumulative sums, with no sort and no copy of the rows: hundreds of resamples of a
    million rows take seconds. With unit weights the values equal :func:`roc_auc`,
    :func:`ks_statistic`, :func:`pr_auc` and :func:`brier`; tied scores are one threshold, as
    there."""

    def __init__(self, y, score) -> None:
        self.y, self.score = _arrays(y, score)
        self.levels, self.level_of = np.unique(self.score, return_inverse=True)
        self.squared_error = (self.score - self.y) ** 2

    def _counts(self, weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row weights, and the weight of all rows and of the positives at each score level
        (ascending)."""
        w = np.ones(len(self.y)) if weight is None else np.asarray(weight, dtype=float)
        total = np.bincount(self.level_of, w, len(self.levels))
        return w, total, np.bincount(self.level_of, w * self.y, len(self.levels))

    @staticmethod
    def _auc(pos: np.ndarray, cum_neg: np.ndarray, neg: np.ndarray) -> float:
        n_pos, n_neg = pos.sum(), cum_neg[-1] if len(cum_neg) else 0.0
        if not (n_pos > 0 and n_neg > 0):
            return float("nan")
        # each positive level beats the negatives below it and ties half of those beside it
        return float((pos * (cum_neg - 0.5 * neg)).sum() / (n_pos * n_neg))

    def auc(self, weight: np.ndarray | None = None) -> float:
        """ROC-AUC of the weighted rows (NaN when one class has no weight)."""
        _, total, pos = self._counts(weight)
        neg = total - pos
        return self._auc(pos, np.cumsum(neg), neg)

    def metrics(self, weight: np.ndarray | None = None) -> dict[str, float]:
        """``auc``, ``ks``, ``pr_auc`` and ``brier`` of the weighted rows (NaN where undefined:
        no positive or no negative weight)."""
        w, total, pos = self._counts(weight)
        neg = total - pos
        n, n_pos = total.sum(), pos.sum()
        n_neg = n - n_pos
        cum_pos, cum_neg = np.cumsum(pos), np.cumsum(neg)
        # (sums of products, not np.dot: BLAS threads waking up for every call cost milliseconds)
        brier_value = float((w * self.squared_error).sum() / n)
        if n_pos == 0:
            return {"auc": float("nan"), "ks": float("nan"), "pr_auc": float("nan"),
                    "brier": brier_value}  # fmt: skip
        # Average precision: thresholds from the highest score down, each level one step; at a
        # level the rows at or above it are flagged, its positives add to the recall.
        flagged = n - (cum_pos + cum_neg) + total
        hits = n_pos - cum_pos + pos
        precision = np.divide(hits, flagged, out=np.zeros_like(hits), where=flagged > 0)
        ks = np.max(np.abs(cum_pos / n_pos - cum_neg / n_neg)) if n_neg > 0 else float("nan")
        return {
            "auc": self._auc(pos, cum_neg, neg),
            "ks": float(ks),
            "pr_auc": float((pos * precision).sum() / n_pos),
            "brier": brier_value,
        }


def resample_weights(n_rows: int, rounds: int, seed: int = 0, groups=None) -> Iterator[np.ndarray]:
    """``rounds`` bootstrap resamples of ``n_rows`` rows, each as row weights: how often the row
    was drawn, or with ``groups`` (customer ids, one per row) how often its group was drawn."""
    codes = np.arange(n_rows) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        yield np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes]


def percentile_interval(values, level: float = 0.95, axis: int | None = None):
    """The percentile bootstrap interval ``(low, high)`` of resampled ``values``, ignoring the
    NaN of resamples in which a metric is undefined (one class drawn)."""
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():  # a metric undefined in every resample: NaN, said once
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(values, [tail, 100 - tail], axis=axis)


def auc_interval(
    y, score, groups=None, rounds: int = 200, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval of the ROC-AUC.

    With ``groups`` (customer ids) whole groups are resampled: the rows of one customer are not
    independent (consecutive snapshots share one future event), and resampling rows would make
    the interval too narrow. Each round weighs the rows by how often their group was drawn, so a
    million rows cost no copies. Rounds with one class drawn are skipped.
    """
    ranked = RankedScore(y, score)
    values = [ranked.auc(w) for w in resample_weights(len(ranked.y), rounds, seed, groups)]
    if all(v != v for v in values):
        return float("nan"), float("nan")
    low, high = percentile_interval(values, level)
    return float(low), float(high)
