"""The feature store: tables, Feast definitions, point-in-time correctness, online = offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from crmscore.contract import BANK_INITIATED_KINDS, DEFAULT_CONTRACT
from crmscore.schema import TABLES
from crmscore.settings import get_settings
from features.catalog import (
    built_views,
    categorical_features,
    describe,
    feature_names,
    services,
)
from features.definitions import service_features
from features.views import groups


@pytest.fixture(scope="module")
def store_ready(small_bank):
    """Feature tables built, applied to Feast and materialised for the small bank — through the
    command line, as a user would."""
    from crmscore.cli import app
    from features.materialize import latest_snapshot
    from features.store import tables_dir

    env = pytest.MonkeyPatch()
    env.setenv("CRMSCORE_DATA_DIR", str(small_bank))
    get_settings.cache_clear()
    runner = CliRunner()
    built = runner.invoke(app, ["features", "build", "--no-progress"])
    assert built.exit_code == 0, built.output
    assert "transactions" in built.output and "snapshots" in built.output
    # --no-progress is a batch job's log: a timestamped line as each step starts, then done
    assert re.search(r"^\d\d:\d\d:\d\d features: account_monthly$", built.output, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d features: done$", built.output, re.M)
    materialised = runner.invoke(app, ["features", "materialize"])
    assert materialised.exit_code == 0, materialised.output
    snapshot = latest_snapshot()
    assert f"{snapshot:%Y-%m-%d}" in materialised.output
    tables = {g.name: tables_dir() / f"{g.name}.parquet" for g in groups()}
    yield {"tables": tables, "snapshot": snapshot, "data_dir": small_bank}
    env.undo()
    get_settings.cache_clear()


def _read_tables(tables: dict) -> dict[str, pd.DataFrame]:
    return {view: pd.read_parquet(path) for view, path in tables.items()}


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["event_timestamp"] == frame["event_timestamp"].max()]


# --- declarations and Feast registry --------------------------------------------------------------


def test_at_least_60_features_in_5_views_with_unique_names():
    names = [f.name for g in groups() for f in g.features]
    assert len(groups()) >= 5 and len(names) >= 60
    assert len(names) == len(set(names)), "feature names must be unique across views"
    assert {g.name for g in groups()} >= {
        "transactions",
        "interactions",
        "products",
        "credit",
        "profile",
    }


def test_every_feast_feature_has_a_description_and_every_service_resolves(store_ready):
    from features.store import get_store

    store = get_store()
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {g.name for g in groups()}
    for view in views.values():
        assert view.description and view.tags
        for field in view.features:
            assert len(field.description) > 15, (view.name, field.name)
            assert field.description == describe(field.name)
    for service in services():
        registered = store.get_feature_service(service)
        served = [f.name for p in registered.feature_view_projections for f in p.features]
        assert served == feature_names(service)
    assert set(services()) == {"churn", "cross_sell", "credit_risk"}


def test_services_hold_only_model_inputs(store_ready):
    for service in services():
        for attribute in ("marketing_consent", "branch_id", "manager_id"):
            assert attribute not in feature_names(service)
        assert len(feature_names(service)) >= 30
    assert "interactions" not in service_features("credit_risk", built_views())
    assert set(service_features("credit_risk", built_views())["credit"]) == {
        f.name for g in groups() if g.name == "credit" for f in g.features
    }
    assert categorical_features("churn") == ["segment", "income_band", "region", "occupation"]
    with pytest.raises(KeyError, match="unknown feature service"):
        feature_names("fraud")


def test_tables_hold_declared_columns_types_and_snapshots(store_ready):
    raw = get_settings().raw_dir
    first = pd.read_parquet(raw / "transactions", columns=["ts"])["ts"]
    expected_first = (first.min().to_period("M") + 1).to_timestamp().tz_localize("UTC")
    expected_last = (first.max().to_period("M") + 1).to_timestamp().tz_localize("UTC")
    kinds = {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}
    for group in groups():
        path = store_ready["tables"][group.name]
        schema = pq.read_schema(path)
        assert schema.names == ["customer_id", "event_timestamp", *group.feature_names]
        assert schema.field("customer_id").type == pa.int64()
        assert schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
        for feature in group.features:
            assert schema.field(feature.name).type == kinds[feature.kind], feature.name
        frame = pd.read_parquet(path, columns=["customer_id", "event_timestamp"])
        assert not frame.duplicated().any()
        assert frame["event_timestamp"].min() == expected_first
        assert frame["event_timestamp"].max() == expected_last
        assert (frame["event_timestamp"].dt.day == 1).all()


def test_features_agree_with_a_direct_computation(store_ready):
    """Spot-check a few features against pandas on the raw tables."""
    raw = get_settings().raw_dir
    tables = _read_tables(store_ready["tables"])
    snapshot = pd.Timestamp(store_ready["snapshot"]).tz_convert(None)
    accounts = pd.read_parquet(raw / "accounts")
    tx = pd.read_parquet(raw / "transactions").merge(accounts[["account_id", "customer_id"]])
    window = tx[(tx["ts"] < snapshot) & (tx["ts"] >= snapshot - pd.DateOffset(months=3))]
    bank_made = DEFAULT_CONTRACT.transaction_types_of(*BANK_INITIATED_KINDS)
    assert set(bank_made) == {"interest", "fee", "penalty_interest"}
    own = window[~window["type"].isin(bank_made)]
    expected_count = own.groupby("customer_id").size()
    expected_salary = window[window["type"] == "salary"].groupby("customer_id")["amount"].sum()
    held = accounts[
        (accounts["open_date"] < snapshot.date())
        & (accounts["close_date"].isna() | (accounts["close_date"] >= snapshot.date()))
    ]
    expected_products = held.groupby("customer_id")["product"].nunique()

    latest_tx = _latest(tables["transactions"]).set_index("customer_id")
    latest_products = _latest(tables["products"]).set_index("customer_id")
    customers = latest_tx.index
    pd.testing.assert_series_equal(
        latest_tx["txn_count_3m"],
        expected_count.reindex(customers, fill_value=0).astype("int64"),
        check_names=False,
    )
    np.testing.assert_allclose(
        latest_tx["txn_salary_3m"], expected_salary.reindex(customers, fill_value=0), atol=1e-6
    )
    pd.testing.assert_series_equal(
        latest_products["prod_n_products"],
        expected_products.reindex(latest_products.index, fill_value=0).astype("int64"),
        check_names=False,
    )


# --- point-in-time correctness --------------------------------------------------------------------


def _append(raw_dir, table: str, rows: pd.DataFrame) -> None:
    """Write ``rows`` as an extra part of a raw table, in the contract's Parquet types."""
    from crmscore.synthetic.bank import arrow_schema

    schema = arrow_schema(TABLES[table])
    for column in TABLES[table].columns:
        if column.dtype == "date":
            rows[column.name] = pd.to_datetime(rows[column.name]).dt.date
    pq.write_table(
        pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False),
        raw_dir / table / "part-injected.parquet",
    )


