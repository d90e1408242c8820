"""``crmscore campaign list | results ID``: saved campaigns and their measured lift, from the
command line (the console's campaign page shows the same figures)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Saved campaigns (built in the console): list them, measure their lift.",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command("list")
def list_command() -> None:
    """Every saved campaign, newest first."""
    from crmscore.settings import get_settings
    from serving.console.campaigns import list_campaigns

    root = get_settings().campaigns_dir
    found = list_campaigns(root)
    if not found:
        typer.echo(f"no campaign saved in {root}")
    for c in found:
        counts = c.counts
        typer.echo(
            f"{c.id}  {c.campaign_date}  {c.product:<18} {counts.get('listed', 0):>7,} listed "
            f"({counts.get('control', 0):,} control)  window to {c.window_end}  {c.name}"
        )


@app.command()
def results(campaign_id: str = typer.Argument(..., help="Campaign id (crmscore campaign list).")):
    """Take-up among contacted vs control customers, and the lift with its 95% interval.

    Take-up = an account of the campaign's product opened from the campaign date to the end of
    its window, read from the raw accounts; refused until the raw data covers the window.
    """
    from crmscore.settings import get_settings
    from serving.console.campaigns import campaign_results, load_campaign
    from serving.errors import ServingError

    settings = get_settings()
    try:
        campaign, frame = load_campaign(campaign_id, settings.campaigns_dir)
        result = campaign_results(campaign, frame, settings.raw_dir)
    except ServingError as error:
        _fail(str(error))
    typer.echo(
        f"{campaign.id} ({campaign.name}): {campaign.product}, {campaign.campaign_date} to "
        f"{campaign.window_end}, raw data until {result.data_until}"
    )
    for label, group in (("contacted", result.target), ("control", result.control)):
        typer.echo(
            f"  {label:<10} {group.customers:>7,} customers  {group.took_up:>6,} opened  "
            f"take-up {group.rate:.2%}"
        )
    typer.echo(
        f"  lift {result.lift * 100:+.2f} percentage points "
        f"(95% CI {result.lift_low * 100:+.2f} to {result.lift_high * 100:+.2f}); "
        f"{result.relative_lift:.2f}x the control take-up"
    )
