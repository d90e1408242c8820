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
is a rule applied to a list, not a predictor; so are ``branch_id`` and ``manager_id`` (worklists and
portfolio views).

Views and services declare what the feature build wrote (:func:`features.catalog.built_features`):
a bank without an interaction log has no ``interactions`` view, and its services use what exists.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from features.spec import Feature, FeatureGroup

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView

ENTITY_NAME = "customer"
JOIN_KEY = "customer_id"
TIMESTAMP = "event_timestamp"
SERVICES = ("churn", "cross_sell", "credit_risk")

#: Features kept out of every model (see the module docstring): targeting rules and the keys of
#: worklists and portfolio views, not predictors.
NOT_MODEL_INPUTS = frozenset({"marketing_consent", "branch_id", "manager_id"})
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


def _model_may_use(service: str, view: str, feature: str) -> bool:
    """The service rules of the module docstring, by view and feature name."""
    if feature in NOT_MODEL_INPUTS:
        return False
    if service == "credit_risk" and view == "interactions":
        return False
    if service == "churn" and view == "credit":
        return feature in _CHURN_CREDIT
    return True


def service_features(service: str, views: dict[str, list[str]]) -> dict[str, list[str]]:
    """Feature names per view that the model ``service`` may use, out of ``views`` (view ->
    feature names, e.g. what the build wrote), in table order."""
    if service not in SERVICES:
        expected = ", ".join(SERVICES)
        raise KeyError(f"unknown feature service {service!r}; expected one of {expected}")
    chosen = {
        view: [f for f in names if _model_may_use(service, view, f)]
        for view, names in views.items()
    }
    return {view: names for view, names in chosen.items() if names}


def entity() -> Entity:
    from feast import Entity, ValueType

    return Entity(
        name=ENTITY_NAME,
        join_keys=[JOIN_KEY],
        value_type=ValueType.INT64,
        description="A bank customer across all of their accounts and channels (golden record).",
    )


def feature_views(built: dict[str, list[Feature]] | None = None) -> list[FeatureView]:
    """One feature view per built table (``tables/<group>.parquet`` under the current settings),
    declaring exactly the features the table holds (default: what the last build wrote)."""
    from feast import FeatureView, Field
    from feast.types import Float64, Int64, String

    from crmscore.settings import get_settings
    from features.catalog import built_features, group
    from features.offline_store import snapshot_source
    from features.store import tables_dir

    dtypes = {"int": Int64, "float": Float64, "string": String}
    customer = entity()
    ttl = timedelta(days=get_settings().features.ttl_days)
    views = []
    for name, features in (built or built_features()).items():
        spec: FeatureGroup = group(name)
        source = snapshot_source(
            name=f"{name}_snapshots",
            path=tables_dir() / f"{name}.parquet",
            timestamp_field=TIMESTAMP,
            description=f"Monthly snapshots of the {name} features.",
        )
        views.append(
            FeatureView(
                name=name,
                entities=[customer],
                ttl=ttl,
                schema=[
                    Field(name=f.name, dtype=dtypes[f.kind], description=f.description)
                    for f in features
                ],
                source=source,
                online=True,
                description=spec.description,
                tags={"owner": "features", **spec.tags},
            )
        )
    return views


def feature_services(views: list[FeatureView]) -> list[FeatureService]:
    """The ``churn``, ``cross_sell`` and ``credit_risk`` services over ``views``."""
    from feast import FeatureService

    by_name = {v.name: v for v in views}
    fields = {v.name: [f.name for f in v.features] for v in views}
    descriptions = {
        "churn": "Inputs of the churn model: will the customer close all accounts within 3 months?",
        "cross_sell": "Inputs of the cross-sell propensity models (one score per product).",
        "credit_risk": "Inputs of the probability-of-default model; no marketing interactions.",
    }
    return [
        FeatureService(
            name=service,
            features=[
                by_name[view][names] for view, names in service_features(service, fields).items()
            ],
            description=descriptions[service],
            tags={"model": service},
        )
        for service in SERVICES
    ]
