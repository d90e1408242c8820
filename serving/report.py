"""The risk officer's report: one customer's scores, reason codes and SHAP waterfall plots in a
single self-contained HTML page (plots embedded as base64 PNG, no external files or scripts)."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime

import pandas as pd

from serving.explain import Explanation, format_value

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:60rem;color:#1f2933;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #d9e2ec;padding-bottom:.3rem} .meta{color:#627d98;font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f7fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#c62828} .down{color:#2e7d32} img{max-width:100%;border:1px solid #e4e7eb}
.tier{display:inline-block;padding:.1rem .6rem;border-radius:.8rem;background:#243b53;color:#fff}
"""


def waterfall_png(explanation: Explanation, max_display: int = 12) -> bytes:
    """The SHAP waterfall of one explanation (log-odds), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import shap

    names = list(explanation.contributions)
    values = shap.Explanation(
        values=np.array([explanation.contributions[n] for n in names]),
        base_values=explanation.base_value,
        data=np.array([_display(explanation.values.get(n)) for n in names], dtype=object),
        feature_names=names,
    )
    shap.plots.waterfall(values, max_display=max_display, show=False)
    figure = plt.gcf()
    figure.set_size_inches(9, 0.45 * max_display + 1.5)
    title = explanation.model + (f" ({explanation.product})" if explanation.product else "")
    figure.suptitle(f"{title}: contributions to the log-odds", fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _display(value):
    return "missing" if value is None else value


def _row(cells: list[str], numeric: set[int] = frozenset()) -> str:
    return (
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def scores_table(score: pd.Series) -> str:
    """The customer's headline numbers as an HTML table."""
    rows = [
        ("Churn probability (3 months)", f"{score['churn_probability']:.1%}", score["churn_model"]),
        (
            "Probability of default (12 months)",
            f"{score['probability_of_default']:.2%}",
            score["credit_risk_model"],
        ),
        (
            "Score points (higher = safer)",
            f"{score['score_points']:.0f}",
            score["credit_risk_model"],
        ),
        ("Yearly value (profit contribution)", f"{score['value']:,.0f}", "holdings x margins"),
        (
            "Next best product",
            html.escape(str(score["next_best_product"] or "none eligible")),
            score["cross_sell_model"],
        ),
    ]
    body = "".join(_row([html.escape(a), b, html.escape(str(c))], {1}) for a, b, c in rows)
    return (
        '<table class="scores"><tr><th>Score</th><th>Value</th><th>Model/version</th></tr>'
        f"{body}</table>"
    )


def reasons_table(explanation: Explanation) -> str:
    """Reason codes as an HTML table: code, reason, signed contribution, leading feature, value,
    sentence."""
    body = "".join(
        _row(
            [
                html.escape(r.code),
                html.escape(r.text),
                f'<span class="{"up" if r.contribution > 0 else "down"}">{r.contribution:+.3f}'
                "</span>",
                html.escape(r.feature),
                html.escape(format_value(r.value)),
                html.escape(r.sentence),
            ],
            {2, 4},
        )
        for r in explanation.reasons
    )
    return (
        '<table class="reasons"><tr><th>Code</th><th>Reason</th><th>Contribution (log-odds)</th>'
        f"<th>Feature</th><th>Value</th><th>Sentence</th></tr>{body}</table>"
    )


def render_report(score: pd.Series, explanations: list[Explanation]) -> str:
    """The whole page for one customer: ``score`` is a row of ``Scores.to_frame()``."""
    customer = int(score["customer_id"])
    sections = []
    for e in explanations:
        png = base64.b64encode(waterfall_png(e)).decode("ascii")
        label = e.model + (f" — offer: {e.product}" if e.product else "")
        total = e.base_value + sum(e.contributions.values())
        sections.append(
            f"<h2>{html.escape(label)}</h2>"
            f'<p class="meta">probability {e.probability:.2%} · raw score {e.raw_score:+.3f} = '
            f"base {e.base_value:+.3f} + contributions {total - e.base_value:+.3f}"
            + (
                f" (of which {e.withheld:+.3f} from attributes never given as reasons)"
                if e.withheld
                else ""
            )
            + "</p>"
            f"{reasons_table(e)}"
            f'<img alt="SHAP waterfall for {html.escape(label)}" '
            f'src="data:image/png;base64,{png}">'
        )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>crmscore — customer {customer}</title><style>{_STYLE}</style></head><body>"
        f'<h1>Customer {customer} <span class="tier">tier {html.escape(score["tier"])}</span></h1>'
        f'<p class="meta">{html.escape(score["tier_reason"])} · contact every '
        f"{int(score['contact_every_days'])} days · generated {generated}</p>"
        f"{scores_table(score)}{''.join(sections)}"
        '<p class="meta">Contributions are exact TreeSHAP values of the LightGBM model in '
        "log-odds; positive values push the score up. Probabilities may be calibrated, which "
        "keeps the direction of every reason.</p></body></html>"
    )
