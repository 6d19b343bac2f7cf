"""Widgets: their default path (no click) and a few presses, against a real server."""

from __future__ import annotations

import time

import pytest

from labsmtp import stop_all
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


SVG = b"<?xml"


def test_fault_lab_shows_a_result_without_a_click(server):
    lab = FaultLab(server, trials=50)
    assert lab.results is not None and len(lab.results.trials) == 50
    assert all(bytes(image.value).startswith(SVG) for image in lab.images)
    outcome, codes = (bytes(image.value).decode() for image in lab.images)
    assert "What happened to each message" in outcome and "Replies at each stage" in codes
    assert "rcpt:451:0.3" in lab.summary.value and "Run #1" in lab.message.value
    lab.server.stop()


def test_fault_lab_runs_on_its_own_server_like_the_lessons(server):
    lab = FaultLab(server, trials=20)
    assert lab.server is not server and lab.server.persona is server.persona
    assert server.faults.rules == [] and not server.sessions  # the lesson's server untouched
    lab.server.stop()


def test_fault_lab_reruns_when_a_control_changes(server):
    lab = FaultLab(server, trials=30)
    before = lab.results
    lab.code.value = 550
    assert lab.wait(30)
    assert lab.results is not before
    assert lab.results.faults == ["rcpt:550:0.3"]
    assert lab.results.by_outcome()["bounced"] > 0
    lab.probability.value = 0.0
    assert lab.wait(30)
    assert lab.results.faults == [] and lab.results.by_outcome()["delivered"] == 30
    assert lab.redraw_seconds is not None
    lab.server.stop()


def test_fault_lab_run_with_the_same_settings_visibly_runs_again(server):
    lab = FaultLab(server, trials=20)
    first = lab.message.value
    lab.run_button.click()
    assert lab.wait(30)
    assert "Run #2" in lab.message.value and lab.message.value != first
    lab.server.stop()


@pytest.mark.parametrize(
    "change, words",
    [
        ({"stage": "mail", "action": "greylist (300 s)"}, "greylist"),
        ({"stage": "rcpt", "action": "cut off in DATA"}, "data"),
    ],
)
def test_fault_lab_explains_bad_combinations_and_clears_the_plots(server, change, words):
    lab = FaultLab(server, trials=20, auto=False)
    assert lab.results is not None
    for name, value in change.items():
        getattr(lab, name).value = value
    assert lab.run() is None
    assert words in lab.message.value.lower() and "not run" in lab.message.value
    assert "Traceback" not in lab.message.value
    assert lab.plots.layout.display == "none" and lab.summary.value == ""  # no stale plots
    lab.stage.value, lab.action.value = "rcpt", "reply with code"
    assert lab.run() is not None and lab.plots.layout.display == "flex"
    lab.server.stop()


def test_fault_lab_tarpits_are_simulated_so_the_largest_run_stays_quick(server):
    lab = FaultLab(server, trials=10, auto=False)
    lab.action.value, lab.delay.value, lab.probability.value = "delay (tarpit)", 2000, 1.0
    lab.trials.value, lab.retry.value = 40, "mta"
    r = lab.run()
    # 40 trials x 5 attempts, each waiting 2 s for RCPT: 400 s for real; here the
    # client counts the wait, gives up at its 2 s timeout, and nothing sleeps.
    assert r.elapsed < 20
    assert r.by_outcome()["connection lost"] == 40
    attempts = [a for t in r.trials for a in t.attempts]
    assert len(attempts) == 200 and all(a.simulated == pytest.approx(2.0) for a in attempts)
    lab.delay.value = 300
    r = lab.run()
    assert r.by_outcome()["delivered"] == 40
    assert all(a.simulated == pytest.approx(0.3) for t in r.trials for a in t.attempts)
    lab.server.stop()


def test_fault_lab_a_new_setting_cancels_the_run_in_progress(server):
    lab = FaultLab(server, trials=10, auto=True)
    lab.trials.value = 10  # no change: no run
    lab.retry.value = "naive"
    lab.trials.value = lab.trials.max  # starts a long run ...
    time.sleep(0.05)
    lab.code.value = 550  # ... which this cancels; only the newest settings finish
    assert lab.wait(60)
    assert lab.results.faults == ["rcpt:550:0.3"] and len(lab.results.trials) == lab.trials.max
    runs = lab.runs
    lab.trials.value = 100
    time.sleep(0.05)
    lab.cancel()
    assert lab.wait(30)
    assert lab.runs == runs + 1 and "cancelled" in lab.message.value
    assert len(lab.results.trials) == lab.trials.max  # the last finished run stays up
    lab.server.stop()


def test_fault_lab_shows_progress_and_cancel_only_for_a_long_run(server):
    import labsmtp.classroom.widgets as widgets

    lab = FaultLab(server, trials=20)
    assert lab.busy.layout.display == "none"
    old, widgets._BUSY_AFTER = widgets._BUSY_AFTER, 0.05
    try:
        lab.trials.value = lab.trials.max
        shown = False
        deadline = time.monotonic() + 30
        while not lab._idle.is_set() and time.monotonic() < deadline:
            shown = shown or lab.busy.layout.display == "flex"
            time.sleep(0.01)
        assert shown, "a run longer than the threshold showed no progress and no Cancel"
        assert lab.busy.layout.display == "none"  # hidden again when done
    finally:
        widgets._BUSY_AFTER = old
        lab.server.stop()


def test_fault_lab_starts_its_stopped_server_again_and_says_so(server):
    lab = FaultLab(server, trials=20)
    port = lab.server.port
    stop_all()
    assert lab.run() is not None
    assert "had been stopped" in lab.message.value and lab.server.port == port
    lab.server.stop()


def test_stepper_after_the_server_was_stopped_reconnects_and_says_so(server):
    w = DialogueStepper(server)
    stop_all()  # what a lesson's last cell does after Run All
    reply = w.press(Command.HELO)
    assert reply is not None and reply.code == 250
    assert "had been stopped" in w.status.value and "421" not in w.status.value
    assert server.running


def test_stepper_status_shows_the_reply_then_what_it_means(server):
    w = DialogueStepper(server)
    w.press(Command.HELO)
    status = w.status.value
    assert status.index("250 ") < status.index("250 after HELO: greeting accepted")


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
