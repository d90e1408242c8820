"""Profile features: who the customer is, as of each snapshot (age and tenure move with it).

Categorical attributes are kept as strings (``segment``, ``income_band``, ``region``,
``occupation``) for reports and reason codes, with ordinal encodings for the two that are ordered
(``segment_rank``, ``income_band_rank``, in the order the bank's contract lists them). Gender is
deliberately not a feature: credit and marketing decisions must not depend on it. Occupation,
income band, segment, manager and consent are often missing from a bank's extract: the features
that need them are then left out.

``marketing_consent``, ``branch_id`` and ``manager_id`` are attributes for targeting rules,
worklists and portfolio views, in no model's feature service.

The customers table is the bank's current golden record, not a history: a segment or income band
reassigned later is visible at earlier snapshots too. That is a known limit of the raw contract.
"""

from __future__ import annotations

from crmscore.contract import BankContract
from features.spec import Feature, FeatureGroup


def _list(values) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _sql(contract: BankContract) -> str:
    return f"""
SELECT
    s.customer_id,
    s.event_timestamp,
    (s.snapshot::DATE - c.birth_date) / 365.25 AS age_years,
    (s.snapshot::DATE - c.join_date) / 30.4375 AS tenure_months,
    c.segment,
    list_position({_list(contract.segments)}, c.segment) - 1 AS segment_rank,
    c.income_band,
    list_position({_list(contract.income_bands)}, c.income_band) - 1 AS income_band_rank,
    c.region,
    c.occupation,
    (c.manager_id IS NOT NULL)::INT AS has_manager,
    c.marketing_consent::INT AS marketing_consent,
    c.branch_id,
    c.manager_id,
    s.known
FROM spine s
JOIN customers c USING (customer_id)
"""


def group(contract: BankContract) -> FeatureGroup:
    """The profile view, with ``contract``'s segment and income-band order."""
    segments, bands = contract.segments, contract.income_bands
    return FeatureGroup(
        name="profile",
        description="Customer attributes from the golden record, aged to each snapshot.",
        tags={"source": "customers", "grain": "customer x month-start snapshot"},
        sql=_sql(contract),
        features=(
            Feature("age_years", "float", "Age in years at the snapshot."),
            Feature("tenure_months", "float", "Months as a customer of the bank at the snapshot."),
            Feature(
                "segment",
                "string",
                f"Commercial segment by assets: {', '.join(segments)}.",
                needs=("customers.segment",),
            ),
            Feature(
                "segment_rank",
                "int",
                f"Segment as a number, 0 = {segments[0]} up to {len(segments) - 1} = "
                f"{segments[-1]} (ordered by assets).",
                needs=("customers.segment",),
            ),
            Feature(
                "income_band",
                "string",
                f"Declared monthly income band: {', '.join(bands)}.",
                needs=("customers.income_band",),
            ),
            Feature(
                "income_band_rank",
                "int",
                f"Declared income band as a number, 0 = lowest ({bands[0]}) up to "
                f"{len(bands) - 1} = highest ({bands[-1]}).",
                needs=("customers.income_band",),
            ),
            Feature("region", "string", "Region of the home branch."),
            Feature(
                "occupation", "string", "Occupation as recorded.", needs=("customers.occupation",)
            ),
            Feature(
                "has_manager",
                "int",
                "1 if a customer manager is assigned.",
                needs=("customers.manager_id",),
            ),
            Feature(
                "marketing_consent",
                "int",
                "1 if the customer agreed to marketing contact (a targeting rule, not a model "
                "input).",
                needs=("customers.marketing_consent",),
            ),
            Feature(
                "branch_id",
                "int",
                "Home branch (for portfolio views; not a model input).",
                needs=("customers.branch_id",),
            ),
            Feature(
                "manager_id",
                "int",
                "Assigned customer manager (for worklists; not a model input).",
                needs=("customers.manager_id",),
            ),
        ),
    )
