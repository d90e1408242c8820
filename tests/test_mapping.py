"""Mapped extracts: a bank's own export, read through ``mapping.yaml``.

The fixture is the documented example under ``examples/corebank`` (a fictional core-banking
export: ``;``, cp1250, decimal commas, YYMMDD and DD.MM.YYYY dates, its own codes and regions,
a debit/credit flag, extra columns, overdrafts beyond the limit, no interactions, no
credit_status). Every rule names the source file, column and row, and nothing is written on
failure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from crmscore.cli import app
from crmscore.dataset import read_dataset
from crmscore.ingest import ingest
from crmscore.mapping import Mapping, MappingError
from crmscore.settings import PROJECT_ROOT
from crmscore.validation import DatasetValidationError

EXAMPLE = PROJECT_ROOT / "examples" / "corebank"
ENCODING = "cp1250"


@pytest.fixture
def export(tmp_path) -> Path:
    """A copy of the example export with its mapping and bank.yaml beside it."""
    folder = tmp_path / "export"
    shutil.copytree(EXAMPLE / "export", folder)
    for name in ("mapping.yaml", "bank.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return folder


def _edit(path: Path, row: int, column: str, value: str) -> None:
    """Set one cell of a ``;`` cp1250 file (``row`` counts data rows from 1, as errors do)."""
    lines = path.read_text(encoding=ENCODING).splitlines()
    header = lines[0].split(";")
    cells = lines[row].split(";")
    cells[header.index(column)] = value
    lines[row] = ";".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding=ENCODING)


def _rejected(export: Path, mapping: Path | None = None) -> str:
    out = export.parent / "raw"
    with pytest.raises(DatasetValidationError) as caught:
        ingest(export, out, mapping=mapping or export.parent / "mapping.yaml")
    assert not out.exists()  # nothing written
    return str(caught.value)


def test_the_example_export_ingests_with_its_mapping(export, tmp_path):
    report = ingest(export, tmp_path / "raw", mapping=tmp_path / "mapping.yaml")
    assert list(report.rows) == ["customers", "accounts", "transactions", "outcomes"]
    assert report.rows["customers"] == 50
    assert report.absent_tables == ["interactions", "credit_status"]
    assert report.absent_columns["customers"] == [
        "occupation", "income_band", "segment", "marketing_consent",
    ]  # fmt: skip
    assert report.absent_columns["transactions"] == ["channel", "merchant_category"]
    rules = sorted({(w.table, w.rule) for w in report.warnings})
    assert rules == [
        ("accounts", "extra_columns"),
        ("customers", "extra_columns"),
        ("outcomes", "extra_columns"),
        ("transactions", "extra_columns"),
        ("transactions", "overdraft_beyond_limit"),
    ]
    ignored = next(w for w in report.warnings if w.table == "customers")
    assert str(ignored) == (
        "customers (CLIENTS.CSV) [extra_columns] source columns not mapped, ignored: NAME, ZIP"
    )
    tables = read_dataset(tmp_path / "raw")
    customers = tables["customers"].set_index("customer_id")
    raw = pd.read_csv(export / "CLIENTS.CSV", sep=";", encoding=ENCODING, dtype=str)
    first = raw.iloc[0]
    row = customers.loc[int(first["CLIENT_NO"])]
    assert row["birth_date"] == pd.to_datetime(first["BIRTH_DT"], format="%d.%m.%Y")
    assert row["region"] in {"Praha", "Střední Čechy", "Jižní Morava", "Severní Morava",
                             "Východní Čechy"}  # fmt: skip
    postings = pd.read_csv(export / "POSTINGS.CSV", sep=";", encoding=ENCODING, dtype=str)
    tx = tables["transactions"].set_index("transaction_id")
    for _, posting in postings.head(20).iterrows():
        amount = float(posting["AMOUNT"].replace(",", "."))
        expected = -amount if posting["DC"] == "D" else amount
        assert tx.loc[int(posting["POST_ID"]), "amount"] == pytest.approx(expected)
        assert tx.loc[int(posting["POST_ID"]), "ts"] == pd.to_datetime(
            posting["BOOKED"], format="%y%m%d %H:%M"
        )
    assert set(tables["accounts"]["product"]) <= set(yaml.safe_load(
        (EXAMPLE / "bank.yaml").read_text(encoding="utf-8"))["products"])  # fmt: skip
    assert (tmp_path / "raw" / "bank.yaml").is_file()


def test_the_committed_sample_is_what_the_converter_writes():
    """examples/corebank/export is ``python -m tests.corebank`` output (the docs quote it)."""
    header = (EXAMPLE / "export" / "POSTINGS.CSV").read_text(encoding=ENCODING).splitlines()[0]
    assert header == "POST_ID;ACC_NO;BOOKED;AMOUNT;DC;BALANCE;TXN_CODE;TERMINAL"


@pytest.mark.parametrize(
    ("file", "row", "column", "value", "expected"),
    [
        ("POSTINGS.CSV", 5, "BOOKED", "2024-01-03",
         "transactions.ts (POSTINGS.CSV, column BOOKED) [type] is not a date in the format "
         "'%y%m%d %H:%M': 1 row; first: row 5: '2024-01-03'"),
        ("POSTINGS.CSV", 7, "DC", "X",
         "transactions.amount (POSTINGS.CSV, column DC) [sign] debit/credit flag must be one of "
         "'D', 'C': 1 row; first: row 7: 'X'"),
        ("POSTINGS.CSV", 9, "AMOUNT", "12,3,4",
         "transactions.amount (POSTINGS.CSV, column AMOUNT) [type] is not a finite number: 1 row"),
        ("CLIENTS.CSV", 3, "DISTRICT", "D09",
         "customers.region (CLIENTS.CSV, column DISTRICT) [category] must be one of Praha,"),
        ("CLIENTS.CSV", 4, "BIRTH_DT", "31.02.1980",
         "customers.birth_date (CLIENTS.CSV, column BIRTH_DT) [type] is not a date in the format "
         "'%d.%m.%Y': 1 row; first: row 4: '31.02.1980'"),
        ("ACCOUNTS.CSV", 2, "PRODUCT_CODE", "XYZ99",
         "accounts.product (ACCOUNTS.CSV, column PRODUCT_CODE) [category] must be one of everyday"),
        ("ACCOUNTS.CSV", 6, "CLIENT_NO", "999",
         "accounts.customer_id (ACCOUNTS.CSV, column CLIENT_NO) [foreign_key] must exist in "
         "customers.customer_id: 1 row; first: row 6"),
    ],
)  # fmt: skip
def test_a_bad_cell_names_file_column_row_and_rule(export, file, row, column, value, expected):
    _edit(export / file, row, column, value)
    message = _rejected(export)
    assert expected in message, message


def test_a_missing_file_and_a_missing_source_column_are_named(export):
    (export / "DEFAULTS.CSV").unlink()
    postings = pd.read_csv(export / "POSTINGS.CSV", sep=";", encoding=ENCODING, dtype=str)
    postings.drop(columns="BALANCE").to_csv(
        export / "POSTINGS.CSV", sep=";", encoding=ENCODING, index=False
    )
    message = _rejected(export)
    assert "outcomes (DEFAULTS.CSV) [file] file " in message and "DEFAULTS.CSV not found" in message
    assert (
        "transactions.balance_after (POSTINGS.CSV) [mapping] source column BALANCE not in "
        "POSTINGS.CSV (it has: POST_ID, ACC_NO, BOOKED, AMOUNT, DC, TXN_CODE, TERMINAL)"
    ) in message


def test_a_required_column_the_mapping_leaves_out_is_an_error(export, tmp_path):
    mapping = yaml.safe_load((tmp_path / "mapping.yaml").read_text(encoding="utf-8"))
    del mapping["tables"]["customers"]["columns"]["birth_date"]
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    message = _rejected(export)
    assert "customers.birth_date (CLIENTS.CSV) [columns] required column missing" in message


def test_the_wrong_separator_is_caught_by_the_columns_it_cannot_find(export, tmp_path):
    mapping = yaml.safe_load((tmp_path / "mapping.yaml").read_text(encoding="utf-8"))
    mapping["read"]["separator"] = ","
    (tmp_path / "mapping.yaml").write_text(yaml.safe_dump(mapping), encoding="utf-8")
    message = _rejected(export)
    assert "source column CLIENT_NO not in CLIENTS.CSV" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["tables"].update(branches={"file": "B.CSV", "columns": {}}),
         "tables.branches: not a table of the contract"),
        (lambda m: m["tables"]["customers"]["columns"].update(nickname="NAME"),
         "tables.customers.columns.nickname: not a column of customers"),
        (lambda m: m["tables"]["customers"]["columns"].update(
            region={"column": "DISTRICT", "constant": "Praha"}),
         "give either a source 'column' or a 'constant'"),
        (lambda m: m["read"].update(separator=";;"), "read.separator"),
        (lambda m: m["tables"]["customers"].update(read={"sep": ";"}),
         "tables.customers.read.sep: unknown read option"),
    ],
)  # fmt: skip
def test_a_broken_mapping_file_says_what_is_wrong(tmp_path, change, expected):
    mapping = yaml.safe_load((EXAMPLE / "mapping.yaml").read_text(encoding="utf-8"))
    change(mapping)
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        Mapping.load(path)
    assert expected in str(caught.value) and str(path) in str(caught.value)


def test_the_cli_ingests_a_mapped_export_and_lists_warnings(export, tmp_path):
    out = tmp_path / "raw"
    result = CliRunner().invoke(
        app, ["ingest", str(export), "--mapping", str(tmp_path / "mapping.yaml"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "absent tables (their features will be missing): interactions, credit_status" in (
        result.output
    )
    assert "overdraft_beyond_limit" in result.output and "Traceback" not in result.output
    _edit(export / "CLIENTS.CSV", 2, "CLIENT_SINCE", "1.1.2020")
    shutil.rmtree(out)
    result = CliRunner().invoke(
        app, ["ingest", str(export), "--mapping", str(tmp_path / "mapping.yaml"), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "customers.join_date (CLIENTS.CSV, column CLIENT_SINCE) [type]" in result.output
    assert not out.exists()
