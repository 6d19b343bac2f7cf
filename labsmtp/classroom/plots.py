"""Pictures of what happened: outcomes, reply codes, one session, the state table.

Every function returns a matplotlib ``Figure`` built without pyplot, so it
works under the Agg backend (tests, CI, the command line) and inside a
notebook (a returned Figure displays itself) without leaking open figures.
Colours come from ``style.py``: the same colour for the same reply class in
every picture (2xx, 3xx, 4xx, 5xx, no reply), Okabe-Ito, colour-blind safe.
Font sizes are chosen for a workshop projector.
"""

from __future__ import annotations

import io
from collections import Counter
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from ..errors import LabValueError
from ..lab.transcript import CLIENT, EVENT, SERVER
from ..protocol import states
from ..protocol.replies import reply_class
from ..protocol.states import State
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
_HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "++")  # tell codes of one class apart
_FONT = 13


class LabFigure(Figure):
    """A Figure that shows itself in a notebook as a PNG, with or without pyplot.

    The lab builds figures without pyplot (thread-safe, no global state), and
    the notebook's inline backend only draws pyplot's figures; so each figure
    renders itself when it is a cell's value.
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _figure(size=(9, 5)) -> Figure:
    fig = LabFigure(figsize=size, layout="constrained")
    return fig


def _subtitle(results) -> str:
    faults = ", ".join(results.faults) or "no faults"
    return f"{len(results.trials)} trials, retry policy {results.policy.name}, {faults}, seed {results.seed}"


def _axes(ax, size=(9, 5)):
    """The Axes to draw on: the one given (a panel reuses its figure), or a new figure's."""
    if ax is not None:
        return ax.figure, ax
    fig = _figure(size)
    return fig, fig.add_subplot()


def outcome_bars(results, ax=None) -> Figure:
    """Bars: how many trials were delivered, deferred, bounced, or lost."""
    counts = results.by_outcome()
    fig, ax = _axes(ax)
    names = list(counts)
    bars = ax.bar(
        names,
        [counts[n] for n in names],
        color=[OUTCOME_COLOURS[n] for n in names],
        edgecolor="black",
    )
    ax.bar_label(bars, fontsize=_FONT)
    ax.set_title("What happened to each message\n" + _subtitle(results), fontsize=_FONT + 1)
    ax.set_xlabel("final outcome", fontsize=_FONT)
    ax.set_ylabel("trials (messages)", fontsize=_FONT)
    ax.tick_params(labelsize=_FONT)
    ax.set_ylim(0, max(1, max(counts.values())) * 1.15)
    return fig


