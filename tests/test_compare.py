"""compare() and its table, plot and HTML: the platform lesson's side-by-side view."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from labsmtp import LabValueError, running_servers
from labsmtp.classroom.compare import (
    PLATFORM_STEPS,
    PLATFORMS,
    Comparison,
    compare,
    compare_html,
    compare_steps,
)
from labsmtp.classroom.plots import plot_comparison
from labsmtp.style import CLASS_COLOURS


@pytest.fixture(scope="module")
def platform_table():
    return compare_steps()


def test_the_platform_table_has_a_row_per_persona_and_a_column_per_step(platform_table):
    assert platform_table.personas == PLATFORMS
    assert platform_table.steps == tuple(PLATFORM_STEPS)
    assert all(len(platform_table.cells[p]) == len(PLATFORM_STEPS) for p in PLATFORMS)


def test_every_platform_accepts_a_fully_qualified_helo(platform_table):
    for p in PLATFORMS:
        assert platform_table.cell(p, "HELO fqdn").code == 250


def test_a_non_fqdn_helo_is_local_policy_and_platforms_differ(platform_table):
    # RFC 5321 §4.1.4: refusing it is policy; the recorded servers show both choices.
    got = {p: platform_table.cell(p, "HELO non-FQDN").short for p in PLATFORMS}
    assert got == {
        "postfix": "504 5.5.2",
        "exim": "550",
        "sendmail": "250",
        "opensmtpd": "250",
        "exchange": "250",
        "clamsmtpd": "504 5.5.2",  # the Postfix behind the proxy answers
    }


def test_mail_before_helo_is_a_sequence_error_everywhere(platform_table):
    for p in PLATFORMS:
        assert platform_table.cell(p, "missing HELO (MAIL first)").code == 503


def test_relaying_is_refused_except_through_the_proxy(platform_table):
    cells = {p: platform_table.cell(p, "relaying from 127.0.0.2") for p in PLATFORMS}
    assert cells["postfix"].short == "554 5.7.1"
    assert (
        cells["exchange"].text
        == "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
    )
    assert {p: c.code for p, c in cells.items() if p not in ("postfix", "clamsmtpd")} == {
        "exim": 550,
        "sendmail": 550,
        "opensmtpd": 550,
        "exchange": 550,
    }
    # clamsmtpd without XCLIENT: Postfix sees 127.0.0.1 (in mynetworks) and relays.
    assert cells["clamsmtpd"].short == "250 2.1.5"


def test_compare_plays_one_dialogue_line_by_line():
    table = compare(
        ["HELO client.example.org", "VRFY postmaster"], personas=["postfix", "opensmtpd"]
    )
    assert table.steps == ("(connect)", "HELO client.example.org", "VRFY postmaster")
    assert [c.code for c in table.cells["postfix"]] == [220, 250, 252]
    assert [c.code for c in table.cells["opensmtpd"]] == [220, 250, 500]  # no VRFY at all
    assert table.cell("opensmtpd", "VRFY postmaster").sent == "VRFY postmaster"


def test_a_server_that_hangs_up_leaves_no_reply_cells():
    table = compare(["FOO", "BAR", "BAZ", "QUX", "NOOP"], personas=["exim"])
    cells = table.cells["exim"]
    assert cells[4].text == "500 Too many unrecognized commands"
    assert cells[5].reply is None and cells[5].klass == "none" and cells[5].short == "no reply"


def test_repeated_lines_get_their_own_columns():
    table = compare(["NOOP", "NOOP"], personas="generic")
    assert table.steps == ("(connect)", "NOOP", "NOOP (#2)")


def test_policy_switches_change_every_persona():
    table = compare(["MAIL FROM:<a@example.org>"], personas=["postfix"], smtpd_helo_required=False)
    assert table.cells["postfix"][1].short == "250 2.1.0"


def test_compare_leaves_no_server_running():
    compare(["NOOP"], personas=["generic", "exchange"])
    assert not [s for s in running_servers() if s.name.startswith("compare-")]


def test_mistakes_get_a_clear_message():
    with pytest.raises(LabValueError, match="no persona called 'exmi'"):
        compare(["HELO a.example.org"], personas=["exmi"])
    with pytest.raises(LabValueError, match="list of command lines"):
        compare([])
    with pytest.raises(LabValueError, match="compare"):
        plot_comparison("not a table")
    with pytest.raises(LabValueError, match=r"\(client address, \[lines\]\)"):
        compare_steps({"x": "HELO a"})


def test_the_plot_is_a_grid_coloured_by_reply_class(platform_table):
    fig = plot_comparison(platform_table)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    cells = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(cells) == len(PLATFORMS) * len(PLATFORM_STEPS)
    expected = [CLASS_COLOURS[c.klass] for p in PLATFORMS for c in platform_table.cells[p]]
    assert [to_hex(r.get_facecolor()) for r in cells] == [c.lower() for c in expected]
    texts = [t.get_text() for t in ax.texts]
    assert "550\n5.7.54" in texts and "250" in texts
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "exchange\n(not recorded)" in labels


def test_the_html_table_is_coloured_and_escaped(platform_table):
    out = compare_html(platform_table)
    assert out == platform_table._repr_html_()
    assert CLASS_COLOURS["5xx"] in out and CLASS_COLOURS["2xx"] in out
    assert "&lt;client&gt;: Helo command rejected" in out  # the full reply, escaped
    assert "<client>" not in out


def test_the_text_table_reads_like_the_lesson(platform_table):
    text = str(platform_table)
    assert text.splitlines()[0].split()[:2] == ["HELO", "fqdn"]
    assert "550 5.7.54" in text and isinstance(platform_table, Comparison)
    assert platform_table.rows()[0]["persona"] == "postfix"
