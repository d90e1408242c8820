"""``crmscore features ...``: build feature tables, fill the online store, look a customer up."""

from __future__ import annotations

from datetime import datetime

import typer

app = typer.Typer(
    help="Feature store: DuckDB feature tables + Feast (offline DuckDB, online SQLite or Redis).",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def build(
    progress: bool = typer.Option(
        True, help="Show a progress bar (--no-progress: a timestamped line per step)."
    ),
) -> None:
    """Compute the monthly snapshot feature tables from the raw data, then `feast apply`.

    Reads settings.raw_dir (data/raw/<table>/*.parquet), writes data/features/tables/<view>.parquet
    and registers the entity, feature views and the churn / cross_sell / credit_risk services.
    """
    import time

    import duckdb

    from crmscore.contract import ContractError
    from crmscore.settings import get_settings
    from features.build import RawDataError, apply, build_feature_tables

    started = time.perf_counter()
    try:
        report = build_feature_tables(progress=progress, log_steps=not progress)
    except (RawDataError, ContractError) as error:
        _fail(str(error))
    except duckdb.Error as error:  # data the contract allows but the SQL cannot digest
        _fail(f"feature build failed on {get_settings().raw_dir}: {error}")
    apply()
    typer.echo(f"tables used: {', '.join(report.used_tables)}")
    if report.absent_tables:
        typer.secho(
            f"tables absent: {', '.join(report.absent_tables)} (their features are missing)",
            fg=typer.colors.YELLOW,
        )
    for view, names in report.left_out.items():
        if view not in report.tables:  # a whole view: said above, with its table
            continue
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        typer.secho(f"left out of {view}: {shown}", fg=typer.colors.YELLOW)
    with duckdb.connect() as con:
        for view, path in report.tables.items():
            rows, snapshots = con.execute(
                f"SELECT count(*), count(DISTINCT event_timestamp) FROM read_parquet('{path}')"
            ).fetchone()
            typer.echo(f"{view:<13} {rows:>10,} rows  {snapshots:>3} snapshots  {path}")
    typer.echo(
        f"registered in {get_settings().features_dir / 'registry.db'} "
        f"({time.perf_counter() - started:.1f}s)"
    )


@app.command()
def materialize(
    end: datetime = typer.Option(
        None, formats=["%Y-%m-%d"], help="Materialise the latest snapshot on or before this date."
    ),
) -> None:
    """Load every customer's latest feature snapshot into the online store (SQLite or Redis)."""
    from crmscore.settings import get_settings
    from features.build import RawDataError, apply
    from features.materialize import materialize as run

    try:
        # `feast apply` first (idempotent): it creates the configured store's tables, so a store
        # switched by configuration (Redis -> SQLite, a new SQLite path) needs no rebuild.
        apply()
        snapshot = run(end, progress=True)
    except (RawDataError, ValueError) as error:
        _fail(str(error))
    except Exception as error:  # e.g. Redis unreachable: say where, not a traceback
        _fail(
            f"materialisation into the {get_settings().features.online_store} store failed: {error}"
        )
    typer.echo(f"online store now serves the snapshot of {snapshot:%Y-%m-%d}")


@app.command()
def get(
    customer_id: int = typer.Argument(..., help="The customer to look up."),
    service: str = typer.Option(
        "churn", "--service", "-s", help="Feature service: churn, cross_sell or credit_risk."
    ),
) -> None:
    """Print a customer's online feature vector (from the last `features materialize`)."""
    from rich.console import Console
    from rich.table import Table

    from features.catalog import describe, services, view_of
    from features.online import get_online_features, unknown_customers

    if service not in services():
        _fail(f"unknown service {service!r}; choose one of {', '.join(services())}")
    try:
        vector = get_online_features([customer_id], service)
    except Exception as error:  # registry or online store missing
        _fail(
            f"cannot read the online store ({error}); run `crmscore features build` and "
            "`crmscore features materialize` first"
        )
    if unknown_customers(vector):
        _fail(
            f"customer {customer_id} is not in the online store (unknown id, or not "
            "materialised yet: run `crmscore features materialize`)"
        )
    table = Table(title=f"customer {customer_id} · feature service {service}")
    table.add_column("feature", style="cyan", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("meaning", style="dim", ratio=1)
    previous_view = None
    for name, value in vector.iloc[0].drop("customer_id").items():
        if previous_view is not None and view_of(name) != previous_view:
            table.add_section()
        previous_view = view_of(name)
        table.add_row(name, _format(value), describe(name))
    Console().print(table)


def _format(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)
