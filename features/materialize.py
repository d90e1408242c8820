"""Load the latest feature snapshot into the online store (SQLite, or Redis by configuration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmscore.settings import get_settings


def latest_snapshot(end: datetime | None = None) -> datetime:
    """The newest snapshot in the feature tables at or before ``end`` (default: the newest)."""
    import duckdb

    from features.build import RawDataError
    from features.store import tables_dir

    table = tables_dir() / "profile.parquet"  # every dataset has customers, so a profile
    if not table.exists():
        raise RawDataError(f"no feature tables in {tables_dir()}: run `crmscore features build`")
    query = f"SELECT max(event_timestamp) FROM read_parquet('{table}')"
    params: list[object] = []
    if end is not None:
        query += " WHERE event_timestamp <= ?"
        params.append(_utc(end))
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        (latest,) = con.execute(query, params).fetchone()
    if latest is None:
        raise ValueError(f"no feature snapshot at or before {end:%Y-%m-%d}")
    return _utc(latest)


def materialize(end: datetime | None = None, progress: bool = False) -> datetime:
    """Write each customer's features at the latest snapshot (at or before ``end``) online.

    Returns the snapshot materialised. Rows older than the feature views' TTL are not loaded, the
    same rule the offline point-in-time join applies. The rows go in whole columns at a time
    (:mod:`features.online_writer`), in the layout Feast's online store reads.
    """
    from rich.progress import Progress

    from features.online_writer import write_snapshot
    from features.store import get_store

    snapshot = latest_snapshot(end)
    ttl = timedelta(days=get_settings().features.ttl_days)
    store = get_store()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("materialising (customers x views)")
        write_snapshot(store, snapshot, ttl, lambda n: bar.advance(task, n))
    return snapshot


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
