"""Scale paths selected by configuration: the same pipeline on a PostgreSQL-backed MLflow server.

(The Redis online store path is proven in tests/test_features.py.)
"""

from __future__ import annotations

import pandas as pd
import pytest

from crmscore.settings import get_settings
from tests.servers import mlflow_server, postgres_server
from tests.stacks import built_stack, stack_env


@pytest.fixture(scope="module")
def featured_bank(tmp_path_factory):
    """A small bank with its Feast feature tables built and applied."""
    root = tmp_path_factory.mktemp("scale-path")
    with built_stack(
        root, stack_env(root, CRMSCORE_TRAINING__SHAP_ROWS="200"), customers=700, seed=5
    ):
        yield root


@pytest.mark.slow
def test_training_registers_and_loads_the_champion_through_a_postgres_backed_mlflow_server(
    featured_bank, monkeypatch
):
    from training.pipeline import train_model
    from training.registry import load_champion

    with postgres_server() as database, mlflow_server(database, featured_bank / "artifacts") as uri:
        monkeypatch.setenv("CRMSCORE_TRAINING__TRACKING_URI", uri)
        get_settings.cache_clear()
        result = train_model("churn")
        champion = load_champion("churn")

        assert champion.version == str(result.version)
        frame = pd.DataFrame([{name: None for name in champion.features}])
        probability = champion.predict_proba(frame)
        assert probability.shape == (1,) and 0 <= probability[0] <= 1

        # the run, its metrics and the registry all live in PostgreSQL behind the server
        import sqlalchemy

        engine = sqlalchemy.create_engine(database)
        with engine.connect() as connection:
            runs = connection.execute(sqlalchemy.text("SELECT count(*) FROM runs")).scalar()
            aliases = (
                connection.execute(sqlalchemy.text("SELECT alias FROM registered_model_aliases"))
                .scalars()
                .all()
            )
        engine.dispose()
        assert runs >= 1
        assert "champion" in aliases
    get_settings.cache_clear()
