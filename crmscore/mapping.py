"""Read a bank's own export through a mapping file: crmscore meets the extract where it is.

A core-banking export has its own file names, separators, decimal commas, encodings, date formats,
column names and codes. ``mapping.yaml`` says, per raw table, which file holds it and how each
contract column is read from it::

    read:                          # defaults for every file (each table may override them)
      separator: ";"
      decimal: ","                 # 1.234,56 -> 1234.56 (thousands: ".")
      thousands: "."
      encoding: cp1252
      date_format: "%y%m%d"        # strptime; ISO 8601 when not given
    bank: bank.yaml                # the bank's vocabulary (or inline, as a mapping)
    tables:
      customers:
        file: KUNDEN.csv
        columns:
          customer_id: KDNR                           # a plain rename
          birth_date: {column: GEB_DAT, format: "%d.%m.%Y"}
          region: {column: BEZIRK, values: {"01": Praha, "02": Brno}}
          marketing_consent: {column: WERBUNG, values: {J: true, N: false}}
      transactions:
        file: BUCHUNGEN.csv
        columns:
          amount: {column: BETRAG, sign: {column: SH, debit: [S], credit: [H]}}
          channel: {constant: null}                  # the bank does not record it

Contract columns a table does not map are absent (allowed for optional columns only); source
columns nobody maps are ignored and listed; a table the mapping leaves out is absent (allowed for
optional tables). Every value is then checked by :mod:`crmscore.validation` exactly as for files in
the contract's own layout, and each problem names the source file and column it came from (row
numbers are the file's data rows, counted from 1 after the header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crmscore.contract import BankContract
from crmscore.schema import TABLES, Table
from crmscore.validation import MAX_EXAMPLES, Problem

_STRING = pd.StringDtype("pyarrow")


class ReadOptions(BaseModel):
    """How a file is written: what the bank's export tool produced."""

    model_config = ConfigDict(extra="forbid")

    separator: str = Field(default=",", min_length=1, max_length=1)
    #: The decimal mark of numbers, and the thousands separator to drop (``1.234,56``).
    decimal: str = Field(default=".", min_length=1, max_length=1)
    thousands: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: str = "utf-8"
    #: strptime format of date columns; empty = ISO 8601 (``YYYY-MM-DD``).
    date_format: str | None = None
    #: strptime format of timestamp columns; empty = ISO 8601, or ``date_format`` when the export
    #: only has days.
    timestamp_format: str | None = None

    def merged(self, override: dict[str, Any]) -> ReadOptions:
        return self.model_copy(update=override)


class Sign(BaseModel):
    """A debit/credit flag beside unsigned amounts: debits become negative."""

    model_config = ConfigDict(extra="forbid")

    column: str
    debit: list[str] = Field(min_length=1)
    credit: list[str] = Field(min_length=1)


