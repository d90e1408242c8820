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
    salary, spending by category, channels, repayments, the lowest and the month-end balance, and
    the postings that left the account overdrawn or beyond its arranged limit.
``transactions_monthly``
    ``account_monthly`` rolled up to the customer (all of their accounts), with *external*
    inflow/outflow. Money moved between the customer's own accounts (a savings sweep, a
    card repayment from the current account) is posted twice with opposite signs at the same
    instant; those mirrored pairs are netted out so that inflow means money coming from outside.

Transaction types, channels and products are the bank's own (:mod:`crmscore.contract`); the SQL
filters them by what they mean (their kinds), so the statements are built per contract.
"""

from __future__ import annotations

from crmscore.contract import (
    BANK_INITIATED_KINDS,
    OVERDRAFT_KINDS,
    POSTING_KINDS,
    BankContract,
    ChannelKind,
    TransactionKind,
)


def sql_list(values) -> str:
    """``('a', 'b')`` for an ``IN`` clause; ``(NULL)`` for none, so the SQL stays valid."""
    quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
    return f"({quoted or 'NULL'})"


def _types(contract: BankContract, *kinds: TransactionKind) -> str:
    return sql_list(contract.transaction_types_of(*kinds))


def _months(tables: set[str], until: str | None = None, span: tuple[str, str] | None = None) -> str:
    bounds = ["SELECT min(ts) AS first_ts, max(ts) AS last_ts FROM transactions"]
    if "interactions" in tables:
        bounds.append("SELECT min(ts), max(ts) FROM interactions")
    if "credit_status" in tables:
        bounds.append("SELECT min(month)::TIMESTAMP, max(month)::TIMESTAMP FROM credit_status")
    if span is not None:  # the whole bank's months, whichever customers these tables hold
        bounds = [f"SELECT TIMESTAMP '{span[0]}' AS first_ts, TIMESTAMP '{span[1]}' AS last_ts"]
    if until is not None:  # snapshots up to ``until`` even after the data ends
        bounds.append(f"SELECT NULL, TIMESTAMP '{until}' - INTERVAL 1 MONTH")
    union = "\n        UNION ALL\n        ".join(bounds)
    return f"""