def test_rows_dated_at_or_after_a_snapshot_change_no_feature_at_or_before_it(store_ready, tmp_path):
    from features.build import build_feature_tables

    raw = get_settings().raw_dir
    baseline = _read_tables(store_ready["tables"])
    snapshots = sorted(baseline["profile"]["event_timestamp"].unique())
    s = pd.Timestamp(snapshots[len(snapshots) // 2]).tz_convert(None)

    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    accounts = pd.read_parquet(raw / "accounts")
    status = pd.read_parquet(raw / "credit_status")
    # c_after gets rows at/after s; c_before gets rows just before s (must change features at s).
    credit_accounts = status[status["month"] == (s + pd.offsets.MonthEnd(0)).date()]
    c_after = int(
        accounts.loc[
            accounts["account_id"].isin(credit_accounts["account_id"]), "customer_id"
        ].iloc[0]
    )
    c_before = int(
        accounts.loc[
            (accounts["customer_id"] != c_after) & (accounts["product"] == "current"), "customer_id"
        ].iloc[0]
    )
    account_after = int(accounts.loc[accounts["customer_id"] == c_after, "account_id"].iloc[0])
    account_before = int(
        accounts.loc[
            (accounts["customer_id"] == c_before) & (accounts["product"] == "current"), "account_id"
        ].iloc[0]
    )

    tx_template = dict(
        amount=-5000.0,
        balance_after=-99_999.0,
        type="card_spend",
        channel="pos",
        merchant_category="travel",
    )
    _append(
        copy,
        "transactions",
        pd.DataFrame(
            [
                {"transaction_id": 10**12 + 1, "account_id": account_after, "ts": s, **tx_template},
                {
                    "transaction_id": 10**12 + 2,
                    "account_id": account_after,
                    "ts": s + timedelta(days=3),
                    **tx_template,
                },
                {
                    "transaction_id": 10**12 + 3,
                    "account_id": account_before,
                    "ts": s - timedelta(seconds=1),
                    **tx_template,
                },
            ]
        ),
    )
    ia_template = dict(
        channel="phone",
        kind="complaint",
        product=None,
        complaint_category="fees",
        satisfaction_score=None,
    )
    _append(
        copy,
        "interactions",
        pd.DataFrame(
            [
                {
                    "interaction_id": 10**12 + 1,
                    "customer_id": c_after,
                    "ts": s,
                    "resolution_days": None,
                    **ia_template,
                },
                # Made before s, resolved after s: unresolved at s, resolution time unknown.
                {
                    "interaction_id": 10**12 + 2,
                    "customer_id": c_before,
                    "ts": s - timedelta(days=2),
                    "resolution_days": 10.0,
                    **ia_template,
                },
            ]
        ),
    )
    # The status of the month starting at s is dated at that month's end: invisible at s.
    worse = (
        credit_accounts[
            credit_accounts["account_id"].isin(
                accounts.loc[accounts["customer_id"] == c_after, "account_id"]
            )
        ]
        .iloc[[0]]
        .copy()
    )
    worse["days_past_due"] = 150
    worse["balance"] = 1e7
    kept = status.drop(worse.index)
    for part in (copy / "credit_status").glob("*.parquet"):
        part.unlink()
    _append(copy, "credit_status", pd.concat([kept, worse], ignore_index=True))

    rebuilt = _read_tables(build_feature_tables(raw_dir=copy, out_dir=tmp_path / "tables").tables)
    s_utc = s.tz_localize("UTC")
    key = ["customer_id", "event_timestamp"]

    def upto_s(frame: pd.DataFrame) -> pd.DataFrame:
        """Every row at or before s, except c_before at s (which the early rows must change)."""
        keep = (frame["event_timestamp"] <= s_utc) & ~(
            (frame["customer_id"] == c_before) & (frame["event_timestamp"] == s_utc)
        )
        return frame[keep].sort_values(key).reset_index(drop=True)

    for view, before in baseline.items():
        pd.testing.assert_frame_equal(
            upto_s(rebuilt[view]), upto_s(before), obj=f"{view} at/before {s_utc:%Y-%m-%d}"
        )

    def row(tables, view, customer, snapshot):
        frame = tables[view]
        return frame[
            (frame["customer_id"] == customer) & (frame["event_timestamp"] == snapshot)
        ].iloc[0]

    # The injected rows are read: the earlier one shows at s, the later ones one month on.
    assert row(rebuilt, "transactions", c_before, s_utc)["txn_spend_travel_3m"] == pytest.approx(
        row(baseline, "transactions", c_before, s_utc)["txn_spend_travel_3m"] + 5000
    )
    unresolved = row(rebuilt, "interactions", c_before, s_utc)["int_complaints_unresolved"]
    assert (
        unresolved
        == row(baseline, "interactions", c_before, s_utc)["int_complaints_unresolved"] + 1
    )
    mean_resolution = row(baseline, "interactions", c_before, s_utc)[
        "int_complaint_mean_resolution_days"
    ]
    assert row(rebuilt, "interactions", c_before, s_utc)[
        "int_complaint_mean_resolution_days"
    ] == pytest.approx(mean_resolution, nan_ok=True)
    next_s = s_utc + pd.DateOffset(months=1)
    assert (
        row(rebuilt, "transactions", c_after, next_s)["txn_spend_travel_3m"]
        >= row(baseline, "transactions", c_after, next_s)["txn_spend_travel_3m"] + 10_000 - 1e-6
    )
    assert row(rebuilt, "credit", c_after, next_s)["credit_current_dpd"] == 150
    assert row(rebuilt, "interactions", c_after, next_s)["int_complaints_unresolved"] >= 1


def test_training_set_is_point_in_time_and_keeps_rows(store_ready):
    from features.training_set import get_training_set

    tables = _read_tables(store_ready["tables"])
    snapshots = sorted(tables["transactions"]["event_timestamp"].unique())
    s = pd.Timestamp(snapshots[5])
    customers = tables["profile"]["customer_id"].unique()[:3].tolist()
    entity_df = pd.DataFrame(
        {
            "customer_id": [customers[0], customers[1], customers[0], customers[2], 987654321],
            # naive timestamps are UTC; rows at month starts are the snapshots, rows on other days
            # see the history strictly before their own day (features.asof)
            "event_timestamp": [
                s.tz_convert(None),
                s.tz_convert(None) + timedelta(days=12),
                s.tz_convert(None) - timedelta(days=20),
                pd.Timestamp(snapshots[0]).tz_convert(None) - timedelta(days=40),
                s.tz_convert(None),
            ],
            "label": [1, 0, 1, 0, 1],
        }
    )
    result = get_training_set(entity_df, "churn")
    assert list(result.columns) == [
        "customer_id",
        "event_timestamp",
        "label",
        *feature_names("churn"),
    ]
    pd.testing.assert_frame_equal(result[entity_df.columns], entity_df)
    from features.asof import features_as_of

    tx = tables["transactions"].set_index(["customer_id", "event_timestamp"])
    assert result.loc[0, "txn_amount_3m"] == pytest.approx(
        tx.loc[(customers[0], s), "txn_amount_3m"]
    )
    as_of = features_as_of(entity_df.loc[[1, 2]], ["txn_amount_3m"])["txn_amount_3m"]
    assert result.loc[[1, 2], "txn_amount_3m"].tolist() == pytest.approx(as_of.tolist())
    assert result.loc[1, "txn_amount_3m"] != tx.loc[(customers[1], s), "txn_amount_3m"]
    numeric = [n for n in feature_names("churn") if n not in categorical_features("churn")]
    assert result[numeric].isna().all(axis=1).loc[[3, 4]].all()  # before any snapshot; unknown
    assert (result[numeric].dtypes == "float64").all()


def test_a_training_set_refuses_an_entity_row_feast_returned_twice(monkeypatch):
    from features import training_set

    class Answer:  # Feast's rows for two entity rows: the first twice, the second missing
        def to_arrow(self) -> pa.Table:
            return pa.table({training_set._ROW: [0, 0]})

    class Store:
        def get_feature_service(self, name: str) -> str:
            return name

        def get_historical_features(self, **request) -> Answer:
            return Answer()

    monkeypatch.setattr("features.store.get_store", Store)
    entity_df = pd.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": pd.Timestamp("2025-01-01", tz="UTC")}
    )
    with pytest.raises(ValueError, match="returned an entity row twice"):
        training_set.get_training_set(entity_df, "churn")


def test_a_training_set_takes_feasts_rows_back_into_entity_order(monkeypatch):
    from features import training_set

    monkeypatch.setattr(training_set, "feature_names", lambda service: ["count", "segment", "x"])
    monkeypatch.setattr(training_set, "categorical_features", lambda service: ["segment"])
    answer = pa.table(  # Feast's rows, in its own order
        {
            "count": pa.array([7, 5], pa.int64()),  # entity row 2; entity row 0
            "segment": ["gold", None],
            "x": pa.array([None, 0.5], pa.float64()),
        }
    )
    entity_df = pd.DataFrame(
        {"customer_id": [11, 12, 13], "label": [1, 0, 1]},  # 12: Feast gave no row
        index=[10, 20, 30],
    )
    result = training_set.in_entity_order(answer, np.array([1, -1, 0]), entity_df, "churn")
    expected = pd.DataFrame(
        {
            "customer_id": [11, 12, 13],
            "label": [1, 0, 1],
            "count": [5.0, np.nan, 7.0],  # integers become float64, a missing row NaN
            "segment": np.array([None, None, "gold"], dtype=object),  # missing: None
            "x": [0.5, np.nan, np.nan],
        },
        index=[10, 20, 30],
    )
    pd.testing.assert_frame_equal(result, expected, check_exact=True)
    # No row at all: every feature missing.
    none = training_set.in_entity_order(answer.slice(0, 0), np.full(3, -1), entity_df, "churn")
    assert none[["count", "x"]].isna().all().all() and none["segment"].tolist() == [None] * 3


def test_batch_rows_take_feasts_arrow_answer_into_the_matrix():
    """Batch scoring's snapshot rows come from Feast's Arrow answer as the training sets' do; a
    customer whose every feature is missing is not known, and a feature the answer lacks (the
    bank has none) is missing for everyone."""
    from features.online import FeatureLayout, FeatureRows

    answer = pa.table(  # Feast's rows, in its own order
        {
            "count": pa.array([7, None, 5], pa.int64()),  # customer 13; customer 12; customer 11
            "segment": [None, None, "gold"],
        }
    )
    layout = FeatureLayout(numeric=("count", "absent"), text=("segment",))
    rows = FeatureRows.from_arrow(answer, np.array([2, 1, 0, -1]), [11, 12, 13, 14], layout)
    assert rows.customer_ids == [11, 12, 13, 14]
    np.testing.assert_array_equal(rows["count"], [5.0, np.nan, 7.0, np.nan])
    assert rows["count"].dtype == np.float64
    np.testing.assert_array_equal(rows["absent"], [np.nan] * 4)
    assert rows["segment"].tolist() == ["gold", None, None, None]
    assert rows.known().tolist() == [
        True,  # 11: count and segment
        False,  # 12: a row of nulls only
        True,  # 13: count alone
        False,  # 14: no row at all
    ]


# --- online store ----------------------------------------------------------------------------


def _assert_online_equals_offline(online: pd.DataFrame, tables: dict, service: str) -> None:
    offline = None
    for view, names in service_features(service, built_views()).items():
        latest = _latest(tables[view]).set_index("customer_id")[names]
        offline = latest if offline is None else offline.join(latest)
    offline = offline.loc[online["customer_id"]]
    for name in feature_names(service):
        left, right = online[name].to_numpy(), offline[name].to_numpy()
        if name in categorical_features(service):
            assert list(left) == list(right), name
        else:
            np.testing.assert_allclose(
                left.astype(float), right.astype(float), rtol=1e-12, equal_nan=True, err_msg=name
            )


def test_online_vectors_equal_offline_latest_snapshot(store_ready):
    from features.online import get_online_features, unknown_customers

    tables = _read_tables(store_ready["tables"])
    ids = _latest(tables["profile"])["customer_id"].sample(25, random_state=1).tolist()
    for service in services():
        online = get_online_features([*ids, 987654321], service)
        assert list(online.columns) == ["customer_id", *feature_names(service)]
        assert online["customer_id"].tolist() == [*ids, 987654321]
        assert unknown_customers(online) == [987654321]
        _assert_online_equals_offline(online.iloc[:-1], tables, service)


def test_a_load_in_many_chunks_gives_the_same_vectors(store_ready, monkeypatch):
    # 7 customers a chunk: most chunks are written on the writer's thread while the next is
    # encoded, and every one of them must land (the last one too)
    from feast.infra.online_stores.sqlite import _quote_id, _table_id

    import features.online_writer
    from features.materialize import materialize
    from features.online import get_online_features, unknown_customers
    from features.store import get_store

    ids = _latest(pd.read_parquet(store_ready["tables"]["profile"]))["customer_id"].tolist()
    before = {s: get_online_features(ids, s) for s in services()}
    store = get_store()  # emptied first, so that nothing is left over from the first load
    connection = store._get_provider().online_store._get_conn(store.config)
    with connection:
        for view in store.list_feature_views():
            connection.execute(f"DELETE FROM {_quote_id(_table_id(store.project, view))}")
    assert unknown_customers(get_online_features(ids[:1], "churn")) == ids[:1]
    monkeypatch.setattr(features.online_writer, "CHUNK", 7)
    materialize()
    for service, expected in before.items():
        pd.testing.assert_frame_equal(get_online_features(ids, service), expected)


def test_redis_online_store_serves_the_same_vectors(store_ready, redis_server, monkeypatch):
    import features.online_writer
    from features.build import apply
    from features.catalog import feature_names
    from features.materialize import materialize
    from features.online import OnlineReader, get_online_features
    from features.store import get_store

    ids = _latest(pd.read_parquet(store_ready["tables"]["profile"]))["customer_id"].head(30)
    sqlite_vectors = {s: get_online_features(ids.tolist(), s) for s in services()}
    env = pytest.MonkeyPatch()
    env.setenv("CRMSCORE_FEATURES__ONLINE_STORE", "redis")
    env.setenv("CRMSCORE_FEATURES__REDIS_CONNECTION_STRING", redis_server)
    get_settings.cache_clear()
    try:
        assert get_settings().features.online_store == "redis"
        apply()
        # 7 customers a chunk: two chunks in flight at a time on their own connections
        monkeypatch.setattr(features.online_writer, "CHUNK", 7)
        materialize()
        for service, expected in sqlite_vectors.items():
            pd.testing.assert_frame_equal(get_online_features(ids.tolist(), service), expected)
        # The serving reader hands Feast a copy of each view's field list: Feast's Redis store
        # appends its timestamp field to the list it gets, which made every read slower.
        reader = OnlineReader(get_store(), feature_names("credit_risk"))
        planned = [list(fields) for _, fields, _, _ in reader.plan]
        first, _ = reader.read(ids.tolist())
        for _ in range(3):
            again, _ = reader.read(ids.tolist())
        assert [list(fields) for _, fields, _, _ in reader.plan] == planned
        np.testing.assert_array_equal(again.numeric, first.numeric)
    finally:
        env.undo()
        get_settings.cache_clear()


@pytest.fixture
def redis_server(tmp_path):
    """A throwaway redis-server on a free loopback port (installed with apt-get if missing)."""
    from tests.servers import redis_server

    with redis_server(tmp_path) as connection:
        yield connection


# --- command line --------------------------------------------------------------------------------


def test_cli_get_prints_a_vector_and_fails_cleanly(store_ready):
    from crmscore.cli import app

    profile = pd.read_parquet(store_ready["tables"]["profile"])
    customer = int(_latest(profile)["customer_id"].iloc[0])
    runner = CliRunner()
    result = runner.invoke(app, ["features", "get", str(customer), "--service", "credit_risk"])
    assert result.exit_code == 0, result.output
    assert "credit_current_dpd" in result.output and "days past due" in result.output

    result = runner.invoke(app, ["features", "get", "987654321"])
    assert result.exit_code == 1
    assert "not in the online store" in result.output and "Traceback" not in result.output

    result = runner.invoke(app, ["features", "get", str(customer), "--service", "fraud"])
    assert result.exit_code == 1 and "unknown service" in result.output


def test_cli_materialize_creates_the_tables_of_a_store_never_applied(store_ready):
    """An online store switched by configuration (here: a SQLite file that is gone) gets its
    tables from `features materialize` itself; it failed with 'no such table' and asked for a
    whole rebuild. Run as a new process, as a user would: this one's store keeps its connection."""
    import features.store

    crmscore = [Path(sys.executable).parent / "crmscore", "features"]
    env = {**os.environ, "CRMSCORE_DATA_DIR": str(store_ready["data_dir"])}
    (get_settings().features_dir / "online.db").unlink()
    try:
        loaded = subprocess.run([*crmscore, "materialize"], env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        profile = _latest(pd.read_parquet(store_ready["tables"]["profile"]))
        customer = str(int(profile["customer_id"].iloc[0]))
        read = subprocess.run([*crmscore, "get", customer], env=env, capture_output=True, text=True)
        assert read.returncode == 0, read.stdout + read.stderr
    finally:
        features.store._store.cache_clear()  # the module's later tests read the new file


def test_cli_build_without_raw_data_names_what_is_missing(tmp_path):
    from crmscore.cli import app

    with pytest.MonkeyPatch.context() as env:
        env.setenv("CRMSCORE_DATA_DIR", str(tmp_path / "empty"))
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["features", "build", "--no-progress"])
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "raw tables 'customers', 'accounts', 'transactions' not found" in result.output
    assert str(tmp_path / "empty" / "raw" / "customers") in result.output


def test_model_dtypes_are_float_for_numbers_and_str_for_categories():
    from features.catalog import as_model_dtypes

    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "txn_count_3m": pd.array([3, None], dtype="Int64"),
            "credit_current_dpd": np.array([None, 30], dtype=object),
            "segment": ["mass", np.nan],
            "label": ["keep", "me"],
        }
    )
    typed = as_model_dtypes(frame)
    assert list(typed.columns) == list(frame.columns)
    assert typed["txn_count_3m"].dtype == "float64" and np.isnan(typed.loc[1, "txn_count_3m"])
    assert typed["credit_current_dpd"].tolist()[1] == 30.0
    assert typed["segment"].tolist() == ["mass", None]
    assert typed["label"].tolist() == ["keep", "me"] and typed["customer_id"].dtype == "int64"


