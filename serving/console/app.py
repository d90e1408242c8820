"""The console's pages: a Starlette app the BentoML server mounts at ``/console``.

One route per page; each checks who is asking (:mod:`serving.console.sessions`), whether their role
may open the page (``serving.access.ROLE_PAGES``), reads the customer book
(:mod:`serving.console.book`) and renders a Jinja2 template. Every page showing customers writes
one audit line like an API call (role, ``console/<page>``, status, pseudonymised ids); errors
render the API's message with its status (400 naming the field, 401 -> the login page, 403, 404,
503 while the book is being prepared). Pages carry no script at all, which the Content Security
Policy says.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from crmscore.settings import get_settings
from serving.access import Pseudonymiser, audit, enable_audit_log
from serving.champions import Champions
from serving.console import campaigns as store
from serving.console import pages
from serving.console.book import Book, BookKeeper
from serving.console.pages import Page
from serving.console.sessions import COOKIE, Identity, Sessions
from serving.errors import (
    Forbidden,
    InvalidRequest,
    ServingError,
    Unauthenticated,
    Unavailable,
    UnknownCustomer,
)
from serving.schemas import CUSTOMER_ID_MAX

HERE = Path(__file__).parent
PREFIX = "/console"
logger = logging.getLogger("crmscore.console")
#: No script anywhere; styles from our own file; charts are inline SVG.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Sent:
    """A response the handler built itself (a redirect, a file) and the customers it reveals."""

    response: Response
    customer_ids: list[int] = field(default_factory=list)


class Preparing(Unavailable):
    """The customer book is still being computed (503, the page refreshes itself)."""


class Console:
    """State shared by every page: sessions, the audit pseudonymiser, the book keeper."""

    def __init__(self, champions: Callable[[], Champions]) -> None:
        settings = get_settings()
        enable_audit_log()
        self.champions = champions
        self.sessions = Sessions(
            settings.serving.api_keys, settings.serving.manager_ids, settings.console.session_hours
        )
        self.pseudonymise = Pseudonymiser.from_secret(settings.serving.audit_key)
        self.books = BookKeeper(champions, get_settings)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters.update(percent=_percent, money=_money, number=_number)
        self._cards: tuple[Champions, list] | None = None

    def book(self) -> Book:
        book = self.books.current()
        if book is None:
            problem = self.books.problem
            raise Preparing(
                f"the customer book could not be built: {problem}"
                if problem
                else "the console is scoring the customer book; this page refreshes itself"
            )
        return book

    def model_cards(self):
        from serving.console.model_cards import model_cards, with_latest_monitoring

        champions = self.champions()
        if self._cards is None or self._cards[0] is not champions:
            self._cards = (champions, model_cards(champions))
        return with_latest_monitoring(self._cards[1])


def _percent(value, digits: int = 1) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}%}"


def _money(value) -> str:
    return "—" if value is None or value != value else f"{value:,.0f}"


def _number(value, digits: int = 0) -> str:
    return "—" if value is None or value != value else f"{value:,.{digits}f}"


# --- plumbing ------------------------------------------------------------------------------------


def page(name: str | None):
    """Wrap a handler: identify the caller, check the page is theirs, render, audit."""

    def decorate(handler):
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            console: Console = request.app.state.console
            identity: Identity | None = None
            shown: list[int] = []
            try:
                identity = console.sessions.identify(request.cookies.get(COOKIE), request.headers)
                if name is not None:
                    identity.require(name)
                if request.method == "POST":
                    _same_origin(request)
                result = await handler(request, console, identity)
                if isinstance(result, Response):
                    result = Sent(result)
                if isinstance(result, Sent):
                    response, shown = result.response, result.customer_ids
                    status = response.status_code
                else:
                    status, shown = result.status, result.customer_ids
                    response = _render(request, console, identity, result)
            except Unauthenticated as error:
                status = error.status
                response = _to_login(request, str(error))
            except ServingError as error:
                status = error.status
                response = _render(
                    request,
                    console,
                    identity,
                    Page("error.html", {"error": error, "preparing": isinstance(error, Preparing)}),
                    status,
                )
            except Exception:  # a bug: logged, the user told nothing internal
                logger.exception("unexpected error in console page %s", request.url.path)
                status = 500
                response = _render(
                    request,
                    console,
                    identity,
                    Page("error.html", {"error": "internal error; see the server log"}),
                    500,
                )
            audit(
                console.pseudonymise,
                role=identity.role if identity else "-",
                endpoint=f"console/{name or 'home'}",
                status=status,
                customer_ids=shown,
                **({"manager_id": identity.manager_id} if identity and identity.manager_id else {}),
            )
            for name_, value in HEADERS.items():  # a handler's own policy (an artifact's) stays
                response.headers.setdefault(name_, value)
            return response

        return endpoint

    return decorate


def _render(request, console, identity, result: Page, status: int | None = None) -> Response:
    context = {"identity": identity, "prefix": PREFIX, "path": request.url.path, **result.context}
    return console.templates.TemplateResponse(
        request, result.template, context, status_code=status or result.status
    )


def _to_login(request: Request, message: str) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = PREFIX + "/"
    return RedirectResponse(
        f"{PREFIX}/login?{urlencode({'next': target, 'why': message})}", status_code=303
    )


def _same_origin(request: Request) -> None:
    """A form post must come from our own pages (defence in depth beside SameSite=Strict)."""
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise Forbidden("form posted from another site")


def _pager(total: int, page_number: int, size: int, request: Request) -> dict:
    pages = max(1, -(-total // size))
    current = min(max(page_number, 1), pages)

    def link(n: int) -> str:
        items = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        items.append(("page", str(n)))
        return f"{request.url.path}?{urlencode(items)}"

    return {
        "page": current,
        "pages": pages,
        "total": total,
        "first": (current - 1) * size,
        "last": min(current * size, total),
        "previous": link(current - 1) if current > 1 else None,
        "next": link(current + 1) if current < pages else None,
    }


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidRequest(f"page: must be a whole number from 1, got {raw!r}", field="page")
    return int(raw)


# --- login ---------------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    console: Console = request.app.state.console
    context = {
        "next": _safe_next(request.query_params.get("next")),
        "why": request.query_params.get("why"),
    }
    response = _render(request, console, None, Page("login.html", context))
    response.headers.update(HEADERS)
    return response


def _safe_next(target: str | None) -> str:
    """Only our own pages: an open redirect would let a link send a user elsewhere."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX + "/"


