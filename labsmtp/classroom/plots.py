"""Pictures of what happened: outcomes, reply codes, one session, the state table.

Every function returns a matplotlib ``Figure`` built without pyplot, so it
works under the Agg backend (tests, CI, the command line) and inside a
notebook without leaking open figures.  Colours come from ``style.py``: the
same colour for the same reply class in every picture (2xx, 3xx, 4xx, 5xx,
no reply), Okabe-Ito, colour-blind safe.

Sized for a projector.  A notebook shows a figure as SVG at its natural size,
``width`` inches x 96 CSS pixels, so it stays sharp and grows with the
browser's zoom.  JupyterLab's notebook column is 934 px wide at 1366x768 with
the file browser open, so no figure is wider than ``COLUMN_INCHES``; text is
never smaller than ``SMALLEST_PT`` (11 pt = 14.7 px at natural size; a figure
as wide as the column, shrunk into the narrower column at 150 % zoom, still
shows it at 12 screen pixels).  tests/test_plots.py checks sizes, overlaps and
clipping of every plot; tests/test_browser.py measures the text on screen.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections import Counter
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle

from ..errors import LabValueError
from ..lab.transcript import CLIENT, EVENT, SERVER
from ..protocol import states
from ..protocol.replies import reply_class
from ..protocol.states import Stage, State
from ..style import CLASS_COLOURS, CLIENT_COLOUR, INJECTED_COLOUR

if TYPE_CHECKING:
    from .compare import Comparison

# An outcome takes the colour of the reply class that causes it.
OUTCOME_COLOURS = {
    "delivered": CLASS_COLOURS["2xx"],
    "deferred": CLASS_COLOURS["4xx"],
    "bounced": CLASS_COLOURS["5xx"],
    "connection lost": CLASS_COLOURS["none"],
}
# Tell codes of one class apart.  Line hatches only: a dotted hatch is a path of
# hundreds of little circles, which made a panel image seven times larger.
_HATCHES = ("", "//", "\\\\", "xx", "--", "||", "++")

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


def _subtitle(results) -> str:
    faults = ", ".join(results.faults) or "no faults"
    return (
        f"{len(results.trials)} trials, retry {results.policy.name}, {faults}, seed {results.seed}"
    )


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


def outcome_bars(results, ax=None, size=(6.5, 3.4), subtitle: bool = True) -> Figure:
    """Bars: how many trials were delivered, deferred, bounced, or lost.

    ``ax``: draw there (the fault lab panel reuses its figures); ``subtitle``:
    the line saying which run this is (the panel says it in its message).
    """
    counts = results.by_outcome()
    fig, ax = _axes(ax, size)
    names = list(counts)
    # Horizontal bars: the outcome names sit on the left, never side by side.
    rows = range(len(names))
    bars = ax.barh(
        rows,
        [counts[n] for n in names],
        color=[OUTCOME_COLOURS[n] for n in names],
        edgecolor="black",
    )
    ax.bar_label(bars, fontsize=SMALLEST_PT, padding=3)
    ax.set_yticks(rows, names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # delivered at the top, in the order of a message's fate
    _title(ax, "What happened to each message", _subtitle(results) if subtitle else "")
    ax.set_xlabel("trials (messages)", fontsize=_LABEL)
    ax.tick_params(labelsize=SMALLEST_PT)
    ax.set_xlim(0, max(1, max(counts.values())) * 1.18)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def code_styles(table: dict[str, dict[str, int]]) -> dict[str, tuple[str, str, str, str]]:
    """For each reply code in a stage table: (legend label, reply class, colour, hatch).

    Codes in order (``none`` last); a code takes its class's colour, and codes of
    one class are told apart by hatching, the commonest code plain (so most
    labels sit on plain colour).  The panel's fast SVG bars use the same styles.
    """
    codes = sorted({c for per in table.values() for c in per}, key=lambda c: (c == "none", c))
    total = Counter({c: sum(per.get(c, 0) for per in table.values()) for c in codes})
    hatches: dict[str, str] = {}
    seen_class: Counter[str] = Counter()
    for code in sorted(codes, key=lambda c: -total[c]):
        klass = reply_class(int(code)) if code != "none" else "none"
        hatches[code] = _HATCHES[seen_class[klass] % len(_HATCHES)]
        seen_class[klass] += 1
    out = {}
    for code in codes:
        klass = reply_class(int(code)) if code != "none" else "none"
        label = f"{code} ({klass})" if code != "none" else "no reply"
        out[code] = (label, klass, CLASS_COLOURS[klass], hatches[code])
    return out


def codes_by_stage(results, ax=None, size=(7.2, 4.4), subtitle: bool = True) -> Figure:
    """Stacked bars: every reply code seen at each stage, coloured by reply class."""
    table = results.by_stage_code()
    stages = list(table)
    styles = code_styles(table)
    codes = list(styles)
    fig, ax = _axes(ax, size)
    lefts = [0] * len(stages)
    widest = max([1, *(sum(per.values()) for per in table.values())])
    for code, (label, _klass, colour, hatch) in styles.items():
        widths = [table[s].get(code, 0) for s in stages]
        ax.barh(
            range(len(stages)),
            widths,
            left=lefts,
            color=colour,
            hatch=hatch,
            edgecolor="#333333",
            linewidth=0.8,
            label=label,
        )
        # A code's name fits in its segment only when the segment is wide enough;
        # the legend names the rest.  (No box behind it: a text box costs more to
        # draw than all the bars, and the panel redraws on every slider move.)
        for y, (left, w) in enumerate(zip(lefts, widths, strict=True)):
            if w >= 0.13 * widest:
                ax.text(
                    left + w / 2,
                    y,
                    code,
                    ha="center",
                    va="center",
                    fontsize=SMALLEST_PT,
                    weight="bold",
                )
        lefts = [a + w for a, w in zip(lefts, widths, strict=False)]
    ax.set_yticks(range(len(stages)), stages)
    ax.set_ylim(len(stages) - 0.5, -0.5)  # the dialogue reads top to bottom
    ax.set_xlim(0, widest * 1.03)
    _title(ax, "Replies at each stage, every attempt", _subtitle(results) if subtitle else "")
    ax.set_xlabel("replies", fontsize=_LABEL)
    ax.tick_params(labelsize=SMALLEST_PT)
    ax.spines[["top", "right"]].set_visible(False)
    if codes:
        # Below the plot: a legend beside it would squeeze the bars, or be cut off.
        fig.legend(
            *ax.get_legend_handles_labels(),
            fontsize=SMALLEST_PT,
            loc="outside lower center" if fig.get_layout_engine() else "lower center",
            ncols=min(len(codes), 4 if fig.get_figwidth() > 5.5 else 3),
            frameon=False,
            columnspacing=1.2,
            handlelength=1.5,
        )
    return fig


def latency_histogram(results, bins: int = 30, ax=None, size=(7.2, 4.0)) -> Figure:
    """Histogram of how long each attempt's dialogue took, stacked by its outcome."""
    fig, ax = _axes(ax, size)
    groups, colours, labels = [], [], []
    for outcome, colour in OUTCOME_COLOURS.items():
        values = [
            a.latency * 1000 for t in results.trials for a in t.attempts if a.outcome == outcome
        ]
        if values:
            groups.append(values)
            colours.append(colour)
            labels.append(outcome)
    if groups:
        ax.hist(groups, bins=bins, stacked=True, color=colours, label=labels, edgecolor="black")
        ax.legend(title="attempt outcome", fontsize=SMALLEST_PT, title_fontsize=SMALLEST_PT)
    _title(ax, "How long each dialogue took", _subtitle(results))
    ax.set_xlabel("dialogue time, connect to QUIT (ms)", fontsize=_LABEL)
    ax.set_ylabel("attempts", fontsize=_LABEL)
    ax.tick_params(labelsize=SMALLEST_PT)
    return fig