def codes_by_stage(results, ax=None) -> Figure:
    """Stacked bars: every reply code seen at each stage, coloured by reply class."""
    table = results.by_stage_code()
    stages = list(table)
    codes = sorted({c for per in table.values() for c in per}, key=lambda c: (c == "none", c))
    fig, ax = _axes(ax, (10, 5.5))
    bottoms = [0] * len(stages)
    seen_class: Counter = Counter()
    for code in codes:
        klass = reply_class(int(code)) if code != "none" else "none"
        hatch = _HATCHES[seen_class[klass] % len(_HATCHES)]
        seen_class[klass] += 1
        heights = [table[s].get(code, 0) for s in stages]
        bars = ax.bar(
            stages,
            heights,
            bottom=bottoms,
            color=CLASS_COLOURS[klass],
            hatch=hatch,
            edgecolor="black",
            label=f"{code} ({klass})",
        )
        ax.bar_label(
            bars,
            labels=[code if h else "" for h in heights],
            label_type="center",
            fontsize=_FONT - 2,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=False)]
    ax.set_ylim(0, max([1, *bottoms]) * 1.05)
    ax.set_title("Replies at each stage, every attempt\n" + _subtitle(results), fontsize=_FONT + 1)
    ax.set_xlabel("stage of the dialogue", fontsize=_FONT)
    ax.set_ylabel("replies", fontsize=_FONT)
    ax.tick_params(labelsize=_FONT)
    ax.legend(title="reply code", fontsize=_FONT - 2, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def latency_histogram(results, bins: int = 30, ax=None) -> Figure:
    """Histogram of how long each attempt's dialogue took, stacked by its outcome."""
    fig, ax = _axes(ax)
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
        ax.legend(title="attempt outcome", fontsize=_FONT - 2)
    ax.set_title("How long each dialogue took\n" + _subtitle(results), fontsize=_FONT + 1)
    ax.set_xlabel("dialogue time, connect to QUIT (ms, real)", fontsize=_FONT)
    ax.set_ylabel("attempts", fontsize=_FONT)
    ax.tick_params(labelsize=_FONT)
    return fig


def retry_timeline(results, max_trials: int = 25, retried_first: bool = True, ax=None) -> Figure:
    """Each trial's attempts along simulated time, coloured by how each attempt ended.

    ``retried_first``: show the trials that needed more than one attempt first
    (they are the interesting ones), then the rest, up to ``max_trials``.
    """
    trials = list(results.trials)
    if retried_first:
        trials = [t for t in trials if len(t.attempts) > 1] + [
            t for t in trials if len(t.attempts) == 1
        ]
    trials = trials[:max_trials]
    fig, ax = _axes(ax, (10, max(3.5, 0.3 * len(trials) + 1.5)))
    for row, t in enumerate(trials):
        xs = [a.started for a in t.attempts]
        ax.plot(xs, [row] * len(xs), color="#BBBBBB", zorder=1)
        for a in t.attempts:
            ax.scatter(
                a.started,
                row,
                s=90,
                zorder=2,
                color=OUTCOME_COLOURS[a.outcome],
                edgecolor="black",
                label=a.outcome,
            )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    if unique:
        ax.legend(
            unique.values(),
            unique.keys(),
            title="attempt outcome",
            fontsize=_FONT - 2,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
        )
    ax.set_yticks(range(len(trials)), [f"#{t.index}" for t in trials], fontsize=_FONT - 3)
    ax.invert_yaxis()
    ax.set_title(
        f"Retries over time ({len(trials)} trials"
        + (", retried first)" if retried_first else ")")
        + "\n"
        + _subtitle(results),
        fontsize=_FONT + 1,
    )
    ax.set_xlabel("simulated time since the first attempt (s)", fontsize=_FONT)
    ax.set_ylabel("trial", fontsize=_FONT)
    ax.tick_params(axis="x", labelsize=_FONT)
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


def ladder(source, session: int | None = None, max_rows: int = 40) -> Figure:
    """Ladder diagram of one session: client and server lanes, one arrow per line.

    ``source`` is a LabServer, its Transcript, or a list of lines; ``session``
    an id (default: the newest).  Replies are coloured by class; injected
    replies are drawn dashed in the injected colour and name their rule.
    """
    lines = _session_lines(source, session)
    if not lines:
        raise LabValueError("no session to draw yet: run a dialogue first (server.client() ...)")
    rows = []  # (kind, label, colour, injected)
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
            rows.append((EVENT, ln.note, "#666666", None))
    if text_lines:
        rows.append((CLIENT, f"(message text, {text_lines} lines)", CLIENT_COLOUR, None))
    cut = len(rows) > max_rows
    rows = rows[:max_rows]
    fig = _figure((10, 0.42 * len(rows) + 1.8))
    ax = fig.add_subplot()
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(len(rows) + 0.5, -0.8)
    for x, name in ((0, "client"), (1, "server")):
        ax.plot([x, x], [-0.3, len(rows) + 0.3], color="black", lw=2)
        ax.text(x, -0.55, name, ha="center", va="bottom", fontsize=_FONT, weight="bold")
    for y, (kind, label, colour, injected) in enumerate(rows):
        short = label if len(label) <= 60 else label[:57] + "..."
        if kind == EVENT:
            ax.text(
                0.5,
                y,
                short,
                ha="center",
                va="center",
                fontsize=_FONT - 3,
                style="italic",
                color=colour,
            )
            continue
        start, end = (0, 1) if kind == CLIENT else (1, 0)
        edge = INJECTED_COLOUR if injected else colour
        ax.add_patch(
            FancyArrowPatch(
                (start, y),
                (end, y),
                arrowstyle="-|>",
                mutation_scale=16,
                color=edge,
                lw=3 if injected else 2,
                linestyle="--" if injected else "-",
            )
        )
        if injected:
            short = f"[injected by {injected}]\n{short}"
        ax.text(
            0.5,
            y - 0.12,
            short,
            ha="center",
            va="bottom",
            fontsize=_FONT - 3,
            family="monospace",
            color="black",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )
    ax.axis("off")
    sid = lines[0].session
    ax.set_title(
        f"Session {sid}: who said what, top to bottom"
        + (f" (first {max_rows} rows)" if cut else ""),
        fontsize=_FONT + 1,
    )
    return fig


# --- the state table -----------------------------------------------------------

_POS = {
    State.CONNECTED: (0.0, 0.0),
    State.GREETED: (2.2, 0.0),
    State.MAIL: (4.4, 0.0),
    State.RCPT: (6.6, 0.0),
    State.DATA: (8.8, 0.0),
    State.CLOSED: (4.4, -3.0),
}
_HIGHLIGHT = "#0072B2"


def state_diagram(path=None) -> Figure:
    """The SMTP state table drawn from ``states.TRANSITIONS``; ``path`` highlights a session.

    ``path`` is a list of state names (``SessionInfo.states``) or a SessionInfo.
    """
    if path is not None and hasattr(path, "states"):
        path = path.states
    path = [State(s) for s in path] if path else []
    walked = {(a, b) for a, b in zip(path, path[1:], strict=False)}
    grouped: dict[tuple[State, State], list[str]] = {}
    for s, c, t in states.edges():
        grouped.setdefault((s, t), []).append(
            "final ." if c is states.Command.END_OF_DATA else c.value
        )
    fig = _figure((13, 6))
    ax = fig.add_subplot()
    for (s, t), cmds in grouped.items():
        label = "/".join(cmds)
        hot = (s, t) in walked
        colour = _HIGHLIGHT if hot else "#555555"
        (x1, y1), (x2, y2) = _POS[s], _POS[t]
        if s is t:  # a self-loop: commands that keep the state (§4.1.4)
            ax.add_patch(
                FancyArrowPatch(
                    (x1 - 0.25, y1 + 0.35),
                    (x1 + 0.25, y1 + 0.35),
                    connectionstyle="arc3,rad=-1.6",
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
                y1 + 1.05,
                "\n".join(rows),
                ha="center",
                va="bottom",
                fontsize=_FONT - 4,
                color=colour,
            )
            continue
        back = x2 < x1 and t is not State.CLOSED
        # Back edges bulge below the row (arc3: negative rad, right to left), longer
        # ones deeper, so they neither cross the self-loops nor each other.
        rad = -0.25 if back else 0.0
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=16,
                shrinkA=28,
                shrinkB=28,
                color=colour,
                lw=3.5 if hot else 1.5,
                gid=f"edge:{s.value}->{t.value}",
            )
        )
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        if back:
            my -= 0.25 * abs(x2 - x1) / 2  # the middle of the quadratic arc
        elif t is State.CLOSED:
            mx, my = x1 + (x2 - x1) * 0.62, y1 + (y2 - y1) * 0.62
        else:
            my += 0.2
        ax.text(
            mx,
            my,
            label,
            ha="center",
            va="center",
            fontsize=_FONT - 4,
            color=colour,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.85},
        )
    for st, (x, y) in _POS.items():
        visited = st in path
        ax.text(
            x,
            y,
            st.value,
            ha="center",
            va="center",
            fontsize=_FONT,
            zorder=5,
            weight="bold" if visited else "normal",
            color="white" if visited else "black",
            bbox={
                "boxstyle": "round,pad=0.5",
                "facecolor": _HIGHLIGHT if visited else "#EEEEEE",
                "edgecolor": "black",
            },
            gid=f"state:{st.value}",
        )
    ax.set_xlim(-1.0, 9.8)
    ax.set_ylim(-3.5, 2.4)
    ax.axis("off")
    title = "The SMTP dialogue as a state table (RFC 5321 §4.1.4), drawn from states.TRANSITIONS"
    if path:
        title += "\nhighlighted: " + " → ".join(s.value for s in path)
    ax.set_title(title, fontsize=_FONT)
    return fig


