"""The Spark scale path: the feature build on Spark (``features.engine: spark``) and Feast's Spark
offline store (``features.offline_store: spark``), in local mode, against the DuckDB defaults.

The parity test compares every column of every feature table, so a feature added to the DuckDB
SQL is checked on Spark without touching this file. One Spark session serves the whole test
session (every test uses the same ``SPARK_SETTINGS``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from crmscore.settings import get_settings
from features.catalog import feature_names, services
from features.spark_sql import SparkTranslationError, to_spark
from tests.servers import ensure_java
from tests.stacks import built_stack, stack_env

SPARK_SETTINGS = {
    "CRMSCORE_FEATURES__SPARK_MASTER": "local[2]",
    # a few hundred rows per stage: a handful of shuffle partitions is plenty
    "CRMSCORE_FEATURES__SPARK_CONF": json.dumps({"spark.sql.shuffle.partitions": "4"}),
}


# --- the translation, statement by statement (no Spark needed) ---------------------------------


def test_columns_and_star_exclude_expand_to_the_columns_duckdb_would_name():
    schema = {"t": ["k", "a", "b"], "u": ["k", "c"]}

    assert (
        to_spark("SELECT k, sum(COLUMNS(t.* EXCLUDE (k))) FROM t GROUP BY ALL", schema)
        == "SELECT k, SUM(t.a) AS a, SUM(t.b) AS b FROM t GROUP BY ALL"
    )
    assert (
        to_spark("SELECT t.* EXCLUDE (b), u.c FROM t JOIN u USING (k)", schema)
        == "SELECT t.k, t.a, u.c FROM t JOIN u USING (k)"
    )
    # a CTE's columns come from its own (expanded) select list
    assert (
        to_spark("WITH m AS (SELECT k, a AS x FROM t) SELECT m.* EXCLUDE (k) FROM m", schema)
        == "WITH m AS (SELECT k, a AS x FROM t) SELECT m.x FROM m"
    )


def test_duckdb_only_functions_become_their_spark_equivalents():
    sql = (
        "SELECT d::DATE - e AS days, epoch(ts) AS seconds, "
        "list_position(['x', 'y'], s) - 1 AS rank, timezone('UTC', ts) AS utc, "
        "arg_max(v, (ts, id)) AS last_v, n / 30.5 AS ratio FROM t GROUP BY ALL"
    )
    assert to_spark(sql, {}) == (
        "SELECT DATEDIFF(DAY, e, CAST(d AS DATE)) AS days, "
        "UNIX_MICROS(ts) / 1000000 AS seconds, "
        "NULLIF(ARRAY_POSITION(ARRAY('x', 'y'), s), 0) - 1 AS rank, ts AS utc, "
        "MAX_BY(v, STRUCT(ts, id)) AS last_v, n / CAST(30.5 AS DOUBLE) AS ratio FROM t GROUP BY ALL"
    )


def test_named_windows_are_inlined_and_offset_functions_lose_the_frame():
    sql = (
        "SELECT sum(x) OVER w, lag(x, 3) OVER w FROM t "
        "WINDOW w AS (PARTITION BY k ORDER BY m ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)"
    )
    assert to_spark(sql, {}) == (
        "SELECT SUM(x) OVER (PARTITION BY k ORDER BY m NULLS LAST ROWS BETWEEN 2 PRECEDING AND "
        "CURRENT ROW), LAG(x, 3) OVER (PARTITION BY k ORDER BY m NULLS LAST) FROM t"
    )


def test_an_end_exclusive_range_becomes_a_lateral_view_of_an_inclusive_sequence():
    sql = "SELECT range AS m FROM b, range(b.lo, b.hi, INTERVAL 1 MONTH)"
    assert to_spark(sql, {}) == (
        "SELECT range AS m FROM b LATERAL VIEW EXPLODE(SEQUENCE(b.lo, b.hi - INTERVAL '1' MONTH, "
        "INTERVAL '1' MONTH)) range AS range"
    )


def test_untranslatable_statements_fail_naming_what():
    with pytest.raises(SparkTranslationError, match="unknown 'q'"):
        to_spark("SELECT q.* EXCLUDE (a) FROM t", {"t": ["a"]})
    with pytest.raises(SparkTranslationError, match="timezone"):
        to_spark("SELECT timezone('Europe/Paris', ts) FROM t", {})


# --- the same bank on both engines --------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_bank(tmp_path_factory):
    """A small bank built by DuckDB (and applied to Feast), then built again by Spark."""
    pytest.importorskip("pyspark", reason="pyspark is not installed (`make test` installs it)")
    ensure_java()
    from features.build import build_feature_tables

    root = tmp_path_factory.mktemp("spark")
    env = stack_env(root, **SPARK_SETTINGS)
    with built_stack(root, env, customers=150, seed=9):
        patch = pytest.MonkeyPatch()
        patch.setenv("CRMSCORE_FEATURES__ENGINE", "spark")
        get_settings.cache_clear()
        try:
            spark_tables = build_feature_tables(out_dir=root / "spark-tables").tables
        finally:
            patch.undo()
            get_settings.cache_clear()
        yield {"root": root, "spark_tables": spark_tables}


def test_a_spark_build_leaves_no_folder_where_the_command_ran(spark_bank):
    """Spark's warehouse folder (never used: crmscore saves no Spark tables) is a scratch folder,
    not ``./spark-warehouse`` beside the user's files."""
    from features.spark_engine import spark_session

    warehouse = Path(spark_session().conf.get("spark.sql.warehouse.dir").removeprefix("file:"))
    assert not warehouse.is_relative_to(Path.cwd()), warehouse
    assert not (Path.cwd() / "spark-warehouse").exists()