def _pattern(trial) -> tuple:
    # Simulated waits are minutes long and real dialogues milliseconds: trials
    # whose attempts start in the same second and end the same way share a row.
    return tuple((round(a.started), a.outcome) for a in trial.attempts)


def retry_timeline(results, max_rows: int = 12, ax=None) -> Figure:
    """When each attempt happened (simulated time), one row per pattern of attempts.

    Trials whose attempts came at the same times with the same outcomes share a
    row, labelled with how many trials followed it; the most common come first.
    """
    patterns = Counter(_pattern(t) for t in results.trials)
    rows = sorted(patterns.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    shown = rows[:max_rows]
    fig, ax = _axes(ax, (7.6, 0.42 * len(shown) + 2.3))
    seen = set()
    for row, (pattern, _count) in enumerate(shown):
        xs = [start for start, _ in pattern]
        ax.plot(xs, [row] * len(xs), color="#BBBBBB", zorder=1)
        for start, outcome in pattern:
            ax.scatter(
                start,
                row,
                s=110,
                zorder=2,
                color=OUTCOME_COLOURS[outcome],
                edgecolor="black",
                label=outcome if outcome not in seen else None,
            )
            seen.add(outcome)
    labels = [f"{count} trial{'s' if count != 1 else ''}" for _, count in shown]
    ax.set_yticks(range(len(shown)), labels, fontsize=SMALLEST_PT)
    ax.set_ylim(len(shown) - 0.5, -0.5)
    ax.margins(x=0.08)
    if seen:
        fig.legend(
            title="each dot: one attempt, ending",
            title_fontsize=SMALLEST_PT,
            fontsize=SMALLEST_PT,
            loc="outside lower center",
            ncols=len(seen),
            frameon=False,
        )
    left = len(rows) - len(shown)
    more = (
        f"; {sum(c for _, c in rows[max_rows:])} more trials in {left} rarer patterns"
        if left
        else ""
    )
    _title(
        ax,
        f"When each attempt happened: {len(results.trials)} trials, {len(rows)} "
        f"pattern{'s' if len(rows) != 1 else ''}{more}",
        _subtitle(results),
    )
    ax.set_xlabel("simulated seconds since the first attempt (retry waits)", fontsize=_LABEL)
    ax.tick_params(axis="x", labelsize=SMALLEST_PT)
    ax.grid(axis="x", color="#EEEEEE")
    ax.set_axisbelow(True)
    return fig


# --- one session ---------------------------------------------------------------


def _session_lines(source, session: int | None):
    """Accept a LabServer, a Transcript, or a list of transcript lines."""
    if hasattr(source, "transcript"):
        source = source.transcript
    if hasattr(source, "session"):
        return list(source.session(session))
    lines = list(source)
    if session is not None:
        lines = [ln for ln in lines if ln.session == session]
    return lines


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


_LADDER_WIDTH = 8.6  # inches: 826 px
_LADDER_CHARS = 70  # monospace characters that fit between the lanes at SMALLEST_PT


def _ladder_rows(lines) -> list[tuple[str, str, str, str | None]]:
    """One row per arrow or note: (direction, label, colour, injecting rule); message
    text is folded into one row per run of lines."""
    rows: list[tuple[str, str, str, str | None]] = []
    text_lines = 0
    for ln in lines:
        if ln.direction == CLIENT and ln.note == "message text":
            text_lines += 1
            continue
        if text_lines:
            rows.append((CLIENT, f"(message text, {text_lines} lines)", CLIENT_COLOUR, None))
            text_lines = 0
        if ln.direction == CLIENT:
            rows.append((CLIENT, ln.text or "(empty line)", CLIENT_COLOUR, None))
        elif ln.direction == SERVER:
            parts = ln.text.splitlines() or [""]
            label = parts[0] + (f"  (+{len(parts) - 1} lines)" if len(parts) > 1 else "")
            klass = ln.reply.klass if ln.reply is not None else "none"
            rows.append((SERVER, label, CLASS_COLOURS[klass], ln.injected))
        elif ln.direction == EVENT:
            rows.append((EVENT, ln.note, "#555555", None))
    if text_lines:
        rows.append((CLIENT, f"(message text, {text_lines} lines)", CLIENT_COLOUR, None))
    return rows


def ladder(source, session: int | None = None, max_rows: int = 40) -> Figure:
    """Ladder diagram of one session: client and server lanes, one arrow per line.

    ``source`` is a LabServer, its Transcript, or a list of lines; ``session``
    an id (default: the newest).  Replies are coloured by class; injected
    replies are drawn dashed in the injected colour and name their rule.
    """
    lines = _session_lines(source, session)
    if not lines:
        raise LabValueError("no session to draw yet: run a dialogue first (server.client() ...)")
    rows = _ladder_rows(lines)
    cut = len(rows) > max_rows
    rows = rows[:max_rows]
    # An injected reply needs two lines of text above its arrow: one and a half rows.
    heights = [1.5 if r[3] else 1.0 for r in rows]
    ys, y = [], 0.0
    for h in heights:
        y += h
        ys.append(y - 0.5 if h == 1.0 else y - 0.25)
    total = y
    fig = _figure((_LADDER_WIDTH, 0.44 * total + 1.3))
    ax = fig.add_subplot()
    ax.set_xlim(-0.06, 1.06)
    ax.set_ylim(total + 0.2, -0.9)
    for x, name in ((0, "client"), (1, "server")):
        ax.plot([x, x], [-0.25, total + 0.1], color="black", lw=2)
        ax.text(x, -0.35, name, ha="center", va="bottom", fontsize=_LABEL, weight="bold")
    for y, (kind, label, colour, injected) in zip(ys, rows, strict=True):
        if kind == EVENT:
            ax.text(
                0.5,
                y,
                _cut(label, 80),
                ha="center",
                va="center",
                fontsize=SMALLEST_PT,
                style="italic",
                color=colour,
            )
            continue
        start, end = (0, 1) if kind == CLIENT else (1, 0)
        edge = INJECTED_COLOUR if injected else colour
        ax.add_patch(
            FancyArrowPatch(
                (start, y + 0.18),
                (end, y + 0.18),
                arrowstyle="-|>",
                mutation_scale=16,
                color=edge,
                lw=3 if injected else 2,
                linestyle="--" if injected else "-",
            )
        )
        short = _cut(label, _LADDER_CHARS)
        if injected:
            short = f"[injected by {_cut(injected, _LADDER_CHARS - 13)}]\n{short}"
        ax.text(
            0.5,
            y + 0.06,
            short,
            ha="center",
            va="bottom",
            fontsize=SMALLEST_PT,
            family="monospace",
            color="black",
            linespacing=1.15,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )
    ax.axis("off")
    sid = lines[0].session
    ax.set_title(
        f"Session {sid}: who said what, top to bottom"
        + (f" (first {max_rows} rows)" if cut else ""),
        fontsize=_TITLE,
        loc="left",
    )
    return fig


# --- the state table -----------------------------------------------------------

_POS = {
    State.CONNECTED: (0.0, 0.0),
    State.GREETED: (2.5, 0.0),
    State.MAIL: (5.0, 0.0),
    State.RCPT: (7.5, 0.0),
    State.DATA: (10.0, 0.0),
    State.CHUNKING: (10.0, -2.0),
    State.CLOSED: (5.0, -3.6),
}
_HIGHLIGHT = "#0072B2"


def state_diagram(path=None, *, chunking: bool | None = None) -> Figure:
    """The SMTP states and the commands that move between them; ``path`` highlights a session.

    Drawn from the state table itself (``states.TRANSITIONS``), so picture and
    server cannot disagree.  ``path`` is a list of state names
    (``SessionInfo.states``) or a SessionInfo.  ``chunking`` adds BDAT (RFC 3030)
    and its CHUNKING state; by default they are drawn only when ``path`` went there.
    """
    if path is not None and hasattr(path, "states"):
        path = path.states
    path = [State(s) for s in path] if path else []
    if chunking is None:
        chunking = State.CHUNKING in path
    walked = {(a, b) for a, b in zip(path, path[1:], strict=False)}
    grouped: dict[tuple[State, State], list[str]] = {}
    for s, c, t in states.edges(chunking=chunking):
        grouped.setdefault((s, t), []).append(
            "final ." if c is states.Command.END_OF_DATA else c.value
        )
    fig = _figure((COLUMN_INCHES, 5.4))
    ax = fig.add_subplot()
    for (s, t), cmds in grouped.items():
        hot = (s, t) in walked
        colour = _HIGHLIGHT if hot else "#444444"
        (x1, y1), (x2, y2) = _POS[s], _POS[t]
        if s is t:  # a self-loop: commands that keep the state (§4.1.4)
            ax.add_patch(
                FancyArrowPatch(
                    (x1 - 0.3, y1 + 0.3),
                    (x1 + 0.3, y1 + 0.3),
                    connectionstyle="arc3,rad=-1.4",
                    arrowstyle="-|>",
                    mutation_scale=14,
                    color=colour,
                    lw=3 if hot else 1.2,
                    gid=f"edge:{s.value}->{t.value}",
                )
            )
            rows = [" ".join(cmds[i : i + 3]) for i in range(0, len(cmds), 3)]
            ax.text(
                x1,
                y1 + 0.95,
                "\n".join(rows),
                ha="center",
                va="bottom",
                fontsize=SMALLEST_PT,
                color=colour,
                linespacing=1.1,
            )
            continue
        label = "/".join(cmds)
        back = x2 < x1 and t is not State.CLOSED
        # Back edges bulge below the row (arc3: negative rad, right to left), longer
        # ones deeper, so their labels sit at different heights; QUIT's edges are
        # labelled nearer to CLOSED, below them all.
        rad = -(0.15 + 0.1 * (x1 - x2) / 2.5) if back else 0.0
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=16,
                shrinkA=30,
                shrinkB=30,
                color=colour,
                lw=3.5 if hot else 1.5,
                gid=f"edge:{s.value}->{t.value}",
            )
        )
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        if back:
            my += rad * abs(x2 - x1) / 2  # the lowest point of the quadratic arc
        elif t is State.CLOSED:
            mx, my = x1 + (x2 - x1) * 0.62, y1 + (y2 - y1) * 0.62
        else:
            my += 0.3
        ax.text(
            mx,
            my,
            label,
            ha="center",
            va="center",
            fontsize=SMALLEST_PT,
            color=colour,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.2, "alpha": 0.9},
        )
    for st, (x, y) in _POS.items():
        if st is State.CHUNKING and not chunking:
            continue
        visited = st in path
        ax.text(
            x,
            y,
            st.value,
            ha="center",
            va="center",
            fontsize=_LABEL,
            zorder=5,
            weight="bold" if visited else "normal",
            color="white" if visited else "black",
            bbox={
                "boxstyle": "round,pad=0.4",
                "facecolor": _HIGHLIGHT if visited else "#EEEEEE",
                "edgecolor": "black",
            },
            gid=f"state:{st.value}",
        )
    ax.set_xlim(-0.8, 10.8)
    ax.set_ylim(-4.0, 2.3)
    ax.axis("off")
    title = "Which command leads where: the states of an SMTP dialogue (RFC 5321 §4.1.4)"
    ax.set_title(_wrap(title, COLUMN_INCHES, _TITLE), fontsize=_TITLE, loc="left")
    if path:
        ax.text(
            0.0,
            -0.02,
            _wrap("Highlighted, this session: " + " → ".join(s.value for s in path), COLUMN_INCHES),
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=SMALLEST_PT,
            color=_HIGHLIGHT,
        )
    return fig


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


