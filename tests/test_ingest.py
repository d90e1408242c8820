"""Ingest and CLI on real files: a bad file is rejected by name and nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from crmscore.cli import app
from crmscore.dataset import read_dataset, write_dataset
from crmscore.ingest import ingest
from crmscore.schema import TABLES
from crmscore.schema_doc import schema_markdown
from crmscore.validation import DatasetValidationError

README = Path(__file__).resolve().parent.parent / "README.md"


def write_csv(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    """A bank's export: one CSV per table, exactly what ``DataFrame.to_csv`` gives."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def write_plain_parquet(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    """One Parquet file per table written by plain pyarrow (no help from crmscore)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), folder / f"{name}.parquet"
        )
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_rejected_without_output(src: Path, out: Path, as_of, where: str, rule: str) -> str:
    before = snapshot(out) if out.exists() else None
    with pytest.raises(DatasetValidationError) as caught:
        ingest(src, out, as_of=as_of)
    message = str(caught.value)
    assert re.search(rf"^- {re.escape(where)} \[{rule}\]", message, re.M), message
    assert (snapshot(out) if out.exists() else None) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return message


def assert_bad_csv_rejected(tables, as_of, tmp_path: Path, mutate, where: str, rule: str) -> None:
    """Break ``tables`` with ``mutate``, export them as CSV: ingest names the table.column, rule
    and row, and writes nothing."""
    mutate(tables)
    src = write_csv(tables, tmp_path / "export")
    message = assert_rejected_without_output(src, tmp_path / "raw", as_of, where, rule)
    assert "row " in message
    assert not (tmp_path / "raw").exists()


def test_valid_csv_round_trips_through_ingest(tiny_bank, tiny_as_of, tmp_path):
    src = write_csv(tiny_bank, tmp_path / "export")
    report = ingest(src, tmp_path / "raw", as_of=tiny_as_of)
    assert report.rows == {name: len(frame) for name, frame in tiny_bank.items()}
    assert "transactions" in str(report)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*tiny_bank, "bank.yaml"])
    back = read_dataset(tmp_path / "raw")
    for name, frame in tiny_bank.items():
        assert back[name].astype(object).where(back[name].notna(), None).values.tolist() == (
            frame.astype(object).where(frame.notna(), None).values.tolist()
        ), name


def test_written_files_carry_the_contract_types(tiny_bank, tmp_path):
    write_dataset(tiny_bank, tmp_path / "raw")
    types = {f.name: str(f.type) for f in pq.read_schema(tmp_path / "raw/accounts/part-0.parquet")}
    assert types["open_date"] == "date32[day]" and types["account_id"] == "int64"
    tx = pq.read_schema(tmp_path / "raw/transactions/part-0.parquet")
    assert str(tx.field("ts").type) == "timestamp[us]"
    assert tx.field("ts").metadata[b"description"] == b"Posting time."


def test_plain_parquet_and_parquet_folders_are_read(tiny_bank, tiny_as_of, tmp_path):
    src = write_plain_parquet(tiny_bank, tmp_path / "export")
    # transactions as a folder of two parts
    (src / "transactions.parquet").unlink()
    (src / "transactions").mkdir()
    tx = tiny_bank["transactions"]
    for i, part in enumerate((tx.iloc[:10], tx.iloc[10:])):
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), src / f"transactions/p{i}.parquet"
        )
    report = ingest(src, tmp_path / "raw", as_of=tiny_as_of)
    assert report.rows["transactions"] == len(tx)


def test_ingest_replaces_a_previous_dataset_only_on_success(tiny_bank, tiny_as_of, tmp_path):
    out = tmp_path / "raw"
    ingest(write_csv(tiny_bank, tmp_path / "v1"), out, as_of=tiny_as_of)
    before = snapshot(out)
    tiny_bank["transactions"].loc[0, "account_id"] = 999
    bad = write_csv(tiny_bank, tmp_path / "v2")
    assert_rejected_without_output(bad, out, tiny_as_of, "transactions.account_id", "foreign_key")
    assert snapshot(out) == before
    tiny_bank["transactions"] = tiny_bank["transactions"].iloc[1:]
    ingest(write_csv(tiny_bank, tmp_path / "v3"), out, as_of=tiny_as_of)
    assert len(read_dataset(out)["transactions"]) == len(tiny_bank["transactions"])


