"""One dialogue and the rules it follows: the ladder, the state table, usual replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from ...errors import LabValueError
from ...lab.transcript import CLIENT, EVENT, SERVER
from ...protocol import states
from ...protocol.replies import reply_class
from ...protocol.states import Stage, State
from ...style import CLASS_COLOURS, CLIENT_COLOUR, INJECTED_COLOUR

if TYPE_CHECKING:
    pass
from .figure import _LABEL, _TITLE, COLUMN_INCHES, SMALLEST_PT, _figure, _title, _wrap

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
    State.REFUSED: (0.0, -3.6),  # after a 554 greeting: only QUIT (§3.1)
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


def legal_replies(commands=None) -> Figure:
    """The usual replies to each command, as a coloured grid (RFC 5321 §4.3.2 and extensions)."""
    from ...protocol.replies import ANY_COMMAND, EXTENSION_REPLIES, LEGAL_REPLIES, legal_codes

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
