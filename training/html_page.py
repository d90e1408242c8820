"""Self-contained HTML pages for model risk (the model document, the monitoring report).

One page = a title, a line of facts and sections; tables come from DataFrames, figures from
matplotlib as inline PNG (``data:`` URIs). No scripts, fonts or files from anywhere else, so a page
opens the same offline, attached to an e-mail or archived with the model; and the same inputs give
byte-identical pages (PNG written without a timestamp).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping

import pandas as pd

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:68rem;color:#1f2933;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2.2rem;
border-bottom:1px solid #d9e2ec;padding-bottom:.3rem} h3{font-size:1rem;margin-top:1.4rem}
.meta{color:#627d98;font-size:.9rem} nav a{margin-right:.8rem;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border-bottom:1px solid #e4e7eb;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f5f7fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #e4e7eb;margin:.4rem 0}
.green{color:#1b5e20;font-weight:600} .amber{color:#b26a00;font-weight:600}
.red{color:#b71c1c;font-weight:600} .verdict{font-size:1.05rem;padding:.5rem .8rem;
border-left:4px solid #486581;background:#f5f7fa}
"""

#: Cell formatter: value -> HTML-safe text.
Format = Callable[[object], str]


def escape(value: object) -> str:
    return html.escape(str(value))


def number(digits: int) -> Format:
    return lambda v: "–" if v is None or v != v else f"{v:,.{digits}f}"


def percent(digits: int) -> Format:
    return lambda v: "–" if v is None or v != v else f"{v:.{digits}%}"


def status(value: object) -> str:
    """A green / amber / red word, coloured."""
    return f'<span class="{escape(value)}">{escape(value)}</span>'


def table(frame: pd.DataFrame, formats: Mapping[str, Format] | None = None) -> str:
    """``frame`` as an HTML table; columns in ``formats`` are formatted (and right-aligned when
    numeric), the others escaped as text."""
    formats = formats or {}
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            text = formats[column](value) if column in formats else escape(value)
            align = ' class="num"' if column in numeric else ""
            cells.append(f"<td{align}>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def facts(items: Mapping[str, object]) -> str:
    """A two-column table of named facts."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items.items())
    return f"<table>{rows}</table>"


def figure(fig, alt: str) -> str:
    """A matplotlib figure as an inline PNG (closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def paragraph(text: str, css: str = "") -> str:
    return f'<p class="{css}">{escape(text)}</p>' if css else f"<p>{escape(text)}</p>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{escape(anchor)}"><h2>{escape(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole page: ``sections`` are ``(anchor, title, body HTML)``, linked from a contents
    bar."""
    nav = "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="meta">{escape(subtitle)}</p><nav>{nav}</nav>'
        f"{body}</body></html>"
    )
