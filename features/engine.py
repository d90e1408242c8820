"""The engine that runs the feature build's statements, chosen by ``features.engine``.

:func:`features.build.build_feature_tables` writes its statements once, in DuckDB's SQL, and hands
them to a connection: DuckDB's own (:func:`features.build.connect`) or
:class:`features.spark_engine.SparkConnection`, which runs the same statements on Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmscore.settings import get_settings

if TYPE_CHECKING:
    from features.build import RawDataset


def _duckdb(dataset: RawDataset) -> Any:
    from features.build import connect

    return connect(dataset)


def _spark(dataset: RawDataset) -> Any:
    from features.spark_engine import SparkConnection

    return SparkConnection(dataset)


_ENGINES = {"duckdb": _duckdb, "spark": _spark}


def open_engine(dataset: RawDataset) -> Any:
    """A connection (a context manager with ``execute(statement)``) over ``dataset``'s raw
    tables, on the configured engine."""
    return _ENGINES[get_settings().features.engine](dataset)
