"""Customer value and the A/B/C/D tiers customer managers plan their week with.

DOMAIN.md's tiers (one rural bank's plan), made computable from what crmscore knows:

``value``
    Yearly profit contribution of what the customer holds today: deposit balance x deposit margin
    + credit owed x lending margin + 12 months of card spend x interchange (margins in settings).
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
    owed = features["credit_balance"].fillna(0.0).clip(lower=0.0)
    spend = features["txn_card_spend_12m"].fillna(0.0).abs()
    return (
        deposits * settings.deposit_margin
        + owed * settings.lending_margin
        + spend * settings.card_interchange
    ).rename("value")


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
    risky_churn = churn >= s.tier_max_churn
    risky_credit = has_credit & (pd_default >= s.tier_max_pd)
    rules = [
        (~active, "D", lambda i: "no open account (lost customer: win-back)"),
        (risky_churn, "D", lambda i: f"churn probability {churn[i]:.2f} >= {s.tier_max_churn}"),
        (
            risky_credit,
            "D",
            lambda i: f"probability of default {pd_default[i]:.2f} >= {s.tier_max_pd}",
        ),
        (
            (value >= s.tier_a_value) & (best_propensity >= s.tier_a_propensity),
            "A",
            lambda i: (
                f"value {value[i]:,.0f}/yr >= {s.tier_a_value:,.0f} and best offer "
                f"propensity {best_propensity[i]:.2f} >= {s.tier_a_propensity}"
            ),
        ),
        (
            value >= s.tier_b_value,
            "B",
            lambda i: f"value {value[i]:,.0f}/yr >= {s.tier_b_value:,.0f}",
        ),
        (has_deposits, "C", lambda i: f"holds deposits; value {value[i]:,.0f}/yr"),
    ]
    tier = pd.Series("D", index=value.index, dtype=object)
    reason = pd.Series("", index=value.index, dtype=object)
    decided = pd.Series(False, index=value.index)
    for condition, label, explain in rules:
        hit = condition.fillna(False).astype(bool) & ~decided
        for i in hit[hit].index:
            tier[i], reason[i] = label, explain(i)
        decided |= hit
    for i in decided[~decided].index:
        reason[i] = f"no deposits and value {value[i]:,.0f}/yr < {s.tier_b_value:,.0f}"
    return pd.DataFrame(
        {
            "tier": tier,
            "tier_reason": reason,
            "contact_every_days": tier.map(CONTACT_EVERY_DAYS).astype(np.int64),
        }
    )
