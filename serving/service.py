"""The BentoML scoring service: ``bentoml serve serving.service:CrmScore``.

At start-up it loads the ``champion`` of each model from the MLflow registry and connects to the
Feast online store; ``/readyz`` answers 200 only once both are in place. Business logic lives in
plain modules (:mod:`serving.scoring`, :mod:`serving.explain`, :mod:`serving.targets`,
:mod:`serving.tiers`) that the batch CLI calls too, so a batch score equals an endpoint score.

Every protected endpoint needs an API key (``X-API-Key`` or ``Authorization: Bearer``) whose role
may call it (:mod:`serving.access`); the check runs in an ASGI middleware, before the payload is
parsed. Each request leaves one audit line with the role, endpoint and pseudonymised customer ids.
Errors are JSON ``{"error": ..., "field": ...}`` with a 4xx status, or 503 with the reason when the
models or the store are unavailable; never a stack trace.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import logging
import threading
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import anyio
import anyio.to_thread
import bentoml
import numpy as np
import pydantic
from bentoml.exceptions import BentoMLException
from pydantic import Field
from starlette.responses import JSONResponse, Response

from crmscore.settings import get_settings
from serving.access import (
    ROLE_ENDPOINTS,
    Pseudonymiser,
    audit,
    authorize,
    check_roles,
    enable_audit_log,
)
from serving.catalogue import cross_sell_products
from serving.champions import Champions, load_champions
from serving.console.app import console_app
from serving.contract import ContractMiddleware
from serving.errors import (
    BatchTooLarge,
    InvalidRequest,
    ServingError,
    Unavailable,
    UnknownCustomer,
)
from serving.explain import Direction, ReasonPolicy, explain_rows
from serving.feature_source import AsOfFeatures, OnlineFeatures
from serving.features_input import validate_feature_rows
from serving.schemas import (
    ExplainResponse,
    ModelName,
    Product,
    ReloadResponse,
    RequestedId,
    ScoreResponse,
    TargetsResponse,
)
from serving.scoring import CREDIT_RESPONSE_FIELDS, Scores, score_rows
from serving.targets import TargetQuery, select_targets, with_reasons

if TYPE_CHECKING:
    from features.online import FeatureRows

logger = logging.getLogger("crmscore.serving")
PROTECTED = frozenset().union(*ROLE_ENDPOINTS.values())


def settle_heap(release: bool = False) -> None:
    """Take every object alive now (models, Feast, MLflow, BentoML, the book) out of the garbage
    collector's sight (``gc.freeze``); ``release`` first gives the ones frozen before back to it
    (after a reload: the previous champions).

    Measured (issue 12): without it, a full collection walked those millions of long-lived
    objects every ~30 s of traffic and took 0.3-0.9 s, which was the p99.9 of /score. Objects a
    request creates are still collected as usual; frozen ones still die by reference count."""
    if release:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


# Frozen objects are never finalised: at exit, DuckDB's bindings (nanobind) would report every
# one of theirs as leaked, a screenful on stderr. Handing them back first lets the exit be quiet.
atexit.register(gc.unfreeze)


def _reraise(error: Exception) -> NoReturn:
    """Raise ``error`` again (inline work's exception, answered like the others')."""
    raise error


def tracing_config(sample_rate: float) -> dict[str, Any]:
    """BentoML's ``tracing`` settings: the sample rate, and at 0 every URL excluded, so that its
    OpenTelemetry middleware returns at once instead of building spans nothing records."""
    if sample_rate > 0:
        return {"sample_rate": sample_rate}
    return {"sample_rate": 0.0, "excluded_urls": [".*"]}


@dataclass(frozen=True)
class Loaded:
    """What a request works with: one consistent set of champions and the store they read."""

    champions: Champions
    source: OnlineFeatures


class ApiKeyMiddleware:
    """401 without a known key, 403 when the key's role may not call the endpoint.

    Runs before BentoML parses the body, so an anonymous caller learns nothing about payloads.
    The role is left in ``request.state.role`` for the audit line. Every request to a protected
    endpoint leaves one audit line: the endpoint's own (:meth:`CrmScore._answer`), or, for a
    payload BentoML refused before the endpoint ran, one written here with its status.
    """

    def __init__(self, app) -> None:
        self.app = app
        settings = get_settings().serving
        check_roles(settings.api_keys)
        enable_audit_log()
        self.api_keys = dict(settings.api_keys)
        self.pseudonymise = Pseudonymiser.from_secret(settings.audit_key)

    async def __call__(self, scope, receive, send) -> None:
        endpoint = scope.get("path", "").strip("/") if scope["type"] == "http" else ""
        if endpoint in PROTECTED:
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            try:
                role = authorize(headers, endpoint, self.api_keys)
            except ServingError as error:
                audit(self.pseudonymise, role="-", endpoint=endpoint, status=error.status)
                await JSONResponse(error.payload(), status_code=error.status)(scope, receive, send)
                return
            state = scope.setdefault("state", {})
            state["role"] = role
            status: list[int] = []

            async def sending(message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            await self.app(scope, receive, sending)
            if not state.get("audited"):  # refused before the endpoint ran (BentoML's 400s)
                status_code = status[0] if status else 500
                audit(self.pseudonymise, role=role, endpoint=endpoint, status=status_code)
            return
        await self.app(scope, receive, send)


class _RefusedPayloads(logging.Filter):
    """Drops BentoML's ``Exception on /score [POST]`` record of a payload it refused (4xx): two
    dozen lines of traceback per bad request, quoting the payload with its customer ids in the
    clear (the audit log pseudonymises them). The request's audit line records the refusal, and
    the caller got the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, pydantic.ValidationError):
            return False
        code = getattr(error, "error_code", None) if isinstance(error, BentoMLException) else None
        return code is None or int(code) >= 500


