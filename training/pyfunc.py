"""The MLflow pyfunc flavour of a :class:`~training.scoring_model.ScoringModel`.

``mlflow.pyfunc.load_model(uri).predict(frame)`` returns ``probability`` (calibrated where the
model calibrates) and ``points`` for scorecard models; ``.unwrap_python_model().scoring_model``
gives the full object (booster for SHAP, features, categorical levels, calibrator).
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

from training.scoring_model import ScoringModel


class ScoringPyfunc(mlflow.pyfunc.PythonModel):
    def __init__(self, scoring_model: ScoringModel):
        self.scoring_model = scoring_model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.scoring_model.score_frame(model_input)
