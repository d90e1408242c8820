"""``crmscore train`` (the shared pipeline for one model or all, with progress and a summary) and
``crmscore document`` (a registered version's model document).

Only typer and rich are imported at module level; the pipeline (LightGBM, MLflow, Feast) loads when
the command runs, so ``crmscore --help`` stays instant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "moved" if value else "kept"
    return f"{value:.{digits}f}" if value == value else "-"


def train(
    model: str = typer.Argument(
        ...,
        help="Which model to train: churn, cross_sell, credit_risk, one of the bank's own "
        "(settings training.custom_models), or 'all'.",
    ),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train, evaluate and register models in MLflow; move 'champion' only when a model wins.

    Labels from the raw tables (the bank's outcomes table when it holds the model's outcome),
    features from Feast, runs to settings.training.tracking_uri. Small books are evaluated by
    repeated cross-validation, and a model whose AUC does not beat 0.5 by more than its
    confidence interval is registered but never made champion.

    Each version's run gets its model document (model_document.html; see crmscore document)
    and, for credit risk, the WoE scorecard challenger and its points table.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from models import all_models
    from training.pipeline import STEPS, train_model

    console = Console(width=None if sys.stdout.isatty() else 110)
    try:
        known = all_models()
    except ValueError as error:  # a custom model's settings
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(code=1) from error
    if model != "all" and model not in known:
        expected = ", ".join([*known, "all"])
        console.print(f"[bold red]error:[/] unknown model {model!r}: expected one of {expected}")
        raise typer.Exit(code=1)
    names = list(known) if model == "all" else [model]
    results, failed = [], []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not progress, transient=False) as bars:
        for name in names:
            task = bars.add_task(f"{name}: starting", total=len(STEPS))

            def advance(step: str, task=task, name=name) -> None:
                done = STEPS.index(step)
                bars.update(task, completed=done, description=f"{name}: {step}")
                if not progress:  # a batch job's log: one timestamped line per step instead
                    console.print(f"{time.strftime('%H:%M:%S')} {name}: {step}", highlight=False)

            try:
                result = train_model(name, progress=advance)
            except (FileNotFoundError, RuntimeError, ValueError, KeyError) as exc:
                # The other models still train: one the data cannot label (no defaults in a
                # short export) must not hide the results of those it can.
                bars.update(task, description=f"{name}: failed")
                failed.append((name, str(exc)))
                continue
            bars.update(task, completed=len(STEPS), description=f"{name}: done (v{result.version})")
            results.append(result)
    if results:
        _print_results(console, results)
    for name, message in failed:
        console.print(f"[bold red]error:[/] training {name}: {escape(message)}")
    if failed:
        raise typer.Exit(code=1)


def _print_results(console, results: list) -> None:
    """The results table of the models trained, then what each run said about its labels."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="crmscore train: results on the test snapshot")
    headers = ("model", "AUC", "95% CI", "baseline", "oracle", "gap", "KS", "Brier", "lift@10%")
    headers += ("champion",)
    for header in headers:
        table.add_column(header, justify="left" if header in ("model", "champion") else "right")
    for result in results:
        row = result.summary()
        table.add_row(
            f"{row['model']} v{row['version']}",
            _fmt(row["auc"]),
            f"{_fmt(row['auc_ci_low'])}-{_fmt(row['auc_ci_high'])}",
            _fmt(row["baseline_auc"]),
            _fmt(row["oracle_auc"]),
            _fmt(row["gap"]),
            _fmt(row["ks"]),
            _fmt(row["brier"], 4),
            _fmt(row["top_decile_lift"], 2),
            _fmt(row["champion"]),
        )
    console.print(table)
    for result in results:
        # escaped: reasons quote "[champion v3 re-scored ...]", which rich would take for markup
        console.print(f"[dim]{result.model}: labels from {escape(result.extra['label_source'])}[/]")
        console.print(f"[dim]{result.model}: {escape(result.reason)}[/]")
        if result.split.note:
            console.print(f"[yellow]{result.model}: {escape(result.split.note)}[/]")


def document(
    model: str = typer.Argument(..., help="Which model: churn, cross_sell, credit_risk or own."),
    version: str = typer.Option(None, help="Registered version (default: the champion)."),
    out: Path = typer.Option(..., "--out", help="HTML file to write (replaced atomically)."),
) -> None:
    """Write a registered version's model document: one self-contained HTML file.

    The same document training logged to the version's MLflow run
    (model_document.html).

    It covers purpose and use, label and population, data, code and packages,
    features, out-of-time performance with bootstrap intervals, calibration by
    decile and grade, stability, the baseline and scorecard challenger,
    the promotion decision and known limitations.
    """
    from mlflow.exceptions import MlflowException
    from rich.console import Console

    from models import get_definition
    from training.document import document_html
    from training.registry import configure_mlflow, current_champion, registered_name

    try:
        get_definition(model)
    except ValueError as exc:
        _fail(str(exc))
    client = configure_mlflow()
    name = registered_name(model)
    try:
        if version is None:
            champion = current_champion(client, model)
            if champion is None:
                raise LookupError(f"{name} has no champion: pass --version or train it first")
            version = str(champion.version)
        html = document_html(client, name, version)
    except LookupError as exc:
        _fail(str(exc))
    except MlflowException as exc:  # e.g. no such version
        _fail(f"{name} version {version}: {exc.message}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out)
    Console().print(f"{name} v{version}: model document written to {out}")


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)
