"""Scoring customers with every champion: the one implementation ``POST /score``, ``/explain``,
``/targets``, ``/score_features`` and ``crmscore score`` share, so batch scores equal endpoint
scores.

Two steps, both on arrays (no per-request pandas):

1. :func:`predict` — the three compiled champions (:mod:`training.compiled_model`) on the
   customers' :class:`~features.online.FeatureRows`: churn probability, probability of default,
   and a propensity per cross-sell product (one pooled model, the product as an input);
2. :func:`decide` — the business rules on those probabilities: holdings, PD-derived outputs
   (points), customer value, tier, and the next best product.

Next best product: among the cross-sell products the customer does not hold, the one with the
highest expected value = propensity x the product's margin (the bank's contract, ``bank.yaml``;
x (1 - PD) for credit products); credit
products are not offered when PD > ``max_pd`` (suitability), and nothing is offered to a customer
with no open account (a lost customer is a win-back case). None when nothing is eligible; between
equal expected values the first product in the catalogue's order wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crmscore.settings import ServingSettings
from serving.catalogue import Offers, holding_feature, offers
from serving.champions import Champions
from serving.tiers import Tiers, assign_tiers, customer_value
from training.scorecard import Scorecard

if TYPE_CHECKING:
    from features.online import FeatureRows
    from training.compiled_model import CompiledModel


def propensity_column(product: str) -> str:
    return f"propensity_{product}"


@dataclass(frozen=True)
class Predictions:
    """What the models say, one entry per customer: ``propensity`` is (customers x products) in
    ``products`` order, for every product (holdings are a rule, applied in :func:`decide`)."""

    churn: np.ndarray
    probability_of_default: np.ndarray
    products: tuple[str, ...]
    propensity: np.ndarray
    #: The bank's own models' probabilities, by model name.
    own: dict[str, np.ndarray] = field(default_factory=dict)


def predict(
    champions: Champions, rows: FeatureRows, catalogue: Offers | None = None
) -> Predictions:
    """The three champions' probabilities for ``rows`` (see the module docstring); cross-sell's
    for each product of ``catalogue`` (default: the current contract's)."""
    products = (catalogue or offers()).products
    n = len(rows)

    def probability(model: CompiledModel, keys: tuple[str, ...] | None = None) -> np.ndarray:
        if n == 0:
            return np.empty(0 if keys is None else (0, len(keys)))
        scores = model.predict(model.matrix(rows, keys))
        return scores if keys is None else scores.reshape(len(keys), n).T

    compiled = champions.compiled
    return Predictions(
        churn=probability(compiled["churn"]),
        probability_of_default=probability(compiled["credit_risk"]),
        products=products,
        propensity=probability(compiled["cross_sell"], products),
        own={name: probability(compiled[name]) for name in champions.own},
    )


def credit_outputs(scorecard: Scorecard | None, pd_default: np.ndarray) -> dict[str, np.ndarray]:
    """Everything derived from the probability of default, by output column: PD, scorecard
    points (NaN without a scorecard) and the master scale's rating grade. The one place a
    PD-derived output is added; the batch columns and ``/score``'s ``credit_risk`` block follow
    it."""
    from training.master_scale import rating_grade

    points = np.full(len(pd_default), np.nan) if scorecard is None else scorecard.points(pd_default)
    return {
        "probability_of_default": pd_default,
        "score_points": np.round(points, 1),
        "rating_grade": rating_grade(pd_default),
    }


#: ``/score``'s ``credit_risk`` fields -> :func:`credit_outputs` columns.
CREDIT_RESPONSE_FIELDS = {
    "probability_of_default": "probability_of_default",
    "points": "score_points",
    "rating_grade": "rating_grade",
}


def held_products(rows: FeatureRows, products: tuple[str, ...]) -> np.ndarray:
    """(customers x products): True where the customer holds the product at the snapshot."""
    return np.stack([rows.get(holding_feature(p)) > 0 for p in products], axis=1)


def is_active(rows: FeatureRows) -> np.ndarray:
    """True where the customer still holds at least one open account."""
    return rows["prod_n_accounts"] > 0


def has_credit(rows: FeatureRows, catalogue: Offers | None = None) -> np.ndarray:
    """True where the customer holds a credit product (card, loan, mortgage) at the snapshot."""
    credit = (catalogue or offers()).credit
    if not credit:
        return np.zeros(len(rows), dtype=bool)
    return held_products(rows, credit).any(axis=1)


def expected_values(
    propensity: np.ndarray,
    pd_default: np.ndarray,
    active: np.ndarray,
    products: tuple[str, ...],
    settings: ServingSettings,
    catalogue: Offers | None = None,
) -> np.ndarray:
    """(customers x products): expected yearly margin of each offer; NaN where it may not be
    made (held: no propensity; credit above ``max_pd``; lost customers)."""
    credit, margins = (catalogue or offers()).per_product(products)
    risk = pd_default[:, None]
    value = propensity * margins
    value = np.where(credit, value * (1 - risk), value)
    # Suitability: no credit product above max_pd. Nothing for a customer with no open account.
    allowed = (~credit | (risk <= settings.max_pd)) & active[:, None]
    return np.where(allowed, value, np.nan)


@dataclass(frozen=True)
class Scores:
    """Every score, rule outcome and model version of ``len(customer_ids)`` customers, as arrays
    (``propensity`` is NaN where the customer holds the product). :meth:`to_frame` gives the
    flat columns ``crmscore score`` writes; ``/score`` nests the same values."""

    customer_ids: list[int | None]
    churn: np.ndarray
    credit: dict[str, np.ndarray]
    has_credit: np.ndarray
    products: tuple[str, ...]
    propensity: np.ndarray
    value: np.ndarray
    tiers: Tiers
    next_best_product: np.ndarray
    next_best_expected_value: np.ndarray
    models: dict[str, str]
    #: The bank's own models' probabilities, by model name (``<name>_probability`` columns).
    own: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.customer_ids)

    @property
    def probability_of_default(self) -> np.ndarray:
        return self.credit["probability_of_default"]

    def propensity_of(self, product: str) -> np.ndarray:
        return self.propensity[:, self.products.index(product)]

    def to_frame(self) -> pd.DataFrame:
        """One row per customer: ids, probabilities, points, propensities, value, tier, next
        best product and the ``<model>_model`` versions used."""
        columns = {
            "customer_id": pd.array(self.customer_ids, dtype="Int64"),
            "churn_probability": self.churn,
            **self.credit,
            "has_credit": self.has_credit,
            **{propensity_column(p): self.propensity[:, i] for i, p in enumerate(self.products)},
            "value": self.value,
            "tier": self.tiers.tier,
            "tier_reason": self.tiers.reason,
            "contact_every_days": self.tiers.contact_every_days,
            "next_best_product": self.next_best_product,
            "next_best_expected_value": self.next_best_expected_value,
            **{f"{name}_probability": values for name, values in self.own.items()},
            **{f"{name}_model": [ref] * len(self) for name, ref in self.models.items()},
        }
        return pd.DataFrame(columns)


