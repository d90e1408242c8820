"""The true monthly hazards of churn, cross-sell and missed payments, and the oracle built on them.

Each hazard is a logistic function of what the bank can *observe* at the start of the month
(counts, balances, complaints, page views...), as DOMAIN.md describes the signals. Latent traits act
only through behaviour, so the best possible model is reachable from the raw data, but noise in
behaviour keeps it from being trivial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmscore.synthetic.vocabulary import CROSS_SELL_PRODUCTS

#: Months in each label horizon (DEVELOPERS.md: churn and cross-sell 3 months, default 12).
CHURN_HORIZON = 3
CROSS_SELL_HORIZON = 3
DEFAULT_HORIZON = 12


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class Observed:
    """What the bank can see of each customer at the start of a month (arrays of length N)."""

    tx_last: np.ndarray  # customer-initiated transactions last month
    tx_prev: np.ndarray  # monthly mean of the three months before that
    months_since_salary: np.ndarray  # 0 = salary credited last month; large = never
    pending_complaints: np.ndarray  # complaints not resolved by now
    complaints_3m: np.ndarray
    n_products: np.ndarray  # open accounts
    tenure_years: np.ndarray
    last_satisfaction: np.ndarray  # 0 = never surveyed, else 1..5
    views_3m: np.ndarray  # (N, P) product page views over three months
    responded_3m: np.ndarray  # (N, P) campaign responses over three months
    idle_funds: np.ndarray  # current + savings balance, in months of income
    matured_3m: np.ndarray  # a term deposit or wealth product matured in the last three months
    utilisation: np.ndarray  # credit-card balance / limit (0 without a card)
    overdrawn: np.ndarray  # current account below zero at last month end
    debt_service: np.ndarray  # monthly instalments / income
    delinquent_12m: np.ndarray  # missed a payment in the last 12 months
    new_credit_6m: np.ndarray  # credit accounts opened in the last six months
    age: np.ndarray
    income: np.ndarray
    holds: np.ndarray  # (N, len(PRODUCTS)) bool, open product holdings
    arrears: np.ndarray  # 0 current, 1 = 30 dpd, 2 = 60 dpd, 3 = defaulted


def churn_hazard(o: Observed) -> np.ndarray:
    """Monthly probability the customer closes all accounts.

    Beyond the additive signals, churn has thresholds and interactions (DOMAIN.md): a month with
    no activity at all, a new customer left with an unresolved complaint, a salary moving away
    from a thin relationship. A linear model cannot express them; trees can.
    """
    activity = np.log1p(o.tx_last)
    salary_moved = (o.months_since_salary >= 2) & (o.months_since_salary < 90)
    z = (
        -4.5
        - 1.4 * (activity - 2.7)
        - 1.8 * (activity - np.log1p(o.tx_prev))  # falling activity
        + 2.2 * salary_moved
        + 1.2 * np.minimum(o.pending_complaints, 3)
        + 0.4 * o.complaints_3m
        - 0.5 * (o.n_products - 2)
        - 0.3 * np.log1p(o.tenure_years)
        + 0.9 * ((o.last_satisfaction >= 1) & (o.last_satisfaction <= 2))
        - 0.6 * (o.last_satisfaction == 5)
        + 1.2 * (o.tx_last == 0)  # dormant last month
        + 1.2 * ((o.pending_complaints > 0) & (o.tenure_years < 2))
        + 1.0 * (salary_moved & (o.n_products <= 2))
    )
    return sigmoid(z) * (o.arrears == 0)  # customers in arrears cannot simply leave


def miss_hazard(o: Observed) -> np.ndarray:
    """Monthly probability that a customer who is current on credit misses a payment."""
    no_salary = (o.months_since_salary >= 2) & (o.months_since_salary < 90)
    return sigmoid(
        -6.6
        + 2.4 * o.utilisation
        + 1.3 * o.overdrawn
        + 1.4 * no_salary
        + 2.0 * np.minimum(o.debt_service, 1.5)
        + 1.1 * o.delinquent_12m
        + 0.4 * o.new_credit_6m
        - 0.3 * np.log1p(o.tenure_years)
        - 0.4 * np.clip(np.log(np.maximum(o.idle_funds, 0.01)), -3, 3)
    )


def scale_odds(p: np.ndarray, factor: float) -> np.ndarray:
    """Probabilities whose odds are ``factor`` times those of ``p``."""
    return p * factor / (1 - p + p * factor)


#: Extra log-odds of rolling from 30 to 60 and from 60 to 90 days past due.
ROLL_30_60 = 5.2
ROLL_60_90 = 5.8


def roll_hazards(miss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of rolling 30->60 and 60->90 days past due, given the miss hazard."""
    z = np.log(miss / (1 - miss))
    return sigmoid(z + ROLL_30_60), sigmoid(z + ROLL_60_90)


