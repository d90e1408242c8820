"""Rules of crmscore.validation on in-memory frames: exact casts, every rule, readable messages."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from crmscore.validation import (
    MAX_EXAMPLES,
    DatasetValidationError,
    cast_column,
    check_dataset,
    validate_dataset,
)


def problems_of(tables, as_of) -> list[str]:
    _, problems = check_dataset(tables, as_of)
    return [str(p) for p in problems]


def assert_rejected(tables, as_of, where: str, rule: str) -> str:
    """The dataset fails, and one line names ``table.column`` and ``[rule]``."""
    with pytest.raises(DatasetValidationError) as caught:
        validate_dataset(tables, as_of)
    message = str(caught.value)
    assert any(line.startswith(f"- {where} [{rule}]") for line in message.splitlines()), message
    return message


def test_tiny_bank_is_valid(tiny_bank, tiny_as_of):
    validate_dataset(tiny_bank, tiny_as_of)


def test_typed_tables_use_the_canonical_dtypes(tiny_bank, tiny_as_of):
    typed, problems = check_dataset(tiny_bank, tiny_as_of)
    assert problems == []
    assert str(typed["customers"]["manager_id"].dtype) == "Int64"
    assert typed["transactions"]["ts"].dtype == "datetime64[ns]"
    assert typed["customers"]["marketing_consent"].dtype == "boolean"
    assert list(typed["accounts"].columns)[0] == "account_id"


# --- exact casting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype", "expected", "bad"),
    [
        (["42", " 7", "-3", None], "int64", [42, 7, -3, None], [False, False, False, False]),
        (["abc", "3.5", "1e3", "12"], "int64", [None, None, None, 12], [True, True, True, False]),
        (["123456789012345678"], "int64", [123456789012345678], [False]),
        (["1.5", "x", "inf", "-2"], "float64", [1.5, None, None, -2.0], [False, True, True, False]),
        (["true", "FALSE", "1", "yes"], "bool", [True, False, True, None],
         [False, False, False, True]),
        (["2024-01-31", "2024-02-30", "31/01/2024"], "date", ["2024-01-31", None, None],
         [False, True, True]),
        (["2024-01-31T10:00:00"], "date", [None], [True]),
        (["2024-01-31 10:00:00", "2024-01-31T12:00:00+02:00", "soon"], "timestamp",
         ["2024-01-31 10:00", "2024-01-31 10:00", None], [False, False, True]),
    ],
)  # fmt: skip
def test_text_is_parsed_exactly_or_reported(values, dtype, expected, bad):
    cast, mask, _ = cast_column(pd.Series(values, dtype="string"), dtype)
    assert mask.tolist() == bad
    if dtype in ("date", "timestamp"):
        expected = [pd.Timestamp(v) if v else pd.NaT for v in expected]
    assert [None if pd.isna(v) else v for v in cast] == [
        None if (v is None or v is pd.NaT) else v for v in expected
    ]


def test_numbers_cast_only_when_exact():
    _, bad, detail = cast_column(pd.Series([1.0, 2.5, np.nan, np.inf]), "int64")
    assert bad.tolist() == [False, True, False, True] and "integer" in detail
    cast, bad, _ = cast_column(pd.Series([3.0, np.nan]), "int64")
    assert not bad.any() and cast.tolist()[0] == 3 and str(cast.dtype) == "Int64"
    _, bad, _ = cast_column(pd.Series([2**63], dtype="uint64"), "int64")
    assert bad.tolist() == [True]
    _, bad, _ = cast_column(pd.Series([0, 1, 2]), "bool")
    assert bad.tolist() == [False, False, True]


def test_wrong_kind_of_column_is_reported_whole():
    _, bad, detail = cast_column(pd.Series(pd.to_datetime(["2024-01-01", None])), "float64")
    assert bad.tolist() == [True, False]
    assert "expected float64" in detail


def test_timezone_aware_times_become_naive_utc():
    ts = pd.Series(pd.to_datetime(["2024-01-01 12:00"]).tz_localize("Asia/Shanghai"))
    cast, bad, _ = cast_column(ts, "timestamp")
    assert not bad.any() and cast.iloc[0] == pd.Timestamp("2024-01-01 04:00")


def test_a_date_with_a_time_of_day_is_not_a_date():
    _, bad, detail = cast_column(pd.Series(pd.to_datetime(["2024-01-01 12:00"])), "date")
    assert bad.tolist() == [True] and "time of day" in detail


# --- every rule ---------------------------------------------------------------------------------


def test_wrong_type_names_row_key_and_value(tiny_bank, tiny_as_of):
    tx = tiny_bank["transactions"]
    tx["amount"] = tx["amount"].astype(object)
    tx.loc[2, "amount"] = "abc"
    message = assert_rejected(tiny_bank, tiny_as_of, "transactions.amount", "type")
    assert "row 3 (transaction_id=1003): 'abc'" in message
    # The unreadable value is reported once, not again as a missing value.
    assert "[not_null]" not in message


def test_duplicate_primary_key(tiny_bank, tiny_as_of):
    tiny_bank["customers"].loc[1, "customer_id"] = 1
    message = assert_rejected(tiny_bank, tiny_as_of, "customers.customer_id", "unique")
    assert "row 2: 1" in message


def test_duplicate_composite_key(tiny_bank, tiny_as_of):
    tiny_bank["credit_status"].loc[1, "month"] = pd.Timestamp("2024-01-31")
    message = assert_rejected(tiny_bank, tiny_as_of, "credit_status.account_id, month", "unique")
    assert "account_id=102, month=2024-01-31" in message


@pytest.mark.parametrize(
    ("table", "column", "value", "where"),
    [
        ("transactions", "account_id", 999, "transactions.account_id"),
        ("accounts", "customer_id", 99, "accounts.customer_id"),
        ("interactions", "customer_id", 42, "interactions.customer_id"),
        ("credit_status", "account_id", 777, "credit_status.account_id"),
    ],
)
def test_orphans_break_referential_integrity(tiny_bank, tiny_as_of, table, column, value, where):
    tiny_bank[table].loc[0, column] = value
    assert_rejected(tiny_bank, tiny_as_of, where, "foreign_key")


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("transactions", "ts", "2024-05-01 09:00"),
        ("accounts", "open_date", "2024-06-01"),
        ("accounts", "close_date", "2024-06-01"),
        ("customers", "join_date", "2030-01-01"),
        ("credit_status", "month", "2024-04-30"),
    ],
)
def test_nothing_after_as_of(tiny_bank, tiny_as_of, table, column, value):
    tiny_bank[table].loc[5 if table != "customers" else 2, column] = pd.Timestamp(value)
    assert_rejected(tiny_bank, tiny_as_of, f"{table}.{column}", "not_after_as_of")


def test_as_of_defaults_to_now(tiny_bank):
    validate_dataset(tiny_bank)  # the tiny bank lies in the past
    tiny_bank["transactions"].loc[0, "ts"] = pd.Timestamp.now() + pd.Timedelta(days=2)
    assert_rejected(tiny_bank, None, "transactions.ts", "not_after_as_of")


@pytest.mark.parametrize(
    ("account", "balance", "outcome"),
    [
        (103, -0.004, "valid"),  # savings: >= 0, within the half-cent tolerance
        (103, -0.01, "error"),  # savings below zero: impossible, an error in the extract
        (101, -500.0, "valid"),  # current with a 500 overdraft
        (101, -500.5, "warning"),  # beyond the arranged overdraft: kept, reported
        (102, -3000.0, "valid"),  # credit card with a 3000 limit
        (102, -3000.5, "warning"),  # over the card limit: kept, reported
        (104, -1.0, "error"),  # personal loan: never negative
    ],
)
def test_balance_floor_depends_on_product_and_limit(
    tiny_bank, tiny_as_of, account, balance, outcome
):
    tx = tiny_bank["transactions"]
    row = tx.index[tx["account_id"] == account][-1]
    tx.loc[row, "balance_after"] = balance
    if outcome == "error":
        message = assert_rejected(
            tiny_bank, tiny_as_of, "transactions.balance_after", "balance_floor"
        )
        assert f"balance_after={balance:g}" in message and "product=" in message
        return
    warnings = validate_dataset(tiny_bank, tiny_as_of)
    if outcome == "valid":
        assert warnings == []
    else:
        (warning,) = warnings
        assert (warning.rule, warning.severity, warning.count) == (
            "overdraft_beyond_limit",
            "warning",
            1,
        )
        assert f"balance_after={balance:g}" in str(warning) and "unarranged overdraft" in str(
            warning
        )


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("transactions", "channel", "fax"),
        ("customers", "gender", "f"),
        ("accounts", "product", "crypto"),
        ("interactions", "kind", "tweet"),
        ("transactions", "merchant_category", "casino"),
    ],
)
def test_unknown_category(tiny_bank, tiny_as_of, table, column, value):
    tiny_bank[table].loc[1, column] = value
    message = assert_rejected(tiny_bank, tiny_as_of, f"{table}.{column}", "category")
    assert repr(value) in message


@pytest.mark.parametrize(
    ("table", "column"),
    [("customers", "region"), ("accounts", "open_date"), ("transactions", "amount")],
)
def test_null_in_required_column(tiny_bank, tiny_as_of, table, column):
    tiny_bank[table].loc[1, column] = None
    assert_rejected(tiny_bank, tiny_as_of, f"{table}.{column}", "not_null")


def test_nullable_columns_may_be_empty(tiny_bank, tiny_as_of):
    tiny_bank["customers"]["manager_id"] = pd.array([None] * 3, dtype="Int64")
    validate_dataset(tiny_bank, tiny_as_of)


@pytest.mark.parametrize(
    ("table", "column", "row", "value"),
    [
        ("interactions", "satisfaction_score", 3, 7),
        ("interactions", "satisfaction_score", 3, 0),
        ("credit_status", "days_past_due", 0, -1),
        ("accounts", "limit_amount", 0, -10.0),
        ("customers", "customer_id", 0, 0),
    ],
)
def test_out_of_range(tiny_bank, tiny_as_of, table, column, row, value):
    tiny_bank[table].loc[row, column] = value
    assert_rejected(tiny_bank, tiny_as_of, f"{table}.{column}", "range")


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("accounts", "close_date", "2010-01-01"),
        ("accounts", "maturity_date", "2000-01-01"),
        ("customers", "join_date", "1970-01-01"),
    ],
)
def test_time_order(tiny_bank, tiny_as_of, table, column, value):
    tiny_bank[table].loc[0, column] = pd.Timestamp(value)
    assert_rejected(tiny_bank, tiny_as_of, f"{table}.{column}", "time_order")


def test_transaction_before_account_opened(tiny_bank, tiny_as_of):
    tiny_bank["accounts"].loc[5, "open_date"] = pd.Timestamp("2024-02-01")  # mortgage 106
    message = assert_rejected(tiny_bank, tiny_as_of, "transactions.ts", "not_before_open")
    assert "open_date=2024-02-01" in message


def test_transaction_after_account_closed(tiny_bank, tiny_as_of):
    tiny_bank["accounts"].loc[0, "close_date"] = pd.Timestamp("2024-01-01")  # current 101
    message = assert_rejected(tiny_bank, tiny_as_of, "transactions.ts", "not_after_close")
    assert "close_date=2024-01-01" in message


def test_credit_status_before_account_opened(tiny_bank, tiny_as_of):
    tiny_bank["accounts"].loc[1, "open_date"] = pd.Timestamp("2024-03-15")  # credit card 102
    assert_rejected(tiny_bank, tiny_as_of, "credit_status.month", "not_before_open")


def test_account_opened_before_customer_joined(tiny_bank, tiny_as_of):
    tiny_bank["customers"].loc[0, "join_date"] = pd.Timestamp("2016-01-01")  # 101 opened 2015
    message = assert_rejected(tiny_bank, tiny_as_of, "accounts.open_date", "not_before_join")
    assert "join_date=2016-01-01" in message


@pytest.mark.parametrize(
    ("table", "column", "row", "value"),
    [
        ("transactions", "merchant_category", 0, "groceries"),  # a salary
        ("interactions", "complaint_category", 0, "fees"),  # an app login
        ("interactions", "resolution_days", 3, 2.0),  # a survey
        ("interactions", "satisfaction_score", 1, 5),  # a complaint
    ],
)
def test_columns_only_for_some_kinds_of_row(tiny_bank, tiny_as_of, table, column, row, value):
    tiny_bank[table].loc[row, column] = value
    assert_rejected(tiny_bank, tiny_as_of, f"{table}.{column}", "only_when")


def test_credit_status_only_for_credit_products(tiny_bank, tiny_as_of):
    tiny_bank["credit_status"].loc[0, "account_id"] = 103  # savings
    message = assert_rejected(tiny_bank, tiny_as_of, "credit_status.account_id", "credit_product")
    assert "product='savings'" in message


def test_missing_and_extra_columns_and_tables(tiny_bank, tiny_as_of):
    tiny_bank["accounts"] = tiny_bank["accounts"].drop(columns="product")  # required: error
    tiny_bank["customers"]["nickname"] = "x"  # unknown: ignored, listed
    tiny_bank["customers"] = tiny_bank["customers"].drop(columns="occupation")  # optional: fine
    del tiny_bank["interactions"]  # an optional table: fine
    del tiny_bank["transactions"]  # a required table: error
    _, problems = check_dataset(tiny_bank, tiny_as_of)
    found = {(p.severity, str(p)) for p in problems}
    assert found == {
        ("error", "accounts.product [columns] required column missing"),
        ("error", "transactions [tables] table missing"),
        ("warning", "customers [extra_columns] ignored: not columns of this table (nickname)"),
    }


def test_an_empty_required_table_is_an_error_an_empty_optional_one_is_absent(tiny_bank, tiny_as_of):
    tiny_bank["interactions"] = tiny_bank["interactions"].iloc[:0]
    (warning,) = validate_dataset(tiny_bank, tiny_as_of)
    assert (warning.table, warning.rule, warning.severity) == (
        "interactions",
        "non_empty",
        "warning",
    )
    tiny_bank["accounts"] = tiny_bank["accounts"].iloc[:0]
    assert_rejected(tiny_bank, tiny_as_of, "accounts", "non_empty")


def test_every_problem_is_listed_with_count_and_first_rows(tiny_bank, tiny_as_of):
    tiny_bank["transactions"]["channel"] = "fax"  # 20 rows
    tiny_bank["customers"].loc[0, "segment"] = "vip"
    with pytest.raises(DatasetValidationError) as caught:
        validate_dataset(tiny_bank, tiny_as_of)
    error = caught.value
    assert {(p.table, p.column, p.rule) for p in error.problems} == {
        ("transactions", "channel", "category"),
        ("customers", "segment", "category"),
    }
    channel = next(p for p in error.problems if p.column == "channel")
    assert channel.count == 20 and len(channel.examples) == MAX_EXAMPLES
    assert "20 rows" in str(error) and str(error).startswith("2 problems")


def test_large_frames_are_checked_quickly(tiny_bank):
    """Vectorised: 200k transactions validate in well under the time a per-row loop would take."""
    tx = tiny_bank["transactions"]
    big = tx.iloc[np.arange(200_000) % len(tx)].reset_index(drop=True)
    big["transaction_id"] = np.arange(1, len(big) + 1)
    tiny_bank["transactions"] = big
    started = datetime.now()
    validate_dataset(tiny_bank, datetime(2024, 4, 1))
    assert (datetime.now() - started).total_seconds() < 10


def test_a_generated_bank_passes_validation(tmp_path):
    """The synthetic bank obeys the same contract as a bank's own files."""
    from crmscore.dataset import read_dataset
    from crmscore.synthetic import BankConfig, generate_bank

    generate_bank(BankConfig(customers=300, months=12, seed=1), tmp_path, progress=False)
    validate_dataset(read_dataset(tmp_path / "raw"))
