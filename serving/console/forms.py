"""The console's HTML forms, validated like the API's payloads and failing with its messages.

A form's values arrive as strings; a pydantic model with the same bounds as ``POST /targets``
parses them, and the first error becomes ``"<field>: <what is wrong>"`` naming the field as the
API does (:func:`serving.contract.field_path`). Then :meth:`TargetQuery.validate` applies the same
business checks as the endpoint (unknown product, segment, region).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, Field, ValidationError

from crmscore.settings import ServingSettings
from serving.contract import field_path
from serving.errors import InvalidRequest
from serving.targets import TargetQuery

#: Hidden input present in every submitted builder form: unticked checkboxes send nothing, so
#: without it an unticked box and a first visit would look alike.
SUBMITTED = "submitted"
CHECKBOXES = ("exclude_holders", "exclude_churned", "require_consent", "assume_consent")
LISTS = ("segments", "regions")


class TargetForm(BaseModel):
    """The campaign builder's list query: every exclusion and filter of ``POST /targets``."""

    product: str
    top: Annotated[int, Field(ge=1, le=100_000)] = 100
    exclude_pd_above: Annotated[float | None, Field(gt=0, le=1)] = None
    exclude_holders: bool = True
    exclude_churned: bool = True
    require_consent: bool = True
    contacted_within_days: Annotated[int | None, Field(ge=0)] = None
    segments: list[str] = []
    regions: list[str] = []
    min_propensity: Annotated[float, Field(ge=0, le=1)] = 0.0
    reasons: Annotated[int, Field(ge=0, le=10)] = 3
    assume_consent: bool = False

    def query(self, settings: ServingSettings) -> TargetQuery:
        """The validated :class:`TargetQuery` (PD threshold defaulting to ``max_pd``)."""
        return TargetQuery(
            product=self.product,
            top=self.top,
            max_pd=settings.max_pd if self.exclude_pd_above is None else self.exclude_pd_above,
            exclude_holders=self.exclude_holders,
            exclude_churned=self.exclude_churned,
            require_consent=self.require_consent,
            contacted_within_days=self.contacted_within_days,
            segments=tuple(self.segments),
            regions=tuple(self.regions),
            min_propensity=self.min_propensity,
            reasons=self.reasons,
            assume_consent=self.assume_consent,
        ).validate()


class SaveForm(TargetForm):
    """The list query plus what saving a campaign records."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    campaign_date: date | None = None
    window_months: Annotated[int, Field(ge=1, le=24)] = 3
    control_share: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 1


def parse_form(model: type[BaseModel], values, defaults: dict | None = None):
    """``model`` from a multi-valued form (Starlette ``FormData``/``QueryParams``).

    Empty fields take the model's default; list fields take every value; checkboxes are True
    only when ticked (in a submitted form). Raises :class:`InvalidRequest` naming the field.
    """
    data = dict(defaults or {})
    for name in model.model_fields:
        if name in LISTS:
            chosen = [v for v in values.getlist(name) if v]
            if chosen:
                data[name] = chosen
        elif name in CHECKBOXES:
            if SUBMITTED in values:
                data[name] = name in values
        elif values.get(name, "").strip():
            data[name] = values.get(name).strip()
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = field_path(first.get("loc", ()))
        message = first.get("msg", "invalid value")
        raise InvalidRequest(f"{where}: {message}", field=where) from None
