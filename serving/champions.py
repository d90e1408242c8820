"""The champion of every model, loaded together from the MLflow registry.

Serving never picks a version itself: it asks :func:`training.registry.load_champion` for the
version the ``champion`` alias points at. The three are loaded as one set so a response never mixes
a freshly reloaded churn model with a stale cross-sell one; so are the bank's own models
(``settings.training.custom_models``) that have a champion, served beside them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from serving.errors import Unavailable

if TYPE_CHECKING:
    from training.compiled_model import CompiledModel
    from training.registry import LoadedModel

#: The models serving needs, by their short names (``models.MODELS``).
MODEL_NAMES: tuple[str, ...] = ("churn", "cross_sell", "credit_risk")
#: Model inputs that describe the request, not the customer (the product a cross-sell score is
#: for): supplied by the caller, never read from the feature store.
KEY_INPUTS: tuple[str, ...] = ("product",)


@dataclass(frozen=True)
class Champions:
    """The three loaded champions; ``[name]`` gives one, ``versions()`` says which were used."""

    models: dict[str, LoadedModel]
    loaded_at: float = field(default_factory=time.time)
    #: Each champion compiled for array scoring (:mod:`training.compiled_model`), once per load.
    compiled: dict[str, CompiledModel] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from training.compiled_model import CompiledModel

        compiled = {name: CompiledModel.of(m.scoring_model) for name, m in self.models.items()}
        object.__setattr__(self, "compiled", compiled)

    def __getitem__(self, name: str) -> LoadedModel:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"unknown model {name!r}; expected one of {list(self.models)}") from None

    @property
    def own(self) -> tuple[str, ...]:
        """The bank's own models loaded beside the three (``training.custom_models``)."""
        return tuple(name for name in self.models if name not in MODEL_NAMES)

    @property
    def churn(self) -> LoadedModel:
        return self.models["churn"]

    @property
    def cross_sell(self) -> LoadedModel:
        return self.models["cross_sell"]

    @property
    def credit_risk(self) -> LoadedModel:
        return self.models["credit_risk"]

    def versions(self) -> dict[str, dict[str, str]]:
        """``{"churn": {"model": "crmscore-churn", "version": "3"}, ...}``."""
        return {
            name: {"model": m.registered_name, "version": m.version}
            for name, m in self.models.items()
        }

    def feature_names(self) -> list[str]:
        """Every store feature any of the models reads, in first-seen order: no key inputs, and
        the columns product-aligned inputs are read from instead of the aligned names."""
        seen: dict[str, None] = {}
        for model in self.compiled.values():
            seen.update(dict.fromkeys(model.store_features))
        return list(seen)


def bound_registry_calls() -> None:
    """Make MLflow's HTTP calls give up after ``serving.registry_timeout_seconds`` of silence and
    ``serving.registry_max_retries`` retries: its defaults (120 s, 7 retries with backoff) would
    hold a ``/reload`` for minutes on a hung registry. MLflow reads both at every call.

    Each load also starts from fresh HTTP sessions: connections pooled by the last load to a
    registry that has restarted since are dead, and each is reset on first use, using up the
    retries (a /reload after a registry restart failed that way). MLflow caches its sessions
    per setting (``_cached_get_request_session``, a private function of the pinned version)."""
    from mlflow.utils.request_utils import _cached_get_request_session

    from crmscore.settings import get_settings

    settings = get_settings().serving
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.registry_timeout_seconds)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.registry_max_retries)
    _cached_get_request_session.cache_clear()


def load_champions() -> Champions:
    """Load every champion, or raise :class:`Unavailable` naming the model and the reason. The
    bank's own models are loaded when they have a champion (one not trained yet is not served)."""
    from models import custom_models
    from training.registry import configure_mlflow, current_champion, load_champion

    bound_registry_calls()
    loaded = {}
    try:
        own = custom_models()
        client = configure_mlflow() if own else None
        trained = [name for name in own if current_champion(client, name) is not None]
    except Exception as error:  # a broken setting, the registry down
        raise Unavailable(f"cannot list the bank's own models: {error}") from error
    for name in (*MODEL_NAMES, *trained):
        try:
            loaded[name] = load_champion(name)
        except Exception as error:  # registry down, no champion, broken artefact: all mean 503
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise Unavailable(f"cannot load the {name} champion: {reason}") from error
    return Champions(loaded)
