"""Back-testing a PD: realised default rates against the predicted ones, per rating grade.

For each grade, the customers in it, their defaults, the mean PD and the realised rate, and the
Jeffreys test supervisors ask for (ECB instructions for IRB validation reporting): with a
Jeffreys prior the realised defaults ``d`` of ``n`` give a Beta(d + 1/2, n - d + 1/2) posterior
for the grade's true default rate; the one-sided p-value is the posterior probability that the
rate is at most the predicted PD, ``scipy.stats.beta.cdf(pd, d + 1/2, n - d + 1/2)``. A small
p-value says the PD is too low for what happened (underestimation, the direction that matters).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crmscore.settings import get_settings
from training.master_scale import MasterScale


def jeffreys_pvalue(defaults: int, customers: int, predicted_pd: float) -> float:
    """P(true default rate <= predicted_pd | defaults of customers), Jeffreys prior."""
    from scipy.stats import beta

    if customers == 0:
        return float("nan")
    return float(beta.cdf(predicted_pd, defaults + 0.5, customers - defaults + 0.5))


def pvalue_status(pvalue: float) -> str:
    """green / amber / red for a Jeffreys p-value (``monitoring.pvalue_amber`` / ``_red``)."""
    config = get_settings().monitoring
    if pvalue != pvalue:
        return "green"  # an empty grade predicts nothing that could be wrong
    if pvalue < config.pvalue_red:
        return "red"
    return "amber" if pvalue < config.pvalue_amber else "green"


def grade_backtest(y, probability, scale: MasterScale) -> pd.DataFrame:
    """One row per grade of ``scale`` (empty grades included) and a final ``all`` row: ``grade,
    pd_from, pd_to, customers, defaults, mean_pd, realised_rate, jeffreys_pvalue, status``."""
    y = np.asarray(y, dtype=float)
    probability = np.asarray(probability, dtype=float)
    frame = pd.DataFrame({"grade": scale.grade(probability), "y": y, "p": probability})
    grouped = frame.groupby("grade").agg(
        customers=("y", "size"), defaults=("y", "sum"), mean_pd=("p", "mean")
    )
    table = scale.table().set_index("grade").join(grouped).reset_index()
    table["customers"] = table["customers"].fillna(0).astype(int)
    table["defaults"] = table["defaults"].fillna(0).astype(int)
    overall = pd.DataFrame(
        [
            {
                "grade": "all",
                "pd_from": 0.0,
                "pd_to": 1.0,
                "customers": len(y),
                "defaults": int(y.sum()),
                "mean_pd": float(probability.mean()) if len(y) else np.nan,
            }
        ]
    )
    table = pd.concat([table, overall], ignore_index=True)
    table["realised_rate"] = table["defaults"] / table["customers"].where(table["customers"] > 0)
    table["jeffreys_pvalue"] = [
        jeffreys_pvalue(d, n, p) if n else np.nan
        for d, n, p in zip(table["defaults"], table["customers"], table["mean_pd"], strict=True)
    ]
    table["status"] = table["jeffreys_pvalue"].map(pvalue_status)
    return table