def legal_replies(commands=None) -> Figure:
    """The usual replies to each command, as a coloured grid (RFC 5321 §4.3.2 and extensions)."""
    from ..protocol.replies import ANY_COMMAND, EXTENSION_REPLIES, LEGAL_REPLIES, legal_codes

    commands = [
        stage.answers for stage in (Stage.of(c) for c in commands or LEGAL_REPLIES) if stage
    ]
    codes = sorted({c for cmd in commands for c in legal_codes(cmd)})
    pitch = 0.26  # inches per code column: a rotated 11 pt label needs 0.2
    fig = _figure((min(COLUMN_INCHES, pitch * len(codes) + 1.6), 0.3 * len(commands) + 2.6))
    ax = fig.add_subplot()
    for row, cmd in enumerate(commands):
        allowed = legal_codes(cmd)
        for col, code in enumerate(codes):
            if code in allowed:
                colour = CLASS_COLOURS[reply_class(code)]
                extension = code in EXTENSION_REPLIES.get(cmd, {})
                ax.add_patch(
                    Rectangle(
                        (col - 0.45, row - 0.4),
                        0.9,
                        0.8,
                        facecolor=colour,
                        edgecolor="black",
                        hatch="//" if code in ANY_COMMAND else ("xx" if extension else ""),
                        gid=f"legal:{cmd}:{code}",
                    )
                )
    ax.set_xticks(range(len(codes)), [str(c) for c in codes], rotation=90, fontsize=SMALLEST_PT)
    ax.set_yticks(
        range(len(commands)),
        ["final ." if c == "." else c for c in commands],
        fontsize=SMALLEST_PT,
    )
    ax.tick_params(axis="x", pad=2)
    ax.set_xlim(-0.6, len(codes) - 0.4)
    ax.set_ylim(len(commands) - 0.4, -0.6)
    width = fig.get_figwidth() - 1.7  # the label is centred under the axes
    ax.set_xlabel(
        _wrap(
            "reply code; hatched //: may answer any command (421, 500, 501); "
            "hatched xx: 530, log in first (RFC 4954 §6)",
            width,
        ),
        fontsize=SMALLEST_PT,
    )
    ax.set_ylabel("command", fontsize=_LABEL)
    _title(
        ax,
        "The usual replies to each command (RFC 5321 §4.3.2)",
        "STARTTLS: RFC 3207 §4; AUTH: RFC 4954 §6. Servers may send others.",
    )
    ax.grid(axis="x", color="#EEEEEE")
    ax.set_axisbelow(True)
    return fig


