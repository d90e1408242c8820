"""Charts as inline SVG: a waterfall of reason codes, trend lines, histograms, stacked shares.

Drawn on the server as plain SVG markup (no script, no network, a few hundred bytes each, and
microseconds to draw, where a matplotlib figure costs tens of milliseconds a page). Every chart
has labelled axes with units, tick values and a title, and a ``<title>`` per mark so hovering
shows the exact figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

UP, DOWN, INK, GRID, MUTED = "#c62828", "#2e7d32", "#1f2933", "#e4e7eb", "#627d98"
SERIES = ("#243b53", "#486581", "#829ab1", "#bcccdc", "#f0b429", "#de911d")
FONT = 'font-family="system-ui,sans-serif" font-size="11"'


@dataclass(frozen=True)
class Frame:
    """Plot area inside a ``width`` x ``height`` SVG, leaving margins for axes and labels."""

    width: int
    height: int
    left: int = 56
    right: int = 16
    top: int = 28
    bottom: int = 40

    @property
    def inner_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> int:
        return self.height - self.top - self.bottom


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (1, 2, 2.5, 5 x 10^k steps)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _svg(frame: Frame, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {frame.width} '
        f'{frame.height}" width="{frame.width}" height="{frame.height}" '
        f'xmlns="http://www.w3.org/2000/svg" {FONT}>'
        f"<title>{escape(title)}</title>"
        f'<text x="{frame.left}" y="16" font-size="12" font-weight="600" fill="{INK}">'
        f"{escape(title)}</text>" + "".join(body) + "</svg>"
    )


def _y_axis(frame: Frame, ticks: list[float], y: Callable[[float], float], fmt, label: str):
    parts = []
    for t in ticks:
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y(t):.1f}" '
            f'y2="{y(t):.1f}" stroke="{GRID}"/>'
            f'<text x="{frame.left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{escape(fmt(t))}</text>"
        )
    middle = frame.top + frame.inner_height / 2
    parts.append(
        f'<text transform="translate(12 {middle:.0f}) rotate(-90)" text-anchor="middle" '
        f'fill="{MUTED}">{escape(label)}</text>'
    )
    return parts


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, Sequence[float]],
    y_label: str,
    fmt: Callable[[float], str] = "{:,.2f}".format,
    width: int = 320,
    height: int = 190,
) -> str:
    """One line per series over categorical x positions (snapshots), with points and a legend."""
    # room on the right for the last x label, and for the legend when there are several lines
    frame = Frame(width, height, right=44 if len(series) > 1 else 24)
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    ticks = nice_ticks(max(0.0, low - pad) if low >= 0 else low - pad, high + pad, 4)
    span = ticks[-1] - ticks[0]

    def y(v: float) -> float:
        return frame.top + frame.inner_height * (1 - (v - ticks[0]) / span)

    def x(i: int) -> float:
        step = frame.inner_width / max(len(x_labels) - 1, 1)
        return frame.left + (i * step if len(x_labels) > 1 else frame.inner_width / 2)

    body = _y_axis(frame, ticks, y, fmt, y_label)
    for i, label in enumerate(x_labels):
        body.append(
            f'<text x="{x(i):.1f}" y="{height - frame.bottom + 14}" text-anchor="middle" '
            f'fill="{MUTED}">{escape(label)}</text>'
        )
    body.append(
        f'<text x="{frame.left + frame.inner_width / 2:.0f}" y="{height - 6}" '
        f'text-anchor="middle" fill="{MUTED}">snapshot (month start)</text>'
    )
    for k, (name, points) in enumerate(series.items()):
        colour = SERIES[k % len(SERIES)]
        drawn = [(x(i), y(v), v) for i, v in enumerate(points) if v is not None and v == v]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in drawn)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for px, py, v in drawn:
            body.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {escape(fmt(v))}</title></circle>"
            )
        if len(series) > 1 and drawn:  # label each line at its end
            end_x, end_y, _ = drawn[-1]
            body.append(
                f'<text x="{end_x + 6:.1f}" y="{end_y + 4:.1f}" fill="{colour}">'
                f"{escape(name)}</text>"
            )
    return _svg(frame, title, body)


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    x_label: str,
    y_label: str,
    fmt: Callable[[float], str] = "{:,.0f}".format,
    width: int = 420,
    height: int = 220,
) -> str:
    """Vertical bars (a histogram when ``labels`` are bins)."""
    frame = Frame(width, height, bottom=48)
    ticks = nice_ticks(0.0, max([*values, 0.0]) or 1.0, 4)

    def y(v: float) -> float:
        return frame.top + frame.inner_height * (1 - v / ticks[-1])

    body = _y_axis(frame, ticks, y, fmt, y_label)
    slot = frame.inner_width / max(len(values), 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        left = frame.left + i * slot + slot * 0.1
        body.append(
            f'<rect x="{left:.1f}" y="{y(value):.1f}" width="{slot * 0.8:.1f}" '
            f'height="{y(0) - y(value):.1f}" fill="{SERIES[1]}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
        if len(values) <= 12 or i % math.ceil(len(values) / 10) == 0:
            body.append(
                f'<text x="{left + slot * 0.4:.1f}" y="{height - frame.bottom + 14}" '
                f'text-anchor="middle" fill="{MUTED}">{escape(label)}</text>'
            )
    body.append(
        f'<text x="{frame.left + frame.inner_width / 2:.0f}" y="{height - 8}" '
        f'text-anchor="middle" fill="{MUTED}">{escape(x_label)}</text>'
    )
    return _svg(frame, title, body)


def stacked_shares(
    title: str,
    rows: Sequence[tuple[str, dict[str, float]]],
    keys: Sequence[str],
    width: int = 640,
) -> str:
    """One horizontal 100% bar per row (e.g. tier shares per segment), with a legend."""
    height = 40 + 22 * len(rows) + 36
    frame = Frame(width, height, left=130, top=28, bottom=36)
    body = []
    for tick in (0, 25, 50, 75, 100):
        x = frame.left + frame.inner_width * tick / 100
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{height - frame.bottom}" '
            f'stroke="{GRID}"/><text x="{x:.1f}" y="{height - frame.bottom + 14}" '
            f'text-anchor="middle" fill="{MUTED}">{tick}%</text>'
        )
    for r, (label, shares) in enumerate(rows):
        top = frame.top + 22 * r + 4
        body.append(
            f'<text x="{frame.left - 6}" y="{top + 12}" text-anchor="end" fill="{INK}">'
            f"{escape(label)}</text>"
        )
        x = frame.left
        total = sum(shares.values()) or 1.0
        for k, key in enumerate(keys):
            w = frame.inner_width * shares.get(key, 0.0) / total
            body.append(
                f'<rect x="{x:.1f}" y="{top}" width="{w:.1f}" height="16" '
                f'fill="{SERIES[k % len(SERIES)]}"><title>{escape(label)} · {escape(key)}: '
                f"{shares.get(key, 0.0) / total:.1%}</title></rect>"
            )
            x += w
    for k, key in enumerate(keys):
        left = frame.left + 70 * k
        body.append(
            f'<rect x="{left}" y="{height - 16}" width="10" height="10" '
            f'fill="{SERIES[k % len(SERIES)]}"/>'
            f'<text x="{left + 14}" y="{height - 7}" fill="{INK}">{escape(key)}</text>'
        )
    body.append(
        f'<text x="{width - frame.right}" y="{height - 7}" text-anchor="end" fill="{MUTED}">'
        "share of customers</text>"
    )
    return _svg(frame, title, body)


def waterfall(
    title: str,
    base: float,
    steps: Sequence[tuple[str, float]],
    outcome: str,
    width: int = 640,
) -> str:
    """How an explanation adds up: from the base value, each feature's contribution (log-odds)
    as a bar starting where the previous one ended, to the customer's raw score."""
    height = 36 + 22 * (len(steps) + 2) + 40
    frame = Frame(width, height, left=250, right=70, top=28, bottom=40)
    running, spans = base, []
    for label, value in steps:
        spans.append((label, running, running + value, value))
        running += value
    ends = [base, running] + [e for _, s, e, _ in spans] + [s for _, s, _, _ in spans]
    ticks = nice_ticks(min(ends), max(ends), 5)

    def x(v: float) -> float:
        return frame.left + frame.inner_width * (v - ticks[0]) / (ticks[-1] - ticks[0])

    body = []
    for t in ticks:
        body.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{frame.top}" '
            f'y2="{height - frame.bottom}" stroke="{GRID}"/>'
            f'<text x="{x(t):.1f}" y="{height - frame.bottom + 14}" text-anchor="middle" '
            f'fill="{MUTED}">{t:+.2f}</text>'
        )
    rows = [("base value (average customer)", ticks[0], base, None)]
    rows += spans
    rows.append((f"raw score → {outcome}", ticks[0], running, None))
    for r, (label, start, end, value) in enumerate(rows):
        top = frame.top + 22 * r + 3
        colour = MUTED if value is None else UP if value > 0 else DOWN
        left, right = sorted((x(start), x(end)))
        text = f"{end:+.3f}" if value is None else f"{value:+.3f}"
        body.append(
            f'<text x="{frame.left - 6}" y="{top + 12}" text-anchor="end" fill="{INK}">'
            f"{escape(label)}</text>"
            f'<rect x="{left:.1f}" y="{top}" width="{max(right - left, 1):.1f}" height="16" '
            f'fill="{colour}"><title>{escape(label)}: {text}</title></rect>'
            f'<text x="{right + 4:.1f}" y="{top + 12}" fill="{colour}">{text}</text>'
        )
    body.append(
        f'<text x="{frame.left + frame.inner_width / 2:.0f}" y="{height - 8}" '
        f'text-anchor="middle" fill="{MUTED}">contribution to the log-odds '
        "(red raises the score, green lowers it)</text>"
    )
    return _svg(frame, title, body)
