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

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from crmscore.settings import ServingSettings

TIERS = ("A", "B", "C", "D")
#: Days between planned contacts per tier (DOMAIN.md contact policy).
CONTACT_EVERY_DAYS = {"A": 7, "B": 7, "C": 14, "D": 30}


def _amount(columns: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A feature as float64 with missing as 0. A feature the bank's data cannot give (credit owed
    without a credit_status table, no card spending) is missing throughout: its part of the value
    is unknown and counts as nothing."""
    if name not in columns:
        return np.zeros(len(columns["txn_deposit_balance"]))
    values = np.asarray(columns[name], dtype=float)
    return np.where(np.isnan(values), 0.0, values)


def customer_value(columns: Mapping[str, np.ndarray], settings: ServingSettings) -> np.ndarray:
    """Yearly profit contribution estimate (currency) from the customer's current holdings;
    ``columns`` gives each feature by name (feature rows or a frame)."""
    deposits = np.maximum(_amount(columns, "txn_deposit_balance"), 0.0)
    owed = np.maximum(_amount(columns, "credit_balance"), 0.0)
    spend = np.abs(_amount(columns, "txn_card_spend_12m"))
    return (
        deposits * settings.deposit_margin
        + owed * settings.lending_margin
        + spend * settings.card_interchange
    )


@dataclass(frozen=True)
class Tiers:
    """Per customer: the tier, the sentence that justifies it, and days between contacts."""

    tier: np.ndarray
    reason: np.ndarray
    contact_every_days: np.ndarray


def assign_tiers(
    value: np.ndarray,
    best_propensity: np.ndarray,
    churn: np.ndarray,
    pd_default: np.ndarray,
    has_credit: np.ndarray,
    has_deposits: np.ndarray,
    active: np.ndarray,
    settings: ServingSettings,
) -> Tiers:
    """The tier of each customer from aligned arrays (one entry per customer)."""
    s = settings
    churn_p = np.asarray(churn, dtype=float)
    pd_p = np.asarray(pd_default, dtype=float)
    val = np.asarray(value, dtype=float)
    best = np.asarray(best_propensity, dtype=float)
    active, has_credit, has_deposits = (
        np.asarray(flag, dtype=bool) for flag in (active, has_credit, has_deposits)
    )

    # (condition, tier, sentences for the rows it decides): the first match wins.
    rules: list[tuple[np.ndarray, str, Callable[[np.ndarray], list[str]]]] = [
        (~active, "D", lambda r: ["no open account (lost customer: win-back)"] * r.sum()),
        (
            churn_p >= s.tier_max_churn,
            "D",
            lambda r: [f"churn probability {c:.2f} >= {s.tier_max_churn}" for c in churn_p[r]],
        ),
        (
            has_credit & (pd_p >= s.tier_max_pd),
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
        (has_deposits, "C", lambda r: [f"holds deposits; value {v:,.0f}/yr" for v in val[r]]),
        (
            np.ones(len(val), dtype=bool),
            "D",
            lambda r: [
                f"no deposits and value {v:,.0f}/yr < {s.tier_b_value:,.0f}" for v in val[r]
            ],
        ),
    ]
    # Which rule decides each row (the first that holds: the last always does), in one pass;
    # then each rule's sentences for its rows only.
    decider = np.argmax(np.vstack([condition for condition, _, _ in rules]), axis=0)
    tier = np.array([label for _, label, _ in rules], dtype=object)[decider]
    reason = np.empty(len(val), dtype=object)
    for k in np.unique(decider):  # only the rules that decide some row
        rows = decider == k
        reason[rows] = rules[k][2](rows)
    contact = np.array([CONTACT_EVERY_DAYS[t] for t in tier], dtype=np.int64)
    return Tiers(tier=tier, reason=reason, contact_every_days=contact)