def test_the_build_caps_duckdb_memory(store_ready, monkeypatch):
    import psutil

    from features.build import connect

    limit = connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    value, unit = limit.split()
    assert unit == "GiB" and float(value) == pytest.approx(
        psutil.virtual_memory().total / 2**31, abs=1.0
    )  # half the RAM, not DuckDB's 80 %
    monkeypatch.setenv("CRMSCORE_FEATURES__DUCKDB_MEMORY_LIMIT", "3GB")
    get_settings.cache_clear()
    try:
        limit = connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert limit == "2.7 GiB"  # 3 GB as DuckDB prints it


def test_feasts_offline_duckdb_gets_the_same_cap(store_ready, monkeypatch):
    import ibis

    from features.store import cap_offline_duckdb, get_store

    def offline_limit() -> str:
        query = "SELECT current_setting('memory_limit')"
        return ibis.get_backend().raw_sql(query).fetchone()[0]

    get_store()
    assert offline_limit() == connect_limit()  # not ibis's own 80 % of the RAM
    monkeypatch.setenv("CRMSCORE_FEATURES__DUCKDB_MEMORY_LIMIT", "3GB")
    get_settings.cache_clear()
    try:
        cap_offline_duckdb()
        assert offline_limit() == "2.7 GiB"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        cap_offline_duckdb()


