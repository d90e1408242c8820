"""Features as of any day: equal to the snapshot tables at month starts, and nothing from the day
itself or after it, ever (a loan decided on the 17th sees the history up to the 16th)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from crmscore.settings import get_settings


@pytest.fixture(scope="module")
def built(small_bank):
    """The small bank's feature tables, built and registered."""
    from features.build import apply, build_feature_tables

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CRMSCORE_DATA_DIR", str(small_bank))
        get_settings.cache_clear()
        report = build_feature_tables()
        apply()
        yield report
    get_settings.cache_clear()


def _snapshot_rows(report, snapshot: pd.Timestamp, customers: list[int]) -> pd.DataFrame:
    frames = []
    for path in report.tables.values():
        table = pd.read_parquet(path)
        table = table[(table["event_timestamp"] == snapshot) & table["customer_id"].isin(customers)]
        frames.append(table.drop(columns="event_timestamp").set_index("customer_id"))
    return pd.concat(frames, axis=1).loc[customers]


def test_at_a_month_start_the_features_are_the_snapshots(built, small_bank, monkeypatch):
    from features.asof import features_as_of

    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(small_bank))
    get_settings.cache_clear()
    snapshot = pd.Timestamp("2024-11-01", tz="UTC")
    customers = [3, 17, 40, 101, 250, 499]
    entities = pd.DataFrame({"customer_id": customers, "event_timestamp": snapshot})
    got = features_as_of(entities).set_index(pd.Index(customers))
    expected = _snapshot_rows(built, snapshot, customers)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        got.astype(object).where(got.notna(), None),
        expected.astype(object).where(expected.notna(), None),
        check_names=False,
        check_dtype=False,
    )


def test_nothing_from_the_day_itself_or_after_it_is_seen(built, small_bank, tmp_path, monkeypatch):
    """A posting on the day before D counts; postings on D and after it never do."""
    from crmscore.dataset import read_dataset, write_dataset
    from features.asof import features_as_of

    tables = read_dataset(small_bank / "raw")
    accounts = tables["accounts"]
    customer = 17
    account = int(accounts.loc[accounts["customer_id"] == customer, "account_id"].iloc[0])
    day = pd.Timestamp("2024-09-17")
    entities = pd.DataFrame({"customer_id": [customer], "event_timestamp": [day]})

    def txn_count_1m(extra: list[tuple[str, float]]) -> float:
        tx = tables["transactions"]
        rows = pd.DataFrame(
            {
                "transaction_id": np.arange(len(extra)) + int(tx["transaction_id"].max()) + 1,
                "account_id": account,
                "ts": pd.to_datetime([ts for ts, _ in extra]),
                "amount": [amount for _, amount in extra],
                "balance_after": 100.0,
                "type": "transfer_in",
                "channel": "online",
                "merchant_category": None,
            }
        )
        raw = tmp_path / f"data-{len(extra)}-{extra[0][0][:10] if extra else 'none'}"
        shutil.copytree(small_bank / "features", raw / "features")
        # the new rows take the table's dtypes: an all-missing column would otherwise decide them
        rows = rows.astype(tx.dtypes[rows.columns].to_dict())
        transactions = pd.concat([tx, rows], ignore_index=True) if len(rows) else tx
        write_dataset({**tables, "transactions": transactions}, raw / "raw")
        monkeypatch.setenv("CRMSCORE_DATA_DIR", str(raw))
        get_settings.cache_clear()
        return float(features_as_of(entities)["txn_count_1m"].iloc[0])

    baseline = txn_count_1m([])
    assert txn_count_1m([("2024-09-16 23:59:00", 5.0)]) == baseline + 1  # the day before: seen
    later = [("2024-09-17 00:00:00", 5.0), ("2024-09-17 12:00:00", 5.0), ("2024-10-02 09:00:00", 1)]
    assert txn_count_1m(later) == baseline  # on the day, or after it: never
    get_settings.cache_clear()


def test_training_sets_take_month_starts_from_feast_and_other_days_from_the_history(
    built, small_bank, monkeypatch
):
    from features.asof import features_as_of
    from features.catalog import feature_names
    from features.training_set import get_training_set

    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(small_bank))
    get_settings.cache_clear()
    entities = pd.DataFrame(
        {
            "customer_id": [40, 40, 101],
            "event_timestamp": pd.to_datetime(["2024-11-01", "2024-11-20", "2024-12-03"]),
            "label": [0, 1, 0],
        }
    )
    got = get_training_set(entities, "credit_risk")
    names = feature_names("credit_risk")
    assert list(got.columns) == [*entities.columns, *names]
    assert got["label"].tolist() == [0, 1, 0]  # rows kept in order with their labels
    mid_month = features_as_of(entities.iloc[1:], names)
    np.testing.assert_allclose(
        got.iloc[1:][names].select_dtypes("number").to_numpy(dtype=float),
        mid_month.select_dtypes("number").to_numpy(dtype=float),
    )
    # The November 20th row sees more history than the November 1st one.
    assert got.loc[1, "tenure_months"] > got.loc[0, "tenure_months"]


def test_several_days_at_once_equal_each_day_alone(built, small_bank, monkeypatch):
    """Cases on several days share one copy of their customers' raw rows; each day computed
    alone reads the bank itself. The values must not depend on it."""
    from features.asof import features_as_of
    from features.store import tables_dir

    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(small_bank))
    get_settings.cache_clear()
    entities = pd.DataFrame(
        {
            "customer_id": [3, 17, 40, 101, 17],
            "event_timestamp": pd.to_datetime(
                ["2024-09-17", "2024-10-05", "2024-11-20", "2024-11-20", "2024-12-03"]
            ),
        },
        index=[10, 11, 12, 13, 14],  # kept, in order
    )
    together = features_as_of(entities)
    alone = pd.concat([features_as_of(entities.loc[[i]]) for i in entities.index])
    assert together.index.tolist() == [10, 11, 12, 13, 14]
    assert together.notna().any(axis=None)
    pd.testing.assert_frame_equal(together, alone)
    assert not list(tables_dir().glob(".asof-*"))  # the shared copy is gone
    get_settings.cache_clear()


def test_the_day_to_a_month_start():
    from features.asof import shift_to_month_start

    days = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-31", "2024-02-15", "2024-12-20"]))
    assert shift_to_month_start(days).tolist() == [0, 1, 15, 12]  # 2024 is a leap year
