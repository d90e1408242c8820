"""Feature vectors sent by callers (``POST /score_features``), checked before any model sees them.

A row maps feature names to values; ``null`` or an absent feature means missing (the models handle
missing values as in training). Refused, naming the row and the field: names that are not
features, text where a number belongs (and vice versa), categories the model never saw.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from serving.champions import Champions
from serving.errors import InvalidRequest
from serving.schemas import CUSTOMER_ID_MAX, CUSTOMER_ID_MIN


def validate_feature_rows(
    rows: list[dict[str, Any]], champions: Champions, names: list[str]
) -> pd.DataFrame:
    """A frame with ``customer_id`` + every feature in ``names`` (model dtypes), or
    :class:`InvalidRequest` for the first bad value."""
    from features.catalog import as_model_dtypes, categorical_features

    allowed = set(names)
    categorical = {
        name
        for service in ("churn", "cross_sell", "credit_risk")
        for name in categorical_features(service)
    }
    levels: dict[str, set[str]] = {}
    for model in champions.models.values():
        for name, values in model.categories.items():
            levels.setdefault(name, set()).update(values)
    records = []
    for i, row in enumerate(rows):
        record: dict[str, Any] = {"customer_id": None}
        for name, value in row.items():
            where = f"rows[{i}].{name}"
            if name == "customer_id":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise InvalidRequest(f"{where}: expected an integer id", field=where)
                if value is not None and not CUSTOMER_ID_MIN <= value <= CUSTOMER_ID_MAX:
                    raise InvalidRequest(
                        f"{where}: a customer id lies in [{CUSTOMER_ID_MIN}, {CUSTOMER_ID_MAX}]",
                        field=where,
                    )
                record[name] = value
                continue
            if name not in allowed:
                raise InvalidRequest(f"{where}: not a feature of the served models", field=where)
            if value is None:
                record[name] = None
            elif name in categorical:
                if not isinstance(value, str):
                    raise InvalidRequest(f"{where}: expected text, got {value!r}", field=where)
                if name in levels and value not in levels[name]:
                    raise InvalidRequest(
                        f"{where}: {value!r} was never seen in training; "
                        f"expected one of {sorted(levels[name])}",
                        field=where,
                    )
                record[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidRequest(f"{where}: expected a number, got {value!r}", field=where)
                if isinstance(value, float) and not math.isfinite(value):
                    raise InvalidRequest(f"{where}: expected a finite number", field=where)
                record[name] = float(value)
        records.append(record)
    frame = pd.DataFrame.from_records(records).reindex(columns=["customer_id", *names])
    frame["customer_id"] = frame["customer_id"].astype(object)
    return as_model_dtypes(frame)
