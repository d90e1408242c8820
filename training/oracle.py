"""The synthetic bank's true probabilities, read only to grade a model (never to train one).

A real bank has no oracle: every function here returns ``None`` when the folder is absent, and the
pipeline then simply skips the comparison.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from crmscore.settings import get_settings

ORACLE_COLUMNS = {"customer_id", "snapshot", "outcome", "product", "probability"}


def _probability_files(oracle_dir: Path) -> list[str]:
    files = sorted(oracle_dir.rglob("*.parquet"))
    return [str(f) for f in files if set(pq.read_schema(f).names) >= ORACLE_COLUMNS]


def oracle_probabilities(
    outcome: str, snapshots: list, oracle_dir: Path | None = None
) -> pd.DataFrame | None:
    """True probabilities of ``outcome`` ("churn", "default", "cross_sell") at ``snapshots``.

    Columns: customer_id, event_timestamp, product (cross_sell only), oracle_probability.
    ``None`` when there is no oracle (real data) or it holds nothing for these snapshots.
    """
    oracle_dir = Path(oracle_dir or get_settings().oracle_dir)
    files = _probability_files(oracle_dir) if oracle_dir.is_dir() else []
    if not files:
        return None
    wanted = pd.DataFrame({"snapshot": pd.to_datetime(pd.Series(snapshots)).dt.date})
    con = duckdb.connect()
    con.register("wanted", wanted)
    frame = con.execute(
        """
        SELECT customer_id::BIGINT AS customer_id, snapshot::DATE AS snapshot, product,
               probability AS oracle_probability
        FROM read_parquet($files, union_by_name = true)
        WHERE outcome = $outcome AND snapshot::DATE IN (SELECT snapshot FROM wanted)
        """,
        {"files": files, "outcome": outcome},
    ).df()
    if frame.empty:
        return None
    frame["event_timestamp"] = pd.to_datetime(frame.pop("snapshot")).astype("datetime64[ns]")
    if outcome != "cross_sell":
        frame = frame.drop(columns="product")
    return frame
