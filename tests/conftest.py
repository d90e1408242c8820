"""Shared fixtures: a tiny hand-made bank that obeys every rule of crmscore.schema."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from crmscore.known_warnings import KNOWN


def pytest_configure(config: pytest.Config) -> None:
    """The third-party warnings the product drops as known and harmless stay out of the test
    report too (pytest records warnings itself, past crmscore's filter); anything else shows."""
    for known in KNOWN:
        category = f"{known.category.__module__}.{known.category.__qualname__}"
        config.addinivalue_line("filterwarnings", f"ignore:{known.message}:{category}")
    # Feast's modules call warnings.simplefilter("once", DeprecationWarning) when imported: during
    # a test, that lands in front of the filters above and the first test to import Feast reports
    # the known warnings anyway. Imported here, before any test, it sits behind them. xdist's
    # controller runs no test, so only its workers (and a run without -n) pay for the import.
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        import feast  # noqa: F401


#: Extraction time of the tiny bank: every event lies before it.
TINY_AS_OF = datetime(2024, 4, 1)


def _dates(values: list[str | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object))


def make_tiny_bank() -> dict[str, pd.DataFrame]:
    """3 customers, 6 accounts (every product family), 20 transactions, 6 interactions, 6 statuses.

    Built by hand so that each value is easy to break in a test: e.g. account 101 is a current
    account with a 500 overdraft, account 103 a savings account that must stay >= 0.
    """
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "birth_date": _dates(["1980-05-01", "1992-11-20", "1975-02-14"]),
            "gender": ["F", "M", "X"],
            "region": ["north", "south", "central"],
            "branch_id": [10, 20, 30],
            "occupation": ["employee", "self_employed", "retired"],
            "income_band": ["5k-10k", "2k-5k", ">20k"],
            "segment": ["mass", "emerging_affluent", "private"],
            "join_date": _dates(["2015-01-10", "2018-06-01", "2010-03-03"]),
            "manager_id": pd.array([7, None, 8], dtype="Int64"),
            "marketing_consent": [True, False, True],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": [101, 102, 103, 104, 105, 106],
            "customer_id": [1, 1, 2, 2, 3, 3],
            "product": [
                "current",
                "credit_card",
                "savings",
                "personal_loan",
                "term_deposit",
                "mortgage",
            ],
            "open_date": _dates(
                ["2015-01-10", "2019-04-01", "2018-06-01", "2023-01-15", "2022-01-01", "2020-07-01"]
            ),
            "close_date": _dates([None, None, "2024-03-20", None, None, None]),
            "maturity_date": _dates([None, None, None, "2027-01-15", "2025-01-01", "2045-07-01"]),
            "limit_amount": [500.0, 3000.0, 0.0, 10000.0, 20000.0, 250000.0],
        }
    )
    # (account, ts, amount, balance_after, type, channel, merchant_category)
    rows = [
        (101, "2024-01-02 09:00", 3000.0, 3200.0, "salary", "online", None),
        (101, "2024-01-03 12:30", -45.5, 3154.5, "card_spend", "pos", "groceries"),
        (101, "2024-01-05 18:00", -3300.0, -145.5, "transfer_out", "mobile", None),
        (101, "2024-01-31 23:00", -5.0, -150.5, "fee", "online", None),
        (101, "2024-02-01 09:00", 3000.0, 2849.5, "salary", "online", None),
        (101, "2024-02-10 10:00", -200.0, 2649.5, "atm", "atm", None),
        (101, "2024-02-15 08:00", -120.0, 2529.5, "bill_payment", "online", None),
        (102, "2024-01-04 20:00", -150.0, -150.0, "card_spend", "pos", "dining"),
        (102, "2024-01-20 11:00", -80.0, -230.0, "card_spend", "online", "online_retail"),
        (102, "2024-02-05 09:00", 230.0, 0.0, "loan_repayment", "mobile", None),
        (103, "2024-01-06 10:00", 5000.0, 5000.0, "transfer_in", "branch", None),
        (103, "2024-01-31 23:59", 4.2, 5004.2, "interest", "online", None),
        (103, "2024-03-20 10:00", -5004.2, 0.0, "transfer_out", "branch", None),
        (104, "2024-01-15 09:00", 400.0, 8000.0, "loan_repayment", "online", None),
        (104, "2024-02-15 09:00", 400.0, 7600.0, "loan_repayment", "online", None),
        (104, "2024-03-15 09:00", 400.0, 7200.0, "loan_repayment", "online", None),
        (105, "2024-01-31 23:59", 55.0, 20055.0, "interest", "online", None),
        (106, "2024-01-01 09:00", 1200.0, 230000.0, "loan_repayment", "online", None),
        (106, "2024-02-01 09:00", 1200.0, 228800.0, "loan_repayment", "online", None),
        (106, "2024-03-01 09:00", 1200.0, 227600.0, "loan_repayment", "online", None),
    ]
    account, ts, amount, balance, kind, channel, merchant = zip(*rows, strict=True)
    transactions = pd.DataFrame(
        {
            "transaction_id": range(1001, 1001 + len(rows)),
            "account_id": account,
            "ts": pd.to_datetime(list(ts)),
            "amount": amount,
            "balance_after": balance,
            "type": kind,
            "channel": channel,
            "merchant_category": merchant,
        }
    )
    interactions = pd.DataFrame(
        {
            "interaction_id": [1, 2, 3, 4, 5, 6],
            "customer_id": [1, 1, 2, 2, 3, 3],
            "ts": pd.to_datetime(
                [
                    "2024-01-08 10:00",
                    "2024-02-02 14:00",
                    "2024-01-10 09:30",
                    "2024-03-01 16:00",
                    "2024-01-20 11:00",
                    "2024-02-20 11:00",
                ]
            ),
            "channel": ["mobile", "phone", "phone", "email", "branch", "online"],
            "kind": [
                "app_login",
                "complaint",
                "complaint",
                "satisfaction_survey",
                "branch_visit",
                "product_page_view",
            ],
            "product": [None, "credit_card", "savings", None, "term_deposit", "wealth_management"],
            "complaint_category": [None, "fees", "service", None, None, None],
            "resolution_days": [None, 3.0, None, None, None, None],
            "satisfaction_score": pd.array([None, None, None, 4, None, None], dtype="Int64"),
        }
    )
    months = ["2024-01-31", "2024-02-29"]
    credit_status = pd.DataFrame(
        {
            "account_id": [102, 102, 104, 104, 106, 106],
            "month": _dates(months * 3),
            "balance": [230.0, 0.0, 8000.0, 7600.0, 230000.0, 228800.0],
            "days_past_due": [0, 0, 0, 30, 0, 0],
        }
    )
    return {
        "customers": customers,
        "accounts": accounts,
        "transactions": transactions,
        "interactions": interactions,
        "credit_status": credit_status,
    }


@pytest.fixture
def tiny_bank() -> dict[str, pd.DataFrame]:
    """A fresh copy of the tiny valid bank (safe to modify in a test)."""
    return make_tiny_bank()


@pytest.fixture
def tiny_as_of() -> datetime:
    """The tiny bank's extraction time."""
    return TINY_AS_OF


@pytest.fixture(scope="session")
def small_bank(tmp_path_factory):
    """A generated bank (500 customers x 18 months) in a temp data dir, wired in via the settings.

    Session-scoped: generated once and shared, so treat ``raw/`` as read-only (copy it to modify).
    ``CRMSCORE_DATA_DIR`` points at it for the session; a test needing other settings sets its own
    environment and calls ``get_settings.cache_clear()``.
    """
    from crmscore.settings import get_settings
    from crmscore.synthetic import BankConfig, generate_bank

    data_dir = tmp_path_factory.mktemp("small_bank") / "data"
    generate_bank(BankConfig(customers=500, months=18, seed=11), data_dir, progress=False)
    env = pytest.MonkeyPatch()
    env.setenv("CRMSCORE_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    yield data_dir
    env.undo()
    get_settings.cache_clear()
