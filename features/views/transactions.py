"""Transaction features: recency/frequency/monetary, flows, salary, balances, spending, channels.

All amounts are summed across every account the customer holds. The table reads the shared
``transactions_monthly`` aggregate and each account's month-end balance from ``account_monthly``
(see :mod:`features.staging`); month windows (1/3/6/12 months ≈ 30/90/180/365 days) are then
window functions over the dense customer × month ``spine``. Month ``m`` of the spine feeds
snapshot ``m + 1 month``, so a snapshot only sees transactions strictly before it.
"""

from __future__ import annotations

from crmscore.schema import MATURING_PRODUCTS, MERCHANT_CATEGORIES
from features.spec import Feature, FeatureGroup

#: Accounts whose balance is the customer's own money (credit balances live in the credit view).
#: Term deposits and wealth products post no transactions: their principal counts while held.
POSTING_PRODUCTS = ("current", "savings")
_WINDOWS = (1, 3, 6, 12)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_SQL = f"""
WITH account_balance AS (
    -- Each deposit account's balance at the month end: the last posting carried forward through
    -- quiet months; term deposits and wealth products count their principal while held; a closed
    -- account holds nothing.
    SELECT
        a.customer_id,
        m.month,
        a.product,
        CASE
            WHEN a.close_date < m.snapshot OR a.open_date >= m.snapshot THEN 0
            WHEN a.product IN {_in(MATURING_PRODUCTS)} THEN a.limit_amount
            ELSE coalesce(last_value(e.month_end_balance IGNORE NULLS) OVER (
                PARTITION BY a.account_id ORDER BY m.month
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0)
        END AS balance
    FROM accounts a
    CROSS JOIN months m
    LEFT JOIN account_monthly e ON e.account_id = a.account_id AND e.month = m.month
    WHERE a.product IN {_in(POSTING_PRODUCTS + MATURING_PRODUCTS)}
),
balances AS (
    SELECT
        customer_id,
        month,
        sum(balance) AS deposit_balance,
        coalesce(sum(balance) FILTER (WHERE product = 'current'), 0) AS current_balance
    FROM account_balance
    GROUP BY ALL
),
grid AS (
    SELECT
        s.customer_id, s.month, s.month_index, s.event_timestamp, s.known,
        coalesce(COLUMNS(m.* EXCLUDE (customer_id, month, last_ts, last_salary_ts)), 0),
        m.last_ts,
        m.last_salary_ts,
        coalesce(b.deposit_balance, 0) AS deposit_balance,
        coalesce(b.current_balance, 0) AS current_balance
    FROM spine s
    LEFT JOIN transactions_monthly m USING (customer_id, month)
    LEFT JOIN balances b USING (customer_id, month)
)
SELECT
    customer_id,
    event_timestamp,
    {", ".join(f"sum(n) OVER w{k} AS txn_count_{k}m" for k in _WINDOWS)},
    {", ".join(f"sum(amount) OVER w{k} AS txn_amount_{k}m" for k in _WINDOWS)},
    (epoch(event_timestamp) - epoch(max(last_ts) OVER wall)) / 86400 AS txn_days_since_last,
    sum((n > 0)::INT) OVER w12 AS txn_active_months_12m,
    sum(n) OVER w3 / nullif(sum(n) OVER w3prev, 0) AS txn_count_trend_3m,
    sum(inflow) OVER w3 AS txn_inflow_3m,
    sum(outflow) OVER w3 AS txn_outflow_3m,
    sum(inflow) OVER w12 AS txn_inflow_12m,
    sum(outflow) OVER w12 AS txn_outflow_12m,
    sum(inflow - outflow) OVER w3 AS txn_net_flow_3m,
    sum(outflow) OVER w3 / nullif(sum(inflow) OVER w3, 0) AS txn_outflow_inflow_ratio_3m,
    sum(salary) OVER w3 AS txn_salary_3m,
    sum((salary > 0)::INT) OVER w6 AS txn_salary_months_6m,
    sum((salary > 0)::INT) OVER w12 AS txn_salary_months_12m,
    (epoch(event_timestamp) - epoch(max(last_salary_ts) OVER wall)) / 86400
        AS txn_days_since_salary,
    sum(salary) OVER w3 / nullif(sum(salary) OVER w3prev, 0) AS txn_salary_trend_3m,
    deposit_balance AS txn_deposit_balance,
    deposit_balance - lag(deposit_balance, 3) OVER wall AS txn_deposit_balance_change_3m,
    avg(deposit_balance) OVER w6 AS txn_deposit_balance_mean_6m,
    regr_slope(deposit_balance, month_index) OVER w6 AS txn_deposit_balance_slope_6m,
    stddev_samp(deposit_balance) OVER w6 / nullif(abs(avg(deposit_balance) OVER w6), 0)
        AS txn_deposit_balance_volatility_6m,
    current_balance AS txn_current_balance,
    sum((current_balance < 0)::INT) OVER w6 AS txn_overdraft_months_6m,
    sum(card_spend) OVER w1 AS txn_card_spend_1m,
    sum(card_spend) OVER w3 AS txn_card_spend_3m,
    sum(card_spend) OVER w12 AS txn_card_spend_12m,
    {", ".join(f"sum(spend_{c}) OVER w3 AS txn_spend_{c}_3m" for c in MERCHANT_CATEGORIES)},
    sum(n_branch) OVER w3 / nullif(sum(n) OVER w3, 0) AS txn_branch_share_3m,
    sum(n_atm) OVER w3 / nullif(sum(n) OVER w3, 0) AS txn_atm_share_3m,
    sum(n_pos) OVER w3 / nullif(sum(n) OVER w3, 0) AS txn_pos_share_3m,
    sum(n_digital) OVER w3 / nullif(sum(n) OVER w3, 0) AS txn_digital_share_3m,
    sum(atm_amount) OVER w3 AS txn_atm_withdrawal_3m,
    sum(n_bill) OVER w3 AS txn_bill_payment_count_3m,
    sum(repayments) OVER w3 AS txn_repayments_3m,
    sum(fees) OVER w3 AS txn_fees_3m,
    sum(interest) OVER w12 AS txn_interest_12m,
    known
FROM grid
WINDOW
    w1 AS (PARTITION BY customer_id ORDER BY month ROWS CURRENT ROW),
    w3 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW),
    w3prev AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 5 PRECEDING AND 3 PRECEDING),
    w6 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 5 PRECEDING AND CURRENT ROW),
    w12 AS (PARTITION BY customer_id ORDER BY month ROWS BETWEEN 11 PRECEDING AND CURRENT ROW),
    wall AS (PARTITION BY customer_id ORDER BY month
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""

_CATEGORY_SPEND = tuple(
    Feature(
        f"txn_spend_{c}_3m",
        "float",
        f"Card spending at {c.replace('_', ' ')} merchants in the last 3 months (currency).",
    )
    for c in MERCHANT_CATEGORIES
)

GROUP = FeatureGroup(
    name="transactions",
    description="Customer activity from posted transactions, summed across all accounts.",
    tags={"source": "transactions", "grain": "customer x month-start snapshot"},
    sql=_SQL,
    features=(
        *(
            Feature(
                f"txn_count_{k}m",
                "int",
                f"Customer-initiated transactions in the last {k} month{'s' * (k > 1)} "
                "(excludes interest and fees).",
            )
            for k in _WINDOWS
        ),
        *(
            Feature(
                f"txn_amount_{k}m",
                "float",
                f"Value of customer-initiated transactions in the last {k} month{'s' * (k > 1)}, "
                "in and out (currency).",
            )
            for k in _WINDOWS
        ),
        Feature(
            "txn_days_since_last",
            "float",
            "Days since the customer's last own transaction; empty if they never transacted.",
        ),
        Feature(
            "txn_active_months_12m",
            "int",
            "Months of the last 12 with at least one customer-initiated transaction.",
        ),
        Feature(
            "txn_count_trend_3m",
            "float",
            "Transactions in the last 3 months divided by the 3 months before (below 1 = falling).",
        ),
        Feature(
            "txn_inflow_3m",
            "float",
            "Money received from outside the customer's own accounts (salary, transfers in), last "
            "3 months.",
        ),
        Feature(
            "txn_outflow_3m",
            "float",
            "Money paid out of the customer's own accounts (spending, bills, cash, transfers, "
            "instalments), last 3 months.",
        ),
        Feature(
            "txn_inflow_12m",
            "float",
            "Money received from outside the customer's own accounts, last 12 months.",
        ),
        Feature(
            "txn_outflow_12m",
            "float",
            "Money paid out of the customer's own accounts, last 12 months.",
        ),
        Feature("txn_net_flow_3m", "float", "Inflow minus outflow over the last 3 months."),
        Feature(
            "txn_outflow_inflow_ratio_3m",
            "float",
            "Outflow divided by inflow over the last 3 months (above 1 = drawing down funds).",
        ),
        Feature("txn_salary_3m", "float", "Salary credited in the last 3 months (currency)."),
        Feature(
            "txn_salary_months_6m",
            "int",
            "Months of the last 6 with a salary credit (salary regularity).",
        ),
        Feature("txn_salary_months_12m", "int", "Months of the last 12 with a salary credit."),
        Feature(
            "txn_days_since_salary",
            "float",
            "Days since the last salary credit; empty if no salary was ever credited here.",
        ),
        Feature(
            "txn_salary_trend_3m",
            "float",
            "Salary of the last 3 months divided by the 3 months before (below 1 = salary moving "
            "away, above 1 = pay rise).",
        ),
        Feature(
            "txn_deposit_balance",
            "float",
            "Total balance of current, savings, term-deposit and wealth accounts at the last "
            "month end.",
        ),
        Feature(
            "txn_deposit_balance_change_3m",
            "float",
            "Change in total deposit balance over the last 3 month ends (currency).",
        ),
        Feature("txn_deposit_balance_mean_6m", "float", "Mean deposit balance over 6 month ends."),
        Feature(
            "txn_deposit_balance_slope_6m",
            "float",
            "Trend of the deposit balance over 6 month ends (currency per month, least squares).",
        ),
        Feature(
            "txn_deposit_balance_volatility_6m",
            "float",
            "Standard deviation of the deposit balance over 6 month ends divided by its mean.",
        ),
        Feature(
            "txn_current_balance",
            "float",
            "Current-account balance at the last month end (negative = overdrawn).",
        ),
        Feature(
            "txn_overdraft_months_6m",
            "int",
            "Month ends of the last 6 with the current account overdrawn.",
        ),
        Feature("txn_card_spend_1m", "float", "Card spending in the last month (currency)."),
        Feature("txn_card_spend_3m", "float", "Card spending in the last 3 months (currency)."),
        Feature("txn_card_spend_12m", "float", "Card spending in the last 12 months (currency)."),
        *_CATEGORY_SPEND,
        Feature(
            "txn_branch_share_3m",
            "float",
            "Share of the last 3 months' own transactions made at a branch counter.",
        ),
        Feature(
            "txn_atm_share_3m",
            "float",
            "Share of the last 3 months' own transactions made at an ATM.",
        ),
        Feature(
            "txn_pos_share_3m",
            "float",
            "Share of the last 3 months' own transactions made at a point of sale.",
        ),
        Feature(
            "txn_digital_share_3m",
            "float",
            "Share of the last 3 months' own transactions made in the app or online banking.",
        ),
        Feature("txn_atm_withdrawal_3m", "float", "Cash withdrawn at ATMs, last 3 months."),
        Feature("txn_bill_payment_count_3m", "int", "Bill payments in the last 3 months."),
        Feature(
            "txn_repayments_3m",
            "float",
            "Loan instalments and card repayments paid in the last 3 months (currency).",
        ),
        Feature("txn_fees_3m", "float", "Fees charged by the bank in the last 3 months."),
        Feature("txn_interest_12m", "float", "Interest credited in the last 12 months."),
    ),
)
