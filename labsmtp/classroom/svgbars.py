"""Fast SVG bar charts for the fault lab panel: the same pictures, a hundred times quicker.

The panel redraws its two plots on every slider move, and the move should show
new plots within 0.3 s.  matplotlib takes 0.1 to 0.2 s for the two (each text
is laid out afresh by FreeType for every SVG it writes), as long as the trials
themselves; writing the few rectangles and words of a horizontal bar chart
directly takes about a millisecond.  The charts are the ones ``plots.outcomes``
draws for a notebook, horizontal bars with the same colours, hatches
(``plots.code_styles``) and titles, sized like them: 442 px wide, text at
least 11 pt (14.7 px).  tests/test_browser.py measures them on screen with the
browser's own fonts, as it does every other plot.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from . import plots

WIDTH = 442  # px: two side by side fit the notebook column at 1366 px
_SMALL = 14.67  # px: 11 pt, plots.SMALLEST_PT
_LABEL = 16.0  # px: 12 pt, axis labels
_TITLE = 17.33  # px: 13 pt, titles
_EM = 0.62  # a character's width in em (DejaVu Sans runs 0.55 to 0.62)
_FONT = "'DejaVu Sans', 'Bitstream Vera Sans', Verdana, Arial, Helvetica, sans-serif"
_EDGE = "#333333"

# SVG hatch patterns like matplotlib's: // \\ xx -- || ++
_HATCH_LINES = {
    "//": ["M0,8 L8,0", "M-2,2 L2,-2", "M6,10 L10,6"],
    "\\\\": ["M0,0 L8,8", "M-2,6 L2,10", "M6,-2 L10,2"],
    "xx": ["M0,8 L8,0", "M0,0 L8,8"],
    "--": ["M0,4 L8,4"],
    "||": ["M4,0 L4,8"],
    "++": ["M0,4 L8,4", "M4,0 L4,8"],
}


def _text_width(text: str, size: float) -> float:
    return len(text) * _EM * size


def _nice_ticks(top: float) -> list[float]:
    """Round tick values from 0 up to ``top``: steps of 1, 2 or 5 times a power of ten."""
    top = max(top, 1)
    raw = top / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [step * i for i in range(int(top // step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:g}"


class _Svg:
    def __init__(self, height: float):
        self.height = height
        self.parts: list[str] = []
        self.hatches: set[str] = set()

    def text(self, x, y, words, size=_SMALL, anchor="start", weight="normal", colour="#000000"):
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:.2f}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{colour}">{html.escape(words)}</text>'
        )

    def rect(self, x, y, w, h, fill, hatch=""):
        self.parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}" '
            f'stroke="{_EDGE}" stroke-width="0.8"/>'
        )
        if hatch:
            self.hatches.add(hatch)
            self.parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                f'fill="url(#{_hatch_id(hatch)})" stroke="none"/>'
            )

    def line(self, x1, y1, x2, y2, width=1.0):
        self.parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="#000000" stroke-width="{width}"/>'
        )

    def render(self) -> str:
        defs = "".join(
            f'<pattern id="{_hatch_id(h)}" patternUnits="userSpaceOnUse" width="8" height="8">'
            + "".join(
                f'<path d="{d}" stroke="{_EDGE}" stroke-width="0.9"/>' for d in _HATCH_LINES[h]
            )
            + "</pattern>"
            for h in sorted(self.hatches)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{self.height:.0f}" '
            f'viewBox="0 0 {WIDTH} {self.height:.0f}" font-family="{_FONT}">'
            f'<rect width="100%" height="100%" fill="#ffffff"/><defs>{defs}</defs>'
            + "".join(self.parts)
            + "</svg>"
        )


def _hatch_id(hatch: str) -> str:
    return "hatch" + "".join(f"{ord(c):x}" for c in hatch)


def _bars(
    title: str,
    rows: list[tuple[str, list[tuple[float, str, str, str]]]],
    xlabel: str,
    *,
    row_height: float,
    value_labels: bool = False,
    legend: Sequence[tuple[str, str, str]] = (),
) -> str:
    """Horizontal (stacked) bars: rows of (name, [(value, colour, hatch, label in the bar)])."""
    left = max(_text_width(name, _SMALL) for name, _ in rows) + 14
    right = WIDTH - (42 if value_labels else 14)
    top = 34.0
    plot_h = row_height * len(rows)
    totals = [sum(v for v, *_ in segs) for _, segs in rows]
    ticks = _nice_ticks(max([1, *totals]) * (1.0 if value_labels else 1.02))
    xmax = ticks[-1] if ticks[-1] >= max([1, *totals]) else ticks[-1] + (ticks[1] - ticks[0])
    if xmax > ticks[-1]:
        ticks.append(xmax)
    scale = (right - left) / xmax
    # The legend flows in rows under the x axis label.
    legend_rows: list[list[tuple[str, str, str, float]]] = [[]]
    x = 0.0
    for label, colour, hatch in legend:
        w = 22 + _text_width(label, _SMALL) + 16
        if legend_rows[-1] and x + w > WIDTH - 16:
            legend_rows.append([])
            x = 0.0
        legend_rows[-1].append((label, colour, hatch, w))
        x += w
    legend_h = 22 * len(legend_rows) + 8 if legend else 0
    height = top + plot_h + 52 + legend_h
    svg = _Svg(height)
    svg.text(8, 22, title, size=_TITLE)
    for i, (name, segments) in enumerate(rows):
        y = top + i * row_height
        bar_y, bar_h = y + row_height * 0.15, row_height * 0.7
        svg.text(left - 8, y + row_height / 2 + _SMALL * 0.35, name, anchor="end")
        x = left
        for value, colour, hatch, inside in segments:
            if not value:
                continue
            w = value * scale
            svg.rect(x, bar_y, w, bar_h, colour, hatch)
            if inside and w >= _text_width(inside, _SMALL) + 8:
                svg.text(
                    x + w / 2,
                    y + row_height / 2 + _SMALL * 0.35,
                    inside,
                    anchor="middle",
                    weight="bold",
                )
            x += w
        if value_labels:
            svg.text(x + 4, y + row_height / 2 + _SMALL * 0.35, _fmt(totals[i]))
    axis_y = top + plot_h
    svg.line(left, top, left, axis_y)
    svg.line(left, axis_y, right, axis_y)
    for t in ticks:
        tx = left + t * scale
        svg.line(tx, axis_y, tx, axis_y + 4)
        svg.text(tx, axis_y + 6 + _SMALL, _fmt(t), anchor="middle")
    svg.text(
        (left + right) / 2, axis_y + 12 + _SMALL + _LABEL, xlabel, size=_LABEL, anchor="middle"
    )
    y = axis_y + 52 + 6
    for entries in legend_rows:
        row_w = sum(w for *_, w in entries) - 16
        x = (WIDTH - row_w) / 2
        for label, colour, hatch, w in entries:
            svg.rect(x, y, 18, 12, colour, hatch)
            svg.text(x + 22, y + 11, label)
            x += w
        y += 22
    return svg.render()


def outcome_svg(results) -> str:
    """What happened to each message: plots.outcome_bars as fast SVG."""
    counts = results.by_outcome()
    rows = [(name, [(n, plots.OUTCOME_COLOURS[name], "", "")]) for name, n in counts.items()]
    return _bars(
        "What happened to each message",
        rows,
        "trials (messages)",
        row_height=36,
        value_labels=True,
    )


def codes_svg(results) -> str:
    """Replies at each stage: plots.codes_by_stage as fast SVG."""
    table = results.by_stage_code()
    styles = plots.code_styles(table)
    widest = max([1, *(sum(per.values()) for per in table.values())])
    rows = [
        (
            stage,
            [
                (per.get(code, 0), colour, hatch, code if per.get(code, 0) >= 0.13 * widest else "")
                for code, (_label, _klass, colour, hatch) in styles.items()
            ],
        )
        for stage, per in table.items()
    ]
    legend = [(label, colour, hatch) for label, _klass, colour, hatch in styles.values()]
    return _bars(
        "Replies at each stage, every attempt", rows, "replies", row_height=26, legend=legend
    )
