"""The figures a model review reads: ROC, calibration, lift/gain and the SHAP summary.

Each function returns a matplotlib figure; the pipeline logs them with ``mlflow.log_figure``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def roc_figure(y, scores: dict[str, np.ndarray], title: str):
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration_figure(table: pd.DataFrame, title: str):
    fig, ax = plt.subplots(figsize=(5, 5))
    top = max(table["mean_predicted"].max(), table["observed_rate"].max()) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    ax.set(xlabel="mean predicted probability", ylabel="observed event rate", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def lift_figure(table: pd.DataFrame, title: str):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(table["decile"], table["lift"])
    left.axhline(1.0, color="grey", linestyle=":")
    left.set(xlabel="score decile (1 = highest)", ylabel="lift", title=f"{title}: lift")
    share = table["cum_customers"] / table["customers"].sum()
    right.plot(np.r_[0, share], np.r_[0, table["cum_gain"]], marker="o", label="model")
    right.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    right.set(xlabel="share of customers", ylabel="share of events", title=f"{title}: gain")
    right.legend(loc="lower right")
    fig.tight_layout()
    return fig


def shap_summary_figure(booster, features: pd.DataFrame, title: str):
    """Beeswarm of SHAP values from ``shap.TreeExplainer`` on a sample of scored rows."""
    import shap

    values = shap.TreeExplainer(booster).shap_values(features)
    if isinstance(values, list):  # older shap returns one array per class
        values = values[-1]
    plt.figure()  # summary_plot draws on the current figure: without this, on the last one made
    # An explicit generator: the beeswarm's jitter is reproducible, and shap does not warn about
    # the NumPy global RNG that another library may have seeded.
    shap.summary_plot(values, features, show=False, max_display=20, rng=np.random.default_rng(0))
    fig = plt.gcf()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.DataFrame, title: str, top: int = 20):
    """Horizontal bars of the ``top`` inputs' share of the booster's gain."""
    rows = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    ax.barh(rows["feature"], rows["importance"])
    ax.set(xlabel="share of total gain", title=title)
    fig.tight_layout()
    return fig


def grade_calibration_figure(table: pd.DataFrame, title: str):
    """Mean PD and realised default rate per rating grade (log scale: grades span decades)."""
    rows = table[(table["grade"] != "all") & (table["customers"] > 0)]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(rows))
    ax.plot(x, rows["mean_pd"], marker="o", label="mean PD")
    seen = (
        rows["realised_rate"].to_numpy() > 0
    )  # a grade without defaults has no point on a log axis
    ax.plot(x[seen], rows["realised_rate"][seen], marker="s", linestyle="", label="realised")
    ax.set_yscale("log")
    ax.set_xticks(x, rows["grade"].astype(str))
    ax.set(xlabel="rating grade", ylabel="default rate", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def series_figure(series: pd.DataFrame, test_auc: float, title: str):
    """AUC and KS per back-tested snapshot, with the champion's test AUC for reference."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(series["snapshot"], series["AUC"], marker="o", label="AUC")
    ax.plot(series["snapshot"], series["KS"], marker="s", label="KS")
    ax.axhline(test_auc, color="grey", linestyle=":", label="test AUC at training")
    ax.set(xlabel="snapshot", ylabel="value", ylim=(0, 1), title=f"{title}: back-testing")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig
