"""The models page: each champion's version, test metrics, promotion reason, and links to its
model document and the latest monitoring report, both MLflow artifacts.

The model document is ``model_document.html`` (``training.document``) in the champion's own run;
the monitoring report is ``monitoring_<snapshot>.html`` in the newest run of the monitoring
experiment (``crmscore monitor``, ``settings.monitoring.experiment``), one report for every model.
Either missing says "not generated yet". Other artifacts (the document's JSON inputs, plots) are
not linked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from serving.champions import Champions

#: What the document and the report are called among the artifacts (prefix, suffix).
DOCUMENT = ("model_document", ".html")
MONITORING = ("monitoring_", ".html")
#: Test metrics shown per champion, in order, with their labels.
METRICS = {
    "test_auc": "AUC",
    "test_ks": "KS",
    "test_pr_auc": "PR-AUC",
    "test_brier": "Brier",
    "test_top_decile_lift": "top-decile lift",
    "psi_train_test": "PSI train→test",
    "oracle_auc": "oracle AUC (synthetic data)",
}


@dataclass(frozen=True)
class ModelCard:
    name: str
    registered_name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    document: str | None
    monitoring: str | None
    monitoring_run: str | None

    def source(self, path: str) -> str | None:
        """The run holding ``path`` if it is one of the card's links; None for anything else."""
        if path == self.document:
            return self.run_id
        return self.monitoring_run if path == self.monitoring else None


def _files(client, run_id: str, path: str | None = None, depth: int = 3) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir and depth > 0:
            found += _files(client, run_id, item.path, depth - 1)
        elif not item.is_dir:
            found.append(item.path)
    return found


def _named(paths: list[str], kind: tuple[str, str]) -> str | None:
    """The last path (in name order: reports carry their date) of that kind, or None."""
    prefix, suffix = kind
    matching = sorted(p for p in paths if Path(p).name.startswith(prefix) and p.endswith(suffix))
    return matching[-1] if matching else None


def latest_monitoring(client) -> tuple[str | None, str | None]:
    """``(run id, report path)`` of the newest monitoring run that holds a report."""
    from crmscore.settings import get_settings

    experiment = client.get_experiment_by_name(get_settings().monitoring.experiment)
    if experiment is None:
        return None, None
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["start_time DESC"], max_results=5
    )
    for run in runs:
        report = _named(_files(client, run.info.run_id, depth=0), MONITORING)
        if report:
            return run.info.run_id, report
    return None, None


def with_latest_monitoring(cards: list[ModelCard]) -> list[ModelCard]:
    """``cards`` linking the newest monitoring report (looked up at every call: a report is
    written by ``crmscore monitor`` while the server runs)."""
    from training.registry import configure_mlflow

    run, report = latest_monitoring(configure_mlflow())
    return [replace(card, monitoring=report, monitoring_run=run) for card in cards]


def model_cards(champions: Champions) -> list[ModelCard]:
    """One card per loaded champion, read from the tracking server (no monitoring report yet:
    :func:`with_latest_monitoring` adds it)."""
    from training.registry import configure_mlflow

    client = configure_mlflow()
    cards = []
    for name, model in champions.models.items():
        run = client.get_run(model.run_id)
        paths = _files(client, model.run_id, depth=0)  # the document sits at the run's root
        cards.append(
            ModelCard(
                name=name,
                registered_name=model.registered_name,
                version=model.version,
                run_id=model.run_id,
                metrics={k: run.data.metrics[k] for k in METRICS if k in run.data.metrics},
                tags={**run.data.tags, **model.tags},
                document=_named(paths, DOCUMENT),
                monitoring=None,
                monitoring_run=None,
            )
        )
    return cards


def download_artifact(run_id: str, path: str) -> bytes:
    """The bytes of one artifact of a run (callers pass only a card's own links)."""
    import tempfile

    import mlflow

    from training.registry import configure_mlflow

    configure_mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)
        return Path(local).read_bytes()
