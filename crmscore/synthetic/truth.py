"""Read back the synthetic bank's truth: oracle probabilities joined to realised outcomes.

Only evaluation code may use this; features and training never read the oracle folder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from crmscore.synthetic.hazards import CHURN_HORIZON, CROSS_SELL_HORIZON, DEFAULT_HORIZON

HORIZON_MONTHS = {
    "churn": CHURN_HORIZON,
    "cross_sell": CROSS_SELL_HORIZON,
    "default": DEFAULT_HORIZON,
}


def oracle_outcomes(oracle_dir: Path, outcome: str) -> pd.DataFrame:
    """Oracle probability and realised outcome per customer, snapshot (and product).

    Only snapshots whose whole horizon lies inside the simulated period are returned.
    """
    months = HORIZON_MONTHS[outcome]
    probabilities = pd.read_parquet(
        Path(oracle_dir) / "probabilities", filters=[("outcome", "==", outcome)]
    )
    events = pd.read_parquet(Path(oracle_dir) / "events", filters=[("outcome", "==", outcome)])
    probabilities["snapshot"] = pd.to_datetime(probabilities["snapshot"])
    events["event_date"] = pd.to_datetime(events["event_date"])
    end_of_data = probabilities["snapshot"].max() + pd.DateOffset(months=1)
    probabilities = probabilities[
        probabilities["snapshot"] + pd.DateOffset(months=months) <= end_of_data
    ].reset_index(drop=True)
    key = ["customer_id", "product"] if outcome == "cross_sell" else ["customer_id"]
    merged = probabilities.reset_index().merge(events[[*key, "event_date"]], on=key, how="left")
    within = (merged["event_date"] >= merged["snapshot"]) & (
        merged["event_date"] < merged["snapshot"] + pd.DateOffset(months=months)
    )
    probabilities["label"] = within.groupby(merged["index"]).any().astype(int)
    return probabilities


def oracle_auc(oracle_dir: Path) -> dict[str, float]:
    """ROC-AUC of the oracle against realised outcomes, per outcome (cross-sell per product)."""
    result = {}
    for outcome in HORIZON_MONTHS:
        frame = oracle_outcomes(oracle_dir, outcome)
        if outcome == "cross_sell":
            for product, group in frame.groupby("product"):
                result[f"cross_sell:{product}"] = roc_auc_score(
                    group["label"], group["probability"]
                )
        else:
            result[outcome] = roc_auc_score(frame["label"], frame["probability"])
    return result
