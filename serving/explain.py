"""Reason codes: which features pushed one customer's score up or down, and by how much.

Contributions are exact TreeSHAP values from LightGBM (``pred_contrib=True``) in the model's raw
space, the log-odds of the booster: for every row, ``base_value + sum(contributions) == raw_score``
(the calibrated probability is a monotone function of that raw score, so directions carry over).
Each reason gets a sentence built from the feature's description in the feature store, e.g.
"Days since the last salary credit is 62: raises churn risk."
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from serving.champions import KEY_INPUTS

#: What a positive contribution raises, per model (the cross-sell phrase takes the product).
OUTCOMES = {
    "churn": "churn risk",
    "cross_sell": "the chance of opening a {product}",
    "credit_risk": "the probability of default",
}


@dataclass(frozen=True)
class ReasonCode:
    """One feature's push on one score: ``contribution`` > 0 raises it (log-odds)."""

    feature: str
    value: float | str | None
    contribution: float
    sentence: str


@dataclass(frozen=True)
class Explanation:
    """All contributions of one customer's score, their base value, and the top-k reasons."""

    model: str
    customer_id: int
    product: str | None
    probability: float
    raw_score: float
    base_value: float
    contributions: dict[str, float]
    values: dict[str, float | str | None]
    reasons: list[ReasonCode]

    def to_dict(self) -> dict:
        return asdict(self)


def contributions(model, frame: pd.DataFrame) -> tuple:
    """``(contributions, base values, raw scores, model inputs)`` for every row of ``frame``.

    ``model inputs`` is the prepared matrix: the values the booster saw, derived inputs included.

    The raw score is predicted separately by the booster (not summed from the contributions), so
    the additivity ``base + sum(contributions) == raw`` is a real check, not a tautology.
    """
    prepared = model.prepare(frame)
    matrix = np.asarray(model.booster.predict(prepared, pred_contrib=True))
    raw = np.asarray(model.booster.predict(prepared, raw_score=True))
    return (
        pd.DataFrame(matrix[:, :-1], columns=model.features, index=frame.index),
        matrix[:, -1],
        raw,
        prepared,
    )


def shown_values(
    model, frame: pd.DataFrame, inputs: pd.DataFrame, product: str | None
) -> pd.DataFrame:
    """``inputs`` with every numeric value read back from ``frame`` (the store's float64) instead
    of the float32 the booster is fed: a reason must quote the customer's data exactly. Aligned
    inputs (``int_page_views_offered_3m``) quote the offered product's column."""
    alignment = getattr(model.scoring_model, "alignment", {}) or {}
    shown = inputs.astype(object)
    for name in inputs.columns:
        if name in model.categories or name in KEY_INPUTS:
            continue
        source = name if name in frame.columns else alignment.get(name, {}).get(product)
        if source in frame.columns:
            values = pd.to_numeric(frame[source], errors="coerce")
            shown[name] = values.to_numpy(dtype=float, na_value=np.nan)
    return shown


def _plain(value) -> float | str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return value


def format_value(value) -> str:
    value = _plain(value)
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


def describe_input(model, feature: str, product: str | None) -> str:
    """What ``feature`` measures, from the feature store's description.

    Inputs the model derives itself (cross-sell's product-aligned columns, e.g.
    ``int_page_views_offered_3m``) are described by the store column they were read from for the
    offered product (``int_page_views_mortgage_3m``).
    """
    from features.catalog import describe

    if feature in KEY_INPUTS:
        return "The product offered"
    try:
        return describe(feature)
    except KeyError:
        sources = getattr(model.scoring_model, "alignment", {}).get(feature, {})
        if product in sources:
            return describe(sources[product])
        return feature.replace("_", " ").capitalize()


def sentence(feature: str, value, contribution: float, model, product: str | None) -> str:
    """``"<what the feature measures> is <value>: raises|lowers <outcome>."``"""
    # The first clause, without a trailing aside: "Days since the last salary credit".
    text = describe_input(model, feature, product)
    head = re.sub(r"\s*\([^)]*\)$", "", text.split(";")[0].strip().rstrip("."))
    outcome = OUTCOMES.get(model.name, "the score").format(
        product=(product or "").replace("_", " ")
    )
    verb = "raises" if contribution > 0 else "lowers"
    return f"{head} is {format_value(value)}: {verb} {outcome}."


def reason_codes(
    model, row: pd.Series, contribution: pd.Series, top_k: int, product: str | None = None
) -> list[ReasonCode]:
    """The ``top_k`` largest contributions by absolute size, with their values and sentences.

    Key inputs (the product a cross-sell score is for) are left out: they say what was asked, not
    why this customer scores as they do. They still count in ``contributions``.
    """
    order = (
        contribution.drop(labels=[k for k in KEY_INPUTS if k in contribution.index])
        .abs()
        .sort_values(ascending=False, kind="stable")
        .index[:top_k]
    )
    return [
        ReasonCode(
            feature=name,
            value=_plain(row[name]),
            contribution=float(contribution[name]),
            sentence=sentence(name, row[name], float(contribution[name]), model, product),
        )
        for name in order
        if contribution[name] != 0
    ]


def explain_rows(
    model, features: pd.DataFrame, top_k: int, product: str | None = None
) -> list[Explanation]:
    """Explanations for every row of ``features`` (``customer_id`` + the model's features).

    For the cross-sell model ``product`` is the offer being explained (a model input).
    """
    frame = features.reset_index(drop=True).copy()
    if "product" in model.features:
        if product is None:
            raise ValueError("the cross_sell model explains one product: pass product=...")
        frame["product"] = product
    contrib, base, raw, inputs = contributions(model, frame)
    shown = shown_values(model, frame, inputs, product)
    probability = model.predict_proba(frame)
    out = []
    for i in range(len(frame)):
        row = shown.iloc[i].astype(object)
        out.append(
            Explanation(
                model=model.name,
                customer_id=int(frame.loc[i, "customer_id"]),
                product=product if "product" in model.features else None,
                probability=float(probability[i]),
                raw_score=float(raw[i]),
                base_value=float(base[i]),
                contributions={k: float(v) for k, v in contrib.loc[i].items()},
                values={k: _plain(v) for k, v in row.items()},
                reasons=reason_codes(model, row, contrib.loc[i], top_k, product),
            )
        )
    return out
