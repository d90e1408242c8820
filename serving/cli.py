"""``crmscore score | targets | explain | serve``: batch scoring, marketing lists, the risk
officer's report, and the HTTP server. Each loads the champions from MLflow and reads features
from the online store, exactly as the server does (same functions, same numbers).

Only typer is imported at module level so ``crmscore --help`` stays instant.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from crmscore.progress import progress_bar


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _load(snapshot: bool = False):
    """Champions + a feature source (the online store, or the offline snapshot it was loaded
    from for whole-book runs), or a clean exit naming what is missing."""
    from serving.champions import load_champions
    from serving.errors import ServingError
    from serving.feature_source import OnlineFeatures, SnapshotFeatures

    try:
        champions = load_champions()
        source = SnapshotFeatures if snapshot else OnlineFeatures
        return champions, source(champions.feature_names())
    except ServingError as error:
        _fail(str(error))


def _check_out(out: Path) -> Path:
    from serving.batch import check_output_path

    try:
        return check_output_path(out)
    except ValueError as error:
        _fail(str(error))


def _everyone() -> list[int]:
    """Every customer id of the raw customers table, or a clean exit."""
    from crmscore.settings import get_settings
    from serving.batch import all_customer_ids

    try:
        return all_customer_ids(get_settings().raw_dir)
    except FileNotFoundError as error:
        _fail(str(error))


def _score_everyone(champions, source, progress: bool):
    """Features and scores of every customer in the raw customers table (read in bulk from the
    offline snapshot), with a progress bar."""
    from crmscore.settings import get_settings
    from serving.batch import score_customers
    from serving.errors import ServingError

    ids = _everyone()
    settings = get_settings().serving
    with progress_bar("reading features + scoring", len(ids), progress) as advance:
        try:
            found = score_customers(
                champions, source, ids, settings, settings.snapshot_chunk, advance
            )
        except ServingError as error:
            _fail(str(error))
    return (*found, len(ids))


def _customers_file(path: Path) -> list[int]:
    """Customer ids from a CSV or Parquet file with a ``customer_id`` column, or a clean exit."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        ids = pd.to_numeric(frame["customer_id"], errors="raise").astype("int64")
    except KeyError:
        _fail(f"--customers {path}: no customer_id column")
    except (ValueError, OSError) as error:
        _fail(f"--customers {path}: {error}")
    return list(dict.fromkeys(ids.tolist()))


