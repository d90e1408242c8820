"""Reason codes: which features pushed one customer's score up or down, and by how much.

Contributions are exact TreeSHAP values from LightGBM (``pred_contrib=True``) on the compiled
model's float matrix, in the booster's raw space (log-odds): for every row,
``base_value + sum(contributions) == raw_score`` (the calibrated probability is a monotone
function of that raw score, so directions carry over). Each reason gets a sentence built from the
feature's description in the feature store, e.g.
"Days since the last salary credit is 62: raises churn risk."
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from features.online import FeatureRows
    from training.compiled_model import CompiledModel

#: What a positive contribution raises, per model (the cross-sell phrase takes the product).
OUTCOMES = {
    "churn": "churn risk",
    "cross_sell": "the chance of opening a {product}",
    "credit_risk": "the probability of default",
}


@dataclass(frozen=True)
class ReasonCode:
    """One reason family's push on one score (:mod:`serving.reasons`): its stable ``code`` and
    ``text``, the summed ``contribution`` of its ``features`` (log-odds, > 0 raises the score),
    and the family's leading feature with its value and the generated ``sentence``."""

    code: str
    text: str
    feature: str
    value: float | str | None
    contribution: float
    sentence: str
    features: list[str]


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
    #: Summed contribution of the attributes never given as reasons (``never_reasons``).
    withheld: float = 0.0

    def to_dict(self) -> dict:
        """The fields as a dict; the reasons as dicts too (shallow: ``asdict`` would deep-copy
        every contribution, a tenth of an /explain's time)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["reasons"] = [{f.name: getattr(r, f.name) for f in fields(r)} for r in self.reasons]
        return out


@dataclass(frozen=True)
class Contributions:
    """TreeSHAP of ``n`` rows: ``matrix`` (rows x inputs), the base value and the booster's raw
    score of each row (predicted on its own, so additivity is a check, not a tautology), and the
    probability the model gives (calibrated where it calibrates)."""

    matrix: np.ndarray
    base: np.ndarray
    raw: np.ndarray
    probability: np.ndarray


def contributions(model: CompiledModel, rows: FeatureRows, product: str | None) -> Contributions:
    """:class:`Contributions` of ``model`` for ``rows`` (``product``: the cross-sell offer)."""
    matrix = model.matrix(rows, None if model.key is None else [product])
    shap = model.contributions(matrix)
    raw = model.raw_score(matrix)
    return Contributions(shap[:, :-1], shap[:, -1], raw, model.predict(matrix, raw))


def shown_values(model: CompiledModel, rows: FeatureRows, product: str | None) -> list[list]:
    """Per row, the value of every input as a reason quotes it: the store's float64 (not the
    float32 the booster is fed: a reason must quote the customer's data exactly), the text of a
    categorical (None when the model never saw it), the offer for the key, and for an aligned
    input (``int_page_views_offered_3m``) the offered product's column."""
    n, features = len(rows), model.features
    out = [[None] * len(features) for _ in range(n)]
    numeric = []  # (input's position, the store column it quotes) for the numeric inputs
    for i, feature in enumerate(features):
        if feature == model.key:
            for row in out:
                row[i] = product
        elif feature in model.codes:
            levels = model.codes[feature]
            for row, v in zip(out, rows[feature], strict=True):
                row[i] = v if v in levels else None
        else:
            source = model.alignment.get(feature, {}).get(product, feature)
            if source in rows.layout.index:  # else: the bank has no such column, unknown
                numeric.append((i, source))
    if numeric:  # one gather and one tolist for all of them (this is per /explain)
        at = [i for i, _ in numeric]
        block = rows.numeric[:, rows.layout.positions([s for _, s in numeric])].tolist()
        for row, values in zip(out, block, strict=True):
            for i, v in zip(at, values, strict=True):
                if v == v:  # NaN stays None
                    row[i] = v
    return out


def format_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


def describe_input(model: CompiledModel, feature: str, product: str | None) -> str:
    """What ``feature`` measures, from the feature store's description.

    Inputs the model derives itself (cross-sell's product-aligned columns, e.g.
    ``int_page_views_offered_3m``) are described by the store column they were read from for the
    offered product (``int_page_views_mortgage_3m``).
    """
    from features.catalog import describe

    if feature == model.key:
        return "The product offered"
    try:
        return describe(feature)
    except KeyError:
        sources = model.alignment.get(feature, {})
        if product in sources:
            return describe(sources[product])
        return feature.replace("_", " ").capitalize()


