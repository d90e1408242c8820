"""Compute the snapshot feature tables with DuckDB, and register them with Feast.

``build_feature_tables`` reads the raw tables (``raw_dir/<table>/*.parquet`` and the dataset's
``bank.yaml``), creates the shared staging tables (:mod:`features.staging`) and writes one Parquet
table per feature view. Each table has ``customer_id`` (int64), ``event_timestamp`` (timestamp, UTC,
a month start) and the view's features, cast to their declared Feast types; one row per customer
and snapshot from the month the customer joined. Snapshots run from the second data month to the
month after the last one, so the newest snapshot sees all data. Tables are written to a temporary
file and renamed into place, so a failed build never leaves a half-written table behind.

What a bank's data lacks shapes the build (:class:`RawDataset`): a view whose optional table is
absent (no interaction log, no monthly arrears file) is not built, and a feature needing an absent
optional column is left out of its table. Nothing is made up; the build says what it left out.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crmscore.contract import BankContract, contract_of
from crmscore.dataset import dictionary_columns, duckdb_select, parquet_glob, table_columns
from crmscore.schema import TABLES
from crmscore.settings import get_settings
from features.spec import Feature, FeatureGroup
from features.staging import statements
from features.views import groups

if TYPE_CHECKING:
    import duckdb

_SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "bool": "BOOLEAN"}
ROW_GROUP_SIZE = 262_144
#: A pass's part holds its customers' rows of every snapshot, and the merge reads it one snapshot
#: at a time. Row groups this small hold about one snapshot's rows of a pass, so the merge decodes
#: each row about once; with the final tables' row groups it decoded each 6-8 times (every
#: group spanned several snapshots) and reading took twice as long as writing.
PART_ROW_GROUP_SIZE = 16_384


def _parquet(row_group_size: int = ROW_GROUP_SIZE) -> str:
    return f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group_size})"


class RawDataError(FileNotFoundError):
    """The raw dataset is missing or does not look like the raw contract."""


@dataclass(frozen=True)
class RawDataset:
    """What a raw dataset folder holds: its contract, its tables and each table's columns."""

    path: Path
    contract: BankContract
    columns: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def open(cls, raw_dir: Path | None = None) -> RawDataset:
        """Read the folder's table schemas and ``bank.yaml``; :class:`RawDataError` when a
        required table is missing."""
        path = Path(raw_dir or get_settings().raw_dir)
        columns = table_columns(path) if path.is_dir() else {}
        lacking = [n for n, t in TABLES.items() if not t.optional and n not in columns]
        if lacking:
            where = ", ".join(str(path / name) for name in lacking)
            raise RawDataError(
                f"raw table{'s' * (len(lacking) > 1)} {', '.join(map(repr, lacking))} not found: "
                f"expected Parquet files in {where} (run `crmscore generate` or ingest the bank's "
                "data first)"
            )
        return cls(path, contract_of(path), columns)

    def has(self, need: str) -> bool:
        """Whether the dataset holds ``need``: a table (``"interactions"``) or a column
        (``"transactions.channel"``)."""
        table, _, column = need.partition(".")
        return table in self.columns and (not column or column in self.columns[table])

    def groups(self) -> list[FeatureGroup]:
        """The feature groups the dataset can build (their required tables present)."""
        return [g for g in groups(self.contract) if all(self.has(t) for t in g.requires)]

    def features(self, group: FeatureGroup) -> list[Feature]:
        """The features of ``group`` whose optional columns the dataset has."""
        return [f for f in group.features if all(self.has(n) for n in f.needs)]

    @property
    def absent_tables(self) -> list[str]:
        return [n for n in TABLES if n not in self.columns]

    def left_out(self) -> dict[str, list[str]]:
        """Features of the contract the dataset cannot give, per view (whole views included)."""
        built = {g.name: g for g in self.groups()}
        out = {}
        for group in groups(self.contract):
            kept = {f.name for f in self.features(group)} if group.name in built else set()
            missing = [f.name for f in group.features if f.name not in kept]
            if missing:
                out[group.name] = missing
        return out


