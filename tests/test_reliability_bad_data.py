"""Bad data the ingest path must reject (issue 6), beyond what tests/test_ingest.py covers.

tests/test_ingest.py already rejects, with the table.column, the rule and the row, and writes
nothing: wrong types (CSV and Parquet), duplicate ids, orphan transactions and accounts,
future-dated transactions and credit statuses, overdrawn savings and overdrafts past the limit,
unknown channels and products, empty and header-only files, a truncated Parquet file. Added here:
future-dated rows in the other dated tables, a negative amount owed, unknown categories in the
customer and interaction tables, and a zero-byte Parquet file.
"""

from __future__ import annotations

import pytest

from crmscore.dataset import write_dataset
from tests.test_ingest import _set, assert_bad_csv_rejected, assert_rejected_without_output

# (id, mutation of the tiny bank, table.column named in the error, rule)
MORE_BAD_DATA = [
    ("future-interaction", _set("interactions", "ts", 0, "2031-01-01 10:00:00"), "interactions.ts",
     "not_after_as_of"),
    ("future-account", _set("accounts", "open_date", 4, "2031-01-01"), "accounts.open_date",
     "not_after_as_of"),
    ("future-customer", _set("customers", "join_date", 2, "2031-01-01"), "customers.join_date",
     "not_after_as_of"),
    ("negative-amount-owed", _set("credit_status", "balance", 1, -5.0), "credit_status.balance",
     "range"),
    ("unknown-segment", _set("customers", "segment", 0, "gold"), "customers.segment", "category"),
    ("unknown-interaction", _set("interactions", "kind", 2, "telepathy"), "interactions.kind",
     "category"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "where", "rule"), [c[1:] for c in MORE_BAD_DATA],
                         ids=[c[0] for c in MORE_BAD_DATA])  # fmt: skip
def test_more_bad_rows_are_rejected_and_nothing_written(tiny_bank, tiny_as_of, tmp_path, mutate,
                                                        where, rule):  # fmt: skip
    assert_bad_csv_rejected(tiny_bank, tiny_as_of, tmp_path, mutate, where, rule)


def test_a_zero_byte_parquet_file_is_rejected(tiny_bank, tiny_as_of, tmp_path):
    src = tmp_path / "export"
    write_dataset(tiny_bank, src)
    (src / "accounts" / "part-0.parquet").write_bytes(b"")
    message = assert_rejected_without_output(src, tmp_path / "raw", tiny_as_of, "accounts", "file")
    assert "part-0.parquet" in message
    assert not (tmp_path / "raw").exists()
