"""Scale paths selected by configuration, each against its real server on loopback: the online
store in Redis, MLflow tracking and registry on PostgreSQL behind ``mlflow server`` with the
artefacts on S3 (moto's S3 server), and two ``crmscore serve`` replicas sharing them.

(The Spark build and offline store are in tests/test_spark_engine.py.)
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.servers import mlflow_server, postgres_server, redis_server, s3_server, start_redis
from tests.stacks import built_stack, stack_env
from tests.test_serving import start_server, stop_server

pytestmark = pytest.mark.slow

BUCKET = "crmscore-mlflow"
ADMIN_KEY = "k-admin"
CRMSCORE_SERVE = (str(Path(sys.executable).parent / "crmscore"), "serve")


@pytest.fixture(scope="module")
def scale_stack(tmp_path_factory):
    """A small bank on the scale stack: features materialised into Redis; the three models trained
    through an MLflow server on PostgreSQL whose artefacts live in an S3 bucket."""
    root = tmp_path_factory.mktemp("scale-path")
    with ExitStack() as servers:
        database = servers.enter_context(postgres_server())
        s3 = servers.enter_context(s3_server(BUCKET))
        tracking = servers.enter_context(
            mlflow_server(database, f"s3://{BUCKET}/artifacts", env=s3)
        )
        redis = servers.enter_context(redis_server(root))
        env = stack_env(
            root,
            CRMSCORE_TRAINING__SHAP_ROWS="200",
            CRMSCORE_TRAINING__TRACKING_URI=tracking,
            CRMSCORE_FEATURES__ONLINE_STORE="redis",
            CRMSCORE_FEATURES__REDIS_CONNECTION_STRING=redis,
            CRMSCORE_SERVING__API_KEYS=json.dumps({ADMIN_KEY: "admin"}),
        )
        overrides = {"n_estimators": 40}
        with built_stack(
            root, env, customers=700, seed=5, materialise=True, lgbm_overrides=overrides
        ):
            yield {
                "root": root,
                "database": database,
                "s3": s3,
                "redis": redis,
                "env": {**os.environ, **env},
            }


def test_models_are_registered_in_postgres_with_their_artefacts_in_s3(scale_stack):
    import boto3
    import sqlalchemy

    from training.registry import load_champion

    champion = load_champion("churn")  # downloaded from S3 through the MLflow server
    frame = pd.DataFrame([{name: None for name in champion.features}])
    probability = champion.predict_proba(frame)
    assert probability.shape == (1,) and 0 <= probability[0] <= 1

    # runs, metrics and the registry live in PostgreSQL behind the server ...
    engine = sqlalchemy.create_engine(scale_stack["database"])
    with engine.connect() as connection:
        runs = connection.execute(sqlalchemy.text("SELECT count(*) FROM runs")).scalar()
        aliases = connection.execute(
            sqlalchemy.text("SELECT name, alias FROM registered_model_aliases")
        ).all()
    engine.dispose()
    assert runs >= 3
    assert {(f"crmscore-{m}", "champion") for m in ("churn", "cross_sell", "credit_risk")} <= set(
        aliases
    )
    # ... and every model's files in the bucket, none on the local disk
    s3 = scale_stack["s3"]
    client = boto3.client(
        "s3",
        endpoint_url=s3["MLFLOW_S3_ENDPOINT_URL"],
        region_name=s3["AWS_DEFAULT_REGION"],
        aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert all(key.startswith("artifacts/") for key in keys)
    assert sum(key.endswith("/MLmodel") for key in keys) >= 3
    assert not list(scale_stack["root"].glob("**/MLmodel"))


def test_two_replicas_answer_alike_and_each_reloads_a_new_champion(scale_stack, tmp_path):
    from training.pipeline import train_model
    from training.registry import configure_mlflow

    replicas = [
        start_server(scale_stack["env"], tmp_path / f"replica-{i}.log", CRMSCORE_SERVE)
        for i in range(2)
    ]
    try:
        urls = [url for _, url in replicas]
        for url in urls:
            _wait_ready(url)
        ids = {"customer_ids": list(range(1, 41))}
        before = [_post(url, "score", ids) for url in urls]
        assert before[0] == before[1]
        assert len(before[0]["results"]) > 30

        # a new churn champion in the shared registry (a smaller booster: other scores)
        result = train_model("churn", lgbm_overrides={"n_estimators": 5})
        configure_mlflow().set_registered_model_alias("crmscore-churn", "champion", result.version)
        assert before[0]["models"]["churn"]["version"] != result.version
        # nothing changes until a replica is told to reload
        assert _post(urls[1], "score", ids) == before[1]

        for url in urls:
            reloaded = _post(url, "reload", {})
            assert reloaded["reloaded"] is True
            assert reloaded["models"]["churn"]["version"] == result.version
        after = [_post(url, "score", ids) for url in urls]
        assert after[0] == after[1]
        assert after[0]["models"]["churn"]["version"] == result.version
        assert after[0]["results"] != before[0]["results"]
    finally:
        for process, _ in replicas:
            stop_server(process)


def test_one_customer_is_read_on_the_event_loop_and_a_redis_outage_is_a_503_then_recovers(
    scale_stack, tmp_path
):
    """Single-customer requests await Redis's reads of every view together on the server's event
    loop (Feast's async reads); batches read on a worker thread. Both give the same scores. With
    Redis gone, the answer is 503 with the store's reason; once it is back, the same scores."""
    import redis

    host, port = scale_stack["redis"].split(":")
    process, url = start_server(scale_stack["env"], tmp_path / "replica.log", CRMSCORE_SERVE)
    restarted = None
    try:
        _wait_ready(url)
        one = _post(url, "score", {"customer_ids": [1]})
        batch = _post(url, "score", {"customer_ids": list(range(1, 41))})  # above inline_max_ids
        assert one["results"][0]["customer_id"] == 1 and batch["results"][0] == one["results"][0]
        explained = _post(url, "explain", {"customer_id": 1, "model": "credit_risk"})
        assert explained["reasons"] and explained["customer_id"] == 1

        redis.Redis(host=host, port=int(port)).shutdown(save=True)  # keeps its data on disk
        down = httpx.post(
            f"{url}/score",
            json={"customer_ids": [1]},
            headers={"X-API-Key": ADMIN_KEY},
            timeout=120,
        )
        assert down.status_code == 503, down.text
        assert down.json()["error"].startswith("online feature store unavailable: ")

        restarted = start_redis(scale_stack["root"], int(port))
        assert _post(url, "score", {"customer_ids": [1]}) == one
        assert _post(url, "explain", {"customer_id": 1, "model": "credit_risk"}) == explained
    finally:
        stop_server(process)
        if restarted is not None:
            restarted.terminate()
            restarted.wait(timeout=10)


def _post(url: str, endpoint: str, payload: dict) -> dict:
    response = httpx.post(
        f"{url}/{endpoint}", json=payload, headers={"X-API-Key": ADMIN_KEY}, timeout=120
    )
    assert response.status_code == 200, response.text
    return response.json()


def _wait_ready(url: str) -> None:
    import time

    deadline = time.monotonic() + 90
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, f"{url} never became ready"
        time.sleep(0.5)
