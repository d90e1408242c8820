"""The fitted artefact a model version holds: everything needed to score and explain.

:class:`ScoringModel` bundles the LightGBM estimator (its booster feeds SHAP), the feature list in
training order, the categorical levels seen in training, the optional Platt calibrator and the
optional scorecard. It is what the MLflow pyfunc wraps and what serving gets back from
:func:`training.registry.load_champion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.alignment import add_aligned_columns
from training.scorecard import Scorecard


def categorical_levels(frame: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Sorted levels of each categorical column: the fixed encoding train and serve share."""
    return {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in columns}


def prepare_features(
    frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """Select ``features`` in order; categoricals get the training levels (unseen -> missing),
    everything else becomes float32 (booleans as 0/1, missing and non-numbers as NaN).

    float32 because LightGBM bins in float32 anyway and it halves a training frame's memory; the
    numeric block is converted in one numpy step, which keeps one-row requests cheap.
    """
    _require(frame, features)
    numeric = [f for f in features if f not in categories]
    block = frame[numeric]
    odd = {
        name: pd.to_numeric(block[name], errors="coerce")
        for name in numeric
        if not pd.api.types.is_numeric_dtype(block[name])
    }
    if odd:
        block = block.assign(**odd)
    out = pd.DataFrame(
        block.to_numpy(dtype=np.float32, na_value=np.nan), index=frame.index, columns=numeric
    )
    for name in features:
        if name in categories:
            column = frame[name]
            values = column.astype("string").astype(object).where(column.notna(), None)
            out[name] = pd.Categorical(values, categories=categories[name])
    return out[features] if categories else out


def encode_in_place(
    frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]
) -> None:
    """:func:`prepare_features`'s encoding of ``features``, written into ``frame`` itself (the
    columns keep their places): a training frame of gigabytes is not copied.

    Columns that are float32 already (the fetched features) are what the encoding would make of
    them and stay as they are; only the others are encoded and swapped in."""
    _require(frame, features)
    changed = [f for f in features if f in categories or frame[f].dtype != np.float32]
    if changed:
        encoded = prepare_features(
            frame, changed, {c: categories[c] for c in changed if c in categories}
        )
        for name in changed:
            frame[name] = encoded[name]


def _require(frame: pd.DataFrame, features: list[str]) -> None:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise KeyError(f"input lacks {len(missing)} model feature(s): {missing[:10]}")


@dataclass
class ScoringModel:
    """A trained model ready to score: ``predict_proba(frame)`` gives the event probability."""

    name: str
    features: list[str]
    categories: dict[str, list[str]]
    estimator: Any  # lightgbm.LGBMClassifier, fitted
    calibrator: Any = None  # sklearn CalibratedClassifierCV over the frozen estimator, or None
    scorecard: Scorecard | None = None
    #: Product-aligned inputs (``training.alignment``): the key column and the templates.
    alignment_key: str | None = None
    alignment: dict[str, dict[str, str]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def booster(self):
        """The LightGBM booster: hand it to ``shap.TreeExplainer`` for reason codes."""
        return self.estimator.booster_

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input matrix: aligned columns added, features in order, levels fixed."""
        if self.alignment and not set(self.alignment) <= set(frame.columns):
            frame = add_aligned_columns(frame, self.alignment_key, self.alignment)
        return prepare_features(frame, self.features, self.categories)

    def raw_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """LightGBM's own probability (uncalibrated)."""
        return self.estimator.predict_proba(self.prepare(frame))[:, 1]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the event for every row (calibrated when the model has a calibrator)."""
        model = self.calibrator if self.calibrator is not None else self.estimator
        return model.predict_proba(self.prepare(frame))[:, 1]

    def points(self, probability: np.ndarray) -> np.ndarray | None:
        """Scorecard points for given probabilities, or None for models without a scorecard."""
        return None if self.scorecard is None else self.scorecard.points(probability)

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``probability`` (and ``points`` when a scorecard applies), aligned with ``frame``."""
        probability = self.predict_proba(frame)
        out = pd.DataFrame({"probability": probability}, index=frame.index)
        if self.scorecard is not None:
            out["points"] = self.points(probability)
        return out
