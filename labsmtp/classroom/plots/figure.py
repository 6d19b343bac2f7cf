"""The figure every plot returns: sized for the notebook column, shown as SVG.

A notebook shows a figure as SVG at its natural size, ``width`` inches x 96 CSS
pixels, so it stays sharp and grows with the browser's zoom.  JupyterLab's
notebook column is 934 px wide at 1366x768 with the file browser open, so no
figure is wider than ``COLUMN_INCHES``; text is never smaller than
``SMALLEST_PT`` (11 pt = 14.7 px at natural size).
"""

from __future__ import annotations

import io
import re
import textwrap
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.figure import Figure

from ...errors import LabValueError

if TYPE_CHECKING:
    pass


PX_PER_INCH = 96  # CSS pixels per inch: how a browser shows an SVG's pt sizes
COLUMN_PX = 934  # JupyterLab 4.6's output column at 1366 px with the file browser open
COLUMN_INCHES = 9.2  # 883 px: the widest figure, with room to spare in that column
SMALLEST_PT = 11  # tick labels, legends, bar labels, arrows' text
_LABEL = 12  # axis labels
_TITLE = 13  # titles


def figure_svg(fig: Figure) -> str:
    """The figure as SVG text, its words kept as text (crisp, searchable, measurable)."""
    buf = io.StringIO()
    # Text stays text (fonttype none); a fixed hash salt keeps ids the same run to run.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "labsmtp"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


class LabFigure(Figure):
    """A Figure that shows itself in a notebook as SVG, with or without pyplot.

    The lab builds figures without pyplot (thread-safe, no global state), and
    the notebook's inline backend only draws pyplot's figures; so each figure
    renders itself when it is a cell's value.  SVG rather than PNG: a PNG is
    scaled to the column and stays small when the browser zooms in.
    """

    def _repr_svg_(self) -> str:
        return figure_svg(self)


def _no_inline_png() -> None:
    # If pyplot is ever imported in the kernel, its inline backend adds a PNG of
    # every Figure to the output as well; a LabFigure shows its SVG only.
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is in every notebook
        return
    ip = get_ipython()
    if ip is not None and hasattr(ip, "display_formatter"):
        ip.display_formatter.formatters["image/png"].for_type(LabFigure, lambda _fig: None)


_no_inline_png()


def _figure(size) -> Figure:
    if size[0] > COLUMN_INCHES + 1e-9:  # wider would be shrunk to the column, text with it
        size = (COLUMN_INCHES, size[1])
    return LabFigure(figsize=size, layout="constrained")


def _wrap(text: str, width_in: float, pt: float = SMALLEST_PT) -> str:
    """``text`` wrapped at spaces to fit ``width_in`` inches of ``pt``-point text."""
    chars = max(12, int(width_in * 72 / (0.62 * pt)))  # DejaVu Sans: 0.55-0.6 em per char
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False)) or text


def _wrap_code(text: str, width_in: float, pt: float = SMALLEST_PT) -> str:
    """Like ``_wrap``, but a long word (an address, a command line) breaks after . @ : <."""
    chars = max(8, int(width_in * 72 / (0.62 * pt)))
    pieces = [p for word in text.split(" ") for p in re.split(r"(?<=[.@:<])(?=.)", word) + [" "]]
    lines, line = [], ""
    for piece in pieces[:-1]:
        if len((line + piece).rstrip()) > chars and line.strip():
            lines.append(line.rstrip())
            line = piece.lstrip()
        else:
            line += piece
    lines.append(line.rstrip())
    return "\n".join(ln for ln in lines if ln) or text


def _title(ax, title: str, subtitle: str = "") -> None:
    """A title, and under it a smaller line saying what produced the picture.

    Both start at the figure's left edge when the axes have fixed margins (the
    fault lab panel: more room than above the axes alone), else at the axes'.
    """
    fig = ax.figure
    # Room left of the axes: the widest y tick label, the axis label, margins.
    labels = [t.get_text() for t in ax.get_yticklabels()]
    left = max(1.7, max(map(len, labels), default=0) * 0.62 * SMALLEST_PT / 72 + 0.9)
    x, width = 0.0, fig.get_figwidth() - left
    if fig.get_layout_engine() is None:
        pos = ax.get_position()
        x = (0.03 - pos.x0) / pos.width  # in axes coordinates: 3 % in from the figure's edge
        width = fig.get_figwidth() * 0.94
    pad = 6.0
    if subtitle:
        sub = _wrap(subtitle, width)
        ax.annotate(
            sub,
            xy=(x, 1),
            xycoords="axes fraction",
            xytext=(0, 6),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=SMALLEST_PT,
            color="#333333",
        )
        pad += 4 + 1.25 * SMALLEST_PT * (sub.count("\n") + 1)
    ax.set_title(_wrap(title, width, _TITLE), fontsize=_TITLE, loc="left", pad=pad, x=x)


def _axes(ax, size):
    """The Axes to draw on: the one given (a panel reuses its figure), or a new figure's."""
    if ax is not None:
        return ax.figure, ax
    fig = _figure(size)
    return fig, fig.add_subplot()


def save_figure(fig: Figure, path) -> str:
    """Save a figure as PNG or SVG (from the file name's ending) for handing out."""
    path = str(path)
    if not path.lower().endswith((".png", ".svg")):
        raise LabValueError(f"save figures as .png or .svg, not {path!r}")
    if path.lower().endswith(".svg"):
        with open(path, "w", encoding="utf-8") as out:
            out.write(figure_svg(fig))
    else:
        fig.savefig(path, dpi=150)
    return path
