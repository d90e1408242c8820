"""One definition per scoring model; :data:`MODELS` is the catalogue the pipeline and CLI use."""

from models.churn import CHURN
from models.credit_risk import CREDIT_RISK
from models.cross_sell import CROSS_SELL
from models.definition import ModelDefinition, PromotionDecision

MODELS: dict[str, ModelDefinition] = {m.name: m for m in (CHURN, CROSS_SELL, CREDIT_RISK)}


def custom_models() -> dict[str, ModelDefinition]:
    """The bank's own models (``settings.training.custom_models``), as definitions: their label is
    always the bank's outcome, their inputs another model's feature service."""
    from crmscore.settings import get_settings

    return {
        name: ModelDefinition(
            name=name,
            description=spec.description,
            horizon_months=spec.horizon_months,
            feature_service=spec.features,
            population=spec.population,
            outcome=spec.outcome,
        )
        for name, spec in get_settings().training.custom_models.items()
    }


def all_models() -> dict[str, ModelDefinition]:
    """Every model crmscore trains here: the three of :data:`MODELS` and the bank's own."""
    custom = custom_models()
    clash = sorted(set(custom) & set(MODELS))
    if clash:
        raise ValueError(f"training.custom_models may not reuse the names {clash}")
    return {**MODELS, **custom}


def get_definition(name: str) -> ModelDefinition:
    """The definition called ``name``, with a clear error listing the known models."""
    models = all_models()
    try:
        return models[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}': expected one of {sorted(models)}") from None


__all__ = [
    "MODELS",
    "ModelDefinition",
    "PromotionDecision",
    "all_models",
    "custom_models",
    "get_definition",
]
