"""Product-aligned inputs for the pooled cross-sell model.

The feature store describes a customer with one column per product (``int_page_views_mortgage_3m``,
``prod_tenure_mortgage_months``, ...). For the row "offer *mortgage* to this customer", the column
that matters is the mortgage one; a pooled model would have to discover that through deep
``product`` × column interactions. An aligned column (``int_page_views_offered_3m``) holds, on each
row, the value of the column for that row's product: one input that means the same thing for
every product. Computed inside the scoring model, so training and serving align identically.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PLACEHOLDER = "offered"


def alignment_templates(columns: list[str], levels: list[str]) -> dict[str, dict[str, str]]:
    """``{aligned name: {level: source column}}`` for column families covering every level.

    A family is the set of columns that differ only by the level's name (``..._mortgage_...``);
    only complete families are aligned, so a stray match (``credit_card_utilisation``) is not.
    """
    families: dict[str, dict[str, str]] = {}
    for column in columns:
        for level in levels:
            if f"_{level}_" in f"_{column}_":
                aligned = f"_{column}_".replace(f"_{level}_", f"_{PLACEHOLDER}_")[1:-1]
                families.setdefault(aligned, {})[level] = column
    return {name: src for name, src in families.items() if set(src) == set(levels)}


def add_aligned_columns(
    frame: pd.DataFrame, key: str, templates: dict[str, dict[str, str]]
) -> pd.DataFrame:
    """``frame`` plus one float32 column per template, read from the row's ``key`` level."""
    if not templates:
        return frame
    keys = frame[key].astype(object).to_numpy()
    new = {}
    for name, sources in templates.items():
        values = np.full(len(frame), np.nan, dtype=np.float32)
        for level, column in sources.items():
            rows = keys == level
            if rows.any():
                values[rows] = pd.to_numeric(frame.loc[rows, column], errors="coerce").to_numpy()
        new[name] = values
    return pd.concat([frame, pd.DataFrame(new, index=frame.index)], axis=1)
