"""The online writer stores exactly the bytes Feast's own materialisation would."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from features.online_writer import encode_values


def _feast(value, field: str) -> bytes:
    """Feast's serialisation of one value (null -> an empty Value, as its materialisation does)."""
    from feast.protos.feast.types.Value_pb2 import Value

    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return Value().SerializeToString() if missing else Value(**{field: value}).SerializeToString()


@pytest.mark.parametrize(
    ("values", "arrow_type", "field"),
    [
        ([0.0, -0.0, 1.5, -2.25e300, math.inf, math.nan, None, 1e-320], pa.float64(), "double_val"),
        ([0, 1, -1, 127, 128, 4095, 4096, -(2**63), 2**63 - 1, None], pa.int64(), "int64_val"),
        (["", "mass", "émigré 🏦", None, "x" * 300], pa.string(), "string_val"),
    ],
)
def test_each_value_is_encoded_as_feast_serialises_it(values, arrow_type, field):
    column = pa.chunked_array([pa.array(values, type=arrow_type)])
    assert encode_values(column) == [_feast(v, field) for v in values]
