"""Several servers: the personas side by side, and how mail found its server (MX)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ...errors import LabValueError
from ...protocol.replies import reply_class
from ...style import CLASS_COLOURS

if TYPE_CHECKING:
    from ..compare import Comparison
from .figure import (
    _LABEL,
    _TITLE,
    COLUMN_INCHES,
    SMALLEST_PT,
    _axes,
    _figure,
    _title,
    _wrap,
    _wrap_code,
)


def plot_comparison(table: Comparison) -> Figure:
    """The comparison table as a grid: rows are personas, columns are steps; colour = reply class, text = codes."""
    from ..compare import Comparison, row_label

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