def sentence(
    feature: str, value, contribution: float, model: CompiledModel, product: str | None
) -> str:
    """``"<what the feature measures> is <value>: raises|lowers <outcome>."``"""
    # The first clause, without a trailing aside: "Days since the last salary credit".
    text = describe_input(model, feature, product)
    head = re.sub(r"\s*\([^)]*\)$", "", text.split(";")[0].strip().rstrip("."))
    outcome = OUTCOMES.get(model.name, "the score").format(
        product=(product or "").replace("_", " ")
    )
    verb = "raises" if contribution > 0 else "lowers"
    return f"{head} is {format_value(value)}: {verb} {outcome}."


Direction = Literal["raises", "lowers", "both"]


@dataclass(frozen=True)
class ReasonPolicy:
    """Which reasons an explanation gives: at most ``top_k`` families pushing the score in
    ``direction`` (``both``: either way, by size), never the ``withheld`` attributes."""

    top_k: int
    direction: Direction = "raises"
    withheld: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, model: str, top_k: int | None = None, direction: Direction | None = None
    ) -> ReasonPolicy:
        """The configured policy for ``model`` (``serving`` settings), with these overrides."""
        from crmscore.settings import get_settings

        settings = get_settings().serving
        return cls(
            top_k=top_k or settings.top_k,
            direction=direction or settings.reason_direction,
            withheld=frozenset(settings.never_reasons.get(model, ())),
        )


def reason_codes(
    model: CompiledModel,
    values: dict[str, float | str | None],
    contribution: dict[str, float],
    policy: ReasonPolicy,
    product: str | None = None,
) -> list[ReasonCode]:
    """The principal reasons: contributions summed per reason family, the families pushing in
    the policy's direction ranked by size (ties: by code), at most ``top_k`` of them.

    Left out: the key input (the product a cross-sell score is for: it says what was asked, not
    why this customer scores as they do) and the withheld attributes. Both still count in
    ``contributions``. A family is named by its leading feature (the one pushing hardest its
    way), whose value and sentence the reason quotes."""
    from serving.reasons import family_of

    families: dict[str, list[tuple[str, float]]] = {}
    for feature, c in contribution.items():
        if feature != model.key and feature not in policy.withheld and c != 0:
            families.setdefault(family_of(feature).code, []).append((feature, c))
    sign = {"raises": 1.0, "lowers": -1.0, "both": 0.0}[policy.direction]
    ranked = []
    for code, members in families.items():
        total = math.fsum(c for _, c in members)
        if total == 0 or total * sign < 0:
            continue
        way = 1.0 if total > 0 else -1.0
        lead, _ = max(members, key=lambda m: m[1] * way)  # first of equals: input order
        ranked.append((-abs(total), code, total, lead, [f for f, _ in members]))
    ranked.sort(key=lambda r: (r[0], r[1]))
    out = []
    for _, code, total, lead, members in ranked[: policy.top_k]:
        family = family_of(lead)
        out.append(
            ReasonCode(
                code=code,
                text=family.text,
                feature=lead,
                value=values[lead],
                contribution=total,
                sentence=sentence(lead, values[lead], total, model, product),
                features=members,
            )
        )
    return out


def explain_rows(
    model: CompiledModel,
    rows: FeatureRows,
    policy: ReasonPolicy | None = None,
    product: str | None = None,
) -> list[Explanation]:
    """Explanations for every one of ``rows`` (reasons chosen by ``policy``, default: the
    configured one); for the cross-sell model ``product`` is the offer explained (an input)."""
    policy = policy or ReasonPolicy.of(model.name)
    if model.key is not None and product is None:
        raise ValueError(f"the {model.name} model explains one {model.key}: pass product=...")
    found = contributions(model, rows, product)
    shown = shown_values(model, rows, product)
    out = []
    for i, customer_id in enumerate(rows.customer_ids):
        contribution = dict(zip(model.features, found.matrix[i].tolist(), strict=True))
        values = dict(zip(model.features, shown[i], strict=True))
        out.append(
            Explanation(
                model=model.name,
                customer_id=int(customer_id),
                product=product if model.key is not None else None,
                probability=float(found.probability[i]),
                raw_score=float(found.raw[i]),
                base_value=float(found.base[i]),
                contributions=contribution,
                values=values,
                reasons=reason_codes(model, values, contribution, policy, product),
                withheld=math.fsum(contribution.get(f, 0.0) for f in policy.withheld),
            )
        )
    return out