async def login(request: Request) -> Response:
    console: Console = request.app.state.console
    form = await request.form()
    target = _safe_next(form.get("next"))
    try:
        _same_origin(request)
        identity, cookie = console.sessions.login(form.get("api_key"))
    except ServingError as error:
        audit(console.pseudonymise, role="-", endpoint="console/login", status=error.status)
        context = {"next": target, "error": str(error)}
        response = _render(request, console, None, Page("login.html", context), error.status)
        response.headers.update(HEADERS)
        return response
    audit(console.pseudonymise, role=identity.role, endpoint="console/login", status=303)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=console.sessions.seconds,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# --- pages ---------------------------------------------------------------------------------------


def _offload(builder, *args):
    """Run a page builder (scoring, explanations, DuckDB: blocking work) off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return run_in_threadpool(builder, *args)


def _pager_for(request: Request) -> pages.Pager:
    return lambda total, number, size: _pager(total, number, size, request)


@page(None)
async def home(request: Request, console: Console, identity: Identity) -> Page:
    return Page("home.html", {"book": console.books.current(), "problem": console.books.problem})


@page("campaigns")
async def campaigns(request: Request, console: Console, identity: Identity) -> Page:
    return await _offload(
        pages.campaign_builder, console, request.query_params, _page_number(request),
        _pager_for(request),
    )  # fmt: skip


@page("campaigns")
async def save(request: Request, console: Console, identity: Identity) -> Page | Sent:
    form = await request.form()
    try:
        campaign, listed = await _offload(pages.save_campaign, console, form, identity)
    except InvalidRequest as error:  # the form again, with the message, nothing saved
        result = await _offload(pages.campaign_builder, console, form, 1, _pager_for(request))
        result.context["error"] = error
        result.status = error.status
        return result
    return Sent(RedirectResponse(f"{PREFIX}/campaigns/{campaign.id}", status_code=303), listed)


@page("campaigns")
async def campaign(request: Request, console: Console, identity: Identity) -> Page:
    return await _offload(
        pages.campaign_page, console, request.path_params["campaign_id"], _page_number(request),
        _pager_for(request),
    )  # fmt: skip


#: Download formats of a campaign list -> media type.
DOWNLOADS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


@page("campaigns")
async def download(request: Request, console: Console, identity: Identity) -> Sent:
    campaign_id, kind = request.path_params["campaign_id"], request.path_params["kind"]
    if kind not in DOWNLOADS:
        raise InvalidRequest(f"format: use one of {list(DOWNLOADS)}, got {kind!r}", field="format")
    campaign, frame = await _offload(store.load_campaign, campaign_id, get_settings().campaigns_dir)
    buffer = io.BytesIO()
    (frame.to_csv if kind == "csv" else frame.to_parquet)(buffer, index=False)
    response = Response(
        buffer.getvalue(),
        media_type=DOWNLOADS[kind],
        headers={"Content-Disposition": f'attachment; filename="{campaign.id}.{kind}"'},
    )
    return Sent(response, frame["customer_id"].tolist())  # a download reveals every listed id


@page("customers")
async def customer_search(request: Request, console: Console, identity: Identity):
    raw = request.query_params.get("customer_id", "").strip()
    if not raw:
        return Page("customer_search.html", {})
    if not raw.isdigit() or not 1 <= int(raw) <= CUSTOMER_ID_MAX:
        raise InvalidRequest(
            f"customer_id: must be a customer id (a whole number from 1), got {raw!r}",
            field="customer_id",
        )
    return RedirectResponse(f"{PREFIX}/customers/{int(raw)}", status_code=303)


@page("customers")
async def customer(request: Request, console: Console, identity: Identity) -> Page:
    return await _offload(
        pages.customer_page, console, request.path_params["customer_id"], identity
    )


@page("worklist")
async def worklist(request: Request, console: Console, identity: Identity) -> Page:
    return await _offload(
        pages.worklist_page, console, request.query_params, identity, _page_number(request),
        _pager_for(request),
    )  # fmt: skip


@page("portfolio")
async def portfolio(request: Request, console: Console, identity: Identity) -> Page:
    return await _offload(
        pages.portfolio_page, console, request.query_params.get("by", "segment"),
        _page_number(request), _pager_for(request),
    )  # fmt: skip


@page("models")
async def models(request: Request, console: Console, identity: Identity) -> Page:
    from serving.console.model_cards import METRICS

    cards = await _offload(console.model_cards)
    return Page("models.html", {"cards": cards, "metric_labels": METRICS})


#: Media types of the artifacts the models page links to (anything else is shown as text).
ARTIFACT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".json": "application/json",
}


@page("models")
async def artifact(request: Request, console: Console, identity: Identity) -> Response:
    from serving.console.model_cards import download_artifact

    name, path = request.path_params["model"], request.path_params["path"]
    card = {c.name: c for c in await _offload(console.model_cards)}.get(name)
    run = card.source(path) if card else None
    if run is None:  # only the card's own links: no path tricks
        raise UnknownCustomer(f"no artifact {path!r} for model {name!r}", field="path")
    content = await _offload(download_artifact, run, path)
    media = ARTIFACT_TYPES.get(Path(path).suffix.lower(), "text/plain; charset=utf-8")
    # An artifact is shown as it is, but runs no script in our origin.
    return Response(content, media_type=media, headers={"Content-Security-Policy": "sandbox"})


def console_app(champions: Callable[[], Champions]) -> Starlette:
    """The console as an ASGI app; ``champions()`` returns the set the server has loaded (it
    raises :class:`Unavailable` when there is none)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        app.state.console = Console(champions)
        if get_settings().console.build_book_at_start:
            with contextlib.suppress(ServingError):  # start scoring the book before any page
                app.state.console.books.current()
        yield

    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/campaigns", campaigns, methods=["GET"]),
            Route("/campaigns", save, methods=["POST"]),
            Route("/campaigns/{campaign_id}", campaign),
            Route("/campaigns/{campaign_id}/download.{kind:str}", download),
            Route("/customers", customer_search),
            Route("/customers/{customer_id:int}", customer),
            Route("/worklist", worklist),
            Route("/portfolio", portfolio),
            Route("/models", models),
            Route("/models/{model}/artifacts/{path:path}", artifact),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        lifespan=lifespan,
    )
