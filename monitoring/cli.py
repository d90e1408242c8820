"""``crmscore monitor``: stability and back-testing of every champion; exit 1 on a red threshold."""

from __future__ import annotations

from pathlib import Path

import typer


def monitor(
    snapshot: str = typer.Option(
        None, help="Month start to monitor, YYYY-MM-01 (default: the latest, after the data)."
    ),
    out: Path = typer.Option(
        None, help="HTML report to write (default: DATA_DIR/monitoring/<snapshot>.html)."
    ),
) -> None:
    """Check every champion against its training population (exit 1 if red).

    Stability: PSI of the score, CSI and missing rate of every input.

    Back-testing: every snapshot whose outcome window closed since training,
    realised against predicted per rating grade (Jeffreys test) or decile,
    AUC and KS over time.

    Writes an HTML report; logs metrics to the crmscore-monitoring experiment.
    """
    from rich.console import Console

    from crmscore.settings import get_settings
    from monitoring.monitor import monitor as run_monitor
    from monitoring.report import log_to_mlflow, render

    console = Console(stderr=True, soft_wrap=True)
    try:
        report = run_monitor(snapshot)
    except (FileNotFoundError, LookupError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from exc
    html = render(report)
    out = out or get_settings().data_dir / "monitoring" / f"{report.snapshot}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out)
    run_id = log_to_mlflow(report, html)
    for m in report.models:
        psi = m.stability.iloc[0]["index"]
        console.print(
            f"{m.model} v{m.champion.version}: {m.status} · score PSI {psi:.3f} · "
            f"{len(m.backtests)} back-tested snapshot(s)",
            highlight=False,
        )
    for name, reason in report.skipped.items():
        console.print(f"[yellow]{name}: not monitored ({reason})[/]", highlight=False)
    console.print(f"report: {out} · MLflow run {run_id}", highlight=False)
    if report.alerts:
        console.print(f"[bold red]RED[/] at {report.snapshot}:", highlight=False)
        for alert in report.alerts:
            console.print(f"  - {alert}", highlight=False)
        raise typer.Exit(code=1)
