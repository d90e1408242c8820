"""Small generated banks with their stages built, for the tests that need the real stack.

One function builds what several test modules need (a bank, its Feast repository, optionally the
online store and three trained champions), with the settings environment pointing at it. Each
module still gets its own bank: tests that break a store or a registry must not share one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crmscore.settings import get_settings


def stack_env(root: Path, **settings: str) -> dict[str, str]:
    """Settings environment for a stack under ``root``: its data folder and a SQLite MLflow
    store of its own, plus ``settings`` (``CRMSCORE_...`` names) and BentoML kept inside too.
    Intervals bootstrap 20 resamples, not 200, and a small bank's cross-validation runs once,
    not three times: every training run pays for both, and no test here reads an interval's
    third digit or the spread between repeats (``test_small_books`` sets its own repeats)."""
    return {
        "CRMSCORE_DATA_DIR": str(root / "data"),
        "CRMSCORE_TRAINING__TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "CRMSCORE_TRAINING__BOOTSTRAP_ROUNDS": "20",
        "CRMSCORE_TRAINING__CV_REPEATS": "1",
        "BENTOML_HOME": str(root / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        **settings,
    }


@contextmanager
def settings_env(env: dict[str, str]) -> Iterator[None]:
    """``env`` (``CRMSCORE_...`` and the like) set, and settings re-read, while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()


@contextmanager
def built_stack(
    root: Path,
    env: dict[str, str],
    *,
    customers: int,
    seed: int,
    materialise: bool = False,
    lgbm_overrides: dict | None = None,
    months: int = 24,
    shock=None,
) -> Iterator[Path]:
    """Generate a bank (``customers`` x ``months``, with an optional ``EconomicShock``) under
    ``root / "data"``, build and apply its Feast repository, then optionally materialise the
    online store and train the three models (``lgbm_overrides`` given); ``env`` is set while the
    block runs. Yields ``root``."""
    from crmscore.synthetic import BankConfig, generate_bank
    from features.build import apply, build_feature_tables
    from features.materialize import materialize

    with settings_env(env):
        config = BankConfig(customers=customers, months=months, seed=seed, shock=shock)
        generate_bank(config, root / "data", progress=False)
        build_feature_tables(progress=False)
        apply()
        if materialise:
            materialize()
        if lgbm_overrides is not None:
            from models import MODELS
            from training.pipeline import train_model

            for model in MODELS:
                train_model(model, lgbm_overrides=lgbm_overrides)
        yield root