def plot_comparison(table: Comparison) -> Figure:
    """The comparison table as a grid: rows are personas, columns are steps; colour = reply class, text = codes."""
    from .compare import Comparison, row_label

    if not isinstance(table, Comparison):
        raise LabValueError(
            "plot_comparison() wants the table that compare() or compare_steps() returns"
        )
    n_rows, n_cols = len(table.personas), len(table.steps)
    label_in = 1.5  # the persona names on the left
    col_in = min(1.7, (COLUMN_INCHES - label_in - 0.3) / max(1, n_cols))
    fig = _figure((label_in + col_in * n_cols + 0.3, 0.62 * n_rows + 2.7))
    ax = fig.add_subplot()
    for r, persona in enumerate(table.personas):
        for c, cell in enumerate(table.cells[persona]):
            ax.add_patch(
                Rectangle(
                    (c, r),
                    1,
                    1,
                    facecolor=CLASS_COLOURS[cell.klass],
                    edgecolor="white",
                    linewidth=3,
                )
            )
            text = cell.short.replace(" ", "\n", 1) if cell.enhanced else cell.short
            ax.text(
                c + 0.5,
                r + 0.5,
                text,
                ha="center",
                va="center",
                fontsize=SMALLEST_PT,
                color="black",
                fontweight="bold",
                linespacing=1.1,
            )
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)
    steps = [_wrap_code(s, col_in - 0.1) for s in table.steps]
    ax.set_xticks([c + 0.5 for c in range(n_cols)], steps, fontsize=SMALLEST_PT)
    ax.set_yticks(
        [r + 0.5 for r in range(n_rows)],
        [row_label(p) for p in table.personas],
        fontsize=SMALLEST_PT,
    )
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("dialogue step (the client's command)", fontsize=_LABEL)
    ax.set_ylabel("persona (server software)", fontsize=_LABEL)
    ax.set_title(
        _wrap(
            "Same dialogue, different servers: reply code and enhanced code",
            fig.get_figwidth(),
            _TITLE,
        ),
        fontsize=_TITLE,
        loc="left",
    )
    legend = [
        Patch(facecolor=CLASS_COLOURS[k], label=label)
        for k, label in (
            ("2xx", "2xx done"),
            ("3xx", "3xx go on"),
            ("4xx", "4xx try later"),
            ("5xx", "5xx refused"),
            ("none", "no reply"),
        )
    ]
    fig.legend(
        handles=legend,
        loc="outside lower center",
        ncols=5 if fig.get_figwidth() >= 7.5 else 3,
        fontsize=SMALLEST_PT,
        frameon=False,
    )
    return fig


