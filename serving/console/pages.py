"""What each page shows, as plain functions of the customer book (no HTTP here).

Each returns a :class:`Page`: the template, its context and the customer ids it shows (the
audit trail's subject). Blocking work (scoring lists, explanations, reading campaign files)
happens here; :mod:`serving.console.app` runs these off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd

from crmscore.contract import current_contract
from crmscore.settings import get_settings
from serving.champions import MODEL_NAMES
from serving.console import campaigns as store
from serving.console import charts
from serving.console.book import Book
from serving.console.forms import SUBMITTED, SaveForm, TargetForm, parse_form
from serving.console.portfolio import GROUPINGS, by_group, histogram, over_snapshots
from serving.console.sessions import Identity
from serving.console.worklist import WEEK_DAYS, due_this_week, managers
from serving.errors import Forbidden, InvalidRequest, UnknownCustomer
from serving.explain import explain_rows, format_value
from serving.targets import select_targets, with_reasons
from serving.tiers import TIERS

Pager = Callable[[int, int, int], dict]


class Page:
    """A template, its context, and the customers it shows (audited)."""

    def __init__(self, template: str, context: dict, customer_ids=(), status: int = 200):
        self.template, self.context, self.status = template, context, status
        self.customer_ids = [int(i) for i in customer_ids]


def _choices() -> dict:
    """The bank's own offers, segments and regions (its contract) for the builder's fields."""
    contract = current_contract()
    return {
        "products": contract.cross_sell_products,
        "segments": contract.segments,
        "regions": contract.regions,
    }


# --- campaigns -----------------------------------------------------------------------------------


def _ranked(console, form: TargetForm) -> tuple[Book, pd.DataFrame, dict, int]:
    settings = get_settings().serving
    query = form.query(settings)
    book = console.book()
    ranked, excluded = select_targets(query, book.rows, book.scored, settings)
    eligible = len(book.scores) - sum(excluded.values())
    return book, ranked, excluded, eligible


def campaign_builder(console, values, page_number: int, pager: Pager) -> Page:
    """The builder form; with a submitted query, the ranked list's page with reasons."""
    settings = get_settings()
    context = {
        **_choices(),
        "values": values,
        "submitted": SUBMITTED,
        "saved": store.list_campaigns(settings.campaigns_dir),
        "defaults": {
            "control_share": settings.console.control_share,
            "window_months": settings.console.window_months,
            "max_pd": settings.serving.max_pd,
        },
    }
    if "product" not in values:
        return Page("campaigns.html", context)
    try:
        form = parse_form(TargetForm, values)
        book, ranked, excluded, eligible = _ranked(console, form)
    except InvalidRequest as error:  # the form again, as the user filled it, with the message
        return Page("campaigns.html", {**context, "error": error}, status=error.status)
    size = settings.console.page_size
    pages = pager(len(ranked), page_number, size)
    shown = ranked.iloc[pages["first"] : pages["last"]]
    shown = with_reasons(shown, book.rows, book.champions.compiled["cross_sell"], form.reasons)
    context.update(
        form=form,
        rows=shown.to_dict(orient="records"),
        paging=pages,
        excluded=excluded,
        eligible=eligible,
        scored=len(book.scores),
        snapshot=book.snapshot,
        model=book.champions.versions()["cross_sell"],
    )
    return Page("campaigns.html", context, shown["customer_id"])


