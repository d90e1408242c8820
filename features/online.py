"""Online feature vectors for serving, from the online store (SQLite or Redis).

Two ways to read the same values:

* :func:`get_online_features` — Feast's ``get_online_features`` as a pandas frame, one feature
  service at a time (``crmscore features get``, tests);
* :class:`OnlineReader` — the scoring path: the provider's ``online_read`` once per feature view,
  decoded straight into a :class:`FeatureRows` float matrix, with no pandas and none of Feast's
  response building (a tenth of the time for one customer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.catalog import categorical_features, feature_names, taken_in_model_dtypes
from features.definitions import JOIN_KEY

if TYPE_CHECKING:
    import pyarrow as pa
    from feast import FeatureService, FeatureStore


def get_online_features(customer_ids: list[int], service: str) -> pd.DataFrame:
    """One row per requested id (in request order): ``customer_id`` plus the service's features.

    Values are those of the latest materialised snapshot; dtypes follow
    :func:`features.catalog.as_model_dtypes` (numeric float64, categorical str), as in training
    sets. An id the online store does not know comes back with every feature null — check with
    :func:`unknown_customers`.
    """
    from features.store import get_store

    store = get_store()
    ids = [int(i) for i in customer_ids]
    values = store.get_online_features(
        features=_feature_service(store, service),
        entity_rows=[{JOIN_KEY: i} for i in ids],
    ).to_dict()
    categorical = set(categorical_features(service))
    # Built column by column from plain lists: per-request pandas conversions would cost more
    # than the online read itself.
    columns: dict[str, object] = {JOIN_KEY: np.asarray(ids, dtype="int64")}
    for name in feature_names(service):
        column = values[name]
        columns[name] = (
            np.asarray(column, dtype=object)
            if name in categorical
            else np.asarray(column, dtype="float64")
        )
    return pd.DataFrame(columns)


def unknown_customers(frame: pd.DataFrame) -> list[int]:
    """Ids in an :func:`get_online_features` result for which the online store had nothing."""
    features = frame.drop(columns=[JOIN_KEY])
    return frame.loc[features.isna().all(axis=1), JOIN_KEY].astype(int).tolist()


@lru_cache(maxsize=32)
def _feature_service(store: FeatureStore, service: str) -> FeatureService:
    """The registered service object, kept: Feast caches request plans per service object, and
    decoding it from the registry costs more than an online read."""
    return store.get_feature_service(service)


# --- feature vectors as a matrix ---------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeatureLayout:
    """Which column of a :class:`FeatureRows` holds which feature: numeric features are columns
    of one float64 matrix, text features (segment, region, ...) object arrays of their own.

    One layout is shared by every block a reader produces, so positions computed for a model's
    feature list are computed once (:meth:`positions`)."""

    numeric: tuple[str, ...]
    text: tuple[str, ...] = ()
    _positions: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict, repr=False)

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.numeric)}

    @property
    def names(self) -> list[str]:
        return [*self.numeric, *self.text]

    def positions(self, names: Sequence[str]) -> np.ndarray:
        """Column numbers of numeric ``names`` in the matrix (KeyError naming a missing one)."""
        key = tuple(names)
        found = self._positions.get(key)
        if found is None:
            missing = [n for n in key if n not in self.index]
            if missing:
                raise KeyError(f"no numeric feature column {missing[:10]} in the feature rows")
            found = self._positions[key] = np.asarray([self.index[n] for n in key], dtype=np.intp)
        return found

    @classmethod
    def of(cls, names: Iterable[str]) -> FeatureLayout:
        """The layout of store features ``names`` (text features by the catalogue's kinds)."""
        names = list(dict.fromkeys(names))
        text = _text_features()
        return cls(
            numeric=tuple(n for n in names if n not in text),
            text=tuple(n for n in names if n in text),
        )


def _text_features() -> frozenset[str]:
    """Declared features holding text (the ``string`` kind), for the configured bank."""
    from features.views import groups

    return frozenset(f.name for g in groups() for f in g.features if f.kind == "string")


@dataclass(frozen=True)
class FeatureRows:
    """Feature vectors of ``n`` customers: ids, a float64 matrix of the numeric features (NaN =
    missing) and the text features as object arrays (None = missing).

    What the compiled models (:mod:`training.compiled_model`) and the business rules read; the
    pandas frame of the same values is :meth:`to_frame`."""

    customer_ids: list[int | None]
    numeric: np.ndarray
    layout: FeatureLayout
    text: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.customer_ids)

    def __getitem__(self, name: str) -> np.ndarray:
        """One feature's column: float64 for numeric features, object for text."""
        if name in self.text:
            return self.text[name]
        return self.numeric[:, self.layout.index[name]]

    def __contains__(self, name: str) -> bool:
        return name in self.text or name in self.layout.index

    def get(self, name: str) -> np.ndarray:
        """One feature's column, or all missing (NaN) when the bank's data has no such feature."""
        return self[name] if name in self else np.full(len(self), np.nan)

    def take(self, rows: np.ndarray | list[int]) -> FeatureRows:
        """The rows at positions (or boolean mask) ``rows``, in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return FeatureRows(
            customer_ids=[self.customer_ids[i] for i in rows],
            numeric=self.numeric[rows],
            layout=self.layout,
            text={name: column[rows] for name, column in self.text.items()},
        )

    def to_frame(self) -> pd.DataFrame:
        """``customer_id`` + every feature in layout order, with the model dtypes of
        :func:`features.catalog.as_model_dtypes` (the frame the pandas scoring path reads)."""
        columns: dict[str, object] = {
            JOIN_KEY: pd.array(self.customer_ids, dtype="Int64"),
            **{name: self.numeric[:, i] for i, name in enumerate(self.layout.numeric)},
            **self.text,
        }
        return pd.DataFrame(columns)[[JOIN_KEY, *self.layout.names]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, layout: FeatureLayout) -> FeatureRows:
        """The rows of a frame holding ``customer_id`` and every feature of ``layout``."""
        block = frame[list(layout.numeric)]
        odd = {
            name: pd.to_numeric(block[name], errors="coerce")
            for name in layout.numeric
            if not pd.api.types.is_numeric_dtype(block[name])
        }
        if odd:
            block = block.assign(**odd)
        text = {}
        for name in layout.text:
            values = frame[name].astype(object).to_numpy(copy=True)
            values[pd.isna(values)] = None
            text[name] = values
        ids = frame[JOIN_KEY].astype(object).where(frame[JOIN_KEY].notna(), None).tolist()
        return cls(
            customer_ids=[None if i is None else int(i) for i in ids],
            numeric=np.ascontiguousarray(block.to_numpy(dtype=np.float64, na_value=np.nan)),
            layout=layout,
            text=text,
        )

    @classmethod
    def from_arrow(
        cls, table: pa.Table, at: np.ndarray, customer_ids: list[int], layout: FeatureLayout
    ) -> FeatureRows:
        """The rows of ``customer_ids``: row ``at[i]`` of an Arrow ``table`` for id ``i`` (-1: no
        row, every feature missing), straight from Arrow into the matrix
        (:func:`features.catalog.taken_in_model_dtypes`)."""
        block, text = taken_in_model_dtypes(table, at, layout.numeric, layout.text)
        return cls(customer_ids=list(customer_ids), numeric=block.T, layout=layout, text=text)

    def known(self) -> np.ndarray:
        """Per row, whether any feature has a value (a customer the store knows)."""
        known = ~np.isnan(self.numeric).all(axis=1)
        for values in self.text.values():
            known |= pd.notna(values)
        return known

    @classmethod
    def concat(cls, parts: Sequence[FeatureRows], layout: FeatureLayout) -> FeatureRows:
        """``parts`` (all of ``layout``) one after the other."""
        return cls(
            customer_ids=[i for part in parts for i in part.customer_ids],
            numeric=np.concatenate(
                [part.numeric for part in parts] or [np.empty((0, len(layout.numeric)))]
            ),
            layout=layout,
            text={
                name: np.concatenate([part.text[name] for part in parts] or [np.empty(0, object)])
                for name in layout.text
            },
        )


class OnlineReader:
    """Reads store features ``names`` for customer ids into :class:`FeatureRows`, through the
    Feast provider's ``online_read``: one call per feature view holding any of them (awaited
    together by :meth:`read_async` where the store reads asynchronously).

    Values are those :func:`get_online_features` returns (the same store rows, decoded from the
    same protobuf values); a customer with no value in any view is unknown (Redis answers a key
    it does not hold with empty values, SQLite with no row). A read error (store
    locked, unreachable, missing table) propagates: the caller decides what it means."""

    def __init__(self, store: FeatureStore, names: Iterable[str]) -> None:
        from feast.types import String

        self.store = store
        wanted = set(names)
        # The registered views, as applied for this bank: a feature its data lacks is in none
        # of them and is not read (the caller's rules say what they do without it).
        served = [
            (view, [f for f in view.features if f.name in wanted])
            for view in store.list_feature_views()
        ]
        served = [(view, fields) for view, fields in served if fields]
        self.layout = FeatureLayout(
            numeric=tuple(f.name for _, fields in served for f in fields if f.dtype != String),
            text=tuple(f.name for _, fields in served for f in fields if f.dtype == String),
        )
        # (feature view, its features we read, their numeric columns, text names): decoded
        # from the registry once, here, never per request.
        self.plan = []
        for view, fields in served:
            names_in_view = [f.name for f in fields]
            numeric = [n for n in names_in_view if n in self.layout.index]
            columns = np.array([self.layout.index[n] for n in numeric], dtype=np.intp)
            text = [n for n in names_in_view if n not in self.layout.index]
            self.plan.append((view, names_in_view, (numeric, columns), text))

    def stamp(self) -> tuple[int, int]:
        """Changes whenever the store may hold other values: Feast rewrites its registry file at
        every ``feast apply`` and as each view's materialisation completes. For caches of what
        the store holds (the book of scores behind /targets)."""
        from pathlib import Path

        stat = Path(self.store.config.registry.path).stat()
        return stat.st_mtime_ns, stat.st_size

    @cached_property
    def concurrent(self) -> bool:
        """The store reads asynchronously too (Feast's Redis store does; SQLite does not), so
        :meth:`read_async` can have every view's read in flight at once."""
        from feast.infra.online_stores.online_store import OnlineStore

        store = getattr(self.store.provider, "online_store", None)
        return type(store).online_read_async is not OnlineStore.online_read_async

    def read(self, customer_ids: Sequence[int]) -> tuple[FeatureRows, list[int]]:
        """``(rows of the known ids in request order, unknown ids)``."""
        ids, keys = self._keys(customer_ids)
        provider, config = self.store.provider, self.store.config
        # a copy of each list: Feast's Redis store appends its timestamp field to the one it gets
        views = [
            provider.online_read(
                config=config, table=view, entity_keys=keys, requested_features=list(wanted)
            )
            for view, wanted, _, _ in self.plan
        ]
        return self._rows(ids, views)

    async def read_async(self, customer_ids: Sequence[int]) -> tuple[FeatureRows, list[int]]:
        """:meth:`read` on an event loop: the views' reads are awaited together on a
        :attr:`concurrent` store (one round trip's wait instead of one per view; the same values),
        and run as :meth:`read` on any other. Call it from one event loop per store: Feast's
        Redis store keeps its async client bound to the loop it first ran on."""
        import asyncio

        if not self.concurrent:
            return self.read(customer_ids)
        ids, keys = self._keys(customer_ids)
        provider, config = self.store.provider, self.store.config
        views = await asyncio.gather(
            *(
                provider.online_read_async(config, view, keys, list(wanted))
                for view, wanted, _, _ in self.plan
            )
        )
        return self._rows(ids, views)

    @staticmethod
    def _keys(customer_ids: Sequence[int]) -> tuple[list[int], list]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        ids = [int(i) for i in customer_ids]
        keys = [EntityKey(join_keys=[JOIN_KEY], entity_values=[Value(int64_val=i)]) for i in ids]
        return ids, keys

    def _rows(self, ids: list[int], views: Sequence[list]) -> tuple[FeatureRows, list[int]]:
        """The store's answers (one list per view of :attr:`plan`) decoded into rows."""
        nan = math.nan
        n = len(ids)
        numeric = np.full((n, len(self.layout.numeric)), np.nan)
        text = {name: np.full(n, None, dtype=object) for name in self.layout.text}
        found = np.zeros(n, dtype=bool)
        for (_, _, numeric_plan, text_plan), rows in zip(self.plan, views, strict=True):
            names, columns = numeric_plan
            for i, (_, values) in enumerate(rows):
                if not values:
                    continue
                # Decoded into a list and stored in one assignment: a numpy element store per
                # value made decoding a customer 87 µs against 72 (issue 12). Unset stays NaN.
                decoded = []
                for name in names:
                    value = values.get(name)
                    kind = value.WhichOneof("val") if value is not None else None
                    decoded.append(nan if kind is None else getattr(value, kind))
                numeric[i, columns] = decoded
                # list.count matches by identity first, so it counts exactly the unset values
                # (a NaN the store holds is another object, and counts as found, as before).
                if decoded.count(nan) < len(decoded):
                    found[i] = True
                for name in text_plan:
                    value = values.get(name)
                    kind = value.WhichOneof("val") if value is not None else None
                    if kind is not None:
                        text[name][i] = getattr(value, kind)
                        found[i] = True
        unknown = [i for i, known in zip(ids, found, strict=True) if not known]
        if len(unknown) == 0:
            return FeatureRows(ids, numeric, self.layout, text), []
        kept = FeatureRows(ids, numeric, self.layout, text).take(found)
        return kept, unknown
