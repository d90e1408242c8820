"""The master scale: PD -> rating grade, with configurable boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from crmscore.settings import get_settings
from training.master_scale import MasterScale, rating_grade

SCALE = MasterScale(("A", "B", "C"), (0.01, 0.05, 1.0))


def test_each_pd_gets_the_grade_whose_interval_holds_it():
    pds = [0.0, 0.004, 0.01, 0.0100001, 0.05, 0.3, 1.0, np.nan]
    assert SCALE.grade(pds).tolist() == ["A", "A", "A", "B", "B", "C", "C", None]


def test_grades_never_improve_as_pd_rises():
    default = MasterScale.from_settings()
    grades = default.grade(np.linspace(0, 1, 2001))
    rank = [default.grades.index(g) for g in grades]
    assert rank == sorted(rank) and rank[0] == 0 and rank[-1] == len(default.grades) - 1
    assert len(default.grades) == 10


def test_boundaries_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("CRMSCORE_TRAINING__MASTER_SCALE", '{"low": 0.02, "high": 1.0}')
    get_settings.cache_clear()
    try:
        assert rating_grade([0.01, 0.02, 0.03]).tolist() == ["low", "low", "high"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_table_lists_each_grades_pd_interval():
    table = SCALE.table()
    assert table.to_dict("list") == {
        "grade": ["A", "B", "C"],
        "pd_from": [0.0, 0.01, 0.05],
        "pd_to": [0.01, 0.05, 1.0],
    }


@pytest.mark.parametrize(
    "grades, upper",
    [
        (("A", "B"), (0.05, 0.9)),  # the worst grade must end at PD 1
        (("A", "B", "C"), (0.05, 0.01, 1.0)),  # bounds must rise
        (("A", "A"), (0.05, 1.0)),  # grade names must be unique
        (("A",), (1.0,)),  # one grade is no scale
    ],
)
def test_a_malformed_scale_is_rejected(grades, upper):
    with pytest.raises(ValueError, match="master scale"):
        MasterScale(grades, upper)


def test_scores_carry_the_grade_of_their_pd():
    """``/score``'s credit block and ``crmscore score``'s columns both come from credit_outputs."""
    from serving.scoring import CREDIT_RESPONSE_FIELDS, credit_outputs
    from training.master_scale import rating_grade

    pd_default = np.array([0.001, 0.05, 0.5])
    outputs = credit_outputs(None, pd_default)
    assert outputs["rating_grade"].tolist() == rating_grade(pd_default).tolist()
    assert CREDIT_RESPONSE_FIELDS["rating_grade"] == "rating_grade"
