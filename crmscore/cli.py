"""The ``crmscore`` command line. Each stage contributes its own sub-commands.

Heavy libraries (Feast, MLflow, BentoML, LightGBM) are imported inside commands, so ``--help``
stays instant.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from crmscore.settings import get_settings
from features.cli import app as features_app
from monitoring.cli import monitor as monitor_command
from serving.cli import register as register_serving
from serving.console.cli import app as campaign_app
from training.cli import document as document_command
from training.cli import train as train_command

app = typer.Typer(
    name="crmscore",
    help="Score a retail bank's customers: churn, cross-sell propensity and credit risk.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _read_settings() -> None:
    # Read before any command runs: a bad CRMSCORE_* variable is then one clear error naming
    # the setting, not a traceback from whichever stage reads it first.
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        get_settings()
    except (ValidationError, SettingsError) as error:  # SettingsError: a value that is not JSON
        cause = ""
        if isinstance(error, SettingsError):
            cause = f" ({error.__cause__}): lists and mappings are given as JSON"
        _fail(f"settings from the environment: {error}{cause}")


@app.command()
def generate(
    customers: int = typer.Option(None, min=10, help="Number of customers (default: settings)."),
    months: int = typer.Option(None, min=6, max=120, help="Months of history (default: settings)."),
    seed: int = typer.Option(None, help="Random seed; the same seed gives identical data."),
    start: str = typer.Option(None, help="First month simulated, YYYY-MM-01 (default: settings)."),
    out: Path = typer.Option(None, help="Data folder: writes OUT/raw and OUT/oracle."),
    bank: Path = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Write the tables in this bank's vocabulary (bank.yaml: regions, products...).",
    ),
    shock_from: str = typer.Option(
        None,
        help="An economic shock from this month start (YYYY-MM-01) on: salaries fall 30%, card "
        "spending doubles, missed payments become likelier (to test crmscore monitor).",
    ),
    campaigns: list[Path] = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Campaign list (.csv/.parquet: customer_id, product, campaign_date[, contacted]) "
        "whose contacts to simulate; repeatable. Months before each campaign are unchanged.",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Write a synthetic bank with known truth (raw tables + bank.yaml + oracle probabilities)."""
    from crmscore.allocator import keep_freed_memory
    from crmscore.contract import DEFAULT_CONTRACT, BankContract, ContractError
    from crmscore.synthetic import BankConfig, EconomicShock, generate_bank
    from crmscore.synthetic.contacts import read_contacts

    defaults = get_settings().generator
    try:
        config = BankConfig(
            customers=customers or defaults.customers,
            months=months or defaults.months,
            seed=defaults.seed if seed is None else seed,
            start=start or defaults.start,
            contract=BankContract.load(bank) if bank else DEFAULT_CONTRACT,
            shock=EconomicShock(shock_from) if shock_from else None,
        )
        contacts = read_contacts(campaigns, config.contract) if campaigns else None
        keep_freed_memory()  # this process simulates (a bank of one group); see its module
        summary = generate_bank(
            config,
            out or get_settings().data_dir,
            progress=progress,
            contacts=contacts,
            workers=defaults.workers,
        )
    except (ContractError, ValueError) as error:
        _fail(str(error))
    typer.echo(summary)


# --- raw data: ingest, validate, schema --------------------------------------------------------


