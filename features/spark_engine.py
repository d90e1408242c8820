"""The feature build on Spark (``features.engine: spark``): the DuckDB build's own statements,
run by Spark.

:func:`features.build.build_feature_tables` runs the same statements on either engine: the raw
views, the staging tables (:mod:`features.staging`) and each view's ``COPY`` to Parquet. Here each
is translated by :mod:`features.spark_sql`; staging tables are written to Parquet under a scratch
folder and read back (no Spark plan grows with the number of steps); each feature table becomes
one Parquet file, sorted as DuckDB sorts it, written where DuckDB would write it.

One Spark session serves the process (the build and Feast's Spark offline store share it); its
configuration is :func:`spark_conf`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from crmscore.dataset import duckdb_select, parquet_glob
from crmscore.schema import TABLES
from crmscore.settings import get_settings
from features.spark_sql import split_statement, to_spark

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from features.build import RawDataset

#: Settings every crmscore Spark session needs, whatever the user adds (``features.spark_conf``).
_REQUIRED_CONF = {
    # The raw contract's timestamps are naive UTC and snapshots are UTC month starts.
    "spark.sql.session.timeZone": "UTC",
    # Parquet timestamps as DuckDB, pandas and Feast's other stores write them (not INT96).
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
_LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
#: Defaults a user may override: a quiet, UI-less session whose small shuffles stay small.
_DEFAULT_CONF = {
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{_LOG_CONFIG}",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.shuffle.partitions": "16",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    # crmscore saves no Spark tables, but a session still makes its warehouse folder: by default
    # ./spark-warehouse in whatever folder the command ran from.
    "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "crmscore-spark-warehouse"),
}


def spark_conf() -> dict[str, str]:
    """The Spark configuration from the settings: master, crmscore's needs, the user's extras."""
    section = get_settings().features
    # A local master is this machine alone: bind to loopback, not the first network interface.
    local = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    return {
        "spark.master": section.spark_master,
        "spark.app.name": "crmscore",
        **_DEFAULT_CONF,
        **(local if section.spark_master.startswith("local") else {}),
        **section.spark_conf,
        **_REQUIRED_CONF,
    }


def spark_session() -> SparkSession:
    """The process's Spark session, started on first use with :func:`spark_conf`."""
    return _session(tuple(sorted(spark_conf().items())))


@cache
def _session(conf: tuple[tuple[str, str], ...]) -> SparkSession:
    import logging

    from pyspark import SparkConf
    from pyspark.logger import PySparkLogger
    from pyspark.sql import SparkSession

    # pyspark logs every analysis error as JSON before raising it; the exception says it all.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    session = SparkSession.builder.config(conf=SparkConf().setAll(list(conf))).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkConnection:
    """The part of DuckDB's connection the feature build uses, on Spark: ``execute`` a
    ``CREATE TEMP TABLE name AS SELECT ...`` (staged to Parquet and read back as a view) or a
    ``COPY (SELECT ...) TO 'file'`` (one Parquet file), each translated to Spark SQL first.

    Opening it creates one view per raw table the dataset holds, through the same select list as
    DuckDB's views (:func:`crmscore.dataset.duckdb_select`); closing it drops its scratch folder.
    """

    def __init__(self, dataset: RawDataset) -> None:
        from features.build import RawDataError

        self.spark = spark_session()
        # Feast's Spark store turns this on for its own queries; plain identifiers are meant here.
        self.spark.conf.set("spark.sql.parser.quotedRegexColumnNames", "false")
        self.scratch = Path(tempfile.mkdtemp(prefix="spark-", dir=_scratch_root()))
        self.schema: dict[str, list[str]] = {}
        for name, present in dataset.columns.items():
            glob = parquet_glob(dataset.path, name)
            select = f"SELECT {duckdb_select(TABLES[name], present)} FROM read_parquet('{glob}')"
            try:
                self._view(name, self.spark.sql(to_spark(select, self.schema)))
            except Exception as error:  # Spark's analyser names the column or file
                raise RawDataError(
                    f"raw table {name!r} at {glob} does not match the raw schema: {error}"
                ) from error

    def execute(self, statement: str) -> None:
        """Run one DuckDB statement of the build (``CREATE TEMP TABLE ... AS`` or ``COPY``)."""
        kind, target, select = split_statement(statement)
        frame = self.spark.sql(to_spark(select, self.schema))
        if kind == "table":
            path = self.scratch / target
            frame.write.mode("overwrite").parquet(str(path))  # a short plan for the next step
            self._view(target, self.spark.read.parquet(str(path)))
        else:
            _write_file(frame, Path(target))

    def _view(self, name: str, frame: DataFrame) -> None:
        frame.createOrReplaceTempView(name)
        self.schema[name] = frame.columns

    def __enter__(self) -> SparkConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.schema:
            self.spark.catalog.dropTempView(name)
        shutil.rmtree(self.scratch, ignore_errors=True)


def _scratch_root() -> Path:
    root = get_settings().features_dir / ".spark-work"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _write_file(frame: DataFrame, target: Path) -> None:
    """``frame`` as the single Parquet file ``target`` (rows in the frame's order)."""
    folder = target.with_name(f"{target.name}.spark")
    frame.coalesce(1).write.mode("overwrite").option("compression", "zstd").parquet(str(folder))
    (part,) = folder.glob("part-*.parquet")
    os.replace(part, target)  # same folder, same file system
    shutil.rmtree(folder, ignore_errors=True)