def save_figure(fig: Figure, path) -> str:
    """Save a figure as PNG or SVG (from the file name's ending) for handing out."""
    path = str(path)
    if not path.lower().endswith((".png", ".svg")):
        raise LabValueError(f"save figures as .png or .svg, not {path!r}")
    fig.savefig(path, dpi=150 if path.lower().endswith(".png") else None)
    return path


def legal_replies(commands=None) -> Figure:
    """Which reply codes RFC 5321 §4.3.2 allows after which command, as a coloured grid."""
    from ..protocol.replies import ANY_COMMAND, LEGAL_REPLIES, legal_codes

    commands = list(commands or LEGAL_REPLIES)
    codes = sorted({c for cmd in commands for c in legal_codes(cmd)})
    fig = _figure((max(8, 0.42 * len(codes) + 2.5), 0.45 * len(commands) + 2))
    ax = fig.add_subplot()
    for row, cmd in enumerate(commands):
        allowed = legal_codes(cmd)
        for col, code in enumerate(codes):
            if code in allowed:
                colour = CLASS_COLOURS[reply_class(code)]
                ax.add_patch(
                    Rectangle(
                        (col - 0.45, row - 0.4),
                        0.9,
                        0.8,
                        facecolor=colour,
                        edgecolor="black",
                        hatch="//" if code in ANY_COMMAND else "",
                        gid=f"legal:{cmd}:{code}",
                    )
                )
    ax.set_xticks(range(len(codes)), [str(c) for c in codes], rotation=90, fontsize=_FONT - 3)
    ax.set_yticks(
        range(len(commands)), ["final ." if c == "." else c for c in commands], fontsize=_FONT - 2
    )
    ax.set_xlim(-0.6, len(codes) - 0.4)
    ax.set_ylim(len(commands) - 0.4, -0.6)
    ax.set_xlabel("reply code (hatched: allowed after any command: 421, 500, 501)", fontsize=_FONT)
    ax.set_ylabel("command", fontsize=_FONT)
    ax.set_title("Which replies may follow which command (RFC 5321 §4.3.2)", fontsize=_FONT + 1)
    ax.grid(axis="x", color="#EEEEEE")
    ax.set_axisbelow(True)
    return fig


