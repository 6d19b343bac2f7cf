"""Many dialogues at once: outcomes, reply codes by stage, latency, retries."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from ...protocol.replies import reply_class
from ...style import CLASS_COLOURS

if TYPE_CHECKING:
    pass
from .figure import _LABEL, SMALLEST_PT, _axes, _title

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


def _subtitle(results) -> str:
    faults = ", ".join(results.faults) or "no faults"
    return (
        f"{len(results.trials)} trials, retry {results.policy.name}, {faults}, seed {results.seed}"
    )


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
