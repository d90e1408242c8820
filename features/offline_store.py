"""Feast's offline store, chosen by ``features.offline_store``: DuckDB (embedded) or Spark.

Both read the same Parquet feature tables; what differs is the store's configuration and the
kind of data source a feature view declares (Feast's Spark store only reads ``SparkSource``).
Training sets (:mod:`features.training_set`), batch scoring and materialisation go through the
store either way, so nothing else knows which one runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmscore.settings import get_settings

if TYPE_CHECKING:
    from feast.data_source import DataSource


def offline_store_config() -> dict[str, Any]:
    """The ``offline_store`` section of the Feast repository configuration."""
    if get_settings().features.offline_store == "spark":
        from features.spark_engine import spark_conf

        _quiet_feast_spark_warnings()

        # Feast starts (or joins) the process's Spark session with the same configuration.
        return {"type": "spark", "spark_conf": spark_conf()}
    return {"type": "duckdb"}


def snapshot_source(name: str, path: Path, timestamp_field: str, description: str) -> DataSource:
    """The Feast source of one snapshot feature table."""
    if get_settings().features.offline_store == "spark":
        _quiet_feast_spark_warnings()
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
            SparkSource,
        )

        return SparkSource(
            name=name,
            path=str(path),
            file_format="parquet",
            timestamp_field=timestamp_field,
            description=description,
        )
    from feast import FileSource

    return FileSource(
        name=name, path=str(path), timestamp_field=timestamp_field, description=description
    )


def _quiet_feast_spark_warnings() -> None:
    """Feast warns at every Spark call that its Spark store is "alpha"; the choice was made in
    the settings, and the parity tests are what vouch for it here."""
    import warnings

    warnings.filterwarnings(
        "ignore", message="The spark .* is an experimental feature", category=RuntimeWarning
    )
