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

import logging
import threading
from dataclasses import dataclass
from typing import Annotated, Any

import bentoml
import pandas as pd
from pydantic import Field
from starlette.responses import JSONResponse

from crmscore.contract import current_contract
from crmscore.settings import get_settings
from serving.access import (
    ROLE_ENDPOINTS,
    Pseudonymiser,
    audit,
    authorize,
    check_roles,
    enable_audit_log,
)
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
from serving.explain import explain_rows
from serving.feature_source import OnlineFeatures
from serving.features_input import validate_feature_rows
from serving.schemas import (
    CustomerId,
    ExplainResponse,
    ModelName,
    Product,
    ReloadResponse,
    ScoreResponse,
    TargetsResponse,
)
from serving.scoring import propensity_column, score_frame
from serving.targets import TargetQuery, select_targets, with_reasons

logger = logging.getLogger("crmscore.serving")
PROTECTED = frozenset().union(*ROLE_ENDPOINTS.values())


@dataclass(frozen=True)
class Loaded:
    """What a request works with: one consistent set of champions and the store they read."""

    champions: Champions
    source: OnlineFeatures


class ApiKeyMiddleware:
    """401 without a known key, 403 when the key's role may not call the endpoint.

    Runs before BentoML parses the body, so an anonymous caller learns nothing about payloads.
    The role is left in ``request.state.role`` for the audit line.
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
            scope.setdefault("state", {})["role"] = role
        await self.app(scope, receive, send)


def _customer_scores(scored: pd.DataFrame) -> list[dict[str, Any]]:
    """The nested ``CustomerScore`` of every flat :func:`score_frame` row.

    Built from whole columns turned into Python lists once (NaN -> None): the per-row work is only
    assembling dicts, never a pandas lookup per field.
    """

    def column(name: str) -> list:
        return scored[name].tolist()

    def numbers(name: str) -> list[float | None]:
        return [None if v != v else v for v in scored[name].to_numpy(dtype=float).tolist()]

    def refs(name: str) -> list[dict[str, str]]:
        split = {}
        for ref in set(column(f"{name}_model")):  # one value per frame: the loaded version
            model, _, version = str(ref).rpartition("/")
            split[ref] = {"model": model, "version": version}
        return [split[ref] for ref in column(f"{name}_model")]

    ids = scored["customer_id"].astype(object).where(scored["customer_id"].notna(), None)
    offers = current_contract().cross_sell_products
    propensity = {p: numbers(propensity_column(p)) for p in offers}
    rows = zip(
        ids.tolist(),
        numbers("churn_probability"),
        refs("churn"),
        numbers("probability_of_default"),
        numbers("score_points"),
        column("has_credit"),
        refs("credit_risk"),
        refs("cross_sell"),
        numbers("value"),
        column("tier"),
        column("tier_reason"),
        column("contact_every_days"),
        column("next_best_product"),
        numbers("next_best_expected_value"),
        strict=True,
    )
    results = []
    for i, (
        customer_id, churn, churn_ref, pd_default, points, has_credit, credit_ref, cross_ref,
        value, tier, tier_reason, contact_days, best, best_ev,
    ) in enumerate(rows):  # fmt: skip
        results.append(
            {
                "customer_id": None if customer_id is None else int(customer_id),
                "churn": {"probability": churn, **churn_ref},
                "credit_risk": {
                    "probability_of_default": pd_default,
                    "points": points,
                    "has_credit": bool(has_credit),
                    **credit_ref,
                },
                "cross_sell": {
                    "products": [
                        {
                            "product": p,
                            "propensity": propensity[p][i],
                            "holds": propensity[p][i] is None,
                        }
                        for p in offers
                    ],
                    **cross_ref,
                },
                "value": value,
                "tier": tier,
                "tier_reason": tier_reason,
                "contact_every_days": int(contact_days),
                "next_best_product": {
                    "product": best,
                    "propensity": propensity[best][i],
                    "expected_value": best_ev,
                }
                if isinstance(best, str)
                else None,
            }
        )
    return results


@bentoml.service(
    name="crmscore",
    traffic={"timeout": 120},
    workers=get_settings().serving.workers,
    http={"port": get_settings().serving.port},
)
class CrmScore:
    """Churn, cross-sell and credit-risk scores with reason codes, for marketing, risk and IT."""

    def __init__(self) -> None:
        self.settings = get_settings().serving
        enable_audit_log()
        self.pseudonymise = Pseudonymiser.from_secret(self.settings.audit_key)
        self._book_lock = threading.Lock()
        self._loaded: Loaded | None = None
        self._problem = "not loaded yet"
        self._book: tuple[Loaded, pd.DataFrame, pd.DataFrame] | None = None
        try:
            self._loaded = self._load()
        except Unavailable as error:
            self._problem = str(error)
            logger.error("serving is not ready: %s", error)
        else:
            self._warm(self._loaded)

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

    def _warm(self, loaded: Loaded) -> None:
        """Score the whole book in the background so the first /targets call does not wait."""

        def run() -> None:
            try:
                self._all_customers(loaded)
            except Exception as error:  # /targets will report it when asked
                logger.warning("could not pre-score the customer book: %s", error)

        threading.Thread(target=run, name="crmscore-book", daemon=True).start()

    def _all_customers(self, loaded: Loaded) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Features and scores of every customer, computed once per loaded model set."""
        from serving.batch import all_customer_ids, score_customers

        with self._book_lock:
            if self._book is None or self._book[0] is not loaded:
                try:
                    ids = all_customer_ids(get_settings().raw_dir)
                except FileNotFoundError as error:
                    raise Unavailable(f"customer list unavailable: {error}") from error
                features, scores, _ = score_customers(
                    loaded.champions, loaded.source, ids, self.settings
                )
                self._book = (loaded, features, scores)
            return self._book[1], self._book[2]

    # --- request plumbing ---------------------------------------------------------------------

    def _respond(self, ctx: bentoml.Context, endpoint: str, customer_ids, work, out):
        """Run ``work()`` and validate it as ``out``; map :class:`ServingError` to its status;
        audit either way."""
        role = getattr(ctx.request.state, "role", "-")
        try:
            result = out.model_validate(work())
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
    def score(
        self,
        customer_ids: Annotated[list[CustomerId], Field(min_length=1, description="Customer ids.")],
        ctx: bentoml.Context,
    ) -> ScoreResponse:
        """Scores of 1 to max_batch customers: churn, cross-sell per product, PD + points, tier,
        next best product. Unknown ids are listed in ``errors``; the others are scored."""

        def work():
            ids = self._check_batch(customer_ids, "customer_ids")
            loaded = self._current()
            features, unknown = loaded.source.fetch(ids)
            results = []
            if not features.empty:
                results = _customer_scores(score_frame(loaded.champions, features, self.settings))
            return {
                "results": results,
                "errors": [
                    {"customer_id": i, "error": "unknown customer: not in the online store"}
                    for i in unknown
                ],
                "models": loaded.champions.versions(),
            }

        ids = customer_ids[: self.settings.max_batch]
        return self._respond(ctx, "score", ids, work, ScoreResponse)

    @bentoml.api(route="/explain")
    def explain(
        self,
        customer_id: CustomerId,
        model: ModelName,
        ctx: bentoml.Context,
        product: Product | None = None,
        top_k: Annotated[int | None, Field(ge=1, le=50)] = None,
    ) -> ExplainResponse:
        """Top-k reason codes of one customer's score: feature, value, signed SHAP contribution
        (log-odds) and a sentence. For ``cross_sell`` give ``product`` (default: the customer's
        next best product). ``base_value + sum(contributions) == raw_score``."""

        def work():
            loaded = self._current()
            if product is not None and model != "cross_sell":
                raise InvalidRequest("product applies only to model 'cross_sell'", field="product")
            offers = current_contract().cross_sell_products
            if product is not None and product not in offers:
                raise InvalidRequest(
                    f"product: unknown product {product!r}; expected one of {list(offers)}",
                    field="product",
                )
            features, unknown = loaded.source.fetch([customer_id])
            if unknown:
                raise UnknownCustomer(
                    f"customer {customer_id} is not in the online store", field="customer_id"
                )
            champion = loaded.champions[model]
            offer = product
            if model == "cross_sell" and offer is None:
                scored = score_frame(loaded.champions, features, self.settings)
                offer = scored["next_best_product"].iloc[0]
                if offer is None:
                    raise InvalidRequest(
                        f"customer {customer_id} has no product to offer; pass product",
                        field="product",
                    )
            k = top_k or self.settings.top_k
            explanation = explain_rows(champion, features, k, product=offer)[0]
            points = champion.points([explanation.probability]) if champion.has_scorecard else None
            return {
                **explanation.to_dict(),
                "model": model,
                "registered_model": champion.registered_name,
                "version": champion.version,
                "points": None if points is None else round(float(points[0]), 1),
            }

        return self._respond(ctx, "explain", [customer_id], work, ExplainResponse)

    @bentoml.api(route="/score_features")
    def score_features(
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
            frame = validate_feature_rows(rows, loaded.champions, loaded.source.names)
            scored = score_frame(loaded.champions, frame, self.settings)
            if frame["customer_id"].isna().all():
                scored["customer_id"] = None
            return {
                "results": _customer_scores(scored),
                "errors": [],
                "models": loaded.champions.versions(),
            }

        ids = [r.get("customer_id") for r in rows if isinstance(r.get("customer_id"), int)]
        return self._respond(ctx, "score_features", ids, work, ScoreResponse)

    @bentoml.api(route="/targets")
    def targets(
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
            ranked = with_reasons(ranked, features, loaded.champions.cross_sell, reasons)
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

        return self._respond(ctx, "targets", lambda: targeted, work, TargetsResponse)

    @bentoml.api(route="/reload")
    def reload(self, ctx: bentoml.Context) -> ReloadResponse:
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
            self._warm(fresh)
            return {"reloaded": True, "models": fresh.champions.versions()}

        return self._respond(ctx, "reload", [], work, ReloadResponse)


CrmScore.add_asgi_middleware(ApiKeyMiddleware)
CrmScore.add_asgi_middleware(ContractMiddleware, service=CrmScore)
# The web console (serving/console): same process, keys, roles and audit log; it scores with the
# champions in use, so /reload applies to its pages too.
CrmScore.mount_asgi_app(
    console_app(lambda: bentoml.get_current_service()._current().champions), path="/console"
)
