"""Benchmark: how fast does ``crmscore generate`` write a bank?

Reports customers/s and transactions/s, and the ratio to a baseline measured in the same run:
writing the same number of random rows, with the same columns and types, straight to Parquet.
The ratio says how much the simulation costs on top of the unavoidable I/O.

    .venv/bin/python bench/bench_generate.py --customers 100000 --months 24
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crmscore import schema
from crmscore.dataset import arrow_schema
from crmscore.synthetic import BankConfig, generate_bank, vocabulary


def random_rows_baseline(rows: int, out: Path, chunk: int = 2_000_000) -> float:
    """Seconds to write ``rows`` random transactions-shaped rows to Parquet."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    types = np.array(vocabulary.TRANSACTION_TYPES)
    channels = np.array(vocabulary.TRANSACTION_CHANNELS)
    for part, first in enumerate(range(0, rows, chunk)):
        n = min(chunk, rows - first)
        table = pa.table(
            {
                "transaction_id": np.arange(first, first + n, dtype=np.int64),
                "account_id": rng.integers(1, 1_000_000, n),
                "ts": (
                    np.datetime64("2024-01-01") + rng.integers(0, 10**8, n).astype("timedelta64[s]")
                ).astype("datetime64[us]"),
                "amount": np.round(rng.normal(0, 500, n), 2),
                "balance_after": np.round(rng.normal(3000, 2000, n), 2),
                "type": types[rng.integers(0, len(types), n)],
                "channel": channels[rng.integers(0, len(channels), n)],
                "merchant_category": pa.nulls(n, pa.string()),
            },
            schema=arrow_schema(schema.TRANSACTIONS),
        )
        pq.write_table(table, out / f"part-{part:04d}.parquet")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument(
        "--workers", type=int, default=None, help="Processes for banks of several groups."
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        summary = generate_bank(
            BankConfig(customers=args.customers, months=args.months),
            tmp / "bank",
            progress=False,
            workers=args.workers,
        )
        generate_s = time.perf_counter() - started
        transactions = summary.rows["transactions"]
        (tmp / "baseline").mkdir()
        baseline_s = random_rows_baseline(transactions, tmp / "baseline")
    # the largest process: this one, or a worker simulating a group of a bigger bank
    peak_gb = (
        max(
            resource.getrusage(who).ru_maxrss
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        / 1024**2
    )
    print(f"bank: {args.customers:,} customers x {args.months} months -> {summary}")
    print(f"{'measure':<38}{'value':>16}")
    print(f"{'generate: seconds':<38}{generate_s:>16.1f}")
    print(f"{'generate: customers/s':<38}{args.customers / generate_s:>16,.0f}")
    print(f"{'generate: transactions/s':<38}{transactions / generate_s:>16,.0f}")
    print(f"{'baseline (random rows -> Parquet): s':<38}{baseline_s:>16.1f}")
    print(f"{'ratio generate / baseline':<38}{generate_s / baseline_s:>16.1f}x")
    print(f"{'peak memory, largest process (GB)':<38}{peak_gb:>16.1f}")


if __name__ == "__main__":
    main()
