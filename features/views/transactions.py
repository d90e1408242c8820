"""Transaction features: recency/frequency/monetary, flows, salary, balances, overdrafts, spending,
channels, bank charges and repayment load.

All amounts are summed across every account the customer holds. The table reads the shared
``transactions_monthly`` aggregate and each account's month figures from ``account_monthly`` (see
:mod:`features.staging`); month windows (1/3/6/12 months ≈ 30/90/180/365 days) are then window
functions over the dense customer × month ``spine``. Month ``m`` of the spine feeds snapshot
``m + 1 month``, so a snapshot only sees transactions strictly before it.

Which transactions are salaries, card spending, fees or penalty interest, and which accounts are
current accounts, is the bank's contract's to say (kinds); a feature whose kind the bank does not
declare (no salary code in its export) is not declared either. The overdraft and minimum-balance
features are the credit-practice signals: the lowest balance *within* a month (not only at its
end), postings and days below zero, and below minus the arranged limit.
"""

from __future__ import annotations

from crmscore.contract import (
    MATURING_KINDS,
    POSTING_KINDS,
    BankContract,
    ChannelKind,
    ProductKind,
    TransactionKind,
)
from features.spec import Feature, FeatureGroup
from features.staging import monthly_measures, sql_list

_WINDOWS = (1, 3, 6, 12)


