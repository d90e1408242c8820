"""The models page: each champion's version, test metrics, promotion reason, and links to its
model document and latest monitoring report among the run's MLflow artifacts.

The document and the monitoring report are written by ``crmscore document`` and ``crmscore
monitor`` (model risk management) into the champion's run: any artifact under a folder (or with a
name) starting with one of :data:`DOCUMENT_PREFIXES` / :data:`MONITORING_PREFIXES`; the latest
monitoring report is the last such path in name order (reports are named by date). A champion
without them says "not generated yet".
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.champions import Champions

DOCUMENT_PREFIXES = ("document", "model_document")
MONITORING_PREFIXES = ("monitoring", "monitor")
#: Artifacts a browser can show as they are.
VIEWABLE = (".html", ".htm", ".md", ".pdf", ".json", ".png", ".txt")
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
    artifacts: frozenset[str]


def _files(client, run_id: str, path: str | None = None, depth: int = 3) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        if item.is_dir and depth > 0:
            found += _files(client, run_id, item.path, depth - 1)
        elif not item.is_dir:
            found.append(item.path)
    return found


def _first(paths: list[str], prefixes: tuple[str, ...], last: bool = False) -> str | None:
    matching = sorted(
        p for p in paths if p.lower().startswith(prefixes) and p.lower().endswith(VIEWABLE)
    )
    if not matching:
        return None
    return matching[-1] if last else matching[0]


def model_cards(champions: Champions) -> list[ModelCard]:
    """One card per loaded champion, read from the tracking server."""
    from training.registry import configure_mlflow

    client = configure_mlflow()
    cards = []
    for name, model in champions.models.items():
        run = client.get_run(model.run_id)
        paths = [p for p in _files(client, model.run_id) if not p.startswith("model/")]
        cards.append(
            ModelCard(
                name=name,
                registered_name=model.registered_name,
                version=model.version,
                run_id=model.run_id,
                metrics={k: run.data.metrics[k] for k in METRICS if k in run.data.metrics},
                tags={**run.data.tags, **model.tags},
                document=_first(paths, DOCUMENT_PREFIXES),
                monitoring=_first(paths, MONITORING_PREFIXES, last=True),
                artifacts=frozenset(paths),
            )
        )
    return cards


def download_artifact(card: ModelCard, path: str) -> bytes:
    """The bytes of one of the card's listed artifacts (anything else is refused upstream)."""
    import tempfile
    from pathlib import Path

    import mlflow

    from training.registry import configure_mlflow

    configure_mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=card.run_id, artifact_path=path, dst_path=tmp
        )
        return Path(local).read_bytes()