def connect(
    dataset: RawDataset | None = None,
    *,
    customers: Sequence[int] | None = None,
    shift_days: int = 0,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per raw table the dataset holds (default: the configured
    one), every contract column present (an absent optional column reads as typed NULLs), checked
    against the raw contract.

    ``customers`` restricts every table to those customers (and their accounts); ``shift_days``
    moves every date and time that many days later, so that a chosen day becomes a month start
    (features as of any date, :mod:`features.asof`).
    """
    import duckdb

    dataset = dataset or RawDataset.open()
    settings = get_settings()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # The build shows its own bar, per step. Inside Jupyter without ipywidgets DuckDB refuses to
    # touch the setting at all; its own bar is then off anyway.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    if settings.features.duckdb_threads:
        con.execute(f"SET threads = {int(settings.features.duckdb_threads)}")
    con.execute(f"SET memory_limit = '{settings.features.duckdb_memory()}'")
    if customers is not None:
        import pandas as pd

        con.register("only_customers", pd.DataFrame({"customer_id": list(customers)}))
    for name, present in dataset.columns.items():
        glob = parquet_glob(dataset.path, name)
        columns = duckdb_select(TABLES[name], present, shift_days)
        where = ""
        if customers is not None:
            key = "customer_id" if "customer_id" in TABLES[name].column_names else "account_id"
            source = "only_customers" if key == "customer_id" else "accounts"
            where = f" WHERE {key} IN (SELECT {key} FROM {source})"
        try:
            con.execute(
                f"CREATE VIEW {name} AS SELECT {columns} FROM read_parquet('{glob}'){where}"
            )
            con.execute(f"SELECT * FROM {name} LIMIT 0")
        except duckdb.Error as error:
            raise RawDataError(
                f"raw table {name!r} at {glob} does not match the raw schema: {error}"
            ) from error
    return con


def feature_table_sql(group: FeatureGroup, features: list[Feature] | None = None) -> str:
    """The group's SQL, restricted to known customers and cast to the declared Feast types; only
    ``features`` (default: all of the group's) are selected."""
    casts = ",\n    ".join(
        f"CAST({f.name} AS {_SQL_TYPES[f.kind]}) AS {f.name}"
        for f in (group.features if features is None else features)
    )
    return (
        f"SELECT\n    customer_id::BIGINT AS customer_id,\n"
        f"    event_timestamp::TIMESTAMPTZ AS event_timestamp,\n    {casts}\n"
        f"FROM (\n{group.sql}\n) AS computed\nWHERE known\n"
        f"ORDER BY event_timestamp, customer_id"
    )


@dataclass(frozen=True)
class BuildReport:
    """What a feature build read and wrote, and what it had to leave out."""

    tables: dict[str, Path]
    used_tables: list[str]
    absent_tables: list[str]
    left_out: dict[str, list[str]]


def build_feature_tables(
    raw_dir: Path | None = None,
    out_dir: Path | None = None,
    progress: bool = False,
    log_steps: bool = False,
) -> BuildReport:
    """Compute every feature view's snapshot table the raw data allows (see the module docstring).

    ``raw_dir`` defaults to ``settings.raw_dir`` and ``out_dir`` to ``settings.features_dir/tables``
    (the location the Feast sources read). ``progress`` shows a bar; ``log_steps`` prints one
    timestamped line as each step starts instead (a batch job's log). Tables of views the data
    no longer supports are removed, so the folder holds exactly what Feast will declare.

    On DuckDB a bank of more than ``features.build_pass_transactions`` transactions is built in
    passes over disjoint sets of its customers (every feature is one customer's history), whose
    tables are then merged: only one pass's intermediate tables need memory or spill space.
    """
    from features.store import tables_dir

    dataset = RawDataset.open(raw_dir)
    out_dir = Path(out_dir or tables_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    built = dataset.groups()
    passes = build_passes(dataset)
    steps = passes * (len(statements(dataset.contract, set(dataset.columns))) + len(built))
    with _Progress(progress, steps + (len(built) + 1) * (passes > 1), log_steps) as bar:
        if passes == 1:
            written = _build_at_once(dataset, built, out_dir, bar)
        else:
            written = _build_in_passes(dataset, built, out_dir, passes, bar)
    for stale in out_dir.glob("*.parquet"):
        if stale.stem not in written:
            stale.unlink()
    optional = {t for g in built for t in g.requires}
    used = [n for n, t in TABLES.items() if not t.optional or n in optional]
    readable = {r for g in groups(dataset.contract) for r in g.requires}
    absent = [t for t in dataset.absent_tables if t in readable]
    return BuildReport(written, used, absent, dataset.left_out())


def build_passes(dataset: RawDataset) -> int:
    """How many passes the build takes: one per ``features.build_pass_transactions``
    transactions on DuckDB (counted from the Parquet footers); one on Spark, which partitions
    the work itself."""
    import duckdb

    settings = get_settings().features
    if settings.engine != "duckdb":
        return 1
    glob = parquet_glob(dataset.path, "transactions")
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
    return max(1, math.ceil(rows / settings.build_pass_transactions))


def _run_pass(
    con,
    dataset: RawDataset,
    built: list[FeatureGroup],
    files: dict[str, Path],
    bar,
    span=None,
    row_group_size: int = ROW_GROUP_SIZE,
) -> None:
    """The staging statements, then each of ``built`` written to ``files[group name]``."""
    for name, sql in statements(dataset.contract, set(dataset.columns), span=span):
        bar.describe(f"features: {name}")
        con.execute(sql)
        bar.advance()
    for group in built:
        bar.describe(f"features: {group.name}")
        sql = feature_table_sql(group, dataset.features(group))
        con.execute(f"COPY ({sql}) TO '{files[group.name]}' {_parquet(row_group_size)}")
        bar.advance()


def _build_at_once(
    dataset: RawDataset, built: list[FeatureGroup], out_dir: Path, bar
) -> dict[str, Path]:
    from features.engine import open_engine

    partial = {g.name: out_dir / f".{g.name}.parquet.partial" for g in built}
    try:
        with open_engine(dataset) as con:
            _run_pass(con, dataset, built, partial, bar)
        written = {}
        for name, path in partial.items():
            written[name] = out_dir / f"{name}.parquet"
            os.replace(path, written[name])
        return written
    finally:  # a failed build leaves the tables it found, and nothing half-written
        for path in partial.values():
            path.unlink(missing_ok=True)


def _build_in_passes(
    dataset: RawDataset, built: list[FeatureGroup], out_dir: Path, passes: int, bar
) -> dict[str, Path]:
    parts = {
        g.name: [out_dir / f".{g.name}.{i}.parquet.partial" for i in range(passes)] for g in built
    }
    work = out_dir / ".passes"
    try:
        with connect(dataset) as con:  # the whole bank's months, for every pass
            con.execute(dict(statements(dataset.contract, set(dataset.columns)))["months"])
            span = tuple(
                str(m) for m in con.execute("SELECT min(month), max(month) FROM months").fetchone()
            )
        bar.describe("features: split the customers")
        split = split_by_customer(dataset, work, passes)
        bar.advance()
        for i, part in enumerate(split):
            with connect(part) as con:
                files = {name: paths[i] for name, paths in parts.items()}
                _run_pass(con, part, built, files, bar, span, PART_ROW_GROUP_SIZE)
            shutil.rmtree(part.path)
        written = {}
        for name, paths in parts.items():
            bar.describe(f"features: merge {name}")
            written[name] = merge_parts(paths, out_dir / f"{name}.parquet")
            bar.advance()
        return written
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for path in (p for paths in parts.values() for p in paths):
            path.unlink(missing_ok=True)


def split_by_customer(
    dataset: RawDataset, folder: Path, n: int, customers: Sequence[int] | None = None
) -> list[RawDataset]:
    """``dataset`` as ``n`` smaller ones under ``folder``, over disjoint sets of its customers
    (by a hash of the id): each raw table is read once and written once, so each pass of the
    build reads only its own customers' rows (filtering the whole bank in every pass read every
    transaction ``n`` times). ``customers``: only these customers' rows."""
    import duckdb
    import pandas as pd

    accounts = parquet_glob(dataset.path, "accounts")
    folder.mkdir(parents=True, exist_ok=True)
    which = f"hash(customer_id::BIGINT) % {int(n)} AS pass"
    only = ""
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{get_settings().features.duckdb_memory()}'")
        # A part's row order means nothing (every feature orders its own windows and ties), and
        # writing in any order saves DuckDB re-sequencing its threads' output: the 1M bank's
        # transactions split in 133-139 s against 149-151 s (timed alone; bench/CHAIN-HISTORY.md,
        # the thirteenth run).
        con.execute("SET preserve_insertion_order = false")
        if customers is not None:
            con.register("only_customers", pd.DataFrame({"customer_id": list(customers)}))
            only = " WHERE customer_id IN (SELECT customer_id FROM only_customers)"
        for name in dataset.columns:
            glob = parquet_glob(dataset.path, name)
            if "customer_id" in TABLES[name].column_names:
                rows = f"SELECT *, {which} FROM read_parquet('{glob}'){only}"
            else:  # keyed by account: the account's customer
                rows = (
                    f"SELECT t.*, {which} FROM read_parquet('{glob}') t JOIN "
                    f"(SELECT account_id, customer_id FROM read_parquet('{accounts}'){only}) a "
                    "ON t.account_id = a.account_id"
                )
            con.execute(f"COPY ({rows}) TO '{folder / name}' (FORMAT parquet, PARTITION_BY (pass))")
            for i in range(n):
                target = folder / f"pass{i}" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if (folder / name / f"pass={i}").is_dir():
                    os.replace(folder / name / f"pass={i}", target)
                else:  # none of these customers has a row here: the table, empty
                    target.mkdir()
                    empty = f"SELECT * FROM read_parquet('{glob}') LIMIT 0"
                    con.execute(f"COPY ({empty}) TO '{target / 'empty.parquet'}' (FORMAT parquet)")
            shutil.rmtree(folder / name)
    return [RawDataset(folder / f"pass{i}", dataset.contract, dataset.columns) for i in range(n)]


def merge_parts(parts: list[Path], target: Path) -> Path:
    """One table from the passes' ``parts`` (disjoint customers, each ordered by snapshot and
    customer), in the same order, written to ``target`` atomically. A snapshot at a time, and no
    sort spills the whole table to disk. DuckDB reads and orders the next snapshot while pyarrow
    compresses and writes the last (both release the GIL): at most two snapshots of the table are
    in memory."""
    from concurrent.futures import ThreadPoolExecutor, wait

    import duckdb

    partial = target.with_name(f".{target.name}.partial")
    source = "read_parquet([" + ", ".join(f"'{p}'" for p in parts) + "])"
    with duckdb.connect() as con, ThreadPoolExecutor(1) as writing:
        con.execute("SET TimeZone = 'UTC'")
        snapshots = con.execute(f"SELECT DISTINCT event_timestamp FROM {source} ORDER BY 1")
        writer = written = None
        try:
            for (snapshot,) in snapshots.fetchall():
                rows = con.sql(
                    f"SELECT * FROM {source} WHERE event_timestamp = ? ORDER BY customer_id",
                    params=[snapshot],
                ).to_arrow_table()
                if writer is None:
                    writer = _feature_writer(partial, rows.schema)
                if written is not None:
                    written.result()  # the snapshot before, in order; raises its error
                written = writing.submit(writer.write_table, rows, row_group_size=ROW_GROUP_SIZE)
            if written is not None:
                written.result()
        finally:
            if written is not None:
                wait([written])  # never close the file under a write
            if writer is not None:
                writer.close()
        if writer is None:  # no rows in any part: the empty table, with its columns
            con.execute(f"COPY (SELECT * FROM {source}) TO '{partial}' {_parquet()}")
    os.replace(partial, target)
    return target


def _feature_writer(path: Path, schema):
    """A zstd Parquet writer for a feature table, with dictionary pages for its text columns
    only (:func:`crmscore.dataset.dictionary_columns`)."""
    import pyarrow.parquet as pq

    return pq.ParquetWriter(
        path, schema, compression="zstd", use_dictionary=dictionary_columns(schema)
    )


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
    # Views of an earlier build the data no longer supports (a re-ingested bank without an
    # interaction log) leave the registry, so no service or model can ask for them.
    names = {v.name for v in views}
    try:
        stale = [v for v in store.list_feature_views() if v.name not in names]
    except Exception:  # a fresh registry has nothing to list
        stale = []
    store.apply(
        [entity(), *views, *feature_services(views)], objects_to_delete=stale, partial=not stale
    )
    store.refresh_registry()
    config = {**repo_config_dict(), "repo_path": None}
    config.pop("repo_path")
    (root / "feature_store.yaml").write_text(
        "# Written by `crmscore features build` from crmscore.settings; edit settings, not this.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


class _Progress:
    """A rich progress bar when asked for, or a timestamped line per step, otherwise nothing
    (tests, library use)."""

    def __init__(self, enabled: bool, total: int, log_steps: bool = False) -> None:
        self.enabled, self.total, self.started = enabled, total, time.perf_counter()
        self.log_steps = log_steps and not enabled

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
        elif self.log_steps:
            self._log(text)

    def advance(self) -> None:
        if self.enabled:
            self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.update(self.task, description="features: done")
            self.bar.stop()
        elif self.log_steps and exc[0] is None:
            self._log("features: done")

    @staticmethod
    def _log(text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)