CREATE OR REPLACE TEMP TABLE months AS
WITH bounds AS (
    SELECT min(first_ts) AS first_ts, max(last_ts) AS last_ts
    FROM (
        {union}
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


def account_measures(contract: BankContract) -> dict[str, str]:
    """Name -> SQL aggregate over one account's postings in one month (``t``: transactions,
    ``a``: the account); each rolls up to the customer as a sum."""
    initiated = f"type NOT IN {_types(contract, *BANK_INITIATED_KINDS)}"
    card = _types(contract, TransactionKind.card_spend)

    def channel(*kinds: ChannelKind) -> str:
        return sql_list(contract.channels_of(*kinds))

    def postings(kind: TransactionKind) -> str:
        return f"count(*) FILTER (WHERE type IN {_types(contract, kind)})"

    def total(kind: TransactionKind, expression: str = "abs(amount)") -> str:
        return f"coalesce(sum({expression}) FILTER (WHERE type IN {_types(contract, kind)}), 0)"

    measures = {
        "n": f"count(*) FILTER (WHERE {initiated})",
        "amount": f"coalesce(sum(abs(amount)) FILTER (WHERE {initiated}), 0)",
        "gross_inflow": f"coalesce(sum(amount) FILTER (WHERE amount > 0 AND {initiated}), 0)",
        "gross_outflow": f"coalesce(sum(-amount) FILTER (WHERE amount < 0 AND {initiated}), 0)",
        "salary": total(TransactionKind.salary, "amount"),
        "card_spend": total(TransactionKind.card_spend),
        **{
            f"spend_{c}": f"coalesce(sum(abs(amount)) FILTER (WHERE type IN {card} "
            f"AND merchant_category = '{c}'), 0)"
            for c in contract.merchant_categories
        },
        # Shares are of the postings whose channel is known (many extracts leave it empty).
        "n_channel_known": f"count(channel) FILTER (WHERE {initiated})",
        "n_branch": f"count(*) FILTER (WHERE channel IN {channel(ChannelKind.branch)} "
        f"AND {initiated})",
        "n_atm": f"count(*) FILTER (WHERE channel IN {channel(ChannelKind.atm)} AND {initiated})",
        "n_pos": f"count(*) FILTER (WHERE channel IN {channel(ChannelKind.pos)} AND {initiated})",
        "n_digital": f"count(*) FILTER (WHERE channel IN {channel(ChannelKind.digital)} "
        f"AND {initiated})",
        "atm_amount": total(TransactionKind.atm),
        "n_bill": postings(TransactionKind.bill_payment),
        # Repayments leave a deposit account as a debit; the card's matching credit is not counted.
        "repayments": f"coalesce(sum(-amount) FILTER (WHERE type IN "
        f"{_types(contract, TransactionKind.repayment)} AND amount < 0), 0)",
        "fees": total(TransactionKind.fee),
        "penalties": total(TransactionKind.penalty),
        "n_penalties": postings(TransactionKind.penalty),
        "interest": total(TransactionKind.interest, "amount"),
        # Postings that left a deposit account overdrawn, or an overdraft-able account beyond its
        # arranged limit (an unarranged overdraft: validation keeps them, the features count them).
        "n_negative": f"count(*) FILTER (WHERE {_negative(contract)})",
        "n_overlimit": f"count(*) FILTER (WHERE {_overlimit(contract)})",
    }
    return measures


#: Measures that count days, not postings: the days of the month an account was overdrawn or
#: beyond its limit. They come from a small aggregate over only those postings, because a
#: ``count(DISTINCT day)`` inside the one pass over every posting makes that pass keep a set per
#: account month (40 % of the pass at 100,000 customers, and the memory it spilled at 1M).
DAY_MEASURES = ("negative_days", "overlimit_days")


def monthly_measures(contract: BankContract) -> list[str]:
    """Every measure of ``account_monthly`` that rolls up to the customer as a sum."""
    return [*account_measures(contract), *DAY_MEASURES]


def _negative(contract: BankContract) -> str:
    return f"a.product IN {sql_list(contract.products_of(POSTING_KINDS))} AND balance_after < 0"


def _overlimit(contract: BankContract) -> str:
    overdraft = sql_list(contract.products_of(OVERDRAFT_KINDS))
    return f"a.product IN {overdraft} AND balance_after < -a.limit_amount"


def _account_monthly(contract: BankContract) -> str:
    measures = ",\n        ".join(
        f"{sql} AS {name}" for name, sql in account_measures(contract).items()
    )
    initiated = f"type NOT IN {_types(contract, *BANK_INITIATED_KINDS)}"
    salary = _types(contract, TransactionKind.salary)
    posting = sql_list(contract.products_of(POSTING_KINDS))
    negative, overlimit = _negative(contract), _overlimit(contract)
    return f"""
CREATE OR REPLACE TEMP TABLE account_monthly AS
WITH postings AS (
    SELECT
        t.account_id,
        date_trunc('month', t.ts)::DATE AS month,
        {measures},
        max(ts) FILTER (WHERE {initiated}) AS last_ts,
        max(ts) FILTER (WHERE type IN {salary}) AS last_salary_ts,
        -- The lowest balance a deposit account reached after any posting of the month (the
        -- transactions view also counts the balance it entered the month with).
        min(balance_after) FILTER (WHERE a.product IN {posting}) AS min_balance,
        -- Balance after the month's last posting (ties broken by transaction id).
        arg_max(balance_after, (ts, transaction_id)) AS month_end_balance
    FROM transactions t
    JOIN accounts a USING (account_id)
    GROUP BY t.account_id, date_trunc('month', t.ts)::DATE
),
days AS (
    -- Each day an account was overdrawn or beyond its limit, from only those postings.
    SELECT t.account_id, t.ts::DATE AS day,
           bool_or({negative}) AS negative, bool_or({overlimit}) AS overlimit
    FROM transactions t
    JOIN accounts a USING (account_id)
    WHERE ({negative}) OR ({overlimit})
    GROUP BY t.account_id, t.ts::DATE
),
monthly_days AS (
    SELECT account_id, date_trunc('month', day)::DATE AS month,
           count(*) FILTER (WHERE negative) AS negative_days,
           count(*) FILTER (WHERE overlimit) AS overlimit_days
    FROM days
    GROUP BY account_id, date_trunc('month', day)::DATE
)
SELECT
    p.*,
    coalesce(d.negative_days, 0) AS negative_days,
    coalesce(d.overlimit_days, 0) AS overlimit_days
FROM postings p
LEFT JOIN monthly_days d USING (account_id, month)
"""


def _transactions_monthly(contract: BankContract) -> str:
    transfers = _types(
        contract,
        TransactionKind.transfer_in,
        TransactionKind.transfer_out,
        TransactionKind.repayment,
    )
    sums = ",\n        ".join(f"sum(m.{name}) AS {name}" for name in monthly_measures(contract))
    return f"""
CREATE OR REPLACE TEMP TABLE transactions_monthly AS
WITH transfers AS (
    SELECT a.customer_id, t.account_id, t.ts, t.amount
    FROM transactions t
    JOIN accounts a USING (account_id)
    WHERE t.type IN {transfers}
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
    GROUP BY credit.customer_id, date_trunc('month', credit.ts)::DATE
),
monthly AS (
    -- Account months rolled up to the customer: every measure is a sum or a latest time.
    SELECT
        a.customer_id,
        m.month,
        {sums},
        max(m.last_ts) AS last_ts,
        max(m.last_salary_ts) AS last_salary_ts
    FROM account_monthly m
    JOIN accounts a USING (account_id)
    GROUP BY a.customer_id, m.month
)
SELECT
    m.*,
    m.gross_inflow - coalesce(i.internal, 0) AS inflow,
    m.gross_outflow - coalesce(i.internal, 0) AS outflow
FROM monthly m
LEFT JOIN internal i USING (customer_id, month)
"""


def statements(
    contract: BankContract,
    tables: set[str],
    until: str | None = None,
    span: tuple[str, str] | None = None,
) -> tuple[tuple[str, str], ...]:
    """The staging statements, in order (each may use the tables created before it), for a
    dataset holding ``tables``; ``until`` (a month start) extends the snapshots to it, and
    ``span`` (the first and last data month) replaces the months found in the tables: a pass
    over some of the bank's customers builds the whole bank's snapshots."""
    return (
        ("months", _months(tables, until, span)),
        ("spine", SPINE),
        ("account_monthly", _account_monthly(contract)),
        ("transactions_monthly", _transactions_monthly(contract)),
    )
