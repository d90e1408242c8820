"""Credit features from the monthly arrears file: balances, utilisation, days past due and
delinquency history.

``credit_status.month`` is a month-END date, so the status of month ``m`` is joined to spine month
``m`` and first seen by snapshot ``m + 1 month`` — never by a snapshot inside month ``m``. A bank
without a ``credit_status`` table has no credit view (the credit signals it still has come from
transactions: overdrafts, minimum balances, penalty interest, repayment load; and from products:
recent credit applications).
"""

from __future__ import annotations

from crmscore.contract import BankContract, ProductKind
from features.spec import Feature, FeatureGroup
from features.staging import sql_list


def _sql(contract: BankContract) -> str:
    card = sql_list(contract.products_of({ProductKind.card}))
    loans = sql_list(contract.products_of({ProductKind.loan, ProductKind.mortgage}))
    return f"""
WITH status AS (
    SELECT
        a.customer_id,
        date_trunc('month', c.month)::DATE AS month,
        count(*) AS n_accounts,
        sum(c.balance) AS balance,
        sum(a.limit_amount) AS limit_amount,
        sum(c.balance) FILTER (WHERE a.product IN {card}) AS card_balance,
        sum(a.limit_amount) FILTER (WHERE a.product IN {card}) AS card_limit,
        coalesce(sum(c.balance) FILTER (WHERE a.product IN {loans}), 0) AS loan_balance,
        max(c.days_past_due) AS dpd
    FROM credit_status c
    JOIN accounts a USING (account_id)
    GROUP BY a.customer_id, date_trunc('month', c.month)::DATE
),
grid AS (
    SELECT
        s.customer_id, s.month, s.event_timestamp, s.known,
        coalesce(st.n_accounts, 0) AS n_accounts,
        st.balance, st.limit_amount, st.card_balance, st.card_limit, st.loan_balance, st.dpd,
        st.balance / nullif(st.limit_amount, 0) AS utilisation
    FROM spine s
    LEFT JOIN status st USING (customer_id, month)
)
SELECT
    customer_id,
    event_timestamp,
    n_accounts AS credit_n_accounts,
    coalesce(balance, 0) AS credit_balance,
    coalesce(limit_amount, 0) AS credit_limit,
    utilisation AS credit_utilisation,
    card_balance / nullif(card_limit, 0) AS credit_card_utilisation,
    utilisation - lag(utilisation, 3) OVER wall AS credit_utilisation_change_3m,
    coalesce(balance, 0) - lag(coalesce(balance, 0), 3) OVER wall AS credit_balance_change_3m,
    coalesce(loan_balance, 0) AS credit_loan_balance,
    dpd AS credit_current_dpd,
    max(dpd) OVER w3 AS credit_worst_dpd_3m,
    max(dpd) OVER w12 AS credit_worst_dpd_12m,
    coalesce(sum((dpd > 0)::INT) OVER w12, 0) AS credit_months_delinquent_12m,
    coalesce(sum((dpd >= 30)::INT) OVER w12, 0) AS credit_months_30dpd_12m,
    date_diff('month', max(CASE WHEN dpd > 0 THEN month END) OVER wall, month)
        AS credit_months_since_delinquency,
    known
FROM grid
WINDOW
    w3 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),
    w12 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
    wall AS (PARTITION BY customer_id ORDER BY month
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""


_FEATURES = (
    Feature(
        "credit_n_accounts",
        "int",
        "Credit accounts (cards, loans, mortgages) reported at the last month end.",
    ),
    Feature("credit_balance", "float", "Total owed on credit accounts at the last month end."),
    Feature(
        "credit_limit",
        "float",
        "Total card limits and loan principals of the credit accounts reported.",
    ),
    Feature(
        "credit_utilisation",
        "float",
        "Credit owed divided by limits and principals at the last month end; empty without credit.",
    ),
    Feature(
        "credit_card_utilisation",
        "float",
        "Credit-card balance divided by card limit at the last month end; empty without a card.",
    ),
    Feature(
        "credit_utilisation_change_3m",
        "float",
        "Change in credit utilisation over the last 3 month ends (positive = borrowing more).",
    ),
    Feature(
        "credit_balance_change_3m",
        "float",
        "Change in the total credit owed over the last 3 month ends (currency).",
    ),
    Feature("credit_loan_balance", "float", "Owed on personal loans and mortgages."),
    Feature(
        "credit_current_dpd",
        "int",
        "Worst days past due across credit accounts at the last month end; empty without credit.",
    ),
    Feature("credit_worst_dpd_3m", "int", "Worst days past due over the last 3 month ends."),
    Feature("credit_worst_dpd_12m", "int", "Worst days past due over the last 12 month ends."),
    Feature(
        "credit_months_delinquent_12m",
        "int",
        "Month ends of the last 12 with any credit payment past due.",
    ),
    Feature(
        "credit_months_30dpd_12m",
        "int",
        "Month ends of the last 12 with a payment 30 or more days past due.",
    ),
    Feature(
        "credit_months_since_delinquency",
        "int",
        "Months since the last month end with a payment past due (0 = the last one); empty "
        "if never delinquent.",
    ),
)


def group(contract: BankContract) -> FeatureGroup:
    """The credit view (needs the ``credit_status`` table)."""
    return FeatureGroup(
        name="credit",
        description="Credit accounts' month-end statuses: exposure, utilisation and arrears.",
        tags={"source": "credit_status, accounts", "grain": "customer x month-start"},
        sql=_sql(contract),
        features=_FEATURES,
        requires=("credit_status",),
    )
