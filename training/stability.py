"""Population stability: how far a population has moved from the one a model was trained on.

A :class:`StabilityReference` is taken on the training rows: for the score and each input, the
bins (deciles of the training values for numbers, the levels for categoricals, plus a bin for
missing values) and the share of training rows in each. A later population is cut into the same
bins and compared bin by bin with Jeffrey's divergence (optbinning's ``jeffrey``), the quantity
credit risk calls the PSI (of the score) or the CSI (of a characteristic):
``sum((a - e) * ln(a / e))``, shares floored at ``FLOOR`` so an empty bin stays finite.
Bands: below 0.10 stable (green), 0.10-0.25 watch (amber), 0.25 and above shifted (red).

The reference is small (a few numbers per column) and JSON, so it is logged with the model and
monitoring never needs the training rows again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from crmscore.settings import get_settings

#: Smallest bin share used in the divergence: an empty bin must not give infinity.
FLOOR = 1e-4
Band = Literal["green", "amber", "red"]


def stability_index(expected_shares, actual_shares) -> float:
    """PSI / CSI between two distributions over the same bins (Jeffrey's divergence)."""
    from optbinning.binning.metrics import jeffrey

    e = np.maximum(np.asarray(expected_shares, dtype=float), FLOOR)
    a = np.maximum(np.asarray(actual_shares, dtype=float), FLOOR)
    return float(jeffrey(a, e, return_sum=True))


def band(index: float) -> Band:
    """The traffic-light band of a PSI / CSI (``monitoring.psi_amber`` / ``psi_red``)."""
    config = get_settings().monitoring
    if index >= config.psi_red:
        return "red"
    return "amber" if index >= config.psi_amber else "green"


@dataclass
class ColumnReference:
    """The training distribution of one column: its bins and the share of rows in each."""

    kind: Literal["numeric", "categorical"]
    #: Inner cut points (numeric): bin ``i`` holds ``edges[i-1] <= x < edges[i]``.
    edges: list[float] = field(default_factory=list)
    #: Levels in training (categorical); a level unseen in training counts in the missing bin.
    levels: list[str] = field(default_factory=list)
    #: Share of training rows per bin; the last bin holds the missing values.
    shares: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: pd.Series | np.ndarray, bins: int = 10) -> ColumnReference:
        """The reference of ``values``: decile bins for numbers, level bins for categoricals."""
        series = pd.Series(values)
        if isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object:
            levels = sorted(series.dropna().astype(str).unique().tolist())
            reference = cls("categorical", levels=levels)
        else:
            present = series.dropna().to_numpy(dtype=float)
            quantiles = (
                np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]) if len(present) else []
            )
            reference = cls("numeric", edges=[float(q) for q in np.unique(quantiles)])
        reference.shares = reference.distribution(series).tolist()
        return reference

    @property
    def missing_share(self) -> float:
        return self.shares[-1]

    def distribution(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Share of ``values`` in each of this reference's bins (missing last)."""
        series = pd.Series(values)
        n_bins = (len(self.levels) if self.kind == "categorical" else len(self.edges) + 1) + 1
        if self.kind == "categorical":
            index = pd.Categorical(series.astype("string"), categories=self.levels).codes
            index = np.where(index < 0, n_bins - 1, index)
        else:
            numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
            index = np.searchsorted(np.asarray(self.edges), numbers, side="right")
            index = np.where(np.isnan(numbers), n_bins - 1, index)
        counts = np.bincount(index, minlength=n_bins)
        return counts / max(counts.sum(), 1)

    def index(self, values: pd.Series | np.ndarray) -> float:
        """PSI / CSI of ``values`` against this reference."""
        return stability_index(self.shares, self.distribution(values))


@dataclass
class StabilityReference:
    """The training population of one model: its score and every input."""

    rows: int
    score: ColumnReference
    inputs: dict[str, ColumnReference]

    @classmethod
    def of(cls, frame: pd.DataFrame, features: list[str], score: np.ndarray) -> StabilityReference:
        return cls(
            rows=len(frame),
            score=ColumnReference.of(score),
            inputs={name: ColumnReference.of(frame[name]) for name in features},
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StabilityReference:
        return cls(
            rows=int(data["rows"]),
            score=ColumnReference(**data["score"]),
            inputs={name: ColumnReference(**ref) for name, ref in data["inputs"].items()},
        )

    def compare(
        self, frame: pd.DataFrame, score: np.ndarray, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """PSI of ``score`` and CSI of each input (``columns``: all of them) in ``frame``, with
        bands and missing rates: one row per column, the score first, then by index, largest
        first. Columns: ``column, index, band, missing_reference, missing_actual,
        missing_change``."""
        names = list(self.inputs) if columns is None else columns
        rows = [("score", self.score, score)] + [(n, self.inputs[n], frame[n]) for n in names]
        table = pd.DataFrame(
            [
                {
                    "column": name,
                    "index": reference.index(values),
                    "missing_reference": reference.missing_share,
                    "missing_actual": float(reference.distribution(values)[-1]),
                }
                for name, reference, values in rows
            ]
        )
        table["band"] = table["index"].map(band)
        table["missing_change"] = table["missing_actual"] - table["missing_reference"]
        head, rest = table.iloc[:1], table.iloc[1:].sort_values("index", ascending=False)
        ordered = pd.concat([head, rest], ignore_index=True)
        return ordered[
            ["column", "index", "band", "missing_reference", "missing_actual", "missing_change"]
        ]
