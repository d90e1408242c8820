"""One definition per scoring model; :data:`MODELS` is the catalogue the pipeline and CLI use."""

from models.churn import CHURN
from models.credit_risk import CREDIT_RISK
from models.cross_sell import CROSS_SELL
from models.definition import ModelDefinition, PromotionDecision

MODELS: dict[str, ModelDefinition] = {m.name: m for m in (CHURN, CROSS_SELL, CREDIT_RISK)}


def get_definition(name: str) -> ModelDefinition:
    """The definition called ``name``, with a clear error listing the known models."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}': expected one of {sorted(MODELS)}") from None


__all__ = ["MODELS", "ModelDefinition", "PromotionDecision", "get_definition"]