def cross_sell_hazards(o: Observed, product_index: dict[str, int]) -> np.ndarray:
    """(N, P) monthly probability of opening each cross-sell product; 0 where already held."""
    idle = np.clip(np.log(np.maximum(o.idle_funds, 0.05)), -3, 3)
    age, in_arrears = o.age, o.arrears > 0
    trigger = {
        "credit_card": 1.1 * (np.log1p(o.tx_last) - 2.7) + 1.0 * (o.months_since_salary == 0),
        "wealth_management": 0.8 * idle + 1.5 * o.matured_3m + 0.6 * (age > 35),
        "term_deposit": 0.7 * idle + 1.6 * o.matured_3m - 0.6 * (age < 30),
        "personal_loan": 1.0 * ((age >= 25) & (age <= 45))
        + 1.4 * (o.utilisation > 0.7)
        + 0.6 * o.overdrawn,
        "mortgage": 1.5 * ((age >= 27) & (age <= 45)) + 0.8 * (o.income > 6_000),
        "insurance": 1.3 * o.holds[:, product_index["mortgage"]]
        + 0.6 * ((age >= 30) & (age <= 55)),
    }
    base = {
        "credit_card": -5.9,
        "wealth_management": -6.6,
        "term_deposit": -6.0,
        "personal_loan": -6.6,
        "mortgage": -7.3,
        "insurance": -6.5,
    }
    satisfaction = 0.6 * (o.last_satisfaction == 5) - 0.5 * (
        (o.last_satisfaction >= 1) & (o.last_satisfaction <= 2)
    )
    hazards = np.empty((len(age), len(CROSS_SELL_PRODUCTS)))
    for j, product in enumerate(CROSS_SELL_PRODUCTS):
        z = (
            base[product]
            + trigger[product]
            + 1.45 * np.log1p(o.views_3m[:, j])
            + 2.2 * np.minimum(o.responded_3m[:, j], 1)
            + satisfaction
        )
        eligible = ~o.holds[:, product_index[product]]
        if product in ("credit_card", "personal_loan", "mortgage"):
            eligible &= ~in_arrears
        hazards[:, j] = sigmoid(z) * eligible
    return hazards


#: A campaign contact's effect (``crmscore generate --campaigns``): extra log-odds on the monthly
#: hazard of opening the offered product (about 2.7x the odds), for this many months.
CONTACT_UPLIFT = 1.0
CONTACT_EFFECT_MONTHS = 3


def uplifted(monthly: np.ndarray, log_odds: float) -> np.ndarray:
    """``monthly`` hazards raised by ``log_odds``; a zero hazard (not eligible) stays zero."""
    safe = np.clip(monthly, 1e-12, 1 - 1e-12)
    return np.where(monthly > 0, sigmoid(np.log(safe / (1 - safe)) + log_odds), 0.0)


def within(monthly: np.ndarray, months: int) -> np.ndarray:
    """Probability of at least one event in ``months`` months at a constant monthly hazard."""
    return 1.0 - (1.0 - monthly) ** months


def default_within(arrears: np.ndarray, miss: np.ndarray, months: int) -> np.ndarray:
    """Probability of reaching 90 days past due within ``months`` month-ends.

    Exact for the arrears chain current -> 30 -> 60 -> 90+ (a paid month cures to current), holding
    today's hazards constant. ``arrears`` is the state at the snapshot (3 = already defaulted).
    """
    roll1, roll2 = roll_hazards(miss)
    state = np.zeros((len(arrears), 3))
    live = arrears < 3
    state[live, arrears[live]] = 1.0
    defaulted = np.zeros(len(arrears))
    for _ in range(months):
        current, dpd30, dpd60 = state.T
        defaulted = defaulted + dpd60 * roll2
        state = np.column_stack(
            [
                current * (1 - miss) + dpd30 * (1 - roll1) + dpd60 * (1 - roll2),
                current * miss,
                dpd30 * roll1,
            ]
        )
    return np.where(live, defaulted, np.nan)
