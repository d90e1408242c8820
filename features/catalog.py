"""What the feature store offers, without touching Feast: names per service and descriptions.

Reads the same declarations the Feast definitions are built from (:mod:`features.views`), so it is
instant and works before ``crmscore features build``. Serving uses :func:`describe` to turn a reason
code into a sentence; training uses :func:`categorical_features` to tell encoders what is a label.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from features.definitions import SERVICES, service_features
from features.spec import Feature
from features.views import GROUPS


@cache
def _features() -> dict[str, Feature]:
    return {f.name: f for g in GROUPS for f in g.features}


def services() -> tuple[str, ...]:
    """The feature service names: ``churn``, ``cross_sell``, ``credit_risk``."""
    return SERVICES


def feature_names(service: str) -> list[str]:
    """Every feature the model behind ``service`` uses, in a stable order (views, then columns)."""
    return [name for names in service_features(service).values() for name in names]


def categorical_features(service: str) -> list[str]:
    """The string-valued features of ``service`` (segment, income band, region, occupation)."""
    return [n for n in feature_names(service) if _features()[n].kind == "string"]


def as_model_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Give feature columns one dtype contract, offline and online alike: numeric features are
    float64 (NaN = missing), categorical features are strings (object, None = missing).

    Returns a frame with the same index and column order; other columns are left untouched. Cheap
    enough for per-request use: columns already in the right dtype are not copied, and the rest
    are converted with numpy and assigned in one step.
    """
    known = _features()
    converted: dict[str, np.ndarray] = {}
    for name in frame.columns:
        feature = known.get(name)
        if feature is None:
            continue
        column = frame[name]
        if feature.kind == "string":
            if column.dtype != object or column.isna().any():
                values = column.astype(object).to_numpy()
                values[pd.isna(values)] = None
                converted[name] = values
        elif column.dtype != np.float64:
            try:
                converted[name] = np.asarray(column.to_numpy(dtype=object), dtype=np.float64)
            except (TypeError, ValueError):
                converted[name] = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    if not converted:
        return frame
    updated = pd.DataFrame(converted, index=frame.index)
    return pd.concat([frame.drop(columns=list(converted)), updated], axis=1)[list(frame.columns)]


def describe(name: str) -> str:
    """The plain-language description of feature ``name`` (the one stored in Feast)."""
    try:
        return _features()[name].description
    except KeyError:
        raise KeyError(f"unknown feature {name!r}") from None


def view_of(name: str) -> str:
    """The feature view (group) feature ``name`` belongs to."""
    for group in GROUPS:
        if name in group.feature_names:
            return group.name
    raise KeyError(f"unknown feature {name!r}")