logging.getLogger("bentoml._internal.server.http_app").addFilter(_RefusedPayloads())


def _customer_scores(scores: Scores) -> list[dict[str, Any]]:
    """The nested ``CustomerScore`` of every customer in ``scores``.

    Built from whole arrays turned into Python lists once (NaN -> None): the per-customer work is
    only assembling dicts."""

    def numbers(values: np.ndarray) -> list[float | str | None]:
        if values.dtype == object:  # text (rating grades): None stays None
            return values.tolist()
        return [None if v != v else v for v in np.asarray(values, dtype=float).tolist()]

    def ref(name: str) -> dict[str, str]:
        model, _, version = scores.models[name].rpartition("/")
        return {"model": model, "version": version}

    churn_ref, credit_ref, cross_ref = ref("churn"), ref("credit_risk"), ref("cross_sell")
    own = {name: (numbers(values), ref(name)) for name, values in scores.own.items()}
    credit = {
        field: numbers(scores.credit[column]) for field, column in CREDIT_RESPONSE_FIELDS.items()
    }
    propensity = [numbers(column) for column in scores.propensity.T]
    products = list(enumerate(scores.products))
    index = {p: i for i, p in products}
    rows = zip(
        scores.customer_ids,
        numbers(scores.churn),
        scores.has_credit.tolist(),
        numbers(scores.value),
        scores.tiers.tier.tolist(),
        scores.tiers.reason.tolist(),
        scores.tiers.contact_every_days.tolist(),
        scores.next_best_product.tolist(),
        numbers(scores.next_best_expected_value),
        strict=True,
    )
    results = []
    for i, (customer_id, churn, has_credit, value, tier, reason, every, best, best_ev) in enumerate(
        rows
    ):
        results.append(
            {
                "customer_id": customer_id,
                "churn": {"probability": churn, **churn_ref},
                "credit_risk": {
                    **{field: values[i] for field, values in credit.items()},
                    "has_credit": has_credit,
                    **credit_ref,
                },
                "cross_sell": {
                    "products": [
                        {
                            "product": p,
                            "propensity": propensity[k][i],
                            "holds": propensity[k][i] is None,
                        }
                        for k, p in products
                    ],
                    **cross_ref,
                },
                "own": {name: {"probability": p[i], **r} for name, (p, r) in own.items()},
                "value": value,
                "tier": tier,
                "tier_reason": reason,
                "contact_every_days": every,
                "next_best_product": None
                if best is None
                else {
                    "product": best,
                    "propensity": propensity[index[best]][i],
                    "expected_value": best_ev,
                },
            }
        )
    return results


