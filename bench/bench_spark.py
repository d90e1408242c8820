"""Benchmark: the feature build on Spark against DuckDB, same bank, same run (default 100k).

Builds every feature table from one raw bank twice — DuckDB (``features.engine: duckdb``, the
baseline) and Spark (``features.engine: spark`` on ``--master``, default ``local[2]``: the CI
machine's two cores) — and prints both wall times and their ratio. Starting the Spark session
(the JVM) is timed apart from the build. The tables are checked to hold the same rows.

    .venv/bin/python bench/bench_spark.py --customers 100000
    .venv/bin/python bench/bench_spark.py --data-dir DIR   # a data folder with raw/ already

The generated bank is cached under ``bench/results/`` (git-ignored). Results go to
``bench/results/spark-N.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def prepare(data_dir: Path | None, customers: int) -> Path:
    """A data folder holding a raw bank (generated here when not given)."""
    if data_dir is not None:
        return data_dir
    data_dir = RESULTS / f"spark-bank-{customers}"
    if not (data_dir / "raw" / "customers").exists():
        generate = [Path(sys.executable).parent / "crmscore", "generate", "--no-progress"]
        subprocess.run(
            [*generate, "--customers", str(customers), "--months", "24"],
            env={**os.environ, "CRMSCORE_DATA_DIR": str(data_dir)},
            check=True,
        )
    return data_dir


def build(engine: str, out: Path) -> float:
    """Seconds to build every feature table with ``engine`` into ``out``."""
    from crmscore.settings import get_settings
    from features.build import build_feature_tables

    os.environ["CRMSCORE_FEATURES__ENGINE"] = engine
    get_settings.cache_clear()
    started = time.perf_counter()
    build_feature_tables(out_dir=out)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, help="a data folder with a raw bank")
    parser.add_argument("--master", default="local[2]", help="Spark master (features.spark_master)")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from crmscore.settings import get_settings

    data_dir = prepare(args.data_dir, args.customers)
    os.environ["CRMSCORE_DATA_DIR"] = str(data_dir)
    os.environ["CRMSCORE_FEATURES__SPARK_MASTER"] = args.master
    get_settings.cache_clear()
    load = os.getloadavg()
    print(f"{data_dir}: load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    scratch = Path(tempfile.mkdtemp(prefix="crmscore-spark-bench-"))
    try:
        duckdb_s = build("duckdb", scratch / "duckdb")
        print(f"DuckDB build          {duckdb_s:8.1f} s")
        from features.spark_engine import spark_session

        started = time.perf_counter()
        spark_session()
        session_s = time.perf_counter() - started
        print(f"Spark session start   {session_s:8.1f} s  ({args.master})")
        spark_s = build("spark", scratch / "spark")
        print(f"Spark build           {spark_s:8.1f} s  = {spark_s / duckdb_s:.2f}x DuckDB's")
        rows = {
            table.stem: (
                pq.read_metadata(table).num_rows,
                pq.read_metadata(scratch / "spark" / table.name).num_rows,
            )
            for table in sorted((scratch / "duckdb").glob("*.parquet"))
        }
        assert all(a == b for a, b in rows.values()), rows
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = {
        "data_dir": str(data_dir),
        "master": args.master,
        "duckdb_build_s": duckdb_s,
        "spark_session_start_s": session_s,
        "spark_build_s": spark_s,
        "spark_over_duckdb": spark_s / duckdb_s,
        "rows": rows,
        "load_before": load,
        "load_after": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    customers = pq.ParquetDataset(data_dir / "raw" / "customers").read(["customer_id"]).num_rows
    out = RESULTS / f"spark-{customers}.json"
    out.write_text(json.dumps({"customers": customers, **results}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