def test_a_failing_write_leaves_the_previous_dataset(tiny_bank, tmp_path, monkeypatch):
    out = tmp_path / "raw"
    write_dataset(tiny_bank, out)
    before = snapshot(out)
    calls = []
    real_write = pq.write_table

    def broken_write(table, path, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real_write(table, path, **kwargs)

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(tiny_bank, out)
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(tiny_bank, tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not dataset tables"):
        write_dataset(tiny_bank, tmp_path / "home")
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"


def _set(table: str, column: str, row: int, value):
    def mutate(tables):
        frame = tables[table]
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value

    return mutate


# (id, mutation of the tiny bank, table.column named in the error, rule)
BAD_CSV = [
    ("int-not-a-number", _set("transactions", "account_id", 2, "abc"), "transactions.account_id",
     "type"),
    ("int-with-decimals", _set("credit_status", "days_past_due", 0, "3.5"),
     "credit_status.days_past_due", "type"),
    ("float-with-comma", _set("transactions", "amount", 1, "12,50"), "transactions.amount", "type"),
    ("impossible-date", _set("accounts", "open_date", 0, "2024-02-30"), "accounts.open_date",
     "type"),
    ("bad-bool", _set("customers", "marketing_consent", 0, "maybe"),
     "customers.marketing_consent", "type"),
    ("bad-timestamp", _set("interactions", "ts", 0, "yesterday"), "interactions.ts", "type"),
    ("duplicate-id", _set("customers", "customer_id", 1, 1), "customers.customer_id", "unique"),
    ("duplicate-tx-id", _set("transactions", "transaction_id", 5, 1001),
     "transactions.transaction_id", "unique"),
    ("orphan-transaction", _set("transactions", "account_id", 4, 999), "transactions.account_id",
     "foreign_key"),
    ("orphan-account", _set("accounts", "customer_id", 3, 77), "accounts.customer_id",
     "foreign_key"),
    ("future-transaction", _set("transactions", "ts", 7, "2031-01-01 10:00:00"),
     "transactions.ts", "not_after_as_of"),
    ("future-status", _set("credit_status", "month", 1, "2024-04-30"), "credit_status.month",
     "not_after_as_of"),
    ("savings-overdrawn", _set("transactions", "balance_after", 12, -20.0),
     "transactions.balance_after", "balance_floor"),
    ("unknown-channel", _set("transactions", "channel", 0, "fax"), "transactions.channel",
     "category"),
    ("unknown-product", _set("accounts", "product", 1, "bitcoin"), "accounts.product", "category"),
    ("null-required", _set("customers", "birth_date", 2, None), "customers.birth_date", "not_null"),
    ("null-id", _set("transactions", "transaction_id", 2, None), "transactions.transaction_id",
     "not_null"),
    ("score-out-of-range", _set("interactions", "satisfaction_score", 3, 9),
     "interactions.satisfaction_score", "range"),
    ("negative-limit", _set("accounts", "limit_amount", 2, -1), "accounts.limit_amount", "range"),
    ("closed-before-opened", _set("accounts", "close_date", 2, "2001-01-01"),
     "accounts.close_date", "time_order"),
    ("joined-before-born", _set("customers", "join_date", 0, "1950-01-01"), "customers.join_date",
     "time_order"),
    ("before-account-open", _set("accounts", "open_date", 3, "2024-03-01"), "transactions.ts",
     "not_before_open"),
    ("merchant-on-salary", _set("transactions", "merchant_category", 0, "dining"),
     "transactions.merchant_category", "only_when"),
    ("status-of-savings", _set("credit_status", "account_id", 0, 103), "credit_status.account_id",
     "credit_product"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "where", "rule"), [c[1:] for c in BAD_CSV],
                         ids=[c[0] for c in BAD_CSV])  # fmt: skip
def test_bad_csv_is_rejected_and_nothing_written(tiny_bank, tiny_as_of, tmp_path, mutate, where,
                                                 rule):  # fmt: skip
    assert_bad_csv_rejected(tiny_bank, tiny_as_of, tmp_path, mutate, where, rule)


def test_bad_parquet_values_are_rejected(tiny_bank, tiny_as_of, tmp_path):
    tiny_bank["credit_status"]["days_past_due"] = [0.0, 2.5, 0.0, 30.0, 0.0, 0.0]
    tiny_bank["accounts"].loc[0, "product"] = "Current"
    src = write_plain_parquet(tiny_bank, tmp_path / "export")
    with pytest.raises(DatasetValidationError) as caught:
        ingest(src, tmp_path / "raw", as_of=tiny_as_of)
    message = str(caught.value)
    assert "- credit_status.days_past_due [type] is not an integer: 1 row" in message
    assert "row 2 (account_id=102, month=2024-02-29): 2.5" in message
    assert not (tmp_path / "raw").exists()


def test_structural_problems_are_all_listed(tiny_bank, tiny_as_of, tmp_path):
    src = write_csv(tiny_bank, tmp_path / "export")
    (src / "transactions.csv").unlink()  # missing required table
    (src / "interactions.csv").unlink()  # missing optional table: fine
    (src / "credit_status.csv").write_text("")  # empty file
    header_only = tiny_bank["accounts"].iloc[:0]
    header_only.to_csv(src / "accounts.csv", index=False)  # header, no rows
    tiny_bank["customers"].drop(columns="birth_date").to_csv(src / "customers.csv", index=False)
    with pytest.raises(DatasetValidationError) as caught:
        ingest(src, tmp_path / "raw", as_of=tiny_as_of)
    message = str(caught.value)
    assert "- transactions [file] table missing: expected transactions/" in message
    assert "interactions" not in message
    assert "- credit_status [file]" in message and "file is empty" in message
    assert "- accounts [non_empty] has no rows" in message
    assert "- customers.birth_date [columns] required column missing" in message
    assert "[tables]" not in message  # an unreadable table is not reported twice
    assert not (tmp_path / "raw").exists()


def test_truncated_parquet_is_rejected(tiny_bank, tiny_as_of, tmp_path):
    src = tmp_path / "export"
    write_dataset(tiny_bank, src)
    part = src / "transactions" / "part-0.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    message = assert_rejected_without_output(src, tmp_path / "raw", tiny_as_of, "transactions",
                                             "file")  # fmt: skip
    assert "part-0.parquet: not a readable Parquet file" in message


def test_two_files_for_one_table_are_ambiguous(tiny_bank, tiny_as_of, tmp_path):
    src = write_csv(tiny_bank, tmp_path / "export")
    tiny_bank["customers"].to_parquet(src / "customers.parquet")
    message = assert_rejected_without_output(src, tmp_path / "raw", tiny_as_of, "customers", "file")
    assert "ambiguous" in message


def test_a_truncated_csv_row_is_rejected(tiny_bank, tiny_as_of, tmp_path):
    src = write_csv(tiny_bank, tmp_path / "export")
    text = (src / "transactions.csv").read_text()
    (src / "transactions.csv").write_text(text[: len(text) - 30])
    assert_rejected_without_output(src, tmp_path / "raw", tiny_as_of, "transactions", "file")


# --- command line -------------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize("args", [["--help"], ["ingest", "--help"], ["validate", "--help"],
                                  ["schema", "--help"]])  # fmt: skip
