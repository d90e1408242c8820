"""Customer value and the A/B/C/D tiers customer managers plan their week with.

DOMAIN.md's tiers (one rural bank's plan), made computable from what crmscore knows:

``value``
    Yearly profit contribution of what the customer holds today: deposit balance x deposit margin
    + credit owed x lending margin + 12 months of card spend x interchange (margins in settings;
    a part the bank's data cannot give, e.g. credit owed without a credit_status table, counts 0).
``D`` general customers, hard to maintain
    no open account left (lost: a win-back case, not a cross-sell one), churn probability
    >= ``tier_max_churn``, or (credit customers) PD >= ``tier_max_pd``; also anyone not
    qualifying for A-C.
``A`` key customers: deposit holders likely to add funds
    value >= ``tier_a_value`` and a best cross-sell propensity >= ``tier_a_propensity``.
``B`` target customers: good relationship, has deposits or resources
    value >= ``tier_b_value``.
``C`` potential customers: holds deposits, not yet developed
    deposit balance > 0.

The first rule that matches wins, in the order D (lost, risk), A, B, C, D. Contact policy by tier:
A and B weekly, C twice a month, D monthly. Every tier comes with the sentence that justifies it,
so a tier change can be logged with its reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmscore.settings import ServingSettings

TIERS = ("A", "B", "C", "D")
#: Days between planned contacts per tier (DOMAIN.md contact policy).
CONTACT_EVERY_DAYS = {"A": 7, "B": 7, "C": 14, "D": 30}


def customer_value(features: pd.DataFrame, settings: ServingSettings) -> pd.Series:
    """Yearly profit contribution estimate (currency) from the customer's current holdings."""
    deposits = features["txn_deposit_balance"].fillna(0.0).clip(lower=0.0)
    owed = _optional(features, "credit_balance").fillna(0.0).clip(lower=0.0)
    spend = _optional(features, "txn_card_spend_12m").fillna(0.0).abs()
    return (
        deposits * settings.deposit_margin
        + owed * settings.lending_margin
        + spend * settings.card_interchange
    ).rename("value")


def _optional(features: pd.DataFrame, name: str) -> pd.Series:
    """A feature the bank's data may lack (no credit_status, no card spending): its part of the
    value is then unknown and counts as nothing."""
    if name in features:
        return features[name]
    return pd.Series(np.nan, index=features.index)


def assign_tiers(
    value: pd.Series,
    best_propensity: pd.Series,
    churn: pd.Series,
    pd_default: pd.Series,
    has_credit: pd.Series,
    has_deposits: pd.Series,
    active: pd.Series,
    settings: ServingSettings,
) -> pd.DataFrame:
    """``tier`` and ``tier_reason`` for aligned series (one row per customer)."""
    s = settings
    churn_p = churn.to_numpy(dtype=float)
    pd_p = pd_default.to_numpy(dtype=float)
    val = value.to_numpy(dtype=float)
    best = best_propensity.to_numpy(dtype=float)

    def flag(condition: pd.Series) -> np.ndarray:
        return condition.fillna(False).to_numpy(dtype=bool)

    # (condition, tier, sentences for the rows it decides): the first match wins.
    rules = [
        (~flag(active), "D", lambda r: ["no open account (lost customer: win-back)"] * r.sum()),
        (
            churn_p >= s.tier_max_churn,
            "D",
            lambda r: [f"churn probability {c:.2f} >= {s.tier_max_churn}" for c in churn_p[r]],
        ),
        (
            flag(has_credit) & (pd_p >= s.tier_max_pd),
            "D",
            lambda r: [f"probability of default {p:.2f} >= {s.tier_max_pd}" for p in pd_p[r]],
        ),
        (
            (val >= s.tier_a_value) & (best >= s.tier_a_propensity),
            "A",
            lambda r: [
                f"value {v:,.0f}/yr >= {s.tier_a_value:,.0f} and best offer "
                f"propensity {b:.2f} >= {s.tier_a_propensity}"
                for v, b in zip(val[r], best[r], strict=True)
            ],
        ),
        (
            val >= s.tier_b_value,
            "B",
            lambda r: [f"value {v:,.0f}/yr >= {s.tier_b_value:,.0f}" for v in val[r]],
        ),
        (flag(has_deposits), "C", lambda r: [f"holds deposits; value {v:,.0f}/yr" for v in val[r]]),
        (
            np.ones(len(val), dtype=bool),
            "D",
            lambda r: [
                f"no deposits and value {v:,.0f}/yr < {s.tier_b_value:,.0f}" for v in val[r]
            ],
        ),
    ]
    # Which rule decides each row, in one pass; then each rule's sentences for its rows only
    # (whole-array selection instead of a pandas assignment per customer).
    decider = np.select([condition for condition, _, _ in rules], np.arange(len(rules)))
    tier = np.array([label for _, label, _ in rules], dtype=object)[decider]
    reason = np.empty(len(value), dtype=object)
    for k, (_, _, sentences) in enumerate(rules):
        rows = decider == k
        if rows.any():
            reason[rows] = sentences(rows)
    tier_series = pd.Series(tier, index=value.index, dtype=object)
    return pd.DataFrame(
        {
            "tier": tier_series,
            "tier_reason": pd.Series(reason, index=value.index, dtype=object),
            "contact_every_days": tier_series.map(CONTACT_EVERY_DAYS).astype(np.int64),
        }
    )