class ColumnSpec(BaseModel):
    """How one contract column is read: from a source ``column`` or a ``constant``."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    constant: Any = None
    #: strptime format for this column (overrides the file's date/timestamp format).
    format: str | None = None
    #: The bank's codes -> contract values; codes not listed pass through unchanged.
    values: dict[str, Any] | None = None
    sign: Sign | None = None

    @model_validator(mode="before")
    @classmethod
    def _rename(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_source(self) -> ColumnSpec:
        has_constant = "constant" in self.model_fields_set
        if has_constant == (self.column is not None):
            raise ValueError("give either a source 'column' or a 'constant'")
        return self


class TableMapping(BaseModel):
    """Where one raw table is and how its columns are read."""

    model_config = ConfigDict(extra="forbid")

    #: The file, relative to the export folder.
    file: str
    read: dict[str, Any] = Field(default_factory=dict)
    columns: dict[str, ColumnSpec]


class Mapping(BaseModel):
    """A whole ``mapping.yaml``."""

    model_config = ConfigDict(extra="forbid")

    read: ReadOptions = ReadOptions()
    #: The bank's contract: a path relative to the mapping file, or the vocabularies inline.
    bank: str | dict[str, Any] | None = None
    tables: dict[str, TableMapping]

    @model_validator(mode="after")
    def _known(self) -> Mapping:
        problems = [
            f"tables.{n}: not a table of the contract" for n in self.tables if n not in TABLES
        ]
        for name, table in self.tables.items():
            if name in TABLES:
                known = TABLES[name].column_names
                problems += [
                    f"tables.{name}.columns.{c}: not a column of {name} (expected one of "
                    f"{', '.join(known)})"
                    for c in table.columns
                    if c not in known
                ]
            unknown = set(table.read) - set(ReadOptions.model_fields)
            problems += [f"tables.{name}.read.{k}: unknown read option" for k in sorted(unknown)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def load(cls, path: Path) -> Mapping:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            return cls.model_validate(data)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise MappingError(f"{path}: cannot read the mapping: {error}") from error
        except ValidationError as error:
            lines = [
                f"- {'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                for e in error.errors()
            ]
            raise MappingError(f"{path}: the mapping is not valid:\n" + "\n".join(lines)) from None

    def contract(self, mapping_file: Path) -> BankContract | None:
        """The contract the mapping names, or None when it names none."""
        if self.bank is None:
            return None
        if isinstance(self.bank, dict):
            return BankContract.parse(self.bank, f"{mapping_file} (bank)")
        return BankContract.load(Path(mapping_file).parent / self.bank)


class MappingError(ValueError):
    """A mapping file that cannot be read or does not fit the contract."""


class MappedTable:
    """One table read through its mapping: contract-named columns plus where each came from."""

    def __init__(self, table: Table, frame: pd.DataFrame, sources: dict[str | None, str]) -> None:
        self.table, self.frame, self.sources = table, frame, sources


def read_mapped(src: Path, mapping: Mapping) -> tuple[dict[str, MappedTable], list[Problem]]:
    """Read every table the mapping names from the export folder ``src``.

    Returns the tables (contract column names; cells as text, or numbers and timestamps where the
    mapping parsed them) and the problems found while reading: missing files and source columns,
    unparseable dates, unknown sign flags (errors); ignored source columns (warnings).
    """
    tables: dict[str, MappedTable] = {}
    problems: list[Problem] = []
    for name, spec in mapping.tables.items():
        table = TABLES[name]
        options = mapping.read.merged(spec.read)
        path = Path(src) / spec.file
        try:
            raw = _read_text_csv(path, options)
        except _FileProblem as error:
            problems.append(Problem(name, None, "file", str(error), source=spec.file))
            continue
        frame, found = _map_columns(table, raw, spec, options)
        problems += found
        sources: dict[str | None, str] = {None: spec.file}
        for column, column_spec in spec.columns.items():
            origin = f"column {column_spec.column}" if column_spec.column else "a constant"
            sources[column] = f"{spec.file}, {origin}"
        tables[name] = MappedTable(table, frame, sources)
    return tables, problems


class _FileProblem(Exception):
    pass


def _read_text_csv(path: Path, options: ReadOptions) -> pd.DataFrame:
    """Every cell as text (empty = null), in the file's encoding and separator."""
    import csv

    if not path.is_file():
        raise _FileProblem(f"file {path} not found")
    how = f"{options.encoding}, separator {options.separator!r}"
    try:
        with path.open(newline="", encoding=options.encoding) as handle:
            header = next(csv.reader(handle, delimiter=options.separator), None)
        if not header:
            raise _FileProblem(f"{path}: file is empty (no header line)")
        arrow = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(encoding=options.encoding),
            parse_options=pa_csv.ParseOptions(delimiter=options.separator),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowException, OSError, ValueError, LookupError, csv.Error) as error:
        raise _FileProblem(f"{path}: cannot read as CSV ({how}): {error}") from error
    return arrow.to_pandas(types_mapper={pa.string(): _STRING}.get)


