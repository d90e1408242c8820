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
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from features.online import FeatureRows
    from serving.reasons import ReasonFamily
    from training.compiled_model import CompiledModel

#: What a positive contribution raises, per model (the cross-sell phrase takes the product).
OUTCOMES = {
    "churn": "churn risk",
    "cross_sell": "the chance of taking up the {product}",
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
    out = [[None] * len(model.features) for _ in range(len(rows))]
    for i, feature in enumerate(model.features):
        if feature == model.key:
            for row in out:
                row[i] = product
        elif feature in model.codes:
            levels = model.codes[feature]
            for row, v in zip(out, rows[feature], strict=True):
                row[i] = v if v in levels else None
    index = rows.layout.index  # a column the bank's data lacks stays None: unknown
    numeric = [(i, s) for i, s in model.numeric_sources(product) if s in index]
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


def describe_input(
    model: CompiledModel,
    feature: str,
    product: str | None,
    describe: Callable[[str], str] | None = None,
) -> str:
    """What ``feature`` measures, from the feature store's description (``describe``: a
    :func:`features.catalog.describer`, when the caller asks for several).

    Inputs the model derives itself (cross-sell's product-aligned columns, e.g.
    ``int_page_views_offered_3m``) are described by the store column they were read from for the
    offered product (``int_page_views_mortgage_3m``).
    """
    from features.catalog import describer

    if feature == model.key:
        return "The product offered"
    describe = describe or describer()
    try:
        return describe(feature)
    except KeyError:
        sources = model.alignment.get(feature, {})
        if product in sources:
            return describe(sources[product])
        return feature.replace("_", " ").capitalize()


def sentence(
    feature: str,
    value,
    contribution: float,
    model: CompiledModel,
    product: str | None,
    describe: Callable[[str], str] | None = None,
) -> str:
    """``"<what the feature measures> is <value>: raises|lowers <outcome>."``"""
    # The first clause, without a trailing aside: "Days since the last salary credit". Only a
    # ";" outside parentheses ends the clause: an aside may hold one ("(...; negative = ...)").
    text = describe_input(model, feature, product, describe)
    clause = re.split(r";(?![^(]*\))", text)[0]
    head = re.sub(r"\s*\([^)]*\)$", "", clause.strip().rstrip("."))
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


@lru_cache(maxsize=64)
def reason_families(
    features: tuple[str, ...], left_out: frozenset[str]
) -> tuple[tuple[ReasonFamily, tuple[int, ...]], ...]:
    """The reason families of a model's ``features`` but ``left_out``, each with its members'
    positions in input order: looked up once per model and policy, not per feature and row."""
    from serving.reasons import family_of

    members: dict[ReasonFamily, list[int]] = {}
    for i, feature in enumerate(features):
        if feature not in left_out:
            members.setdefault(family_of(feature), []).append(i)
    return tuple((family, tuple(at)) for family, at in members.items())


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
    way), whose value and sentence the reason quotes; its ``features`` are the members that
    pushed at all (a zero contribution is no reason)."""
    from features.catalog import describer

    names = tuple(contribution)
    pushes = list(contribution.values())
    sign = {"raises": 1.0, "lowers": -1.0, "both": 0.0}[policy.direction]
    ranked = []
    for family, at in reason_families(names, policy.withheld | {model.key}):
        pushed = [i for i in at if pushes[i] != 0]
        total = math.fsum(pushes[i] for i in pushed)
        if total == 0 or total * sign < 0:
            continue
        way = 1.0 if total > 0 else -1.0
        lead = max(pushed, key=lambda i: pushes[i] * way)  # first of equals: input order
        ranked.append((-abs(total), family.code, family, total, names[lead], pushed))
    ranked.sort(key=lambda r: (r[0], r[1]))
    describe = describer()  # one contract check for all the sentences
    return [
        ReasonCode(
            code=family.code,
            text=family.text,
            feature=lead,
            value=values[lead],
            contribution=total,
            sentence=sentence(lead, values[lead], total, model, product, describe),
            features=[names[i] for i in pushed],
        )
        for _, _, family, total, lead, pushed in ranked[: policy.top_k]
    ]


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