@bentoml.service(
    name="crmscore",
    traffic={"timeout": 120},
    workers=get_settings().serving.workers,
    http={"port": get_settings().serving.port},
    logging={"access": {"enabled": get_settings().serving.access_log}},
    tracing=tracing_config(get_settings().serving.trace_sample_rate),
)
class CrmScore:
    """Churn, cross-sell and credit-risk scores with reason codes, for marketing, risk and IT."""

    def __init__(self) -> None:
        self.settings = get_settings().serving
        enable_audit_log()
        self.pseudonymise = Pseudonymiser.from_secret(self.settings.audit_key)
        self._book_lock = threading.Lock()
        #: Work that is not inline runs on one thread at a time (as BentoML runs sync APIs).
        self._threads = anyio.CapacityLimiter(1)
        self._loaded: Loaded | None = None
        self._problem = "not loaded yet"
        self._book: tuple[Loaded, object, FeatureRows, Scores] | None = None
        # BentoML looks each API up on the instance for every request, and the method's
        # descriptor builds a new wrapper each time (inspect.signature, functools.wraps): about
        # 25 µs of every /score (issue 12). The wrapper is the same every time, so each is built
        # once here: an instance attribute shadows a descriptor that defines only __get__.
        for name, method in CrmScore.apis.items():
            setattr(self, name, method.__get__(self, type(self)))
        try:
            self._loaded = self._load()
        except Unavailable as error:
            self._problem = str(error)
            logger.error("serving is not ready: %s", error)
        settle_heap()

    # --- state --------------------------------------------------------------------------------

    @staticmethod
    def _load() -> Loaded:
        champions = load_champions()
        source = OnlineFeatures(champions.feature_names())
        logger.info("loaded champions %s", champions.versions())
        return Loaded(champions, source)

    def __is_ready__(self) -> bool:
        return self._loaded is not None

    def _current(self) -> Loaded:
        loaded = self._loaded
        if loaded is None:
            raise Unavailable(f"models or feature store unavailable: {self._problem}")
        return loaded

    def _all_customers(self, loaded: Loaded) -> tuple[FeatureRows, Scores]:
        """Features and scores of every customer (the book /targets ranks), read from the
        online store on the first call after start, a reload or a materialisation.

        Built when asked, never in a background thread: a thread scoring the whole book competes
        with every /score for the interpreter and made its tail (issue 12)."""
        from serving.batch import all_customer_ids, score_customers

        stamp = loaded.source.stamp()
        with self._book_lock:
            book = self._book
            if book is None or book[0] is not loaded or book[1] != stamp:
                try:
                    ids = all_customer_ids(get_settings().raw_dir)
                except FileNotFoundError as error:
                    raise Unavailable(f"customer list unavailable: {error}") from error
                self._book = None  # let the old book go before the new one is read
                features, scores, _ = score_customers(
                    loaded.champions, loaded.source, ids, self.settings
                )
                self._book = book = (loaded, stamp, features, scores)
                settle_heap()
            return book[2], book[3]

    # --- request plumbing ---------------------------------------------------------------------

    async def _respond(
        self, ctx: bentoml.Context, endpoint: str, customer_ids, work, out, inline: bool = False
    ):
        """Run ``work()`` and validate it as ``out``; map :class:`ServingError` to its status;
        audit either way.

        ``inline`` work runs on the event loop itself; anything else on a worker thread. Measured
        (issue 12): handing a single-customer request to a thread and back costs two thread
        wake-ups, which on a busy machine doubled /score's latency. Inline work must be small
        (``serving.inline_max_ids``): the loop answers nothing else meanwhile. Inline work may be
        a coroutine function, awaiting the store's reads on the loop
        (:meth:`~serving.feature_source.OnlineFeatures.fetch_async`); it is answered and audited
        as any other."""
        if not inline:
            return await anyio.to_thread.run_sync(
                self._answer, ctx, endpoint, customer_ids, work, out, limiter=self._threads
            )
        if inspect.iscoroutinefunction(work):
            try:
                payload = await work()
            except Exception as error:
                return self._answer(ctx, endpoint, customer_ids, partial(_reraise, error), out)
            return self._answer(ctx, endpoint, customer_ids, lambda: payload, out)
        return self._answer(ctx, endpoint, customer_ids, work, out)

    def _answer(self, ctx: bentoml.Context, endpoint: str, customer_ids, work, out):
        """:meth:`_respond`'s work, wherever it runs."""
        role = getattr(ctx.request.state, "role", "-")
        ctx.request.state.audited = True  # this line, not ApiKeyMiddleware's
        try:
            # Validated against the published model, serialised here in one piece: BentoML's own
            # serialiser streams the body in chunks, each through every middleware's send.
            body = out.model_validate(work()).model_dump_json()
            result = Response(body, media_type="application/json")
            status = 200
        except ServingError as error:
            status = error.status
            result = JSONResponse(error.payload(), status_code=status)
        except Exception:  # a bug: log it, tell the caller nothing internal
            logger.exception("unexpected error in /%s", endpoint)
            status = 500
            result = JSONResponse({"error": "internal error; see the server log"}, status_code=500)
        ctx.response.status_code = status
        audit(
            self.pseudonymise,
            role=role,
            endpoint=endpoint,
            status=status,
            customer_ids=customer_ids() if callable(customer_ids) else customer_ids,
        )
        return result

    def _check_batch(self, ids: list[int], field: str) -> list[int]:
        limit = self.settings.max_batch
        if len(ids) > limit:
            raise BatchTooLarge(
                f"{field}: {len(ids)} items exceed the maximum batch size of {limit}", field=field
            )
        return list(dict.fromkeys(int(i) for i in ids))

    # --- endpoints ----------------------------------------------------------------------------

    @bentoml.api(route="/score")
    async def score(
        self,
        customer_ids: Annotated[
            list[RequestedId], Field(min_length=1, description="Customer ids.")
        ],
        ctx: bentoml.Context,
        as_of: Annotated[
            date | None,
            Field(
                description="Score as of this day (e.g. a loan application's decision date): "
                "each customer's history strictly before it, computed from the raw tables "
                "(slower: about a second). Default: the online store's latest snapshot."
            ),
        ] = None,
    ) -> ScoreResponse:
        """Scores of 1 to max_batch customers: churn, cross-sell per product, PD + points, tier,
        next best product. Unknown ids are listed in ``errors``; the others are scored."""

        def prepare():
            ids = self._check_batch(customer_ids, "customer_ids")
            loaded = self._current()
            source, missing = loaded.source, "not in the online store"
            if as_of is not None:
                if not 1900 <= as_of.year <= 2200:
                    raise InvalidRequest("as_of: a day between 1900 and 2200", field="as_of")
                source = AsOfFeatures(loaded.source, as_of)
                missing = f"no history before {as_of:%Y-%m-%d}"
            return loaded, source, ids, missing

        def answer(loaded, missing, rows, unknown):
            scored = score_rows(loaded.champions, rows, self.settings) if len(rows) else None
            return {
                "results": [] if scored is None else _customer_scores(scored),
                "errors": [
                    {"customer_id": i, "error": f"unknown customer: {missing}"} for i in unknown
                ],
                "models": loaded.champions.versions(),
            }

        def work():
            loaded, source, ids, missing = prepare()
            return answer(loaded, missing, *source.fetch(ids))

        async def work_inline():  # the online store only (no as_of)
            loaded, source, ids, missing = prepare()
            return answer(loaded, missing, *(await source.fetch_async(ids)))

        ids = customer_ids[: self.settings.max_batch]
        if as_of is None and len(ids) <= self.settings.inline_max_ids:
            return await self._respond(ctx, "score", ids, work_inline, ScoreResponse, True)
        return await self._respond(ctx, "score", ids, work, ScoreResponse)

    @bentoml.api(route="/explain")
    async def explain(
        self,
        customer_id: RequestedId,
        model: ModelName,
        ctx: bentoml.Context,
        product: Product | None = None,
        top_k: Annotated[int | None, Field(ge=1, le=50)] = None,
        direction: Direction | None = None,
    ) -> ExplainResponse:
        """The principal reasons behind one customer's score: stable codes with their texts,
        the signed SHAP contribution of each (log-odds), the leading feature's value and a
        sentence. By default at most ``settings.top_k`` (4) reasons that raise the score
        (``direction``: raises, lowers or both); attributes in ``settings.never_reasons`` are
        never given. For ``cross_sell`` give ``product`` (default: the customer's next best
        product). ``base_value + sum(contributions) == raw_score``."""

        def prepare() -> Loaded:
            loaded = self._current()
            if product is not None and model != "cross_sell":
                raise InvalidRequest("product applies only to model 'cross_sell'", field="product")
            offers = cross_sell_products()
            if product is not None and product not in offers:
                raise InvalidRequest(
                    f"product: unknown product {product!r}; expected one of {list(offers)}",
                    field="product",
                )
            return loaded

        def answer(loaded, rows, unknown):
            if unknown:
                raise UnknownCustomer(
                    f"customer {customer_id} is not in the online store", field="customer_id"
                )
            champion = loaded.champions[model]
            compiled = loaded.champions.compiled[model]
            offer = product
            if model == "cross_sell" and offer is None:
                offer = score_rows(loaded.champions, rows, self.settings).next_best_product[0]
                if offer is None:
                    raise InvalidRequest(
                        f"customer {customer_id} has no product to offer; pass product",
                        field="product",
                    )
            policy = ReasonPolicy.of(model, top_k, direction)
            explanation = explain_rows(compiled, rows, policy, product=offer)[0]
            points = compiled.points(np.array([explanation.probability]))
            return {
                **explanation.to_dict(),
                "model": model,
                "registered_model": champion.registered_name,
                "version": champion.version,
                "points": None if points is None else round(float(points[0]), 1),
            }

        def work():
            loaded = prepare()
            return answer(loaded, *loaded.source.fetch([customer_id]))

        async def work_inline():
            loaded = prepare()
            return answer(loaded, *(await loaded.source.fetch_async([customer_id])))

        if self.settings.inline_max_ids >= 1:
            return await self._respond(
                ctx, "explain", [customer_id], work_inline, ExplainResponse, True
            )
        return await self._respond(ctx, "explain", [customer_id], work, ExplainResponse)

    @bentoml.api(route="/score_features")
    async def score_features(
        self,
        rows: Annotated[
            list[dict[str, Any]],
            Field(min_length=1, description="Feature values per customer (see OpenAPI docs)."),
        ],
        ctx: bentoml.Context,
    ) -> ScoreResponse:
        """Score feature vectors the caller computed: each row maps feature name -> value (null =
        missing; an optional ``customer_id`` is echoed). Unknown names, wrong types and unseen
        categories are refused naming the row and field."""

        def work():
            self._check_batch(list(range(len(rows))), "rows")
            loaded = self._current()
            from features.online import FeatureRows

            frame = validate_feature_rows(rows, loaded.champions, loaded.source.names)
            given = FeatureRows.from_frame(frame, loaded.source.layout)
            return {
                "results": _customer_scores(score_rows(loaded.champions, given, self.settings)),
                "errors": [],
                "models": loaded.champions.versions(),
            }

        ids = [r.get("customer_id") for r in rows if isinstance(r.get("customer_id"), int)]
        return await self._respond(ctx, "score_features", ids, work, ScoreResponse)

    @bentoml.api(route="/targets")
    async def targets(
        self,
        product: str,
        ctx: bentoml.Context,
        top: Annotated[int, Field(ge=1, le=100_000)] = 100,
        exclude_pd_above: Annotated[float | None, Field(gt=0, le=1)] = None,
        exclude_holders: bool = True,
        exclude_churned: bool = True,
        require_consent: bool = True,
        contacted_within_days: Annotated[int | None, Field(ge=0)] = None,
        segments: list[str] | None = None,
        regions: list[str] | None = None,
        min_propensity: Annotated[float, Field(ge=0, le=1)] = 0.0,
        reasons: Annotated[int, Field(ge=0, le=10)] = 3,
        assume_consent: bool = False,
    ) -> TargetsResponse:
        """A ranked marketing list for ``product``: top N by propensity after the exclusions
        (holders, PD above ``exclude_pd_above`` (default settings.max_pd), churned, no consent,
        contacted in the last K days) and segment/region filters; expected value and reasons.
        Without a consent column in the bank's data the list is refused unless
        ``assume_consent``."""
        targeted: list[int] = []

        def work():
            query = TargetQuery(
                product=product,
                top=top,
                max_pd=self.settings.max_pd if exclude_pd_above is None else exclude_pd_above,
                exclude_holders=exclude_holders,
                exclude_churned=exclude_churned,
                require_consent=require_consent,
                contacted_within_days=contacted_within_days,
                segments=tuple(segments or ()),
                regions=tuple(regions or ()),
                min_propensity=min_propensity,
                reasons=reasons,
                assume_consent=assume_consent,
            ).validate()
            loaded = self._current()
            features, scored = self._all_customers(loaded)
            ranked, excluded = select_targets(query, features, scored, self.settings)
            eligible = len(scored) - sum(excluded.values())
            ranked = with_reasons(
                ranked, features, loaded.champions.compiled["cross_sell"], reasons
            )
            targeted.extend(ranked["customer_id"].tolist())
            champion = loaded.champions.cross_sell
            return {
                "product": product,
                "targets": ranked.drop(columns=["product"]).to_dict(orient="records"),
                "eligible": int(eligible),
                "excluded": excluded,
                "scored": len(scored),
                "model": {"model": champion.registered_name, "version": champion.version},
            }

        return await self._respond(ctx, "targets", lambda: targeted, work, TargetsResponse)

    @bentoml.api(route="/reload")
    async def reload(self, ctx: bentoml.Context) -> ReloadResponse:
        """Reload the champions from the registry. If that fails, the models in use stay (503 with
        the reason)."""

        def work():
            try:
                fresh = self._load()
            except Unavailable as error:
                kept = self._loaded
                note = (
                    f"; still serving {kept.champions.versions()}" if kept else "; nothing loaded"
                )
                raise Unavailable(
                    f"reload failed, kept the current models: {error}{note}"
                ) from error
            # One reference swap: requests in flight keep the set they started with; the book of
            # scores is keyed by that set, so the next /targets rescores with the new models.
            self._loaded, self._problem = fresh, ""
            settle_heap(release=True)
            return {"reloaded": True, "models": fresh.champions.versions()}

        return await self._respond(ctx, "reload", [], work, ReloadResponse)


CrmScore.add_asgi_middleware(ApiKeyMiddleware)
CrmScore.add_asgi_middleware(ContractMiddleware, service=CrmScore)
# The web console (serving/console): same process, keys, roles and audit log; it scores with the
# champions in use, so /reload applies to its pages too.
CrmScore.mount_asgi_app(
    console_app(lambda: bentoml.get_current_service()._current().champions), path="/console"
)

# Every request refuses fields its endpoint does not declare (400 naming them): BentoML's request
# models ignore them, and a misspelt filter ("region" for "regions", "exclude_pd_abvoe") would
# answer 200 with a list nobody asked for.
for _api in CrmScore.apis.values():
    _api.input_spec.model_config = {**_api.input_spec.model_config, "extra": "forbid"}
    _api.input_spec.model_rebuild(force=True)
