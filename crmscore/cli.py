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
from serving.cli import register as register_serving
from training.cli import train as train_command

app = typer.Typer(
    name="crmscore",
    help="Score a retail bank's customers: churn, cross-sell propensity and credit risk.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def generate(
    customers: int = typer.Option(None, min=10, help="Number of customers [default: settings]."),
    months: int = typer.Option(None, min=6, max=120, help="Months of history [default: settings]."),
    seed: int = typer.Option(None, help="Random seed; the same seed gives identical data."),
    start: str = typer.Option(None, help="First month simulated, YYYY-MM-01 [default: settings]."),
    out: Path = typer.Option(None, help="Data folder: writes OUT/raw and OUT/oracle."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Write a synthetic bank with known truth (raw tables + oracle probabilities)."""
    from crmscore.synthetic import BankConfig, generate_bank

    defaults = get_settings().generator
    config = BankConfig(
        customers=customers or defaults.customers,
        months=months or defaults.months,
        seed=defaults.seed if seed is None else seed,
        start=start or defaults.start,
    )
    out = out or get_settings().data_dir
    summary = generate_bank(config, out, progress=progress)
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


@app.command()
def ingest(
    src_dir: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            metavar="SRC_DIR",
            help="Folder with one CSV/Parquet file per table.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the tables (default: settings raw_dir, data/raw)."),
    ] = None,
    as_of: Annotated[datetime | None, typer.Option(help=_AS_OF_HELP)] = None,
) -> None:
    """Validate a bank's raw files and write them as Parquet; on any error write nothing.

    SRC_DIR holds one entry per table: TABLE/ (Parquet parts), TABLE.parquet or TABLE.csv.

    See `crmscore schema` for the tables, columns and rules.

    Errors list table, column, rule and the first offending rows; the exit code is then 1.
    """
    from crmscore.ingest import ingest as run_ingest
    from crmscore.validation import DatasetValidationError

    out = out or get_settings().raw_dir
    try:
        report = run_ingest(src_dir, out, as_of=as_of)
    except (DatasetValidationError, OSError) as error:
        _fail(str(error))
    _print_rows(f"Ingested {src_dir} -> {out} ({report.seconds:.1f}s)", report.rows)


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
    as_of: Annotated[datetime | None, typer.Option(help=_AS_OF_HELP)] = None,
) -> None:
    """Check a dataset folder against the raw data contract; exit 1 listing every problem.

    DIR holds one entry per table: TABLE/ (Parquet parts), TABLE.parquet or TABLE.csv.
    """
    from crmscore.ingest import read_validated
    from crmscore.validation import DatasetValidationError

    try:
        tables = read_validated(data_dir, as_of=as_of)
    except (DatasetValidationError, OSError) as error:
        _fail(str(error))
    _print_rows(f"{data_dir} is valid", {name: len(frame) for name, frame in tables.items()})


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
app.add_typer(features_app, name="features")
register_serving(app)  # score, targets, explain, serve

if __name__ == "__main__":  # pragma: no cover
    app()