def _fail(message: str) -> None:
    """Print ``message`` to stderr (no traceback) and exit with code 1."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    console.print("[bold red]error:[/]", end=" ")
    console.print(message, markup=False, highlight=False)
    raise typer.Exit(code=1)


def _print_rows(title: str, rows: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    Console().print(table)


_AS_OF_HELP = "Extraction time: no event may lie after it (default: now, UTC)."


def _print_findings(warnings: list, absent_tables: list[str], absent_columns: dict) -> None:
    """What a dataset lacks, and the warnings (findings that kept the data), in yellow."""
    from rich.console import Console

    from crmscore.ingest import absence_lines

    console = Console(stderr=True, soft_wrap=True)
    for line in absence_lines(absent_tables, absent_columns):
        console.print(line, markup=False, highlight=False)
    for warning in warnings:
        console.print("[yellow]warning:[/]", end=" ")
        console.print(str(warning), markup=False, highlight=False)


_MAPPING_HELP = (
    "How to read a bank's own export (file names, separators, decimal commas, encodings, date "
    "formats, renames, code maps, debit/credit flags): see the README, 'Bring your own bank'."
)
_BANK_HELP = "The bank's vocabulary (bank.yaml) (default: the mapping's, SRC/bank.yaml, built-in)."


@app.command()
def ingest(
    src_dir: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            metavar="SRC_DIR",
            help="Folder with the bank's files (one per table, or as the mapping says).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the tables (default: settings raw_dir, data/raw)."),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help=_MAPPING_HELP)
    ] = None,
    bank: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=_BANK_HELP)] = None,
    as_of: Annotated[datetime | None, typer.Option(help=_AS_OF_HELP)] = None,
) -> None:
    """Validate a bank's files and write them as Parquet with their bank.yaml; on any error write
    nothing.

    Without --mapping, SRC_DIR holds one entry per table named as in `crmscore schema`: TABLE/
    (Parquet parts), TABLE.parquet or TABLE.csv. interactions and credit_status may be absent.

    Errors list table, column (and the source file and column), rule and the first offending
    rows; the exit code is then 1. Warnings (overdrafts beyond the limit, ignored columns) keep
    the data.
    """
    from crmscore.contract import ContractError
    from crmscore.ingest import ingest as run_ingest
    from crmscore.mapping import MappingError
    from crmscore.validation import DatasetValidationError

    out = out or get_settings().raw_dir
    try:
        report = run_ingest(src_dir, out, as_of=as_of, mapping=mapping, contract=bank)
    except (DatasetValidationError, ContractError, MappingError, OSError) as error:
        _fail(str(error))
    _print_rows(f"Ingested {src_dir} -> {out} ({report.seconds:.1f}s)", report.rows)
    _print_findings(report.warnings, report.absent_tables, report.absent_columns)


@app.command()
def validate(
    data_dir: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            metavar="DIR",
            help="Dataset folder to check, e.g. data/raw.",
        ),
    ],
    mapping: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help=_MAPPING_HELP)
    ] = None,
    bank: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=_BANK_HELP)] = None,
    as_of: Annotated[datetime | None, typer.Option(help=_AS_OF_HELP)] = None,
) -> None:
    """Check a dataset folder against the raw data contract; exit 1 listing every problem.

    DIR holds one entry per table: TABLE/ (Parquet parts), TABLE.parquet or TABLE.csv, or a bank's
    own export read through --mapping.
    """
    from crmscore.contract import ContractError
    from crmscore.ingest import read_validated, resolve_contract
    from crmscore.mapping import MappingError
    from crmscore.validation import DatasetValidationError

    try:
        contract = resolve_contract(data_dir, bank, mapping)
        tables, warnings = read_validated(data_dir, as_of, contract, mapping)
    except (DatasetValidationError, ContractError, MappingError, OSError) as error:
        _fail(str(error))
    _print_rows(f"{data_dir} is valid", {name: len(frame) for name, frame in tables.items()})
    _print_findings(warnings, [], {})


@app.command()
def schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print raw Markdown (for the README).")
    ] = False,
) -> None:
    """Show the raw data contract: tables, columns, types, allowed values and rules."""
    from crmscore.schema_doc import schema_markdown

    text = schema_markdown()
    if markdown:
        typer.echo(text, nl=False)
    else:
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))


app.command(name="train")(train_command)
app.command(name="document")(document_command)
app.command(name="monitor")(monitor_command)
app.add_typer(features_app, name="features")
app.add_typer(campaign_app, name="campaign")
register_serving(app)  # score, targets, explain, serve

if __name__ == "__main__":  # pragma: no cover
    app()