def test_help(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_cli_ingest_and_validate(tiny_bank, tmp_path):
    src = write_csv(tiny_bank, tmp_path / "export")
    out = tmp_path / "raw"
    result = runner.invoke(app, ["ingest", str(src), "--out", str(out), "--as-of", "2024-04-01"])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "20" in result.output
    result = runner.invoke(app, ["validate", str(out), "--as-of", "2024-04-01"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_cli_ingest_uses_settings_raw_dir_by_default(tiny_bank, tmp_path, monkeypatch):
    from crmscore.settings import get_settings

    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        src = write_csv(tiny_bank, tmp_path / "export")
        result = runner.invoke(app, ["ingest", str(src), "--as-of", "2024-04-01"])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "data" / "raw" / "customers" / "part-0.parquet").exists()
    finally:
        get_settings.cache_clear()


def test_cli_bad_dataset_exits_1_with_the_message_and_no_traceback(tiny_bank, tmp_path):
    tiny_bank["transactions"].loc[0, "account_id"] = 999
    src = write_csv(tiny_bank, tmp_path / "export")
    for args in (["ingest", str(src), "--out", str(tmp_path / "raw")], ["validate", str(src)]):
        result = runner.invoke(app, [*args, "--as-of", "2024-04-01"])
        assert result.exit_code == 1
        assert "transactions.account_id [foreign_key]" in result.stderr
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, DatasetValidationError)
    assert not (tmp_path / "raw").exists()


def test_cli_missing_folder_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


# --- README ------------------------------------------------------------------------------------


def test_schema_markdown_is_in_the_readme():
    """The README's "Raw data schema" section is `crmscore schema --markdown`, verbatim."""
    result = runner.invoke(app, ["schema", "--markdown"])
    assert result.exit_code == 0 and result.output == schema_markdown()
    for table in TABLES.values():
        assert f"### `{table.name}`" in result.output
        assert all(f"| `{c}` |" in result.output for c in table.column_names)
    readme = README.read_text()
    section = readme.split("## Raw data schema\n", 1)[1]
    section = re.split(r"^## ", section, flags=re.M)[0]
    assert section.strip() == schema_markdown().strip()


def test_pandas_to_parquet_with_an_index_is_read(tiny_bank, tiny_as_of, tmp_path):
    """A filtered frame saved with ``to_parquet`` stores its index; that is not a data column."""
    src = tmp_path / "export"
    src.mkdir()
    for name, frame in tiny_bank.items():
        frame.iloc[::-1].to_parquet(src / f"{name}.parquet")
    report = ingest(src, tmp_path / "raw", as_of=tiny_as_of)
    assert report.rows["customers"] == 3
    assert read_dataset(tmp_path / "raw")["customers"]["customer_id"].tolist() == [3, 2, 1]


def test_a_folder_without_tables_gets_one_clear_line(tiny_bank, tiny_as_of, tmp_path):
    write_dataset(tiny_bank, tmp_path / "data" / "raw")
    with pytest.raises(DatasetValidationError) as caught:
        ingest(tmp_path / "data", tmp_path / "out", as_of=tiny_as_of)
    (problem,) = caught.value.problems
    assert "no table found" in problem.detail and "did you mean" in problem.detail
