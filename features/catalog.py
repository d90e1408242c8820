"""What the feature store offers, without touching Feast: names per service and descriptions.

Reads the same declarations the Feast definitions are built from (:mod:`features.views`, for the
configured dataset's contract) and the feature tables the last build wrote (which features the
bank's data allowed), so it is instant. Serving uses :func:`describe` to turn a reason code into a
sentence; training uses :func:`categorical_features` to tell encoders what is a label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crmscore.contract import BankContract, current_contract
from features.definitions import SERVICES, service_features
from features.spec import Feature, FeatureGroup
from features.views import groups

#: The last contract's declared features, found by identity (see _features).
_last: tuple[BankContract, dict[str, Feature]] | None = None


def _features() -> dict[str, Feature]:
    global _last
    contract = current_contract()
    last = _last
    # The contract is the same object while bank.yaml is unchanged (crmscore.contract caches
    # it), and hashing one for _declared's cache serialises it: 30 µs, four times an /explain.
    if last is None or last[0] is not contract:
        _last = last = (contract, _declared(contract))
    return last[1]


@lru_cache(maxsize=8)
def _declared(contract: BankContract) -> dict[str, Feature]:
    return {f.name: f for g in groups(contract) for f in g.features}


def group(name: str) -> FeatureGroup:
    """The declared feature group (view) called ``name``."""
    for candidate in groups():
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown feature view {name!r}")


def built_features() -> dict[str, list[Feature]]:
    """The features each feature table of the last build holds, per view, in declaration order.

    Raises :class:`features.build.RawDataError` when nothing was built yet.
    """
    from features.build import RawDataError
    from features.store import tables_dir

    folder = tables_dir()
    tables = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not tables:
        raise RawDataError(f"no feature tables in {folder}: run `crmscore features build`")
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in tables)
    columns = _table_columns(stamp)
    return {
        g.name: [f for f in g.features if f.name in columns[g.name]]
        for g in groups()
        if g.name in columns
    }


@lru_cache(maxsize=8)
def _table_columns(stamp: tuple[tuple[str, int], ...]) -> dict[str, set[str]]:
    import pyarrow.parquet as pq

    return {Path(path).stem: set(pq.read_schema(path).names) for path, _ in stamp}


def services() -> tuple[str, ...]:
    """The feature service names: ``churn``, ``cross_sell``, ``credit_risk``."""
    return SERVICES


def built_views() -> dict[str, list[str]]:
    """Feature names per built view."""
    return {view: [f.name for f in features] for view, features in built_features().items()}


def feature_names(service: str) -> list[str]:
    """Every feature the model behind ``service`` uses, in a stable order (views, then columns)."""
    return [name for names in service_features(service, built_views()).values() for name in names]


def categorical_features(service: str) -> list[str]:
    """The string-valued features of ``service`` (segment, income band, region, occupation)."""
    known = _features()
    return [n for n in feature_names(service) if known[n].kind == "string"]


def as_model_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Give feature columns one dtype contract, offline and online alike: numeric features are
    float64 (NaN = missing), categorical features are strings (object, None = missing).

    Returns a frame with the same index and column order; other columns are left untouched. Cheap
    enough for per-request use: a frame already in the right dtypes is returned as it is, and
    otherwise the converted columns and the others are put together in one step.
    """
    known = _features()
    converted: dict[str, np.ndarray] = {}
    for name in frame.columns:
        feature = known.get(name)
        if feature is None:
            continue
        column = frame[name]
        if feature.kind == "string":
            if column.dtype != object or column.isna().any():
                values = column.astype(object).to_numpy()
                values[pd.isna(values)] = None
                converted[name] = values
        elif column.dtype != np.float64:
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iufb":
                # Plain numpy numbers hold no missing marker to map: cast directly. Through
                # Python objects, a 250,000-row chunk's 61 integer columns took 1.5 s.
                converted[name] = column.to_numpy(dtype=np.float64)
                continue
            try:
                converted[name] = np.asarray(column.to_numpy(dtype=object), dtype=np.float64)
            except (TypeError, ValueError):
                converted[name] = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    if not converted:
        return frame
    # One copy into the new frame (dropping, concatenating and reordering made three).
    columns = {name: converted.get(name, frame[name]) for name in frame.columns}
    return pd.DataFrame(columns, index=frame.index)


def taken_in_model_dtypes(
    table: pa.Table, at: np.ndarray, numeric: Sequence[str], text: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row ``at[i]`` of an Arrow ``table`` for each output row ``i`` (-1: no row, so missing), in
    the dtypes of :func:`as_model_dtypes`: the ``numeric`` features as one float64 block, a row
    per feature (``len(numeric) × len(at)``, NaN = missing), the ``text`` features as object
    arrays (None = missing). A feature the table lacks is missing throughout.

    Each numeric feature is cast by Arrow and taken straight into its row of the block: one copy
    of the values, where Arrow's take, the conversion to pandas and a dtype pass made three."""
    missing = at < 0
    rows = np.where(missing, 0, at)
    present = set(table.column_names) if table.num_rows else set()
    block = np.empty((len(numeric), len(at)))
    for out, name in zip(block, numeric, strict=True):
        if name in present:
            np.take(_as_float(table[name]), rows, out=out)
        else:
            out[:] = np.nan
    block[:, missing] = np.nan
    strings = {}
    for name in text:
        if name in present:
            values = table[name].to_numpy().astype(object, copy=False).take(rows)
            values[missing | pd.isna(values)] = None
        else:
            values = np.full(len(at), None, dtype=object)
        strings[name] = values
    return block, strings


def _as_float(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric feature column as float64, nulls as NaN (Arrow's cast; a value that is not a
    number, which the feature build never writes, becomes NaN as in :func:`as_model_dtypes`)."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return pc.cast(column, pa.float64()).to_numpy()
    return pd.to_numeric(column.to_pandas(), errors="coerce").to_numpy(np.float64)


def describe(name: str) -> str:
    """The plain-language description of feature ``name`` (the one stored in Feast)."""
    return describer()(name)


def describer() -> Callable[[str], str]:
    """:func:`describe` for the contract in force now: one contract check for many lookups."""
    declared = _features()

    def describe(name: str) -> str:
        try:
            return declared[name].description
        except KeyError:
            raise KeyError(f"unknown feature {name!r}") from None

    return describe


def view_of(name: str) -> str:
    """The feature view (group) feature ``name`` belongs to."""
    for candidate in groups():
        if name in candidate.feature_names:
            return candidate.name
    raise KeyError(f"unknown feature {name!r}")
