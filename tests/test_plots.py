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
    assert [t.get_text() for t in ax.get_xticklabels()] == list(results.by_outcome())
    heights = [p.get_height() for p in ax.patches]
    assert heights == list(results.by_outcome().values())
    assert to_hex(ax.patches[0].get_facecolor()) == CLASS_COLOURS["2xx"].lower()
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


def test_codes_by_stage_uses_the_class_colours(results):
    fig = plots.codes_by_stage(results)
    ax = fig.axes[0]
    assert {CLASS_COLOURS[k].lower() for k in ("2xx", "3xx", "4xx", "5xx")} <= bar_colours(ax)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "451 (4xx)" in labels and "550 (5xx)" in labels
    total = sum(p.get_height() for p in ax.patches)
    assert total == sum(sum(c.values()) for c in results.by_stage_code().values())


def test_latency_and_timeline(results):
    fig = plots.latency_histogram(results)
    assert "ms" in fig.axes[0].get_xlabel()
    fig = plots.retry_timeline(results, max_trials=10)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 10
    retried = [t for t in results.trials if len(t.attempts) > 1][:10]
    assert sum(len(c.get_offsets()) for c in ax.collections) == sum(
        len(t.attempts)
        for t in (retried + [t for t in results.trials if len(t.attempts) == 1])[:10]
    )


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


def test_state_diagram_is_drawn_from_the_table(server):
    fig = plots.state_diagram()
    ax = fig.axes[0]
    pairs = {(s, t) for s, _, t in states.edges()}
    edges = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(edges) == len(pairs)
    text = " ".join(t.get_text() for t in ax.texts)
    for cmd in states.Command:
        if any(c is cmd for _, c, _ in states.edges()) and cmd is not states.Command.END_OF_DATA:
            assert cmd.value in text


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
    expected = {f"legal:{cmd}:{code}" for cmd in LEGAL_REPLIES for code in legal_codes(cmd)}
    assert cells == expected
    assert "legal:RCPT:250" in cells and "legal:RCPT:354" not in cells
