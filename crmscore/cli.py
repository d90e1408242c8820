"""The ``crmscore`` command line. Each stage contributes its own sub-commands.

Heavy libraries (Feast, MLflow, BentoML, LightGBM) are imported inside commands, so ``--help``
stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from crmscore.settings import get_settings

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


if __name__ == "__main__":  # pragma: no cover
    app()