def plot_comparison(table: Comparison):
    """The comparison table as a grid: rows are personas, columns are steps; colour = reply class, text = codes."""
    from matplotlib.patches import Patch, Rectangle

    from .compare import Comparison, row_label

    if not isinstance(table, Comparison):
        raise LabValueError(
            "plot_comparison() wants the table that compare() or compare_steps() returns"
        )
    font = 13  # readable on a workshop projector
    n_rows, n_cols = len(table.personas), len(table.steps)
    fig = LabFigure(figsize=(2.6 * n_cols + 2.5, 0.9 * n_rows + 2.2), layout="constrained")
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
                fontsize=font,
                color="black",
                fontweight="bold",
            )
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_rows, 0)
    ax.set_xticks([c + 0.5 for c in range(n_cols)], list(table.steps), fontsize=font - 1)
    ax.set_yticks(
        [r + 0.5 for r in range(n_rows)], [row_label(p) for p in table.personas], fontsize=font - 1
    )
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("dialogue step (the client's command)", fontsize=font)
    ax.set_ylabel("persona (server software)", fontsize=font)
    ax.set_title(
        "Same dialogue, different servers: reply code and enhanced code", fontsize=font + 1
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
        handles=legend, loc="outside lower center", ncols=5, fontsize=font - 2, frameon=False
    )
    return fig