def _sql(contract: BankContract) -> str:
    current = sql_list(contract.products_of({ProductKind.current}))
    measures = [*monthly_measures(contract), "inflow", "outflow"]
    zero_filled = ",\n        ".join(f"coalesce(m.{name}, 0) AS {name}" for name in measures)
    spend = ",\n    ".join(
        f"sum(spend_{c}) OVER w3 AS txn_spend_{c}_3m" for c in contract.merchant_categories
    )

    def windows(measure: str, name: str) -> str:
        return ", ".join(f"sum({measure}) OVER w{k} AS txn_{name}_{k}m" for k in _WINDOWS)

    def share(measure: str, name: str) -> str:
        return f"sum({measure}) OVER w3 / nullif(sum(n_channel_known) OVER w3, 0) AS {name}"

    return f"""
WITH account_balance AS (
    -- Each deposit account's balance at the month end: the last posting carried forward through
    -- quiet months; term deposits and wealth products count their principal while held; a closed
    -- account holds nothing. Also the lowest balance within the month: after any posting, or the
    -- balance the account entered the month with.
    SELECT
        a.customer_id,
        a.account_id,
        m.month,
        a.product,
        -- A current or savings account open at some time in the month: its minimum counts.
        a.product IN {sql_list(contract.products_of(POSTING_KINDS))}
            AND a.open_date < m.snapshot
            AND (a.close_date IS NULL OR a.close_date >= m.month) AS minimum_counts,
        CASE
            WHEN a.close_date < m.snapshot OR a.open_date >= m.snapshot THEN 0
            WHEN a.product IN {sql_list(contract.products_of(MATURING_KINDS))} THEN a.limit_amount
            ELSE coalesce(last_value(e.month_end_balance IGNORE NULLS) OVER (
                PARTITION BY a.account_id ORDER BY m.month
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0)
        END AS balance,
        e.min_balance
    FROM accounts a
    CROSS JOIN months m
    LEFT JOIN account_monthly e ON e.account_id = a.account_id AND e.month = m.month
    WHERE a.product IN {sql_list(contract.products_of(POSTING_KINDS | MATURING_KINDS))}
),
account_minimum AS (
    SELECT
        customer_id, month, product, balance,
        CASE WHEN minimum_counts THEN least(min_balance, lag(balance, 1, 0) OVER (
            PARTITION BY account_id ORDER BY month)) END AS month_min
    FROM account_balance
),
balances AS (
    SELECT
        customer_id,
        month,
        sum(balance) AS deposit_balance,
        coalesce(sum(balance) FILTER (WHERE product IN {current}), 0) AS current_balance,
        min(month_min) AS min_balance
    FROM account_minimum
    GROUP BY customer_id, month
),
grid AS (
    SELECT
        s.customer_id, s.month, s.month_index, s.event_timestamp, s.known,
        {zero_filled},
        m.last_ts,
        m.last_salary_ts,
        coalesce(b.deposit_balance, 0) AS deposit_balance,
        coalesce(b.current_balance, 0) AS current_balance,
        b.min_balance
    FROM spine s
    LEFT JOIN transactions_monthly m USING (customer_id, month)
    LEFT JOIN balances b USING (customer_id, month)
)
SELECT
    customer_id,
    event_timestamp,
    {windows("n", "count")},
    {windows("amount", "amount")},
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
    min(min_balance) OVER w1 AS txn_min_balance_1m,
    min(min_balance) OVER w3 AS txn_min_balance_3m,
    min(min_balance) OVER w12 AS txn_min_balance_12m,
    sum(n_negative) OVER w3 AS txn_negative_postings_3m,
    sum(n_negative) OVER w12 AS txn_negative_postings_12m,
    sum(negative_days) OVER w3 AS txn_negative_days_3m,
    sum(negative_days) OVER w12 AS txn_negative_days_12m,
    sum(n_overlimit) OVER w3 AS txn_overlimit_postings_3m,
    sum(n_overlimit) OVER w12 AS txn_overlimit_postings_12m,
    sum(overlimit_days) OVER w12 AS txn_overlimit_days_12m,
    sum(card_spend) OVER w1 AS txn_card_spend_1m,
    sum(card_spend) OVER w3 AS txn_card_spend_3m,
    sum(card_spend) OVER w12 AS txn_card_spend_12m,
    {spend},
    {share("n_branch", "txn_branch_share_3m")},
    {share("n_atm", "txn_atm_share_3m")},
    {share("n_pos", "txn_pos_share_3m")},
    {share("n_digital", "txn_digital_share_3m")},
    sum(atm_amount) OVER w3 AS txn_atm_withdrawal_3m,
    sum(n_bill) OVER w3 AS txn_bill_payment_count_3m,
    sum(repayments) OVER w3 AS txn_repayments_3m,
    sum(repayments) OVER w3 / nullif(sum(inflow) OVER w3, 0) AS txn_debt_service_ratio_3m,
    sum(repayments) OVER w3 / nullif(abs(avg(deposit_balance) OVER w3), 0)
        AS txn_repayment_balance_ratio_3m,
    sum(fees) OVER w3 AS txn_fees_3m,
    sum(fees) OVER w12 AS txn_fees_12m,
    sum(penalties) OVER w3 AS txn_penalty_3m,
    sum(penalties) OVER w12 AS txn_penalty_12m,
    sum(n_penalties) OVER w12 AS txn_penalty_postings_12m,
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


def _months(k: int) -> str:
    return f"the last {k} month{'s' * (k > 1)}"


def _activity() -> tuple[Feature, ...]:
    return (
        *(
            Feature(
                f"txn_count_{k}m",
                "int",
                f"Customer-initiated transactions in {_months(k)} (excludes interest and fees).",
            )
            for k in _WINDOWS
        ),
        *(
            Feature(
                f"txn_amount_{k}m",
                "float",
                f"Value of customer-initiated transactions in {_months(k)}, in and out (currency).",
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
    )


_SALARY = (
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
)

_BALANCES = (
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
    *(
        Feature(
            f"txn_min_balance_{k}m",
            "float",
            f"Lowest balance any current or savings account reached within {_months(k)} (after "
            "any posting, not only at month ends; negative = overdrawn).",
        )
        for k in (1, 3, 12)
    ),
    *(
        Feature(
            f"txn_negative_postings_{k}m",
            "int",
            f"Postings in {_months(k)} that left a current or savings account below zero.",
        )
        for k in (3, 12)
    ),
    *(
        Feature(
            f"txn_negative_days_{k}m",
            "int",
            f"Days in {_months(k)} on which a posting left a current or savings account below "
            "zero.",
        )
        for k in (3, 12)
    ),
    *(
        Feature(
            f"txn_overlimit_postings_{k}m",
            "int",
            f"Postings in {_months(k)} that took an account beyond its arranged overdraft or "
            "card limit (unarranged overdraft).",
        )
        for k in (3, 12)
    ),
    Feature(
        "txn_overlimit_days_12m",
        "int",
        "Days in the last 12 months on which a posting took an account beyond its arranged limit.",
    ),
)

_CURRENT = (
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
)

_CARD = (
    Feature("txn_card_spend_1m", "float", "Card spending in the last month (currency)."),
    Feature("txn_card_spend_3m", "float", "Card spending in the last 3 months (currency)."),
    Feature("txn_card_spend_12m", "float", "Card spending in the last 12 months (currency)."),
)

_CHANNELS = {
    ChannelKind.branch: Feature(
        "txn_branch_share_3m",
        "float",
        "Share of the last 3 months' own transactions (with a known channel) made at a branch.",
        needs=("transactions.channel",),
    ),
    ChannelKind.atm: Feature(
        "txn_atm_share_3m",
        "float",
        "Share of the last 3 months' own transactions (with a known channel) made at an ATM.",
        needs=("transactions.channel",),
    ),
    ChannelKind.pos: Feature(
        "txn_pos_share_3m",
        "float",
        "Share of the last 3 months' own transactions (with a known channel) made at a point of "
        "sale.",
        needs=("transactions.channel",),
    ),
    ChannelKind.digital: Feature(
        "txn_digital_share_3m",
        "float",
        "Share of the last 3 months' own transactions (with a known channel) made in the app or "
        "online banking.",
        needs=("transactions.channel",),
    ),
}

_REPAYMENTS = (
    Feature(
        "txn_repayments_3m",
        "float",
        "Loan instalments and card repayments paid in the last 3 months (currency).",
    ),
    Feature(
        "txn_debt_service_ratio_3m",
        "float",
        "Instalments and card repayments divided by income (inflow from outside the bank), last "
        "3 months.",
    ),
    Feature(
        "txn_repayment_balance_ratio_3m",
        "float",
        "Instalments and card repayments of the last 3 months divided by the mean deposit balance.",
    ),
)

_PENALTIES = (
    Feature("txn_penalty_3m", "float", "Penalty interest and arrears charges, last 3 months."),
    Feature("txn_penalty_12m", "float", "Penalty interest and arrears charges, last 12 months."),
    Feature(
        "txn_penalty_postings_12m",
        "int",
        "Penalty-interest or arrears-charge postings in the last 12 months.",
    ),
)


def group(contract: BankContract) -> FeatureGroup:
    """The transactions view for ``contract``'s products, transaction types and channels."""

    def declared(*kinds: TransactionKind) -> bool:
        return bool(contract.transaction_types_of(*kinds))

    def when(condition: bool, features: tuple[Feature, ...]) -> tuple[Feature, ...]:
        return features if condition else ()

    spend_by_category = tuple(
        Feature(
            f"txn_spend_{c}_3m",
            "float",
            f"Card spending at {c.replace('_', ' ')} merchants in the last 3 months (currency).",
            needs=("transactions.merchant_category",),
        )
        for c in contract.merchant_categories
    )
    return FeatureGroup(
        name="transactions",
        description="Customer activity from posted transactions, summed across all accounts.",
        tags={"source": "transactions, accounts", "grain": "customer x month-start snapshot"},
        sql=_sql(contract),
        features=(
            *_activity(),
            *when(declared(TransactionKind.salary), _SALARY),
            *_BALANCES,
            *when(bool(contract.products_of({ProductKind.current})), _CURRENT),
            *when(declared(TransactionKind.card_spend), _CARD + spend_by_category),
            *(f for kind, f in _CHANNELS.items() if contract.channels_of(kind)),
            *when(
                declared(TransactionKind.atm),
                (
                    Feature(
                        "txn_atm_withdrawal_3m", "float", "Cash withdrawn at ATMs, last 3 months."
                    ),
                ),
            ),
            *when(
                declared(TransactionKind.bill_payment),
                (
                    Feature(
                        "txn_bill_payment_count_3m", "int", "Bill payments in the last 3 months."
                    ),
                ),
            ),
            *when(declared(TransactionKind.repayment), _REPAYMENTS),
            *when(
                declared(TransactionKind.fee),
                (
                    Feature(
                        "txn_fees_3m", "float", "Fees charged by the bank in the last 3 months."
                    ),
                    Feature("txn_fees_12m", "float", "Fees charged by the bank, last 12 months."),
                ),
            ),
            *when(declared(TransactionKind.penalty), _PENALTIES),
            *when(
                declared(TransactionKind.interest),
                (Feature("txn_interest_12m", "float", "Interest credited in the last 12 months."),),
            ),
        ),
    )
