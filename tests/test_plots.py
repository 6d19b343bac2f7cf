"""Plots: each function returns a Figure with the expected artists and colours."""

from __future__ import annotations

import time

import matplotlib
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from labsmtp import LabValueError
from labsmtp.classroom import plots
from labsmtp.lab.trials import run_trials
from labsmtp.protocol import states
from labsmtp.style import CLASS_COLOURS, INJECTED_COLOUR

matplotlib.use("Agg")


@pytest.fixture
def results(server):
    return run_trials(
        server, 60, retry="mta", seed=4, faults=["rcpt:451:0.3", "mail:550:0.1", "data:drop:0.05"]
    )


def bar_colours(ax):
    return {to_hex(p.get_facecolor()) for p in ax.patches if isinstance(p, Rectangle)}


def test_outcome_bars(results):
    fig = plots.outcome_bars(results)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # Horizontal bars: the outcome names are the y tick labels, top to bottom.
    assert [t.get_text() for t in ax.get_yticklabels()] == list(results.by_outcome())
    widths = [p.get_width() for p in ax.patches]
    assert widths == list(results.by_outcome().values())
    assert to_hex(ax.patches[0].get_facecolor()) == CLASS_COLOURS["2xx"].lower()
    assert ax.get_title(loc="left") and ax.get_xlabel()


def test_codes_by_stage_uses_the_class_colours(results):
    fig = plots.codes_by_stage(results)
    ax = fig.axes[0]
    assert {CLASS_COLOURS[k].lower() for k in ("2xx", "3xx", "4xx", "5xx")} <= bar_colours(ax)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "451 (4xx)" in labels and "550 (5xx)" in labels
    total = sum(p.get_width() for p in ax.patches)
    assert total == sum(sum(c.values()) for c in results.by_stage_code().values())


def test_latency_histogram(results):
    fig = plots.latency_histogram(results)
    assert "ms" in fig.axes[0].get_xlabel()


