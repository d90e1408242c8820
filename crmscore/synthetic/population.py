"""Who the bank's customers are: observable profile and latent traits.

Latent traits are never written to the raw tables. They drive behaviour, and behaviour drives the
outcomes, so a model can only learn them through what the customer does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from crmscore.synthetic import vocabulary
from crmscore.synthetic.config import BankConfig

# Median monthly income by occupation, in the bank's currency.
_MEDIAN_INCOME = {
    "employee": 5_500,
    "civil_servant": 6_500,
    "self_employed": 6_000,
    "business_owner": 12_000,
    "farmer": 3_000,
    "student": 1_200,
    "retired": 3_200,
    "unemployed": 900,
}
_INCOME_EDGES = (2_000, 5_000, 10_000, 20_000)
_SALARIED = ("employee", "civil_servant", "retired")


@dataclass
class Traits:
    """Per-customer latent traits and fixed attributes the simulation needs (arrays of length N)."""

    age: np.ndarray  # years at the start of the simulation
    income: np.ndarray  # monthly income
    salaried: np.ndarray  # bool: income arrives as a salary credit
    digital: np.ndarray  # 0..1 preference for mobile/online channels
    health: np.ndarray  # financial health, N(0, 1): high = spends less than earns
    risk_appetite: np.ndarray  # N(0, 1)
    engagement: np.ndarray  # N(0, 1) initial engagement, evolves monthly
    affinity: np.ndarray  # (N, len(CROSS_SELL_PRODUCTS)) interest in each product
    tenure_years: np.ndarray
    wealth: np.ndarray  # liquid assets at the start, in months of income
    has_manager: np.ndarray

    def rows(self, lo: int, hi: int) -> Traits:
        """The traits of customers ``lo .. hi - 1``."""
        return Traits(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})


def make_customers(cfg: BankConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, Traits]:
    """Draw ``cfg.customers`` customers: the ``customers`` table and their latent traits."""
    n = cfg.customers
    start = pd.Timestamp(cfg.start)

    age = np.clip(rng.gamma(9.0, 4.8, n) + 8, 18, 90)
    occupation = _draw_occupation(age, rng)
    income = np.array([_MEDIAN_INCOME[o] for o in occupation]) * rng.lognormal(0, 0.45, n)
    income = np.round(income, -1)
    income_band = np.array(vocabulary.INCOME_BANDS)[np.searchsorted(_INCOME_EDGES, income)]

    wealth = rng.lognormal(0.8, 1.1, n) * (1 + (age > 50))
    assets = wealth * income
    segment = np.select(
        [assets > 1_000_000, assets > 300_000, assets > 100_000],
        ["private", "affluent", "emerging_affluent"],
        "mass",
    )
    has_manager = (segment != "mass") | (rng.random(n) < 0.25)

    tenure_years = np.minimum(rng.exponential(6.0, n), age - 18)
    join_date = start - pd.to_timedelta(np.round(tenure_years * 365.25), unit="D")
    birth_date = start - pd.to_timedelta(np.round(age * 365.25), unit="D")

    regions = cfg.contract.regions
    region_idx = rng.integers(0, len(regions), n)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "birth_date": birth_date.date,
            "gender": rng.choice(vocabulary.GENDERS, n, p=[0.49, 0.49, 0.02]),
            "region": np.array(regions)[region_idx],
            "branch_id": (region_idx * 10 + rng.integers(1, 7, n)).astype(np.int64),
            "occupation": occupation,
            "income_band": income_band,
            "segment": segment,
            "join_date": join_date.date,
            "manager_id": pd.array(
                np.where(has_manager, region_idx * 100 + rng.integers(1, 21, n), 0), dtype="Int64"
            ),
            "marketing_consent": rng.random(n) < 0.78,
        }
    )
    customers.loc[~has_manager, "manager_id"] = pd.NA

    digital = 1 / (1 + np.exp((age - 45) / 9)) * 0.8 + rng.uniform(0, 0.2, n)
    traits = Traits(
        age=age,
        income=income,
        salaried=np.isin(occupation, _SALARIED) & (rng.random(n) < 0.9),
        digital=digital,
        health=rng.normal(0, 1, n) + 0.3 * np.log(income / 5_000),
        risk_appetite=rng.normal(0, 1, n) - (age - 45) / 30,
        engagement=rng.normal(0, 1, n),
        affinity=rng.normal(0, 1, (n, len(vocabulary.CROSS_SELL_PRODUCTS))),
        tenure_years=tenure_years,
        wealth=wealth,
        has_manager=has_manager,
    )
    return customers, traits


def _draw_occupation(age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    working = [
        "employee",
        "civil_servant",
        "self_employed",
        "business_owner",
        "farmer",
        "unemployed",
    ]
    occupation = rng.choice(working, len(age), p=[0.55, 0.1, 0.14, 0.07, 0.08, 0.06]).astype(object)
    occupation[(age < 24) & (rng.random(len(age)) < 0.6)] = "student"
    occupation[(age > 62) & (rng.random(len(age)) < 0.85)] = "retired"
    return occupation.astype(str)
