"""Compute the snapshot feature tables with DuckDB, and register them with Feast.

``build_feature_tables`` reads the raw tables (``raw_dir/<table>/*.parquet``), creates the shared
staging tables (:mod:`features.staging`) and writes one Parquet table per feature view. Each table
has ``customer_id`` (int64), ``event_timestamp`` (timestamp, UTC, a month start) and the view's
features, cast to their declared Feast types; one row per customer and snapshot from the month the
customer joined. Snapshots run from the second data month to the month after the last one, so the
newest snapshot sees all data. Tables are written to a temporary file and renamed into place, so a
failed build never leaves a half-written table behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from crmscore.schema import TABLES
from crmscore.settings import get_settings
from features.spec import FeatureGroup
from features.staging import STATEMENTS
from features.views import GROUPS

if TYPE_CHECKING:
    import duckdb

_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR"}


class RawDataError(FileNotFoundError):
    """The raw dataset is missing or does not look like the raw contract."""


def raw_table_glob(raw_dir: Path, table: str) -> str:
    """The Parquet files of one raw table: a ``<table>/`` folder or ``<table>.parquet``."""
    folder, single = raw_dir / table, raw_dir / f"{table}.parquet"
    if folder.is_dir() and any(folder.glob("*.parquet")):
        return str(folder / "*.parquet")
    if single.is_file():
        return str(single)
    raise RawDataError(
        f"raw table {table!r} not found: expected Parquet files in {folder}/ "
        f"(run `crmscore generate` or ingest the bank's data first)"
    )


def connect(raw_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per raw table, checked against the raw contract."""
    import duckdb

    settings = get_settings()
    raw_dir = Path(raw_dir or settings.raw_dir)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # The build shows its own bar, per step. Inside Jupyter without ipywidgets DuckDB refuses to
    # touch the setting at all; its own bar is then off anyway.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    if settings.features.duckdb_threads:
        con.execute(f"SET threads = {int(settings.features.duckdb_threads)}")
    con.execute(f"SET memory_limit = '{settings.features.duckdb_memory()}'")
    for name, table in TABLES.items():
        glob = raw_table_glob(raw_dir, name)
        # Timestamps are naive UTC in the contract; cast so a nanosecond writer reads the same.
        columns = ", ".join(
            f"{c.name}::TIMESTAMP AS {c.name}" if c.dtype == "timestamp" else c.name
            for c in table.columns
        )
        try:
            con.execute(f"CREATE VIEW {name} AS SELECT {columns} FROM read_parquet('{glob}')")
            con.execute(f"SELECT * FROM {name} LIMIT 0")
        except duckdb.Error as error:
            raise RawDataError(
                f"raw table {name!r} at {glob} does not match the raw schema: {error}"
            ) from error
    return con


def feature_table_sql(group: FeatureGroup) -> str:
    """The group's SQL, restricted to known customers and cast to the declared Feast types."""
    casts = ",\n    ".join(
        f"CAST({f.name} AS {_SQL_TYPES[f.kind]}) AS {f.name}" for f in group.features
    )
    return (
        f"SELECT\n    customer_id::BIGINT AS customer_id,\n"
        f"    event_timestamp::TIMESTAMPTZ AS event_timestamp,\n    {casts}\n"
        f"FROM (\n{group.sql}\n) AS computed\nWHERE known\n"
        f"ORDER BY event_timestamp, customer_id"
    )


def build_feature_tables(
    raw_dir: Path | None = None, out_dir: Path | None = None, progress: bool = False
) -> dict[str, Path]:
    """Compute every feature view's snapshot table from the raw tables; returns view -> path.

    ``raw_dir`` defaults to ``settings.raw_dir`` and ``out_dir`` to ``settings.features_dir/tables``
    (the location the Feast sources read).
    """
    from features.store import tables_dir

    out_dir = Path(out_dir or tables_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = [(name, sql) for name, sql in STATEMENTS] + [(g.name, g) for g in GROUPS]
    written: dict[str, Path] = {}
    with connect(raw_dir) as con, _Progress(progress, len(steps)) as bar:
        for name, step in steps:
            bar.describe(f"features: {name}")
            if isinstance(step, FeatureGroup):
                target = out_dir / f"{name}.parquet"
                partial = out_dir / f".{name}.parquet.partial"
                con.execute(
                    f"COPY ({feature_table_sql(step)}) TO '{partial}' "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)"
                )
                os.replace(partial, target)
                written[name] = target
            else:
                con.execute(step)
            bar.advance()
    return written


def apply() -> None:
    """``feast apply``: register the entity, sources, feature views and services in the registry.

    Also writes ``feature_store.yaml`` beside the registry so the ``feast`` CLI can be pointed at
    it (``feast -c <features_dir> feature-views list``).
    """
    import yaml

    from features.definitions import entity, feature_services, feature_views
    from features.store import get_store, repo_config_dict

    root = get_settings().features_dir
    root.mkdir(parents=True, exist_ok=True)
    store = get_store()
    views = feature_views()
    store.apply([entity(), *views, *feature_services(views)])
    store.refresh_registry()
    config = {**repo_config_dict(), "repo_path": None}
    config.pop("repo_path")
    (root / "feature_store.yaml").write_text(
        "# Written by `crmscore features build` from crmscore.settings; edit settings, not this.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


class _Progress:
    """A rich progress bar when asked for, otherwise nothing (tests, library use)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.started = enabled, total, time.perf_counter()

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn()
            )
            self.bar.start()
            self.task = self.bar.add_task("features", total=self.total)
        return self

    def describe(self, text: str) -> None:
        if self.enabled:
            self.bar.update(self.task, description=text)

    def advance(self) -> None:
        if self.enabled:
            self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.update(self.task, description="features: done")
            self.bar.stop()
