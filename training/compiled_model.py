"""A :class:`~training.scoring_model.ScoringModel` compiled for serving: plain arrays, no pandas.

``ScoringModel.predict_proba(frame)`` is the reference: it selects and converts columns with
pandas and lets LightGBM's pandas path encode the categoricals, about 10 ms for one row. What
it computes is fixed once the model is trained, so :meth:`CompiledModel.of` works it out once:

* the feature order, as column positions in a :class:`~features.online.FeatureRows` matrix;
* each categorical's level -> code table (LightGBM's pandas path feeds ``cat.codes`` of the
  training levels; an unseen level or a missing value is NaN);
* the product-aligned inputs (:mod:`training.alignment`) as source columns per key level;
* the Platt calibrator as its coefficients ``(a, b)``: ``p = expit(-(a * f + b))`` with ``f`` the
  booster's raw score (what scikit-learn's ``CalibratedClassifierCV`` computes);
* the scorecard (already plain arithmetic).

Scoring is then ``Booster.predict`` on a float32 matrix (float32 because ``prepare_features``
rounds every input to float32 in training and in the reference path, so the booster sees the
same numbers), with ``num_threads=1`` below ``parallel_rows`` rows: OpenMP's thread start-up and
spin-waits cost more than a small prediction. Probabilities equal the reference's to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from training.scorecard import Scorecard

if TYPE_CHECKING:
    from features.online import FeatureRows
    from training.scoring_model import ScoringModel

#: Below this many rows a prediction runs on one thread (see the module docstring).
PARALLEL_ROWS = 20_000


def prediction_threads(rows: int) -> int:
    """LightGBM's ``num_threads`` for predicting ``rows`` rows: 1 below :data:`PARALLEL_ROWS`, else
    0 (LightGBM's OpenMP default)."""
    return 1 if rows < PARALLEL_ROWS else 0


@dataclass(frozen=True)
class Calibration:
    """Platt scaling as scikit-learn's fitted sigmoid: ``expit(-(a * f + b))`` averaged over its
    calibrated classifiers (one when the estimator was frozen); ``f`` = raw score or probability."""

    coefficients: tuple[tuple[float, float], ...]
    on_raw_score: bool

    def __call__(self, raw: np.ndarray | None, probability: np.ndarray | None) -> np.ndarray:
        f = raw if self.on_raw_score else probability
        total = np.zeros(len(f))
        for a, b in self.coefficients:
            total += expit(-(a * f + b))
        return total / len(self.coefficients)

    @classmethod
    def of(cls, calibrator: Any, booster: Any) -> Calibration:
        """The coefficients of a fitted ``CalibratedClassifierCV(FrozenEstimator(...),
        method="sigmoid")``; anything else is refused, naming what it is."""
        method = getattr(calibrator, "method", None)
        if method != "sigmoid":
            raise TypeError(f"cannot compile a {method!r} calibrator: only Platt (sigmoid) is")
        coefficients, raw = [], None
        for calibrated in calibrator.calibrated_classifiers_:
            estimator = getattr(calibrated.estimator, "estimator", calibrated.estimator)
            if getattr(estimator, "booster_", None) is not booster:
                raise TypeError("the calibrator wraps another booster than the model's")
            (sigmoid,) = calibrated.calibrators
            coefficients.append((float(sigmoid.a_), float(sigmoid.b_)))
            # scikit-learn calibrates decision_function when the estimator has one, else the
            # positive-class probability (sklearn.utils._response._get_response_values).
            raw = hasattr(calibrated.estimator, "decision_function")
        return cls(tuple(coefficients), bool(raw))


@dataclass(frozen=True)
class CompiledModel:
    """One champion's scoring, as arrays. Build with :meth:`of`; score with :meth:`predict`
    on :meth:`matrix` (``key`` = the cross-sell product a row is for)."""

    name: str
    features: tuple[str, ...]
    booster: Any
    #: Categorical feature -> {level: code}.
    codes: dict[str, dict[str, float]]
    calibration: Calibration | None = None
    scorecard: Scorecard | None = None
    #: The key input (``product``) and the aligned inputs: name -> {key level: source column}.
    key: str | None = None
    alignment: dict[str, dict[str, str]] = field(default_factory=dict)
    _sources: dict[str | None, tuple[tuple[int, str], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, model: ScoringModel) -> CompiledModel:
        booster = model.booster
        trained = list(booster.feature_name())
        if trained != list(model.features):
            raise ValueError(f"{model.name}: the booster's features differ from the model's list")
        return cls(
            name=model.name,
            features=tuple(model.features),
            booster=booster,
            codes={
                name: {level: float(code) for code, level in enumerate(levels)}
                for name, levels in model.categories.items()
            },
            calibration=None
            if model.calibrator is None
            else Calibration.of(model.calibrator, booster),
            scorecard=model.scorecard,
            key=model.alignment_key or next((f for f in model.features if f == "product"), None),
            alignment=dict(model.alignment or {}),
        )

    # --- the input matrix ----------------------------------------------------------------------

    @property
    def store_features(self) -> list[str]:
        """The features read from the store: inputs minus the key and the aligned inputs,
        plus every column an aligned input is read from."""
        derived = {self.key, *self.alignment}
        sources = [column for levels in self.alignment.values() for column in levels.values()]
        return list(dict.fromkeys([*(f for f in self.features if f not in derived), *sources]))

    @cached_property
    def _layout(self) -> tuple[list[int], list[str], list[int], list[int], list[int]]:
        """Positions of the plain inputs (and their names), the categoricals, the key and the
        aligned inputs in :attr:`features`."""
        derived = {self.key, *self.alignment}
        plain = [i for i, f in enumerate(self.features) if f not in self.codes and f not in derived]
        categorical = [i for i, f in enumerate(self.features) if f in self.codes and f != self.key]
        key = [i for i, f in enumerate(self.features) if f == self.key]
        aligned = [i for i, f in enumerate(self.features) if f in self.alignment]
        return plain, [self.features[i] for i in plain], categorical, key, aligned

    def numeric_sources(self, key: str | None) -> tuple[tuple[int, str], ...]:
        """(position, store column) of each numeric input for a row offered ``key``: the input's
        own column, or for an aligned input the key level's column; worked out once per key."""
        found = self._sources.get(key)
        if found is None:
            found = self._sources[key] = tuple(
                (i, self.alignment.get(f, {}).get(key, f))
                for i, f in enumerate(self.features)
                if f != self.key and f not in self.codes
            )
        return found

    def matrix(self, rows: FeatureRows, keys: Sequence[str] | None = None) -> np.ndarray:
        """The float32 input matrix of ``rows``; with ``keys`` (a key level per block), one block
        of ``len(rows)`` rows per key, in ``keys`` order (the cross-sell model's offers)."""
        plain, plain_names, categorical, key, aligned = self._layout
        n = len(rows)
        levels = [None] if keys is None else list(keys)
        out = np.empty((n * len(levels), len(self.features)), dtype=np.float32)
        base = out[:n]
        base[:, plain] = rows.numeric[:, rows.layout.positions(plain_names)]
        for i in categorical:
            base[:, i] = self.encode(self.features[i], rows[self.features[i]])
        for b, level in enumerate(levels):
            block = out[b * n : (b + 1) * n]
            if b:
                block[:] = base
            for i in key:
                block[:, i] = self.codes.get(self.key, {}).get(level, np.nan)
            for i in aligned:
                source = self.alignment[self.features[i]].get(level)
                block[:, i] = np.nan if source is None else rows[source]
        return out

    def encode(self, feature: str, values: np.ndarray) -> np.ndarray:
        """Codes of text ``values`` for a categorical input; NaN when missing or never seen."""
        table = self.codes[feature]
        return np.asarray([table.get(v, np.nan) for v in values], dtype=np.float32)

    # --- scores --------------------------------------------------------------------------------

    def _predict(self, matrix: np.ndarray, **kind: bool) -> np.ndarray:
        return self.booster.predict(matrix, num_threads=prediction_threads(len(matrix)), **kind)

    def raw_score(self, matrix: np.ndarray) -> np.ndarray:
        """The booster's log-odds per row."""
        return self._predict(matrix, raw_score=True)

    def predict(self, matrix: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
        """Probability of the event per row (calibrated when the model calibrates); ``raw``: the
        rows' :meth:`raw_score` when the caller has it already (one booster call fewer)."""
        if self.calibration is None:
            return self._predict(matrix)
        if not self.calibration.on_raw_score:  # calibrates the probability: no raw score needed
            return self.calibration(raw, self._predict(matrix))
        return self.calibration(self.raw_score(matrix) if raw is None else raw, None)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions (log-odds) per row and input, the base value last."""
        return np.asarray(self._predict(matrix, pred_contrib=True))

    def points(self, probability: np.ndarray) -> np.ndarray | None:
        """Scorecard points, or None for a model without a scorecard."""
        return None if self.scorecard is None else self.scorecard.points(probability)