@pytest.mark.slow
def test_spark_builds_every_feature_table_exactly_as_duckdb(spark_bank):
    from features.store import tables_dir

    duckdb_tables = sorted(tables_dir().glob("*.parquet"))
    assert len(duckdb_tables) >= 4
    assert {p.stem for p in duckdb_tables} == set(spark_bank["spark_tables"])
    for path in duckdb_tables:
        duckdb = pq.read_table(path)
        spark = pq.read_table(spark_bank["spark_tables"][path.stem])
        # same columns, same Arrow types (nullability aside: Spark cannot prove NOT NULL)
        assert [(f.name, f.type) for f in spark.schema] == [
            (f.name, f.type) for f in duckdb.schema
        ], path.stem
        keys = ["event_timestamp", "customer_id"]
        expected = duckdb.to_pandas().sort_values(keys, ignore_index=True)
        actual = spark.to_pandas().sort_values(keys, ignore_index=True)
        assert len(expected) > 1000
        # every value: integers and strings exactly, floats to the last few bits
        pd.testing.assert_frame_equal(actual, expected, check_exact=False, rtol=1e-9, atol=1e-9)
        # the comparison means something: most features vary in this bank
        features = [c for c in expected.columns if c not in keys]
        constant = [c for c in features if expected[c].nunique(dropna=False) < 2]
        assert len(constant) <= len(features) // 5, (path.stem, constant)


@pytest.mark.slow
def test_spark_offline_store_gives_duckdb_training_sets_and_batch_vectors(spark_bank):
    from features.build import apply
    from features.store import get_store, tables_dir
    from features.training_set import get_training_set
    from serving.feature_source import SnapshotFeatures

    profile = pd.read_parquet(tables_dir() / "profile.parquet")
    snapshots = sorted(profile["event_timestamp"].unique())
    rows = profile[profile["event_timestamp"].isin(snapshots[-4:])].sample(200, random_state=3)
    entity_df = pd.DataFrame(
        {
            "customer_id": [*rows["customer_id"], 99_999_999],  # the last one is unknown
            # mid-month times: the point-in-time join takes the snapshot before
            "event_timestamp": [*(rows["event_timestamp"] + pd.Timedelta(days=9)), snapshots[-1]],
            "label": np.arange(len(rows) + 1) % 2,
        }
    )
    ids = rows["customer_id"].drop_duplicates().head(50).tolist()
    names = feature_names("cross_sell")
    expected = {s: get_training_set(entity_df, s) for s in services()}
    expected_rows, expected_unknown = SnapshotFeatures(names).fetch([*ids, 99_999_999])

    patch = pytest.MonkeyPatch()
    patch.setenv("CRMSCORE_FEATURES__OFFLINE_STORE", "spark")
    get_settings.cache_clear()
    try:
        apply()  # the views' sources become Spark sources
        assert get_store().config.offline_store.type == "spark"
        for service in services():
            actual = get_training_set(entity_df, service)
            pd.testing.assert_frame_equal(actual, expected[service], check_exact=False, rtol=1e-12)
            assert actual[feature_names(service)].iloc[-1].isna().all()  # unknown customer
        rows, unknown = SnapshotFeatures(names).fetch([*ids, 99_999_999])
        assert unknown == expected_unknown == [99_999_999]
        pd.testing.assert_frame_equal(
            rows.to_frame(), expected_rows.to_frame(), check_exact=False, rtol=1e-12
        )
    finally:
        patch.undo()
        get_settings.cache_clear()