def _map_columns(
    table: Table, raw: pd.DataFrame, spec: TableMapping, options: ReadOptions
) -> tuple[pd.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    used: set[str] = set()
    columns: dict[str, pd.Series] = {}
    for name, column_spec in spec.columns.items():
        column = table.column(name)
        where = f"{spec.file}, column {column_spec.column}"
        needed = [
            c for c in (column_spec.column, column_spec.sign and column_spec.sign.column) if c
        ]
        lacking = [c for c in needed if c not in raw.columns]
        if lacking:
            detail = (
                f"source column {', '.join(lacking)} not in {spec.file} (it has: "
                f"{', '.join(map(str, raw.columns))})"
            )
            problems.append(Problem(table.name, name, "mapping", detail, source=spec.file))
            continue
        used.update(needed)
        if column_spec.column is None:
            columns[name] = pd.Series([_text(column_spec.constant)] * len(raw), dtype=_STRING)
            continue
        values = raw[column_spec.column]
        if column_spec.values:
            codes = {str(k): _text(v) for k, v in column_spec.values.items()}
            stripped = values.str.strip()
            values = stripped.map(codes).astype(_STRING).where(stripped.isin(codes), values)
        values, found = _parse(table, column, values, column_spec, options, where)
        problems += found
        if column_spec.sign is not None:
            values, found = _signed(table, column, values, raw, column_spec.sign, spec.file)
            problems += found
        columns[name] = values
    ignored = [str(c) for c in raw.columns if c not in used]
    if ignored:
        detail = f"source columns not mapped, ignored: {', '.join(ignored)}"
        problems.append(
            Problem(table.name, None, "extra_columns", detail, severity="warning", source=spec.file)
        )
    return pd.DataFrame(columns, index=pd.RangeIndex(len(raw))), problems


def _text(value: Any) -> str | None:
    """A YAML scalar as the text a CSV cell would hold (``true`` stays readable as a bool)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(
    table: Table,
    column,
    values: pd.Series,
    spec: ColumnSpec,
    options: ReadOptions,
    where: str,
) -> tuple[pd.Series, list[Problem]]:
    """Numbers with the file's decimal mark; dates and times in the file's formats. Values that do
    not parse are reported here, with the format they were read with."""
    if column.dtype in ("float64", "int64"):
        text = values.str.strip()
        if options.thousands:
            text = text.str.replace(options.thousands, "", regex=False)
        if options.decimal != ".":
            text = text.str.replace(options.decimal, ".", regex=False)
        return text, []
    if column.dtype not in ("date", "timestamp"):
        return values, []
    fmt = spec.format or (
        options.date_format
        if column.dtype == "date"
        else options.timestamp_format or options.date_format
    )
    if fmt is None:
        return values, []
    text = values.str.strip()
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    problems = []
    if bad.any():
        rows = np.flatnonzero(bad)
        examples = tuple(f"row {i + 1}: {text.iat[i]!r}" for i in rows[:MAX_EXAMPLES])
        problems.append(
            Problem(
                table.name,
                column.name,
                "type",
                f"is not a date in the format {fmt!r}",
                int(bad.sum()),
                examples,
                source=where,
            )
        )
    return parsed.astype("datetime64[ns]"), problems


def _signed(
    table: Table, column, values: pd.Series, raw: pd.DataFrame, sign: Sign, file: str
) -> tuple[pd.Series, list[Problem]]:
    """Unsigned amounts made signed by a debit/credit flag column (debits negative)."""
    flag = raw[sign.column].str.strip()
    debit = flag.isin(sign.debit).to_numpy(dtype=bool)
    credit = flag.isin(sign.credit).to_numpy(dtype=bool)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    unknown = ~(debit | credit) & values.notna().to_numpy(dtype=bool)
    problems = []
    if unknown.any():
        rows = np.flatnonzero(unknown)
        examples = tuple(f"row {i + 1}: {flag.iat[i]!r}" for i in rows[:MAX_EXAMPLES])
        allowed = ", ".join(map(repr, [*sign.debit, *sign.credit]))
        detail = f"debit/credit flag must be one of {allowed}"
        problems.append(
            Problem(
                table.name,
                column.name,
                "sign",
                detail,
                int(unknown.sum()),
                examples,
                source=f"{file}, column {sign.column}",
            )
        )
    signed = np.where(debit, -np.abs(numbers), np.abs(numbers))
    # Text that is not a number stays as it was, so the type check reports it with its source.
    out = values.copy()
    readable = ~np.isnan(numbers)
    out[readable] = signed[readable].astype(str)
    return out, problems