def score(
    out: Path = typer.Option(..., help="Output file: .parquet or .csv (written atomically)."),
    as_of: datetime = typer.Option(
        None,
        formats=["%Y-%m-%d"],
        help="Score as of this day (e.g. loan applications' decision date): each customer's "
        "history strictly before it (default: the online store's snapshot).",
    ),
    customers: Path = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="Only these customers (.csv or .parquet with a customer_id column).",
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Score every customer (or --customers) with every champion, one row per customer.

    Features come from the offline store at the snapshot the online store was loaded from (same
    values as the endpoint, read in bulk), in chunks of serving.snapshot_chunk customers appended
    to the output: memory stays flat at any bank size. With --as-of they are computed from the
    raw history as of that day instead (any day, not only month starts).

    Columns: churn probability, propensity per product, PD + points, value, tier, next best
    product and the model versions used.
    """
    import time
    from collections import Counter

    from crmscore.settings import get_settings
    from serving.batch import AtomicTableWriter, score_chunks
    from serving.errors import ServingError

    out = _check_out(out)
    started = time.perf_counter()
    champions, source = _load(snapshot=as_of is None)
    if as_of is not None:
        from serving.feature_source import AsOfFeatures

        try:
            source = AsOfFeatures(source, as_of)
        except ServingError as error:
            _fail(str(error).replace("as_of:", "--as-of", 1))
    ids = _customers_file(customers) if customers else _everyone()
    settings = get_settings().serving
    chunk = settings.snapshot_chunk
    scored, unknown, tiers = 0, 0, Counter()
    try:
        with (
            progress_bar("reading features + scoring", len(ids), progress) as advance,
            AtomicTableWriter(out) as table,
        ):
            chunks = score_chunks(champions, source, ids, settings, chunk, advance)
            for _, scores, missing in chunks:
                unknown += len(missing)
                if len(scores):
                    table.write(scores.to_frame())
                    scored += len(scores)
                    tiers.update(scores.tiers.tier.tolist())
    except ServingError as error:
        _fail(str(error))
    seconds = time.perf_counter() - started
    typer.echo(
        f"scored {scored:,} of {len(ids):,} customers in {seconds:.1f}s "
        f"({scored / seconds:,.0f}/s) -> {out}"
    )
    if unknown:
        typer.echo(f"{unknown:,} customers have no features at snapshot {source.snapshot:%Y-%m-%d}")
    typer.echo("tiers: " + ", ".join(f"{t}={n:,}" for t, n in sorted(tiers.items())))


def targets(
    product: str = typer.Option(..., help="Product to offer (a cross-sell product of bank.yaml)."),
    top: int = typer.Option(..., help="How many customers to list (N >= 1)."),
    out: Path = typer.Option(..., help="Output file: .parquet or .csv (written atomically)."),
    exclude_pd_above: float = typer.Option(
        None, help="Drop customers whose PD is above this (default: settings serving.max_pd)."
    ),
    contacted_within_days: int = typer.Option(
        None, help="Drop customers contacted by a campaign in the last K days."
    ),
    segment: list[str] = typer.Option(None, help="Keep only these segments (bank.yaml)."),
    region: list[str] = typer.Option(None, help="Keep only these regions (bank.yaml)."),
    min_propensity: float = typer.Option(0.0, help="Drop customers below this propensity."),
    include_holders: bool = typer.Option(False, help="Keep customers who already hold it."),
    assume_consent: bool = typer.Option(
        False,
        help="The data has no consent column and you vouch that these customers may be "
        "contacted (otherwise such a list is refused).",
    ),
    reasons: int = typer.Option(3, min=0, max=10, help="Reason sentences per customer."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """A marketing target list: the top N customers by propensity for a product.

    Excluded: holders of the product, PD above the threshold, churned customers, no marketing
    consent, contacted in the last K days; optional segment and region filters.
    """
    from crmscore.settings import get_settings
    from serving.batch import write_table
    from serving.errors import InvalidRequest
    from serving.targets import TargetQuery, select_targets, with_reasons

    settings = get_settings().serving
    query = TargetQuery(
        product=product,
        top=top,
        max_pd=settings.max_pd if exclude_pd_above is None else exclude_pd_above,
        exclude_holders=not include_holders,
        contacted_within_days=contacted_within_days,
        segments=tuple(segment or ()),
        regions=tuple(region or ()),
        min_propensity=min_propensity,
        reasons=reasons,
        assume_consent=assume_consent,
    )
    try:
        query.validate()
    except InvalidRequest as error:
        _fail(f"--{error.field.replace('_', '-')}: {error}" if error.field else str(error))
    out = _check_out(out)
    champions, source = _load(snapshot=True)
    features, scores, _, total = _score_everyone(champions, source, progress)
    try:
        ranked, excluded = select_targets(query, features, scores, settings)
    except InvalidRequest as error:
        _fail(f"--{error.field.replace('_', '-')}: {error}" if error.field else str(error))
    ranked = with_reasons(ranked, features, champions.compiled["cross_sell"], reasons)
    write_table(ranked, out)
    typer.echo(f"{len(ranked):,} customers for {product} -> {out} (scored {total:,})")
    for reason, count in excluded.items():
        typer.echo(f"  excluded {count:>7,}  {reason}")


def explain(
    customer_id: int = typer.Argument(..., help="Customer to explain."),
    model: str = typer.Option(None, help="churn, cross_sell or credit_risk (default: all three)."),
    product: str = typer.Option(
        None, help="Offer to explain for cross_sell (default: the next best product)."
    ),
    top_k: int = typer.Option(None, min=1, max=50, help="Reasons per model (default: settings)."),
    direction: str = typer.Option(
        None, help="Reasons that raise the score, lower it, or both (default: settings)."
    ),
    html: Path = typer.Option(None, help="Also write the HTML report (scores, reasons, plots)."),
) -> None:
    """One customer's scores and reason codes (the risk officer's report).

    Top reason codes per model: SHAP contributions with plain-language sentences; --html writes a
    self-contained page with the tables and SHAP waterfall plots.
    """
    from rich.console import Console
    from rich.table import Table

    from crmscore.settings import get_settings
    from serving.catalogue import cross_sell_products
    from serving.champions import MODEL_NAMES
    from serving.explain import ReasonPolicy, explain_rows, format_value
    from serving.scoring import score_rows

    if model is not None and model not in MODEL_NAMES:
        _fail(f"--model: unknown model {model!r}; expected one of {list(MODEL_NAMES)}")
    offers = cross_sell_products()
    if product is not None and product not in offers:
        _fail(f"--product: unknown product {product!r}; expected one of {list(offers)}")
    if direction is not None and direction not in ("raises", "lowers", "both"):
        _fail(f"--direction: {direction!r}; expected raises, lowers or both")
    if html is not None and html.suffix.lower() not in (".html", ".htm"):
        _fail(f"--html {html}: use a .html file name")
    settings = get_settings().serving
    champions, source = _load()
    rows, unknown = source.fetch([customer_id])
    if unknown:
        _fail(f"customer {customer_id} is not in the online store")
    score = score_rows(champions, rows, settings).to_frame().iloc[0]
    offer = product or score["next_best_product"] or offers[0]
    explanations = [
        explain_rows(
            champions.compiled[name],
            rows,
            ReasonPolicy.of(name, top_k, direction),
            offer if name == "cross_sell" else None,
        )[0]
        for name in ([model] if model else MODEL_NAMES)
    ]
    console = Console()
    console.print(
        f"[bold]customer {customer_id}[/]  tier [bold]{score['tier']}[/] ({score['tier_reason']})"
    )
    console.print(
        f"churn {score['churn_probability']:.1%} · PD {score['probability_of_default']:.2%} · "
        f"points {score['score_points']:.0f} · value {score['value']:,.0f}/yr · "
        f"next best product {score['next_best_product']}"
    )
    for e in explanations:
        title = f"{e.model}" + (f" ({e.product})" if e.product else "")
        table = Table(title=f"{title}: probability {e.probability:.2%}", title_justify="left")
        for header in ("code", "reason", "contribution", "feature", "value", "sentence"):
            table.add_column(
                header, justify="right" if header in ("value", "contribution") else "left"
            )
        for r in e.reasons:
            colour = "red" if r.contribution > 0 else "green"
            table.add_row(
                r.code,
                r.text,
                f"[{colour}]{r.contribution:+.3f}[/]",
                r.feature,
                format_value(r.value),
                r.sentence,
            )
        console.print(table)
    if html is not None:
        import os
        import tempfile

        from serving.report import render_report

        page = render_report(score, explanations)
        html.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{html.name}.", dir=html.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, html)
        console.print(f"report -> {html}")


def serve(
    host: str = typer.Option(None, help="Interface to bind (default: settings serving.host)."),
    port: int = typer.Option(None, min=1, max=65535, help="Port (default: settings serving.port)."),
) -> None:
    """Start the BentoML scoring server.

    POST /score, /explain, /score_features, /targets, /reload; GET /readyz, /livez, /metrics;
    OpenAPI at /docs.json.
    """
    import os
    import sys

    from crmscore.settings import PROJECT_ROOT, get_settings

    settings = get_settings().serving
    if not settings.api_keys:
        typer.secho(
            "warning: no API keys configured (CRMSCORE_SERVING__API_KEYS): every scoring "
            "endpoint will answer 401",
            fg=typer.colors.YELLOW,
            err=True,
        )
    host, port = host or settings.host, port or settings.port
    _check_free(host, port)
    command = [
        sys.executable, "-m", "bentoml", "serve", "serving.service:CrmScore",
        "--working-dir", str(PROJECT_ROOT),
        "--host", host,
        "--port", str(port),
    ]  # fmt: skip
    os.execv(sys.executable, command)


def _check_free(host: str, port: int) -> None:
    """Exit with one line when ``host:port`` cannot be listened on (another server holds it, or
    the host is not this machine's), instead of BentoML's page of process-manager traceback."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as error:
            _fail(
                f"cannot listen on {host}:{port}: {error.strerror or error}; is a server already "
                "running there? Choose another with --port or settings serving.port"
            )


def register(app: typer.Typer) -> None:
    """Add the serving commands to the ``crmscore`` application."""
    for command in (score, targets, explain, serve):
        app.command()(command)
