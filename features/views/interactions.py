"""Interaction features: digital engagement, contacts, complaints, campaigns and satisfaction.

Counts come from one aggregate per customer and calendar month, windowed over the ``spine``.
Complaint *state* (unresolved, time to resolve) depends on the snapshot itself, so complaints are
range-joined to every later snapshot: a complaint counts as resolved at snapshot ``s`` only if
``ts + resolution_days`` falls before ``s`` — a resolution in the future is never visible.
"""

from __future__ import annotations

from crmscore.contract import BankContract
from features.spec import Feature, FeatureGroup
from features.staging import sql_list


def _sql(contract: BankContract) -> str:
    offers = contract.cross_sell_products
    monthly_page_views = ",\n        ".join(
        f"count(*) FILTER (WHERE kind = 'product_page_view' AND product = '{p}') AS n_page_view_{p}"
        for p in offers
    )
    page_views_3m = ",\n    ".join(
        f"sum(n_page_view_{p}) OVER w3 AS int_page_views_{p}_3m" for p in offers
    )
    delay = sql_list(contract.delay_complaint_categories)
    return f"""
WITH monthly AS (
    SELECT
        customer_id,
        date_trunc('month', ts)::DATE AS month,
        count(*) AS n,
        count(*) FILTER (WHERE kind = 'branch_visit') AS n_branch_visit,
        count(*) FILTER (WHERE kind = 'manager_call') AS n_manager_call,
        count(*) FILTER (WHERE kind = 'call_centre') AS n_call_centre,
        count(*) FILTER (WHERE kind = 'complaint') AS n_complaint,
        count(*) FILTER (
            WHERE kind = 'complaint' AND complaint_category IN {delay}
        ) AS n_complaint_delay,
        count(*) FILTER (WHERE kind = 'campaign_contact') AS n_campaign_contact,
        count(*) FILTER (WHERE kind = 'campaign_response') AS n_campaign_response,
        count(*) FILTER (WHERE kind = 'app_login') AS n_app_login,
        count(*) FILTER (WHERE kind = 'product_page_view') AS n_page_view,
        {monthly_page_views},
        count(satisfaction_score) FILTER (WHERE kind = 'satisfaction_survey') AS n_survey,
        coalesce(sum(satisfaction_score) FILTER (WHERE kind = 'satisfaction_survey'), 0)
            AS satisfaction_sum,
        max(ts) AS last_ts,
        max(ts) FILTER (WHERE kind = 'manager_call') AS last_manager_ts,
        max(ts) FILTER (WHERE kind = 'complaint') AS last_complaint_ts,
        max(ts) FILTER (WHERE kind = 'campaign_contact') AS last_campaign_ts,
        arg_max(satisfaction_score, (ts, interaction_id)) FILTER (
            WHERE kind = 'satisfaction_survey' AND satisfaction_score IS NOT NULL
        ) AS last_satisfaction
    FROM interactions
    GROUP BY customer_id, date_trunc('month', ts)::DATE
),
complaint_state AS (
    -- Every complaint made before a snapshot, judged as of that snapshot.
    SELECT
        c.customer_id,
        m.month,
        count(*) FILTER (
            WHERE c.resolution_days IS NULL
               OR epoch(c.ts) + c.resolution_days * 86400 >= epoch(m.snapshot)
        ) AS unresolved,
        avg(c.resolution_days) FILTER (
            WHERE epoch(c.ts) + c.resolution_days * 86400 < epoch(m.snapshot)
        ) AS mean_resolution_days
    FROM interactions c
    JOIN months m ON c.ts < m.snapshot
    WHERE c.kind = 'complaint'
    GROUP BY c.customer_id, m.month
),
grid AS (
    SELECT
        s.customer_id, s.month, s.event_timestamp, s.known,
        coalesce(COLUMNS(m.* EXCLUDE (
            customer_id, month, last_ts, last_manager_ts, last_complaint_ts, last_campaign_ts,
            last_satisfaction
        )), 0),
        m.last_ts, m.last_manager_ts, m.last_complaint_ts, m.last_campaign_ts,
        m.last_satisfaction,
        coalesce(c.unresolved, 0) AS unresolved,
        c.mean_resolution_days
    FROM spine s
    LEFT JOIN monthly m USING (customer_id, month)
    LEFT JOIN complaint_state c USING (customer_id, month)
)
SELECT
    customer_id,
    event_timestamp,
    sum(n) OVER w3 AS int_interactions_3m,
    (epoch(event_timestamp) - epoch(max(last_ts) OVER wall)) / 86400 AS int_days_since_last,
    sum(n_branch_visit) OVER w3 AS int_branch_visits_3m,
    sum(n_manager_call) OVER w3 AS int_manager_calls_3m,
    (epoch(event_timestamp) - epoch(max(last_manager_ts) OVER wall)) / 86400
        AS int_days_since_manager_call,
    sum(n_call_centre) OVER w3 AS int_call_centre_3m,
    sum(n_complaint) OVER w3 AS int_complaints_3m,
    sum(n_complaint) OVER w12 AS int_complaints_12m,
    sum(n_complaint_delay) OVER w12 AS int_complaints_delay_12m,
    unresolved AS int_complaints_unresolved,
    mean_resolution_days AS int_complaint_mean_resolution_days,
    (epoch(event_timestamp) - epoch(max(last_complaint_ts) OVER wall)) / 86400
        AS int_days_since_complaint,
    sum(n_campaign_contact) OVER w3 AS int_campaign_contacts_3m,
    sum(n_campaign_contact) OVER w12 AS int_campaign_contacts_12m,
    sum(n_campaign_response) OVER w12 AS int_campaign_responses_12m,
    sum(n_campaign_response) OVER w12 / nullif(sum(n_campaign_contact) OVER w12, 0)
        AS int_campaign_response_rate_12m,
    (epoch(event_timestamp) - epoch(max(last_campaign_ts) OVER wall)) / 86400
        AS int_days_since_campaign_contact,
    sum(n_app_login) OVER w1 AS int_app_logins_1m,
    sum(n_app_login) OVER w3 AS int_app_logins_3m,
    sum(n_app_login) OVER w12 AS int_app_logins_12m,
    sum(n_app_login) OVER w3 / nullif(sum(n_app_login) OVER w3prev, 0) AS int_app_login_trend_3m,
    sum(n_page_view) OVER w3 AS int_page_views_3m,
    {page_views_3m},
    last_value(last_satisfaction IGNORE NULLS) OVER wall AS int_last_satisfaction,
    sum(satisfaction_sum) OVER w12 / nullif(sum(n_survey) OVER w12, 0)
        AS int_mean_satisfaction_12m,
    known
FROM grid
WINDOW
    w1 AS (PARTITION BY customer_id ORDER BY month ROWS CURRENT ROW),
    w3 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),
    w3prev AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 5 PRECEDING AND 3 PRECEDING),
    w12 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
    wall AS (PARTITION BY customer_id ORDER BY month
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


def group(contract: BankContract) -> FeatureGroup:
    """The interactions view (needs the ``interactions`` table)."""
    return FeatureGroup(
        name="interactions",
        description="Contacts between bank and customer on every channel, as of each snapshot.",
        tags={"source": "interactions", "grain": "customer x month-start snapshot"},
        sql=_sql(contract),
        requires=("interactions",),
        features=(
            Feature("int_interactions_3m", "int", "All recorded contacts, last 3 months."),
            Feature(
                "int_days_since_last",
                "float",
                "Days since the last recorded contact on any channel; empty if none.",
            ),
            Feature("int_branch_visits_3m", "int", "Branch visits, last 3 months."),
            Feature(
                "int_manager_calls_3m", "int", "Calls from the customer manager, last 3 months."
            ),
            Feature(
                "int_days_since_manager_call",
                "float",
                "Days since the customer manager last called (follow-up); empty if never.",
            ),
            Feature("int_call_centre_3m", "int", "Call-centre contacts, last 3 months."),
            Feature("int_complaints_3m", "int", "Complaints made in the last 3 months."),
            Feature("int_complaints_12m", "int", "Complaints made in the last 12 months."),
            Feature(
                "int_complaints_delay_12m",
                "int",
                "Complaints about delays or slow loan approval, last 12 months.",
            ),
            Feature(
                "int_complaints_unresolved",
                "int",
                "Complaints still unresolved at the snapshot.",
            ),
            Feature(
                "int_complaint_mean_resolution_days",
                "float",
                "Mean days the bank took to resolve this customer's complaints (resolved before "
                "the snapshot); empty if none resolved.",
            ),
            Feature(
                "int_days_since_complaint",
                "float",
                "Days since the last complaint; empty if the customer never complained.",
            ),
            Feature(
                "int_campaign_contacts_3m", "int", "Marketing campaign contacts, last 3 months."
            ),
            Feature(
                "int_campaign_contacts_12m", "int", "Marketing campaign contacts, last 12 months."
            ),
            Feature(
                "int_campaign_responses_12m",
                "int",
                "Responses to marketing campaigns, last 12 months.",
            ),
            Feature(
                "int_campaign_response_rate_12m",
                "float",
                "Campaign responses divided by campaign contacts, last 12 months.",
            ),
            Feature(
                "int_days_since_campaign_contact",
                "float",
                "Days since the customer was last contacted by a campaign; empty if never.",
            ),
            Feature("int_app_logins_1m", "int", "Mobile app logins in the last month."),
            Feature("int_app_logins_3m", "int", "Mobile app logins in the last 3 months."),
            Feature("int_app_logins_12m", "int", "Mobile app logins in the last 12 months."),
            Feature(
                "int_app_login_trend_3m",
                "float",
                "App logins in the last 3 months divided by the 3 months before (below 1 = "
                "fading).",
            ),
            Feature("int_page_views_3m", "int", "Product pages viewed in the app, last 3 months."),
            *(
                Feature(
                    f"int_page_views_{p}_3m",
                    "int",
                    f"Views of the {p.replace('_', ' ')} product page, last 3 months (interest).",
                )
                for p in contract.cross_sell_products
            ),
            Feature(
                "int_last_satisfaction",
                "float",
                "Latest satisfaction survey answer, 1 (bad) to 5 (excellent); empty if never "
                "asked.",
            ),
            Feature(
                "int_mean_satisfaction_12m",
                "float",
                "Mean satisfaction survey answer over the last 12 months.",
            ),
        ),
    )
