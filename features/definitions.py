"""The Feast objects: the ``customer`` entity, one file source and feature view per group, and one
feature service per model.

Built by functions, not at import time, because each source points at a table under the
*current* ``settings.features_dir``.

Which features each model may use (no label leakage: every feature is computed from data strictly
before the snapshot, and labels look only forward from it):

``churn``
    Activity, engagement, complaints, holdings and profile, plus the credit-stress signals
    (utilisation, arrears): falling balances, salary moving away, inactivity, unresolved
    complaints and fewer products are the documented churn drivers.
``cross_sell``
    Everything a propensity model needs: spending, idle funds and maturities, page views and
    campaign history, holdings, credit capacity and profile.
``credit_risk``
    A scorecard-style set: all credit, transaction and product features and the profile, but no
    marketing interactions (campaigns, page views, surveys say nothing about repayment and would
    make reason codes unexplainable to an applicant).

``marketing_consent`` is in the profile view for target-list exclusions but in no service: consent
is a rule applied to a list, not a predictor.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from features.spec import Feature, FeatureGroup
from features.views import GROUPS

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView

ENTITY_NAME = "customer"
JOIN_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
SERVICES = ("churn", "cross_sell", "credit_risk")

#: Features kept out of every model (see the module docstring).
_NOT_MODEL_INPUTS = frozenset({"marketing_consent"})
#: The credit signals a churn model may use: stress, not the whole credit file.
_CHURN_CREDIT = frozenset(
    {
        "credit_n_accounts",
        "credit_utilisation",
        "credit_utilisation_change_3m",
        "credit_current_dpd",
        "credit_worst_dpd_12m",
    }
)


def service_features(service: str) -> dict[str, list[str]]:
    """Feature names per view that the model ``service`` may use, in table order."""
    if service not in SERVICES:
        expected = ", ".join(SERVICES)
        raise KeyError(f"unknown feature service {service!r}; expected one of {expected}")

    def keep(group: FeatureGroup, feature: Feature) -> bool:
        if feature.name in _NOT_MODEL_INPUTS:
            return False
        if service == "credit_risk" and group.name == "interactions":
            return False
        if service == "churn" and group.name == "credit":
            return feature.name in _CHURN_CREDIT
        return True

    return {
        g.name: [f.name for f in g.features if keep(g, f)]
        for g in GROUPS
        if any(keep(g, f) for f in g.features)
    }


def entity() -> Entity:
    from feast import Entity, ValueType

    return Entity(
        name=ENTITY_NAME,
        join_keys=[JOIN_KEY],
        value_type=ValueType.INT64,
        description="A bank customer across all of their accounts and channels (golden record).",
    )


def feature_views() -> list[FeatureView]:
    """One feature view per group, reading ``tables/<group>.parquet`` under the current settings."""
    from feast import FeatureView, Field, FileSource
    from feast.types import Float64, Int64, String

    from crmscore.settings import get_settings
    from features.store import tables_dir

    dtypes = {"int": Int64, "float": Float64, "string": String}
    customer = entity()
    ttl = timedelta(days=get_settings().features.ttl_days)
    views = []
    for group in GROUPS:
        source = FileSource(
            name=f"{group.name}_snapshots",
            path=str(tables_dir() / f"{group.name}.parquet"),
            timestamp_field=TIMESTAMP,
            description=f"Monthly snapshots of the {group.name} features (built by DuckDB).",
        )
        views.append(
            FeatureView(
                name=group.name,
                entities=[customer],
                ttl=ttl,
                schema=[
                    Field(name=f.name, dtype=dtypes[f.kind], description=f.description)
                    for f in group.features
                ],
                source=source,
                online=True,
                description=group.description,
                tags={"owner": "features", **group.tags},
            )
        )
    return views


def feature_services(views: list[FeatureView] | None = None) -> list[FeatureService]:
    """The ``churn``, ``cross_sell`` and ``credit_risk`` services over ``views``."""
    from feast import FeatureService

    by_name = {v.name: v for v in views or feature_views()}
    descriptions = {
        "churn": "Inputs of the churn model: will the customer close all accounts within 3 months?",
        "cross_sell": "Inputs of the cross-sell propensity models (one score per product).",
        "credit_risk": "Inputs of the probability-of-default model (90+ days past due in 12 "
        "months); no marketing interactions.",
    }
    return [
        FeatureService(
            name=service,
            features=[by_name[view][names] for view, names in service_features(service).items()],
            description=descriptions[service],
            tags={"model": service},
        )
        for service in SERVICES
    ]