def decide(
    predictions: Predictions,
    rows: FeatureRows,
    settings: ServingSettings,
    scorecard: Scorecard | None = None,
    models: dict[str, str] | None = None,
    catalogue: Offers | None = None,
) -> Scores:
    """The business rules on ``predictions`` of ``rows`` (row-aligned); ``scorecard`` turns PD
    into points, ``models`` names the version behind each score (``name -> model/version``),
    ``catalogue`` gives margins and credit products (default: the current contract's)."""
    products = predictions.products
    catalogue = catalogue or offers()  # one contract read for every rule below
    pd_default = predictions.probability_of_default
    propensity = np.where(held_products(rows, products), np.nan, predictions.propensity)
    active = is_active(rows)
    ev = expected_values(propensity, pd_default, active, products, settings, catalogue)
    offered = ~np.isnan(ev)
    any_offer = offered.any(axis=1)
    ranked = np.where(offered, ev, -np.inf)
    names = np.asarray(products, dtype=object)
    best = np.where(any_offer, names[ranked.argmax(axis=1)], None)
    best_ev = np.where(any_offer, ranked.max(axis=1, initial=-np.inf), np.nan)
    known = np.where(np.isnan(propensity), -np.inf, propensity)
    best_propensity = np.maximum(known.max(axis=1, initial=-np.inf), 0.0)
    value = customer_value(rows, settings)
    credit_holder = has_credit(rows, catalogue)
    tiers = assign_tiers(
        value=value,
        best_propensity=best_propensity,
        churn=predictions.churn,
        pd_default=pd_default,
        has_credit=credit_holder,
        has_deposits=rows["txn_deposit_balance"] > 0,
        active=active,
        settings=settings,
    )
    return Scores(
        customer_ids=list(rows.customer_ids),
        churn=predictions.churn,
        credit=credit_outputs(scorecard, pd_default),
        has_credit=credit_holder,
        products=products,
        propensity=propensity,
        value=np.round(value, 2),
        tiers=tiers,
        next_best_product=best,
        next_best_expected_value=np.round(best_ev, 2),
        models=dict(models or {}),
        own=predictions.own,
    )


def score_rows(champions: Champions, rows: FeatureRows, settings: ServingSettings) -> Scores:
    """Every score, the tier and the next best product of each of ``rows``."""
    models = {
        name: f"{ref['model']}/{ref['version']}" for name, ref in champions.versions().items()
    }
    scorecard = champions.compiled["credit_risk"].scorecard
    catalogue = offers()  # one contract read for the predictions and the rules
    predictions = predict(champions, rows, catalogue)
    return decide(predictions, rows, settings, scorecard, models, catalogue)