# --- how mail found its server (lab.mta) ----------------------------------------

_ATTEMPT_MARKERS = {"no connection": "X", "not tried": "s"}


def mx_attempts(delivery, ax=None) -> Figure:
    """Each try of an MTA-like send (``LabNet.send``) by MX host along simulated time.

    One row per host, in the order first tried; each marker is one attempt,
    coloured by the class of the reply that decided it (grey: no reply) and
    labelled with its code.  The bounce, if the MTA sent one, is drawn too.
    """
    if not hasattr(delivery, "attempts") or not hasattr(delivery, "bounces"):
        raise LabValueError("mx_attempts() draws what LabNet.send() or LabMta.send() returns")
    points = []  # (row label, x minutes, klass, text, marker)
    for d, prefix in [(delivery, "")] + [(b, "bounce to ") for b in delivery.bounces]:
        offset = d.started - delivery.started
        for a in d.attempts:
            klass = reply_class(a.code) if a.reply is not None else "none"
            if a.outcome == "not tried":
                # No connection at all (null MX, no such domain): coloured by its status.
                status = a.note.split(" ", 1)[0]
                label, text = f"{prefix}{a.domain} (not tried)", f"status {status}"
                klass = f"{status[0]}xx" if status[:1] in ("4", "5") else "none"
            else:
                pref = "implicit MX" if a.preference is None else f"MX {a.preference}"
                label = f"{prefix}{a.host} ({pref})"
                text = str(a.code) if a.code is not None else "no answer"
            marker = _ATTEMPT_MARKERS.get(a.outcome, "o")
            points.append((label, (offset + a.at) / 60, klass, text, marker))
    rows = list(dict.fromkeys(p[0] for p in points))
    fig, ax = _axes(ax, (8.4, max(3.4, 0.62 * len(rows) + 2.6)))
    seen = set()
    for label, x, klass, text, marker in points:
        y = rows.index(label)
        ax.scatter(
            x,
            y,
            s=160,
            marker=marker,
            color=CLASS_COLOURS[klass],
            edgecolor="black",
            zorder=3,
            label=klass if klass not in seen else None,
        )
        seen.add(klass)
        ax.annotate(
            text,
            (x, y),
            xytext=(0, 11),
            textcoords="offset points",
            ha="center",
            fontsize=SMALLEST_PT,
        )
    ax.set_yticks(range(len(rows)), rows, fontsize=SMALLEST_PT)
    ax.set_ylim(len(rows) - 0.4, -0.7)
    xmax = max([p[1] for p in points] + [1])
    ax.set_xlim(-0.05 * xmax - 0.5, xmax * 1.08 + 0.5)
    ax.grid(axis="x", color="#DDDDDD")
    order = ["2xx", "3xx", "4xx", "5xx", "none"]
    handles, labels = ax.get_legend_handles_labels()
    pairs = sorted(zip(labels, handles, strict=False), key=lambda p: order.index(p[0]))
    # Below the plot, as in every other plot: beside it, it squeezes the rows or is cut off.
    fig.legend(
        [h for _, h in pairs],
        [lab for lab, _ in pairs],
        title="reply class of each attempt",
        title_fontsize=SMALLEST_PT,
        fontsize=SMALLEST_PT,
        loc="outside lower center",
        ncols=len(pairs),
        frameon=False,
    )
    sender = f"<{delivery.sender}>" if delivery.sender else "<>"
    rcpts = delivery.recipients
    to = ", ".join(rcpts) if len(rcpts) <= 2 else f"{len(rcpts)} recipients"
    _title(
        ax,
        "Where the MTA tried to deliver, and when",
        f"from {sender} to {to}; EHLO {delivery.helo}: routing ignores it",
    )
    ax.set_xlabel("simulated time since the MTA got the message (min)", fontsize=_LABEL)
    ax.set_ylabel("host tried (MX preference)", fontsize=_LABEL)
    ax.tick_params(axis="x", labelsize=SMALLEST_PT)
    return fig
