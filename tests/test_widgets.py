"""Widgets: their default path (no click) and a few presses, against a real server."""

from __future__ import annotations

import pytest

from labsmtp.classroom.widgets import (
    DialogueStepper,
    FaultLab,
    MailboxView,
    TranscriptView,
)
from labsmtp.protocol.states import Command

PNG = b"\x89PNG"


def test_stepper_connects_and_highlights_legal_commands(server):
    w = DialogueStepper(server)
    assert "220" in w.transcript.value
    styles = {cmd: b.button_style for cmd, b in w.buttons.items()}
    assert styles[Command.EHLO] == "success" and styles[Command.MAIL] == ""
    w.press(Command.EHLO)
    assert w.buttons[Command.MAIL].button_style == "success"
    assert w.buttons[Command.EHLO].button_style == "success"  # §4.1.4: EHLO again is fine
    assert "EHLO client.example.org" in w.transcript.value


def test_stepper_lets_a_learner_press_an_illegal_command(server):
    w = DialogueStepper(server)
    w.buttons[Command.DATA].click()  # DATA before HELO: out of order
    assert "503" in w.transcript.value
    assert "503" in w.status.value


def test_stepper_sends_a_whole_message(server):
    w = DialogueStepper(server)
    for cmd in (Command.HELO, Command.MAIL, Command.RCPT, Command.DATA):
        w.press(cmd)
    assert set(b for c, b in w.buttons.items() if b.button_style) == {
        w.buttons[Command.END_OF_DATA]
    }
    reply = w.press(Command.END_OF_DATA)
    assert reply.code == 250 and len(server.mailbox) == 1


def test_stepper_reports_a_lost_connection_in_the_panel(server):
    server.faults.add("noop:drop")
    w = DialogueStepper(server)
    assert w.press(Command.NOOP) is None
    assert "connect" in w.status.value
    w.press(Command.NOOP)
    assert "not connected" in w.status.value


def test_fault_lab_shows_a_result_without_a_click(server):
    lab = FaultLab(server, trials=50)
    assert lab.results is not None and len(lab.results.trials) == 50
    assert bytes(lab.image.value).startswith(PNG)
    titles = [ax.get_title() for ax in lab.figure.axes]
    assert "What happened" in titles[0] and "Replies at each stage" in titles[1]
    assert "rcpt:451:0.3" in lab.summary.value
    assert lab.progress.value == lab.progress.max == 50


def test_fault_lab_reruns_when_a_control_changes(server):
    lab = FaultLab(server, trials=30)
    before = lab.results
    lab.code.value = 550
    assert lab.results is not before
    assert lab.results.faults == ["rcpt:550:0.3"]
    assert lab.results.by_outcome()["bounced"] > 0
    lab.probability.value = 0.0
    assert lab.results.faults == [] and lab.results.by_outcome()["delivered"] == 30
    assert lab.redraw_seconds is not None


@pytest.mark.parametrize(
    "change, words",
    [
        ({"stage": "mail", "action": "greylist (300 s)"}, "greylist"),
        ({"stage": "rcpt", "action": "cut off in DATA"}, "data"),
    ],
)
def test_fault_lab_explains_bad_combinations(server, change, words):
    lab = FaultLab(server, trials=20, auto=False)
    good = lab.results
    for name, value in change.items():
        getattr(lab, name).value = value
    assert lab.run() is None
    assert words in lab.message.value.lower()
    assert "Traceback" not in lab.message.value
    assert lab.results is good  # the last good result stays on screen


def test_mailbox_and_transcript_views(server, tmp_path):
    c = server.client()
    c.helo()
    c.mail("ada@example.org")
    c.rcpt("postmaster@lab.example.org")
    c.data("Subject: hi\r\n\r\nhello\r\n")
    c.quit()
    mv = MailboxView(server, path=str(tmp_path / "box.mbox"))
    assert "hi" in mv.table.value
    assert open(mv.export(), "rb").read().startswith(b"From ")
    tv = TranscriptView(server, path=str(tmp_path / "t.jsonl"))
    assert "MAIL FROM" in tv.table.value
    assert open(tv.save()).readline().startswith("{")
