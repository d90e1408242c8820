"""Batch scoring: every customer through the same feature reads and the same :func:`score_frame`
as ``POST /score``, written atomically as Parquet or CSV.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from crmscore.settings import ServingSettings
from serving.champions import Champions
from serving.feature_source import OnlineFeatures
from serving.scoring import score_frame

OUTPUT_FORMATS = (".parquet", ".csv")


def all_customer_ids(raw_dir: Path) -> list[int]:
    """Every customer id in the raw ``customers`` table (the bank's golden record)."""
    import duckdb

    folder, single = Path(raw_dir) / "customers", Path(raw_dir) / "customers.parquet"
    source = folder / "*.parquet" if folder.is_dir() else single
    if not (folder.is_dir() or single.is_file()):
        raise FileNotFoundError(
            f"no customers table in {raw_dir}: run `crmscore generate` or `crmscore ingest` first"
        )
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT customer_id FROM read_parquet('{source}') ORDER BY customer_id"
        ).fetchall()
    return [int(r[0]) for r in rows]


def check_output_path(path: Path) -> Path:
    """``path`` if its extension is a supported format and its folder exists; else ValueError."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"--out {path}: use a .parquet or .csv file name")
    if not path.parent.exists():
        raise ValueError(f"--out {path}: folder {path.parent} does not exist")
    return path


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (Parquet or CSV by extension) atomically: a temporary file in
    the same folder, renamed into place, so a crash never leaves a partial file behind."""
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        serialisable = frame.copy()
        for column in serialisable.columns:
            if serialisable[column].map(lambda v: isinstance(v, list)).any():
                serialisable[column] = serialisable[column].map(
                    lambda v: " | ".join(v) if isinstance(v, list) else v
                )
        if path.suffix.lower() == ".parquet":
            serialisable.to_parquet(tmp, index=False)
        else:
            serialisable.to_csv(tmp, index=False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the result is an ordinary shared file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def features_for(
    source: OnlineFeatures,
    customer_ids: list[int],
    chunk: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, list[int]]:
    """Features of many customers, read in chunks; ``(frame, unknown ids)``."""
    frames, unknown = [], []
    for start in range(0, len(customer_ids), chunk):
        ids = customer_ids[start : start + chunk]
        frame, missing = source.fetch(ids)
        frames.append(frame)
        unknown.extend(missing)
        if progress:
            progress(len(ids))
    frames = [f for f in frames if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, unknown


def score_customers(
    champions: Champions,
    source: OnlineFeatures,
    customer_ids: list[int],
    settings: ServingSettings,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """``(features, scores, unknown ids)`` for ``customer_ids`` (scores row-aligned to features)."""
    features, unknown = features_for(source, customer_ids, settings.batch_chunk, progress)
    if features.empty:
        return features, pd.DataFrame(), unknown
    return features, score_frame(champions, features, settings), unknown
