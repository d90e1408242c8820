"""Scoring a frame of customers with every champion: the one function batch and HTTP share.

:func:`score_frame` takes feature rows (``customer_id`` + features, as the online store returns
them) and returns one flat row per customer: churn probability, probability of default and score
points, a propensity per cross-sell product (empty where the customer already holds it), the
customer's yearly value, tier, and the next best product. ``crmscore score`` writes exactly these
columns; ``POST /score`` nests them. Same function, same numbers.

Next best product: among the cross-sell products the customer does not hold, the one with the
highest expected value = propensity x the product's margin (the bank's contract, ``bank.yaml``;
x (1 - PD) for credit products); credit
products are not offered when PD > ``max_pd`` (suitability), and nothing is offered to a customer
with no open account (a lost customer is a win-back case). None when nothing is eligible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmscore.contract import BankContract, current_contract
from crmscore.settings import ServingSettings
from serving.champions import Champions
from serving.tiers import assign_tiers, customer_value

PRODUCT_KEY = "product"


def propensity_column(product: str) -> str:
    return f"propensity_{product}"


def holds(features: pd.DataFrame, product: str) -> pd.Series:
    """True where the customer holds ``product`` at the snapshot."""
    return features[f"prod_holds_{product}"].fillna(0).astype(float) > 0


def has_credit(features: pd.DataFrame, contract: BankContract) -> pd.Series:
    """True where the customer holds a credit product (card, loan, mortgage) at the snapshot."""
    held = [holds(features, p) for p in contract.credit_products]
    return pd.concat(held, axis=1).any(axis=1) if held else pd.Series(False, index=features.index)


def cross_sell_propensities(champions: Champions, features: pd.DataFrame) -> pd.DataFrame:
    """Propensity of every customer for every cross-sell product (one pooled model, product as an
    input); NaN where the customer already holds the product (not in the model's population)."""
    model = champions.cross_sell
    offers = current_contract().cross_sell_products
    n = len(features)
    stacked = pd.concat([features] * len(offers), ignore_index=True)
    stacked[PRODUCT_KEY] = np.repeat(offers, n)
    probability = model.predict_proba(stacked).reshape(len(offers), n).T
    held = np.column_stack([holds(features, p).to_numpy() for p in offers])
    # One masked matrix, not a Series per product: pandas' per-column overhead dominated small
    # requests.
    return pd.DataFrame(
        np.where(held, np.nan, probability),
        index=features.index,
        columns=[propensity_column(p) for p in offers],
    )


def expected_values(
    propensities: pd.DataFrame,
    pd_default: pd.Series,
    active: pd.Series,
    settings: ServingSettings,
) -> pd.DataFrame:
    """Expected yearly margin of offering each product; NaN where it may not be offered."""
    contract = current_contract()
    offers = contract.cross_sell_products
    margin = np.array([contract.products[p].margin for p in offers])
    credit = np.isin(offers, list(contract.credit_products))
    risk = pd_default.to_numpy(dtype=float)[:, None]
    value = propensities[[propensity_column(p) for p in offers]].to_numpy() * margin
    value = np.where(credit, value * (1 - risk), value)
    # Credit products are not offered above max_pd (suitability); nothing to lost customers.
    allowed = (~credit | (risk <= settings.max_pd)) & active.to_numpy(dtype=bool)[:, None]
    return pd.DataFrame(
        np.where(allowed, value, np.nan), index=propensities.index, columns=list(offers)
    )


def is_active(features: pd.DataFrame) -> pd.Series:
    """True where the customer still holds at least one open account."""
    return features["prod_n_accounts"].fillna(0) > 0


def score_frame(
    champions: Champions, features: pd.DataFrame, settings: ServingSettings
) -> pd.DataFrame:
    """One row per row of ``features`` with every score, the tier and the next best product."""
    features = features.reset_index(drop=True)
    churn = pd.Series(champions.churn.predict_proba(features), index=features.index)
    credit = champions.credit_risk
    pd_default = pd.Series(credit.predict_proba(features), index=features.index)
    points = credit.points(pd_default.to_numpy())
    propensities = cross_sell_propensities(champions, features)
    active = is_active(features)
    ev = expected_values(propensities, pd_default, active, settings).to_numpy()
    offered = ~np.isnan(ev)
    any_offer = offered.any(axis=1)
    ranked = np.where(offered, ev, -np.inf)
    # The first product with the highest expected value; None when nothing may be offered.
    products = np.asarray(current_contract().cross_sell_products, dtype=object)
    best = np.where(any_offer, products[ranked.argmax(axis=1)], None)
    best_ev = np.where(any_offer, ranked.max(axis=1), np.nan)
    value = customer_value(features, settings)
    credit_holder = has_credit(features, current_contract())
    tiers = assign_tiers(
        value=value,
        best_propensity=propensities.max(axis=1, skipna=True).fillna(0.0),
        churn=churn,
        pd_default=pd_default,
        has_credit=credit_holder,
        has_deposits=features["txn_deposit_balance"].fillna(0) > 0,
        active=active,
        settings=settings,
    )
    columns = {
        "customer_id": pd.to_numeric(features["customer_id"]).astype("Int64"),
        "churn_probability": churn,
        "probability_of_default": pd_default,
        "score_points": np.round(points, 1) if points is not None else np.nan,
        "has_credit": credit_holder,
        **{name: propensities[name] for name in propensities.columns},
        "value": value.round(2),
        **{name: tiers[name] for name in tiers.columns},
        "next_best_product": best,
        "next_best_expected_value": np.round(best_ev, 2),
    }
    for name, ref in champions.versions().items():
        columns[f"{name}_model"] = f"{ref['model']}/{ref['version']}"
    # One frame from whole columns: no concat or column-by-column inserts per request.
    return pd.DataFrame(columns, index=features.index)