def test_retry_timeline_draws_one_row_per_pattern_of_attempts(server):
    # Greylisting with MTA retries: every trial meets the same waits, so one row
    # says "40 trials" instead of forty identical rows.
    grey = run_trials(server, 40, retry="mta", seed=1, faults=["rcpt:greylist=300s"])
    ax = plots.retry_timeline(grey).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["40 trials"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(grey.trials[0].attempts)
    assert "40 trials, 1 pattern" in ax.get_title(loc="left")


def test_retry_timeline_puts_the_commonest_pattern_first(results):
    ax = plots.retry_timeline(results, max_rows=3).axes[0]
    counts = [int(t.get_text().split()[0]) for t in ax.get_yticklabels()]
    assert len(counts) == 3 and counts == sorted(counts, reverse=True)
    assert "rarer patterns" in ax.get_title(loc="left")


def test_ladder_marks_injected_replies(server):
    server.faults.add("rcpt#2:452")
    c = server.client()
    c.ehlo()
    c.mail("ada@example.org")
    c.rcpt("a@lab.example.org")
    c.rcpt("b@lab.example.org")
    c.quit()
    fig = plots.ladder(server)
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 11  # 220, EHLO, 250, MAIL, 250, RCPT, 250, RCPT, 452, QUIT, 221
    injected = [a for a in arrows if to_hex(a.get_edgecolor()) == INJECTED_COLOUR.lower()]
    assert len(injected) == 1
    texts = [t.get_text() for t in ax.texts]
    assert any("injected by rcpt#2:452" in t for t in texts)
    assert any(t.startswith("EHLO") for t in texts)


def test_ladder_without_a_session_explains(server):
    with pytest.raises(LabValueError):
        plots.ladder(server)


@pytest.mark.parametrize("chunking", [False, True])
def test_state_diagram_is_drawn_from_the_table(server, chunking):
    fig = plots.state_diagram(chunking=chunking)
    ax = fig.axes[0]
    table = states.edges(chunking=chunking)
    pairs = {(s, t) for s, _, t in table}
    edges = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(edges) == len(pairs)
    text = " ".join(t.get_text() for t in ax.texts)
    for cmd in states.Command:
        if any(c is cmd for _, c, _ in table) and cmd is not states.Command.END_OF_DATA:
            assert cmd.value in text
    assert ("chunking" in text) == chunking and ("BDAT" in text) == chunking


def test_state_diagram_highlights_a_session_path(server):
    c = server.client()
    c.helo()
    c.mail("ada@example.org")
    c.rset()
    c.quit()
    deadline = time.monotonic() + 2
    while server.sessions[-1].ended is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the server moves to CLOSED just after its 221 is sent
    path = server.sessions[-1].states
    assert path == ["connected", "greeted", "mail", "greeted", "closed"]
    fig = plots.state_diagram(server.sessions[-1])
    edges = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    thick = {p.get_gid() for p in edges if p.get_linewidth() > 3}
    assert thick == {
        "edge:connected->greeted",
        "edge:greeted->mail",
        "edge:mail->greeted",
        "edge:greeted->closed",
    }


def test_save_figure(tmp_path, results):
    fig = plots.outcome_bars(results)
    png = plots.save_figure(fig, tmp_path / "o.png")
    svg = plots.save_figure(fig, tmp_path / "o.svg")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in open(svg).read(500)
    with pytest.raises(LabValueError):
        plots.save_figure(fig, tmp_path / "o.jpg")


def test_legal_replies_grid_is_drawn_from_the_rfc_table():
    from labsmtp.protocol.replies import LEGAL_REPLIES, legal_codes

    fig = plots.legal_replies()
    cells = {p.get_gid() for p in fig.axes[0].patches if isinstance(p, Rectangle)}
    expected = {
        f"legal:{stage.answers}:{code}" for stage in LEGAL_REPLIES for code in legal_codes(stage)
    }
    assert cells == expected
    assert "legal:RCPT:250" in cells and "legal:RCPT:354" not in cells


# --- readable from the back row: every plot type, measured on the figure -------------------
# (tests/test_browser.py measures the same plots on screen, at 100 % and 150 % zoom.)


def _drawn_texts(fig):
    """(Text, its box in pixels) for every piece of text the figure really draws."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tick_labels, shown = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):
                    tick_labels.add(id(label))
                    if ax.axison and axis.get_visible() and label.get_visible():
                        if lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                            shown.add(id(label))
    return [
        (t, t.get_window_extent(renderer))
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and (id(t) not in tick_labels or id(t) in shown)
    ]


def layout_problems(fig) -> list[str]:
    """Text too small, cut off at the figure's edge, or on top of other text."""
    import itertools

    width, height = fig.bbox.width, fig.bbox.height
    found = []
    if fig.get_figwidth() > plots.COLUMN_INCHES + 1e-6:
        found.append(f"{fig.get_figwidth()} in wide: wider than the notebook column")
    texts = _drawn_texts(fig)
    margin = 3  # px: a browser's font may run a little wider than matplotlib's
    for t, box in texts:
        what = repr(t.get_text()[:40])
        if t.get_fontsize() < plots.SMALLEST_PT:
            found.append(f"{what} is {t.get_fontsize()} pt")
        if (
            box.x0 < margin
            or box.y0 < margin
            or box.x1 > width - margin
            or box.y1 > height - margin
        ):
            found.append(f"{what} is cut off at the edge")
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        if (
            box_a.x0 < box_b.x1 - 1
            and box_b.x0 < box_a.x1 - 1
            and box_a.y0 < box_b.y1 - 1
            and box_b.y0 < box_a.y1 - 1
        ):
            found.append(f"{a.get_text()[:30]!r} overlaps {b.get_text()[:30]!r}")
    return found


def _every_plot(server):
    from labsmtp.classroom.compare import compare_steps

    mixed = run_trials(
        server, 100, retry="mta", seed=4, faults=["rcpt:451:0.3", "mail:550:0.1", "data:drop:0.05"]
    )
    grey = run_trials(server, 40, retry="mta", seed=1, faults=["rcpt:greylist=300s"])
    server.faults.set("rcpt#2:452")
    c = server.client()
    c.ehlo()
    c.mail("ada@example.org")
    c.rcpt("a@lab.example.org")
    c.rcpt("b@lab.example.org")
    c.data("Subject: x\r\n\r\nhello\r\n")
    c.quit()
    server.faults.clear()
    yield "outcome bars", plots.outcome_bars(mixed)
    yield "codes by stage", plots.codes_by_stage(mixed)
    yield "latency", plots.latency_histogram(mixed)
    yield "retry timeline", plots.retry_timeline(mixed)
    yield "retry timeline (greylisting)", plots.retry_timeline(grey)
    yield "ladder", plots.ladder(server)
    yield "state diagram", plots.state_diagram()
    yield (
        "state diagram with a path",
        plots.state_diagram(
            ["connected", "greeted", "connected", "greeted", "mail", "rcpt", "data", "greeted"]
        ),
    )
    yield (
        "state diagram with BDAT",
        plots.state_diagram(["connected", "greeted", "mail", "rcpt", "chunking", "greeted"]),
    )
    yield "usual replies", plots.legal_replies()
    table = compare_steps(timeout=2.0)
    yield "comparison grid", plots.plot_comparison(table)
    from labsmtp import LabNet

    net = LabNet(seed=9).start()
    try:
        net.server("mx1.shop.example").faults.add("connect:421")
        yield (
            "MX attempts",
            plots.mx_attempts(
                net.send("ada@home.example", ["bob@shop.example", "nobody@shop.example"])
            ),
        )
    finally:
        net.stop()


def test_every_plot_is_readable_unclipped_and_fits_the_column(server):
    problems = {name: layout_problems(fig) for name, fig in _every_plot(server)}
    assert len(problems) == 12
    bad = {name: found for name, found in problems.items() if found}
    assert not bad, bad


def test_figures_show_as_svg_with_real_text():
    import re

    svg = plots.state_diagram()._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    sizes = [float(px) for px in re.findall(r"font-size: ([0-9.]+)px", svg)]
    # svg.fonttype none: words stay <text> (crisp at any zoom); sizes are in pt units
    assert sizes and min(sizes) >= plots.SMALLEST_PT
    assert not hasattr(plots.LabFigure, "_repr_png_")  # one picture per plot, not two
    assert 'width="' in svg and float(re.search(r'width="([0-9.]+)pt"', svg).group(1)) <= (
        plots.COLUMN_INCHES * 72 + 0.5
    )


# --- the fault lab panel's fast SVG bars ---------------------------------------------------


def _svg_text_boxes(svg: str):
    """(text, size, box) per <text>, the box estimated from the font size (0.62 em a char)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg.split("?>", 1)[1])
    width, height = float(root.get("width")), float(root.get("height"))
    out = []
    for t in root.iter("{http://www.w3.org/2000/svg}text"):
        size, x, y = float(t.get("font-size")), float(t.get("x")), float(t.get("y"))
        w = len(t.text) * 0.62 * size
        x0 = {"start": x, "middle": x - w / 2, "end": x - w}[t.get("text-anchor")]
        out.append((t.text, size, (x0, y - size * 0.8, x0 + w, y + size * 0.25)))
    return width, height, out


@pytest.mark.parametrize(
    "faults, retry",
    [
        (["rcpt:451:0.3"], "none"),
        (["rcpt:451:0.3", "mail:550:0.1", "data:drop:0.05"], "mta"),
        (["data:421:0.5"], "naive"),
        (["connect:drop"], "none"),
    ],
)
def test_the_panels_svg_bars_are_readable_and_unclipped(server, faults, retry):
    import itertools

    from labsmtp.classroom import svgbars

    r = run_trials(server, 60, retry=retry, seed=2, faults=faults)
    for svg in (svgbars.outcome_svg(r), svgbars.codes_svg(r)):
        width, height, texts = _svg_text_boxes(svg)
        assert width == svgbars.WIDTH and 2 * width + 20 <= plots.COLUMN_PX  # side by side
        assert min(size for _, size, _ in texts) >= plots.SMALLEST_PT * 96 / 72 - 0.01
        for text, _, (x0, y0, x1, y1) in texts:
            assert x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height, f"{text!r} is cut off"
        for (a, _, ba), (b, _, bb) in itertools.combinations(texts, 2):
            overlap = ba[0] < bb[2] and bb[0] < ba[2] and ba[1] < bb[3] and bb[1] < ba[3]
            assert not overlap, f"{a!r} overlaps {b!r}"
    codes = svgbars.codes_svg(r)
    for label, _klass, colour, _hatch in plots.code_styles(r.by_stage_code()).values():
        assert f">{label}<" in codes and colour in codes  # the legend, in the class colours
