"""Every notebook runs top to bottom on a small bank."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("CRMSCORE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRMSCORE_GENERATOR__CUSTOMERS", "800")
    monkeypatch.setenv("CRMSCORE_GENERATOR__MONTHS", "24")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for name, value in _extra_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def _extra_env(tmp_path: Path) -> dict[str, str]:
    """Keep MLflow runs of a notebook out of the project's store."""
    return {
        "CRMSCORE_TRAINING__TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "PATH": os.environ["PATH"],
    }
