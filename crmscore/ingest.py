"""Ingest a bank's own files: read, validate every rule, write atomically, or write nothing.

Files in the contract's own layout (``<table>.csv`` / ``.parquet`` named as in
:mod:`crmscore.schema`) are read as they are; a bank's own export is read through a mapping file
(:mod:`crmscore.mapping`). Either way the values are checked against the bank's contract
(``bank.yaml``): given with ``contract``, named by the mapping, or found beside the files;
crmscore's defaults otherwise. The contract is written beside the tables it describes.

>>> report = ingest(Path("export"), Path("data/raw"), mapping=Path("map.yaml"))  # doctest: +SKIP
>>> report.rows["transactions"]                                                 # doctest: +SKIP
1843022
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pandas as pd

from crmscore.contract import BankContract, contract_of
from crmscore.dataset import read_raw_tables, write_dataset
from crmscore.schema import TABLES
from crmscore.validation import DatasetValidationError, Problem, check_dataset


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest` wrote: where from, where to, rows per table, what the data lacks and
    the warnings (findings that kept the data)."""

    src: Path
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[Problem] = field(default_factory=list)
    #: Optional tables the dataset does not have, and optional columns absent per table.
    absent_tables: list[str] = field(default_factory=list)
    absent_columns: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        width = max(len(name) for name in self.rows) if self.rows else 0
        lines = [f"Ingested {self.src} -> {self.out} in {self.seconds:.1f}s"]
        lines += [f"  {name:<{width}}  {count:>12,}" for name, count in self.rows.items()]
        lines += absence_lines(self.absent_tables, self.absent_columns)
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def absence_lines(tables: list[str], columns: dict[str, list[str]]) -> list[str]:
    """Plain sentences about what a dataset lacks (shared by ingest and the feature build)."""
    lines = []
    if tables:
        lines.append(f"absent tables (their features will be missing): {', '.join(tables)}")
    for table, names in columns.items():
        lines.append(
            f"absent {table} columns (features needing them are missing): {', '.join(names)}"
        )
    return lines


def resolve_contract(
    src: Path, contract: Path | None = None, mapping: Path | None = None
) -> BankContract:
    """The contract to check ``src`` against: ``contract`` if given, else the one the mapping
    names, else ``SRC/bank.yaml``, else crmscore's defaults."""
    if contract is not None:
        return BankContract.load(contract)
    if mapping is not None:
        from crmscore.mapping import Mapping

        named = Mapping.load(mapping).contract(mapping)
        if named is not None:
            return named
    return contract_of(src)


def read_validated(
    src: Path,
    as_of: datetime | None = None,
    contract: BankContract | None = None,
    mapping: Path | None = None,
) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Read the dataset at ``src`` (through ``mapping`` when given) and check every rule.

    Returns the typed tables and the warnings; raises :class:`DatasetValidationError` listing
    *all* errors (unreadable files, columns, types, keys, ranges, categories, time order,
    cross-table rules), each naming the source file and column when a mapping was used.
    """
    src = Path(src)
    contract = contract or resolve_contract(src, mapping=mapping)
    if mapping is not None:
        from crmscore.mapping import Mapping, read_mapped

        mapped, problems = read_mapped(src, Mapping.load(mapping))
        raw = {name: table.frame for name, table in mapped.items()}
        sources = {name: table.sources for name, table in mapped.items()}
    else:
        raw, problems = read_raw_tables(src)
        sources = {}
    if not raw:  # nothing readable: the reader's problems say it all
        raise DatasetValidationError(problems, source=src)
    typed, found = check_dataset(raw, as_of, contract)
    unreadable = {p.table for p in problems}
    # A table that could not be read is reported once, by the reader, not again as "missing".
    problems += [p for p in found if not (p.rule == "tables" and p.table in unreadable)]
    problems = [_with_source(p, sources) for p in problems]
    if any(p.is_error for p in problems):
        raise DatasetValidationError(problems, source=src)
    return typed, problems


def _with_source(problem: Problem, sources: dict[str, dict[str | None, str]]) -> Problem:
    if problem.source is not None or problem.table not in sources:
        return problem
    table = sources[problem.table]
    return replace(problem, source=table.get(problem.column, table.get(None)))


def ingest(
    src: Path,
    out: Path,
    as_of: datetime | None = None,
    *,
    mapping: Path | None = None,
    contract: Path | None = None,
) -> IngestReport:
    """Validate the dataset at ``src`` and write it to ``out`` as Parquet, with its ``bank.yaml``.

    On any error nothing is written (``out`` is left as it was) and
    :class:`DatasetValidationError` is raised. ``as_of``: extraction time, default now (UTC).
    """
    started = time.perf_counter()
    bank = resolve_contract(src, contract, mapping)
    tables, warnings = read_validated(src, as_of, bank, mapping)
    write_dataset(tables, out, bank)
    rows = {name: len(frame) for name, frame in tables.items()}
    absent_tables = [n for n, t in TABLES.items() if t.optional and n not in tables]
    absent_columns = {
        name: missing
        for name, frame in tables.items()
        if (missing := [c.name for c in TABLES[name].columns if c.name not in frame])
    }
    return IngestReport(
        Path(src),
        Path(out),
        rows,
        time.perf_counter() - started,
        warnings,
        absent_tables,
        absent_columns,
    )