def connect_limit() -> str:
    from features.build import connect

    return connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_a_build_in_passes_writes_the_same_tables(store_ready, tmp_path, monkeypatch):
    """500 customers in 5 passes (a fifth of the transactions each: hashed ids, so uneven
    passes) against the one-pass build the store holds: same columns, types, rows and order, in
    every table."""
    import duckdb

    from crmscore.dataset import parquet_glob
    from features.build import RawDataset, build_feature_tables, build_passes

    raw = store_ready["data_dir"] / "raw"
    glob = parquet_glob(raw, "transactions")
    transactions = duckdb.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
    monkeypatch.setenv("CRMSCORE_FEATURES__BUILD_PASS_TRANSACTIONS", str(-(-transactions // 5)))
    get_settings.cache_clear()
    try:
        assert build_passes(RawDataset.open(raw)) == 5
        report = build_feature_tables(store_ready["data_dir"] / "raw", tmp_path)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert set(report.tables) == set(store_ready["tables"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}.parquet" for name in report.tables
    )  # the passes' parts are gone
    con = duckdb.connect()
    for name, once in store_ready["tables"].items():
        passes = report.tables[name]
        assert (
            con.execute(f"DESCRIBE SELECT * FROM '{passes}'").fetchall()
            == con.execute(f"DESCRIBE SELECT * FROM '{once}'").fetchall()
        )
        a = con.execute(f"SELECT * FROM '{once}'").df()
        b = con.execute(f"SELECT * FROM '{passes}'").df()
        # Equal to the last bits: DuckDB adds a sum's terms in whichever order its threads
        # meet them, so a few sums differ in the 16th digit between any two builds.
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-9)
