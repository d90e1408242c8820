"""Batch scoring: every customer through the same feature rows and the same
:func:`~serving.scoring.score_rows` as ``POST /score``, written atomically as Parquet or CSV.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from crmscore.settings import ServingSettings
from serving.champions import Champions
from serving.feature_source import OnlineFeatures
from serving.scoring import Scores, score_rows

if TYPE_CHECKING:
    from features.online import FeatureRows

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


class AtomicTableWriter:
    """Append frames to a Parquet or CSV file that appears under its name only once complete.

    Frames go to ``.<name>.<pid>.partial`` in the same folder, renamed into place on a clean exit
    and deleted on an exception; so a crash, a kill or a full disk never leaves a half-written
    file under the output name. A SIGKILLed run cannot clean up after itself, so each new writer
    first deletes the partial files of dead runs. Memory holds one frame at a time::

        with AtomicTableWriter("scores.parquet") as out:
            for chunk in chunks:
                out.write(chunk)
    """

    def __init__(self, path: Path) -> None:
        self.path = check_output_path(path)
        self.tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.partial"
        self._parquet = None  # pyarrow.parquet.ParquetWriter once the first frame fixed a schema
        self._written = False

    def __enter__(self) -> AtomicTableWriter:
        remove_dead_partials(self.path)  # includes a leftover of this very pid
        return self

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (same columns every time; list values become ``a | b`` text)."""
        frame = _flat(frame)
        if self.path.suffix.lower() == ".csv":
            frame.to_csv(self.tmp, mode="a", header=not self._written, index=False)
        else:
            self._write_parquet(frame)
        self._written = True

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            schema = pa.Schema.from_pandas(frame, preserve_index=False)
            # A column with no values in the first frame is text (e.g. no next best product yet).
            for i, column in enumerate(schema):
                if pa.types.is_null(column.type):
                    schema = schema.set(i, column.with_type(pa.string()))
            self._parquet = pq.ParquetWriter(self.tmp, schema)
        table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
        self._parquet.write_table(table)

    def __exit__(self, kind, error, trace) -> None:
        try:
            if error is None and not self._written:  # nothing appended: still a valid empty file
                self.write(pd.DataFrame())
            if self._parquet is not None:
                self._parquet.close()
            if error is None:
                os.chmod(self.tmp, 0o644)
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def remove_dead_partials(path: Path) -> list[Path]:
    """Delete ``.<name>.<pid>.partial`` files next to ``path`` whose writer is no longer running
    (or whose name holds no pid: an older naming scheme). Returns what was deleted."""
    removed = []
    for partial in Path(path).parent.glob(f".{Path(path).name}.*.partial"):
        pid = partial.name[len(Path(path).name) + 2 : -len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        partial.unlink(missing_ok=True)
        removed.append(partial)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """List-valued columns (reason sentences) as ``a | b`` text: a flat file's cells are scalars."""
    lists = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list)).any()]
    if not lists:
        return frame
    return frame.assign(
        **{c: frame[c].map(lambda v: " | ".join(v) if isinstance(v, list) else v) for c in lists}
    )


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (Parquet or CSV by extension) atomically."""
    with AtomicTableWriter(path) as out:
        out.write(frame)
    return out.path


def score_chunks(
    champions: Champions,
    source: OnlineFeatures,
    customer_ids: list[int],
    settings: ServingSettings,
    chunk: int,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[FeatureRows, Scores, list[int]]]:
    """``(features, scores, unknown ids)`` per chunk of ``chunk`` customers: the whole book is
    never in memory at once."""
    for start in range(0, len(customer_ids), chunk):
        ids = customer_ids[start : start + chunk]
        rows, unknown = source.fetch(ids)
        scores = score_rows(champions, rows, settings)
        if progress:
            progress(len(ids))
        yield rows, scores, unknown


def score_customers(
    champions: Champions,
    source: OnlineFeatures,
    customer_ids: list[int],
    settings: ServingSettings,
    chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[FeatureRows, Scores, list[int]]:
    """``(features, scores, unknown ids)`` for ``customer_ids`` (row-aligned), features read
    ``chunk`` customers at a time (default ``settings.batch_chunk``) and scored in one pass."""
    from features.online import FeatureRows

    chunk = chunk or settings.batch_chunk
    parts, unknown = [], []
    for start in range(0, len(customer_ids), chunk):
        ids = customer_ids[start : start + chunk]
        rows, missing = source.fetch(ids)
        parts.append(rows)
        unknown.extend(missing)
        if progress:
            progress(len(ids))
    rows = FeatureRows.concat(parts, source.layout)
    return rows, score_rows(champions, rows, settings), unknown