def save_campaign(console, values, identity: Identity) -> tuple[store.Campaign, list[int]]:
    """Rank, draw the control group, and save; nothing is written unless all of it succeeds."""
    settings = get_settings()
    form = parse_form(SaveForm, values)
    book, ranked, excluded, eligible = _ranked(console, form)
    if ranked.empty:
        raise InvalidRequest("the list is empty: relax the exclusions or filters", field="top")
    start = form.campaign_date or book.snapshot.date()
    if start < book.snapshot.date():
        raise InvalidRequest(
            f"campaign_date: must be on or after the list's snapshot {book.snapshot:%Y-%m-%d}, "
            f"got {start}",
            field="campaign_date",
        )
    ranked = with_reasons(ranked, book.rows, book.champions.compiled["cross_sell"], form.reasons)
    query = form.model_dump(include=set(TargetForm.model_fields))
    campaign = store.Campaign(
        id=store.new_campaign_id(form.product),
        name=form.name,
        product=form.product,
        campaign_date=start,
        window_months=form.window_months,
        control_share=form.control_share,
        seed=form.seed,
        query=query,
        models=book.champions.versions(),
        snapshot=book.snapshot.date(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        created_by=identity.role,
    )
    listed = store.campaign_list(campaign, ranked)
    counts = listed["group"].value_counts()
    campaign = store.Campaign(
        **{
            **campaign.__dict__,
            "counts": {
                "listed": len(listed),
                "target": int(counts.get(store.TARGET, 0)),
                "control": int(counts.get(store.CONTROL, 0)),
                "eligible": int(eligible),
                "excluded": excluded,
            },
        }
    )
    store.save_campaign(campaign, listed, settings.campaigns_dir)
    return campaign, listed["customer_id"].tolist()


def campaign_page(console, campaign_id: str, page_number: int, pager: Pager) -> Page:
    """A saved campaign: the decision, its results once the window has passed, its list."""
    settings = get_settings()
    campaign, frame = store.load_campaign(campaign_id, settings.campaigns_dir)
    try:
        result, pending = store.campaign_results(campaign, frame, settings.raw_dir), None
    except store.CampaignPending as error:
        result, pending = None, str(error)
    pages = pager(len(frame), page_number, settings.console.page_size)
    shown = frame.iloc[pages["first"] : pages["last"]]
    context = {
        "campaign": campaign,
        "result": result,
        "pending": pending,
        "rows": shown.to_dict(orient="records"),
        "paging": pages,
    }
    return Page("campaign.html", context, shown["customer_id"])


# --- customers -----------------------------------------------------------------------------------


def customer_page(console, customer_id: int, identity: Identity) -> Page:
    """Scores, tier, plan, next best product, reasons with waterfalls, trends, interactions."""
    book = console.book()
    row = book.position(customer_id)
    if row is None:
        raise UnknownCustomer(
            f"customer {customer_id} is not in the book at {book.snapshot:%Y-%m-%d}",
            field="customer_id",
        )
    score = book.scores.iloc[row]
    manager = score["manager_id"]
    manager = None if pd.isna(manager) else int(manager)
    if not identity.may_see_manager(manager):
        raise Forbidden(f"customer {customer_id} is not one of manager {identity.manager_id}'s")
    one = book.rows.take([row])
    offers = current_contract().cross_sell_products
    offer = score["next_best_product"] or next(
        (p for p in offers if score[f"propensity_{p}"] == score[f"propensity_{p}"]), offers[0]
    )
    explanations = []
    for name in MODEL_NAMES:
        model = book.champions.compiled[name]
        explained = explain_rows(model, one, product=offer if name == "cross_sell" else None)[0]
        steps = [
            (f"{r.feature} = {format_value(r.value)}", r.contribution) for r in explained.reasons
        ]
        rest = explained.raw_score - explained.base_value - sum(v for _, v in steps)
        steps.append(("all other features", rest))
        title = name.replace("_", " ") + (f" — offer: {offer}" if name == "cross_sell" else "")
        explanations.append(
            {
                "explanation": explained,
                "title": title,
                "chart": charts.waterfall(
                    f"Why: {title}", explained.base_value, steps, f"{explained.probability:.1%}"
                ),
            }
        )
    history = book.customer_history(customer_id)
    labels = [f"{s:%Y-%m}" for s in history["snapshot"]]
    trends = [
        charts.line_chart(
            "Yearly value", labels, {"value": history["value"].tolist()}, "value per year",
            fmt="{:,.0f}".format,
        ),
        charts.line_chart(
            "Churn probability (3 months)", labels,
            {"churn": history["churn_probability"].tolist()}, "probability", fmt="{:.1%}".format,
        ),
        charts.line_chart(
            "Probability of default (12 months)", labels,
            {"PD": history["probability_of_default"].tolist()}, "probability",
            fmt="{:.2%}".format,
        ),
    ]  # fmt: skip
    interactions = book.customer_interactions(customer_id)
    complaints = interactions[interactions["kind"] == "complaint"]
    propensities = {p: score[f"propensity_{p}"] for p in offers}
    context = {
        "book": book,
        "score": score,
        "manager": manager,
        "propensities": propensities,
        "explanations": explanations,
        "trends": trends,
        "history": history.to_dict(orient="records"),
        "interactions": interactions.to_dict(orient="records"),
        "complaints": complaints.to_dict(orient="records"),
        "has_interaction_log": book.interactions is not None,
        "grade": _grade(score),
        "models": book.champions.versions(),
    }
    return Page("customer.html", context, [customer_id])


def _grade(score: pd.Series) -> str | None:
    """The master-scale rating grade of the customer's PD (the scored one if serving gives it)."""
    from training.master_scale import rating_grade

    return score.get("rating_grade") or rating_grade([score["probability_of_default"]])[0]


# --- worklist ------------------------------------------------------------------------------------


def worklist_page(console, values, identity: Identity, page_number: int, pager: Pager) -> Page:
    """A manager's customers due this week; admins pick the manager."""
    book = console.book()
    choices = managers(book)
    raw = values.get("manager_id", "")
    if identity.role == "manager":
        if raw and raw != str(identity.manager_id):
            raise Forbidden(f"manager {identity.manager_id} may open only their own worklist")
        manager_id = identity.manager_id
    elif raw:
        if not raw.isdigit():
            raise InvalidRequest(
                f"manager_id: must be a manager id, got {raw!r}", field="manager_id"
            )
        manager_id = int(raw)
    else:
        manager_id = choices[0] if choices else None
    due = due_this_week(book, manager_id) if manager_id is not None else book.scores.iloc[:0]
    size = get_settings().console.page_size
    pages = pager(len(due), page_number, size)
    shown = due.iloc[pages["first"] : pages["last"]]
    context = {
        "manager_id": manager_id,
        "managers": choices,
        "rows": shown.to_dict(orient="records"),
        "paging": pages,
        "book": book,
        "week_end": book.snapshot + pd.Timedelta(days=WEEK_DAYS - 1),
        "customers": int((book.scores["manager_id"] == manager_id).sum()),
    }
    return Page("worklist.html", context, shown["customer_id"])


# --- portfolio -----------------------------------------------------------------------------------


def portfolio_page(console, grouping: str, page_number: int, pager: Pager) -> Page:
    """Distributions and expectations by group, and the whole book over snapshots."""
    if grouping not in GROUPINGS:
        raise InvalidRequest(
            f"by: unknown grouping {grouping!r}; expected one of {list(GROUPINGS)}", field="by"
        )
    book = console.book()
    groups = _cached(book, ("groups", grouping), lambda: by_group(book.scores, grouping))
    trend = _cached(book, ("trend",), lambda: over_snapshots(book.history))
    pages = pager(len(groups), page_number, get_settings().console.page_size)
    shown = groups.iloc[pages["first"] : pages["last"]]
    labels = [f"{s:%Y-%m}" for s in trend["snapshot"]]
    active = book.scores["active"].astype(bool)
    credit = active & book.scores["has_credit"].astype(bool)
    churn_bins, churn_counts = histogram(book.scores.loc[active, "churn_probability"])
    pd_bins, pd_counts = histogram(book.scores.loc[credit, "probability_of_default"])
    figures = [
        charts.bar_chart(
            "Churn probability, customers with an open account", churn_bins, churn_counts,
            "churn probability (3 months)", "customers",
        ),
        charts.bar_chart(
            "Probability of default, credit customers", pd_bins, pd_counts,
            "probability of default (12 months)", "customers",
        ),
        charts.stacked_shares(
            f"Tiers by {grouping} (this page's groups)",
            [(str(r["group"]), {t: r[f"tier_{t}"] for t in TIERS}) for _, r in shown.iterrows()],
            TIERS,
        ),
    ]  # fmt: skip
    moves = [
        charts.line_chart(
            "Expected churners (next 3 months)", labels,
            {"expected churners": trend["expected_churners"].tolist()}, "customers",
            fmt="{:,.0f}".format,
        ),
        charts.line_chart(
            "Expected defaults (next 12 months)", labels,
            {"expected defaults": trend["expected_defaults"].tolist()}, "customers",
            fmt="{:,.0f}".format,
        ),
        charts.line_chart(
            "Tier shares", labels,
            {t: (trend[f"tier_{t}"] / trend["customers"]).tolist() for t in TIERS}, "share",
            fmt="{:.0%}".format,
        ),
    ]  # fmt: skip
    context = {
        "grouping": grouping,
        "groupings": list(GROUPINGS),
        "rows": shown.to_dict(orient="records"),
        "paging": pages,
        "figures": figures,
        "moves": moves,
        "trend": trend.to_dict(orient="records"),
        "book": book,
        "tiers": TIERS,
    }
    return Page("portfolio.html", context)


def _cached(book: Book, key: tuple, compute):
    """Per-book memo of aggregates: the book never changes once built."""
    if key not in book.memo:
        book.memo[key] = compute()
    return book.memo[key]
