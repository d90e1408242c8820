"""Profile features: who the customer is, as of each snapshot (age and tenure move with it).

Categorical attributes are kept as strings (``segment``, ``income_band``, ``region``,
``occupation``) for reports and reason codes, with ordinal encodings for the two that are ordered
(``segment_rank``, ``income_band_rank``). Gender is deliberately not a feature: credit and
marketing decisions must not depend on it.

The customers table is the bank's current golden record, not a history: a segment or income band
reassigned later is visible at earlier snapshots too. That is a known limit of the raw contract.
"""

from __future__ import annotations

from crmscore.schema import INCOME_BANDS, SEGMENTS
from features.spec import Feature, FeatureGroup


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


_SQL = f"""
SELECT
    s.customer_id,
    s.event_timestamp,
    (s.snapshot::DATE - c.birth_date) / 365.25 AS age_years,
    (s.snapshot::DATE - c.join_date) / 30.4375 AS tenure_months,
    c.segment,
    list_position({_list(SEGMENTS)}, c.segment) - 1 AS segment_rank,
    c.income_band,
    list_position({_list(INCOME_BANDS)}, c.income_band) - 1 AS income_band_rank,
    c.region,
    c.occupation,
    (c.manager_id IS NOT NULL)::INT AS has_manager,
    c.marketing_consent::INT AS marketing_consent,
    s.known
FROM spine s
JOIN customers c USING (customer_id)
"""

GROUP = FeatureGroup(
    name="profile",
    description="Customer attributes from the golden record, aged to each snapshot.",
    tags={"source": "customers", "grain": "customer x month-start snapshot"},
    sql=_SQL,
    features=(
        Feature("age_years", "float", "Age in years at the snapshot."),
        Feature("tenure_months", "float", "Months as a customer of the bank at the snapshot."),
        Feature("segment", "string", f"Commercial segment by assets: {', '.join(SEGMENTS)}."),
        Feature(
            "segment_rank",
            "int",
            "Segment as a number, 0 = mass up to 3 = private (ordered by assets).",
        ),
        Feature(
            "income_band",
            "string",
            f"Declared monthly income band: {', '.join(INCOME_BANDS)}.",
        ),
        Feature(
            "income_band_rank",
            "int",
            "Declared income band as a number, 0 = lowest (<2k) up to 4 = highest (>20k).",
        ),
        Feature("region", "string", "Region of the home branch."),
        Feature("occupation", "string", "Occupation as recorded."),
        Feature("has_manager", "int", "1 if a customer manager is assigned."),
        Feature(
            "marketing_consent",
            "int",
            "1 if the customer agreed to marketing contact (a targeting rule, not a model input).",
        ),
    ),
)
