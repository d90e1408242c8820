"""Shared intermediate tables every feature view builds on, created once per build.

``months``
    The data months ``month`` (a DATE, first day) with their ``snapshot = month + 1 month`` and a
    running ``month_index``. Snapshot ``s`` sees month ``s - 1 month`` as its newest complete month,
    which is how "strictly before the snapshot" becomes a plain equi-join on ``month``.
``spine``
    One row per customer and data month (dense, so ``ROWS BETWEEN k PRECEDING`` windows are month
    windows), with ``event_timestamp`` (the snapshot, UTC) and ``known`` (the customer had joined
    before the snapshot; only those rows are written).
``account_monthly``
    The one full pass over ``transactions``: per account and calendar month, counts, values,
    salary, spending by category, channels, repayments and the month-end balance.
``transactions_monthly``
    ``account_monthly`` rolled up to the customer (all of their accounts), with *external*
    inflow/outflow. Money moved between the customer's own accounts (a savings sweep, a
    card repayment from the current account) is posted twice with opposite signs at the same
    instant; those mirrored pairs are netted out so that inflow means money coming from outside.
"""

from __future__ import annotations

from crmscore.schema import MERCHANT_CATEGORIES

#: Transactions the customer makes (interest and fees are the bank's doing).
INITIATED = "type NOT IN ('interest', 'fee')"

MONTHS = """
CREATE OR REPLACE TEMP TABLE months AS
WITH bounds AS (
    SELECT min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM (
        SELECT min(ts) AS first_ts, max(ts) AS last_ts FROM transactions
        UNION ALL
        SELECT min(ts), max(ts) FROM interactions
        UNION ALL
        SELECT min(month)::TIMESTAMP, max(month)::TIMESTAMP FROM credit_status
    )
)
SELECT
    range::DATE AS month,
    range + INTERVAL 1 MONTH AS snapshot,
    (row_number() OVER (ORDER BY range) - 1)::INTEGER AS month_index
FROM bounds, range(
    date_trunc('month', bounds.first_ts),
    date_trunc('month', bounds.last_ts) + INTERVAL 1 MONTH,
    INTERVAL 1 MONTH
)
"""

SPINE = """
CREATE OR REPLACE TEMP TABLE spine AS
SELECT
    c.customer_id,
    m.month,
    m.month_index,
    m.snapshot,
    timezone('UTC', m.snapshot) AS event_timestamp,
    c.join_date < m.snapshot AS known
FROM customers c
CROSS JOIN months m
ORDER BY c.customer_id, m.month
"""

_SPEND_BY_CATEGORY = ",\n        ".join(
    f"coalesce(sum(abs(amount)) FILTER (WHERE type = 'card_spend' "
    f"AND merchant_category = '{c}'), 0) AS spend_{c}"
    for c in MERCHANT_CATEGORIES
)

ACCOUNT_MONTHLY = f"""
CREATE OR REPLACE TEMP TABLE account_monthly AS
SELECT
    account_id,
    date_trunc('month', ts)::DATE AS month,
    count(*) FILTER (WHERE {INITIATED}) AS n,
    coalesce(sum(abs(amount)) FILTER (WHERE {INITIATED}), 0) AS amount,
    max(ts) FILTER (WHERE {INITIATED}) AS last_ts,
    coalesce(sum(amount) FILTER (WHERE amount > 0 AND {INITIATED}), 0) AS gross_inflow,
    coalesce(sum(-amount) FILTER (WHERE amount < 0 AND {INITIATED}), 0) AS gross_outflow,
    coalesce(sum(amount) FILTER (WHERE type = 'salary'), 0) AS salary,
    max(ts) FILTER (WHERE type = 'salary') AS last_salary_ts,
    coalesce(sum(abs(amount)) FILTER (WHERE type = 'card_spend'), 0) AS card_spend,
    {_SPEND_BY_CATEGORY},
    count(*) FILTER (WHERE channel = 'branch' AND {INITIATED}) AS n_branch,
    count(*) FILTER (WHERE channel = 'atm' AND {INITIATED}) AS n_atm,
    count(*) FILTER (WHERE channel = 'pos' AND {INITIATED}) AS n_pos,
    count(*) FILTER (WHERE channel IN ('mobile', 'online') AND {INITIATED}) AS n_digital,
    coalesce(sum(abs(amount)) FILTER (WHERE type = 'atm'), 0) AS atm_amount,
    count(*) FILTER (WHERE type = 'bill_payment') AS n_bill,
    -- Repayments leave a deposit account as a debit; the card's matching credit is not counted.
    coalesce(sum(-amount) FILTER (WHERE type = 'loan_repayment' AND amount < 0), 0) AS repayments,
    coalesce(sum(abs(amount)) FILTER (WHERE type = 'fee'), 0) AS fees,
    coalesce(sum(amount) FILTER (WHERE type = 'interest'), 0) AS interest,
    -- Balance after the month's last posting (ties broken by transaction id).
    arg_max(balance_after, (ts, transaction_id)) AS month_end_balance
FROM transactions
GROUP BY ALL
"""

TRANSACTIONS_MONTHLY = """
CREATE OR REPLACE TEMP TABLE transactions_monthly AS
WITH transfers AS (
    SELECT a.customer_id, t.account_id, t.ts, t.amount
    FROM transactions t
    JOIN accounts a USING (account_id)
    WHERE t.type IN ('transfer_in', 'transfer_out', 'loan_repayment')
),
internal AS (
    -- The credited leg of each transfer between two accounts of the same customer.
    SELECT credit.customer_id, date_trunc('month', credit.ts)::DATE AS month,
           sum(credit.amount) AS internal
    FROM transfers credit
    JOIN transfers debit
      ON debit.customer_id = credit.customer_id
     AND debit.ts = credit.ts
     AND debit.amount = -credit.amount
     AND debit.account_id <> credit.account_id
    WHERE credit.amount > 0
    GROUP BY ALL
),
monthly AS (
    -- Account months rolled up to the customer: every measure is a sum or a latest time.
    SELECT
        a.customer_id,
        m.month,
        sum(COLUMNS(m.* EXCLUDE (
            account_id, month, last_ts, last_salary_ts, month_end_balance
        ))),
        max(m.last_ts) AS last_ts,
        max(m.last_salary_ts) AS last_salary_ts
    FROM account_monthly m
    JOIN accounts a USING (account_id)
    GROUP BY ALL
)
SELECT
    m.* EXCLUDE (gross_inflow, gross_outflow),
    m.gross_inflow - coalesce(i.internal, 0) AS inflow,
    m.gross_outflow - coalesce(i.internal, 0) AS outflow
FROM monthly m
LEFT JOIN internal i USING (customer_id, month)
"""

#: In order: each statement may use the tables created before it.
STATEMENTS: tuple[tuple[str, str], ...] = (
    ("months", MONTHS),
    ("spine", SPINE),
    ("account_monthly", ACCOUNT_MONTHLY),
    ("transactions_monthly", TRANSACTIONS_MONTHLY),
)
