"""Notebook widgets: step through a dialogue, run the fault lab, read mailbox and transcript.

Every widget shows a useful result as soon as it is displayed (so "Run All"
produces output without a click), reports bad values as a message inside
the panel rather than a traceback, and updates in place.  Plots are SVG
images (sharp at any zoom), drawn by ``svgbars.py`` for speed.

A widget whose server was stopped (a lesson's last cell runs ``stop_all()``)
starts it again when it is used, and says so in its status line.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..errors import LabConnectionError, LabError
from ..lab.client import StepClient
from ..lab.faults import (
    FAULT_STAGES,
    Action,
    CutOff,
    Delay,
    Fault,
    Greylist,
    HangUp,
    Malformed,
    ReplyWith,
)
from ..lab.labserver import LabServer
from ..lab.trials import POLICIES, TrialResults, TrialsCancelled, run_trials
from ..protocol import states
from ..protocol.replies import Reply
from ..protocol.states import Command, Stage
from ..render import mailbox_html, transcript_html
from ..style import CLASS_COLOURS
from . import svgbars

_OK_STYLE = "success"  # legal next commands: green buttons (ipywidgets' palette)
_WRAP = W.Layout(flex_flow="row wrap")  # a row of controls wraps rather than overflow the column


def _message(text: str, kind: str = "error") -> str:
    colour = {"error": CLASS_COLOURS["5xx"], "info": "#333333"}[kind]
    return (
        f'<div style="color:{colour};white-space:pre-wrap;overflow-wrap:anywhere">'
        f"{html.escape(text)}</div>"
    )


def _own_server(server: LabServer | None, name: str) -> LabServer:
    if server is not None:
        return server
    return LabServer(name=name, seed=1).start()


# --- the dialogue stepper ----------------------------------------------------

_STEPS = [
    (Command.HELO, "HELO"),
    (Command.EHLO, "EHLO"),
    (Command.MAIL, "MAIL FROM"),
    (Command.RCPT, "RCPT TO"),
    (Command.DATA, "DATA"),
    (Command.END_OF_DATA, "message + ."),
    (Command.RSET, "RSET"),
    (Command.NOOP, "NOOP"),
    (Command.VRFY, "VRFY"),
    (Command.QUIT, "QUIT"),
]


def reply_status(reply, notice: str = "") -> str:
    """A status line: the reply itself (first line, coloured by class), then what it means."""
    colour = CLASS_COLOURS.get(reply.klass, "#999999")
    first = reply.lines[0] if reply.lines else ""
    more = f" (+{len(reply.lines) - 1} lines)" if len(reply.lines) > 1 else ""
    lead = f"<i>{html.escape(notice)}</i><br>" if notice else ""
    return (
        f'<div style="overflow-wrap:anywhere">{lead}'
        f'<span style="font-family:monospace;font-weight:bold;border-left:6px solid {colour};'
        f'padding-left:4px">{html.escape(first)}</span>{html.escape(more)} '
        f'<span style="color:#333">{html.escape(reply.explain())}</span></div>'
    )


class DialogueStepper(W.VBox):
    """One button per SMTP command; legal next ones are green, every one can be pressed."""

    def __init__(self, server=None, *, connect: bool = True):
        self.server = _own_server(server, "stepper")
        self.client: StepClient | None = None
        self._starts: int | None = None  # the server's start count when the client connected
        self.helo_name = W.Text(value="client.example.org", description="name")
        self.sender = W.Text(value="ada@example.org", description="from")
        self.recipient = W.Text(value="postmaster@lab.example.org", description="to")
        self.buttons = {}
        for cmd, label in _STEPS:
            b = W.Button(description=label, layout=W.Layout(width="120px"))
            b.on_click(lambda _b, cmd=cmd: self.press(cmd))
            self.buttons[cmd] = b
        self.connect_button = W.Button(
            description="connect", icon="plug", layout=W.Layout(width="120px")
        )
        self.connect_button.on_click(lambda _b: self.connect())
        self.status = W.HTML()
        self.transcript = W.HTML()
        row1 = W.HBox(
            [self.connect_button] + [self.buttons[c] for c, _ in _STEPS[:5]], layout=_WRAP
        )
        row2 = W.HBox([self.buttons[c] for c, _ in _STEPS[5:]], layout=_WRAP)
        super().__init__(
            [
                W.HBox([self.helo_name, self.sender, self.recipient], layout=_WRAP),
                row1,
                row2,
                self.status,
                self.transcript,
            ]
        )
        if connect:
            self.connect()
        else:
            self._refresh()

    def _revive(self) -> str | None:
        """Start a stopped server again: the notice to show (None if it was running)."""
        return self.server._revive()

    def connect(self, notice: str = "") -> None:
        """Open a new connection (closing the old one) and show the greeting."""
        if self.client is not None:
            self.client.close()
        try:
            notice = " ".join(filter(None, (notice, self._revive())))
            self.client = self.server.client(connect=False, timeout=5.0)
            reply = self.client.connect()
            self._starts = self.server._starts
            self.status.value = reply_status(reply, notice)
        except LabError as exc:
            self.status.value = _message(str(exc))
        self._refresh()

    def _stale(self) -> bool:
        # The server was stopped, or stopped and started again, since this client
        # connected: its connection is gone (it got a 421 at the stop).
        return self.client is not None and (
            not self.server.running or self.server._starts != self._starts
        )

    def press(self, cmd: Command) -> Reply | None:
        """Send ``cmd`` whether or not it is legal now (that is how one meets 503)."""
        notice = ""
        if self._stale():
            # After Run All the lesson's last cell stops the server: connect again
            # (say so), then send what was pressed on the new connection.
            try:
                revived = self._revive() or "The server had been restarted."
            except LabError as exc:
                self.status.value = _message(str(exc))
                return None
            self.connect()
            notice = f"{revived} The stepper connected again (a new session)."
        c = self.client
        if c is None or c.sock is None:
            self.status.value = _message("not connected: press 'connect' first")
            self._refresh()
            return None
        try:
            reply = {
                Command.HELO: lambda: c.helo(self.helo_name.value),
                Command.EHLO: lambda: c.ehlo(self.helo_name.value),
                Command.MAIL: lambda: c.mail(self.sender.value),
                Command.RCPT: lambda: c.rcpt(self.recipient.value),
                Command.DATA: c.data,
                Command.END_OF_DATA: lambda: c.send_message(
                    f"Subject: from the stepper\r\nFrom: <{self.sender.value}>\r\n\r\nHello.\r\n"
                ),
                Command.RSET: c.rset,
                Command.NOOP: c.noop,
                Command.VRFY: lambda: c.vrfy(self.recipient.value),
                Command.QUIT: c.quit,
            }[cmd]()
        except LabConnectionError as exc:
            self.status.value = _message(f"{exc} - press 'connect' to start again")
            reply = None
        except LabError as exc:  # a bad address in a text box, say
            self.status.value = _message(str(exc))
            reply = None
        else:
            self.status.value = reply_status(reply, notice)
        self._refresh()
        return reply

    def _refresh(self) -> None:
        state = self.client.state if self.client is not None else states.State.CLOSED
        allowed = set(states.allowed_commands(state))
        if state is states.State.DATA:
            allowed = {Command.END_OF_DATA}
        for cmd, b in self.buttons.items():
            b.button_style = _OK_STYLE if cmd in allowed else ""
            b.tooltip = "in order now" if cmd in allowed else "out of order now: try it and see"
        time.sleep(0.005)  # let the server thread record its last line
        self.transcript.value = transcript_html(self.server.transcript.last())


def stepper(server: LabServer | None = None) -> DialogueStepper:
    """A dialogue stepper for ``server`` (or a new lab server), already connected."""
    return DialogueStepper(server)


# --- the fault lab ------------------------------------------------------------

# The panel's actions, each built from the controls' values as a fault action object.
_ACTIONS: dict[str, Callable[[dict[str, Any]], Action]] = {
    "reply with code": lambda st: ReplyWith(st["code"]),
    "421 and hang up": lambda st: ReplyWith(421),
    "hang up, no reply": lambda st: HangUp(),
    "delay (tarpit)": lambda st: Delay(st["delay"] / 1000),
    "greylist (300 s)": lambda st: Greylist(300.0),
    "malformed reply": lambda st: Malformed(),
    "cut off in DATA": lambda st: CutOff(),
}
# The panel's largest run: TRIALS_MAX trials, each up to 5 attempts (retry mta or
# naive, probability 1) must end within about 2 s of wall time on a small laptop;
# delays are simulated, so the dialogues are all that costs.
TRIALS_MAX = 150
_BUSY_AFTER = 1.0  # seconds: a longer run shows its progress and a Cancel button
_HELP = (
    "Every change runs the trials again at once (a change during a run cancels it); "
    "Run repeats the last settings."
)


def _panel_server(server: LabServer | None) -> LabServer:
    """The panel's own lab server, set up like ``server``: its runs never touch the lesson's."""
    if server is None:
        return LabServer(name="fault-lab", seed=1).start()
    return LabServer(
        name=f"{server.name}-fault-lab",
        persona=server.persona,
        hostname=server.hostname,
        policy=server.policy,
        seed=server.seed if server.seed is not None else 1,
    ).start()


class FaultLab(W.VBox):
    """Set one fault, run N real trials, see outcomes and reply codes; updates in place.

    Runs happen in the background: the notebook stays free, a new setting
    cancels the run in progress (nothing queues), and a run longer than a
    second shows its progress and a Cancel button.  Tarpit delays are
    simulated (as retry waits are), so no setting makes a run slow.  The trials
    run against the panel's own server, set up like the lesson's ``server``,
    so its fault rule never leaks into the lesson's other cells.
    """

    def __init__(self, server=None, *, trials: int = 100, seed: int = 1, auto: bool = True):
        self.server = _panel_server(server)
        self.stage = W.Dropdown(options=list(FAULT_STAGES), value=Stage.RCPT, description="stage")
        self.action = W.Dropdown(
            options=list(_ACTIONS), value="reply with code", description="action"
        )
        self.code = W.BoundedIntText(value=451, min=200, max=599, description="code")
        self.probability = W.FloatSlider(
            value=0.3,
            min=0.0,
            max=1.0,
            step=0.05,
            description="probability",
            continuous_update=False,
        )
        self.delay = W.IntSlider(
            value=200, min=0, max=2000, step=50, description="delay ms", continuous_update=False
        )
        self.seed = W.IntText(value=seed, description="seed")
        self.trials = W.IntSlider(
            value=min(trials, TRIALS_MAX),
            min=10,
            max=TRIALS_MAX,
            step=10,
            description="trials",
            continuous_update=False,
        )
        self.retry = W.ToggleButtons(options=list(POLICIES), value="none", description="retry")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.run_button.on_click(lambda _b: self.request_run())
        self.help = W.HTML(f'<span style="color:#333">{html.escape(_HELP)}</span>')
        self.progress = W.IntProgress(value=0, min=0, max=trials, description="progress")
        self.cancel_button = W.Button(description="Cancel", icon="stop", button_style="warning")
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.busy = W.HBox([self.progress, self.cancel_button], layout=W.Layout(display="none"))
        self.message = W.HTML()
        self.message.add_class("labsmtp-message")  # what the last run did (tests find it)
        self.summary = W.HTML()
        # Two plots, each shown at its natural size: side by side when the column
        # is wide enough, one above the other when not.  They are the notebook's
        # outcome and code plots drawn as SVG directly (svgbars.py): matplotlib
        # would take as long as the trials.
        self.images = [
            W.Image(format="svg+xml", layout=W.Layout(width=f"{svgbars.WIDTH}px", max_width="100%"))
            for _ in range(2)
        ]
        self.plots = W.HBox(
            self.images, layout=W.Layout(flex_flow="row wrap", align_items="flex-start")
        )
        self.results: TrialResults | None = None
        self.redraw_seconds: float | None = None  # how long the last run + redraw took
        self.runs = 0  # runs started; the message names each ("run #3")
        self._lock = threading.Lock()
        self._pending: dict | None = None
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        controls = W.VBox(
            [
                W.HBox([self.stage, self.action, self.code], layout=_WRAP),
                W.HBox([self.probability, self.delay, self.seed], layout=_WRAP),
                W.HBox([self.trials, self.retry], layout=_WRAP),
                W.HBox([self.run_button, self.help], layout=_WRAP),
                self.busy,
            ]
        )
        super().__init__([controls, self.message, self.plots, self.summary])
        if auto:
            for w in (
                self.stage,
                self.action,
                self.code,
                self.probability,
                self.delay,
                self.seed,
                self.trials,
                self.retry,
            ):
                w.observe(lambda _change: self.request_run(), names="value")
        self.run()  # a default result without any click

    # --- what the controls say -------------------------------------------

    def fault(self) -> Fault:
        """The fault rule the controls describe (LabValueError if they do not fit together)."""
        return self._fault(self._settings())

    def spec(self) -> str:
        """The fault spec the controls describe, e.g. 'rcpt:451:0.3'."""
        return self.fault().spec()

    def _settings(self) -> dict:
        """The controls' values now (read in the notebook's thread, used by the worker)."""
        return {
            "stage": self.stage.value,
            "action": self.action.value,
            "code": self.code.value,
            "probability": self.probability.value,
            "delay": self.delay.value,
            "seed": self.seed.value,
            "trials": self.trials.value,
            "retry": self.retry.value,
        }

    @staticmethod
    def _fault(st: dict[str, Any]) -> Fault:
        return Fault(st["stage"], _ACTIONS[st["action"]](st), round(st["probability"], 4))

    # --- running: one worker, the newest request wins ---------------------

    def request_run(self) -> None:
        """Run with the current settings in the background, cancelling a run in progress."""
        settings = self._settings()
        with self._lock:
            self._pending = settings
            self._cancel.set()  # the run in progress (if any) stops at its next dialogue
            if self._worker is None:
                self._idle.clear()
                self._worker = threading.Thread(target=self._work, name="fault-lab", daemon=True)
                self._worker.start()

    def cancel(self) -> None:
        """Stop the run in progress (the Cancel button)."""
        with self._lock:
            self._pending = None
            self._cancel.set()

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until no run is in progress or waiting; True if that happened in time."""
        return self._idle.wait(timeout)

    def run(self):
        """Run with the current settings and wait for the result (None if it failed)."""
        self.request_run()
        self.wait()
        return self.results

    def _work(self) -> None:
        while True:
            with self._lock:
                settings, self._pending = self._pending, None
                if settings is None:
                    self._worker = None
                    self._idle.set()
                    return
                cancel = self._cancel = threading.Event()
            try:
                self._run(settings, cancel)
            except Exception as exc:  # never a dead panel: say what broke
                self.message.value = _message(f"the run failed: {type(exc).__name__}: {exc}")

    def _clear_plots(self) -> None:
        self.results = None
        self.plots.layout.display = "none"
        self.summary.value = ""

    def _run(self, settings: dict, cancel: threading.Event) -> None:
        started = time.perf_counter()
        self.runs += 1
        label = f"Run #{self.runs} ({time.strftime('%H:%M:%S')})"
        try:
            notice = self.server._revive()
        except LabError as exc:
            self._clear_plots()
            self.message.value = _message(str(exc))
            return
        if settings["probability"] <= 0:
            faults = []
        else:
            try:
                faults = [self._fault(settings)]
            except LabError as exc:  # e.g. greylisting at MAIL: say why, show no stale plots
                self._clear_plots()
                self.message.value = _message(f"{label}: not run. {exc}")
                return
        fault = faults[0].name if faults else "none"
        lead = f"{notice} " if notice else ""
        self.message.value = _message(
            f"{lead}{label}: fault {fault} - running {settings['trials']} trials...", "info"
        )
        self.progress.max = settings["trials"]
        self.progress.value = 0
        timer = threading.Timer(_BUSY_AFTER, self._show_busy, args=(cancel,))
        timer.daemon = True
        timer.start()

        shown = [0.0]  # when the bar last moved

        def progress(done, total):
            # Each update is a message to the browser: only once the bar is on show,
            # at most ten a second (a quick run sends none and stays quick).
            now = time.perf_counter()
            if self.busy.layout.display != "none" and (now - shown[0] >= 0.1 or done == total):
                shown[0] = now
                self.progress.value = done

        try:
            r = run_trials(
                self.server,
                settings["trials"],
                retry=settings["retry"],
                seed=settings["seed"],
                faults=faults,
                progress=progress,
                simulate_delays=True,
                cancel=cancel,
            )
        except TrialsCancelled:
            self.message.value = _message(
                f"{label} cancelled"
                + ("; the plots below are still the previous run's." if self.results else "."),
                "info",
            )
            return
        except LabError as exc:
            self._clear_plots()
            self.message.value = _message(f"{label}: {exc}")
            return
        finally:
            timer.cancel()
            self.busy.layout.display = "none"
        self.results = r
        self.images[0].value = svgbars.outcome_svg(r).encode("utf-8")
        self.images[1].value = svgbars.codes_svg(r).encode("utf-8")
        self.plots.layout.display = "flex"
        self.summary.value = f'<pre style="white-space:pre-wrap">{html.escape(r.summary())}</pre>'
        self.redraw_seconds = time.perf_counter() - started
        self.message.value = _message(
            f"{lead}{label}: fault {fault}; {len(r.trials)} trials in {r.elapsed:.2f} s "
            f"(tarpit delays simulated), drawn in {self.redraw_seconds:.2f} s",
            "info",
        )

    def _show_busy(self, cancel: threading.Event) -> None:
        if not cancel.is_set() and not self._idle.is_set():
            self.busy.layout.display = "flex"


def fault_lab(server=None, **kwargs) -> FaultLab:
    """The fault lab panel: runs once at once, then again on every change (or Run)."""
    return FaultLab(server, **kwargs)


# --- mailbox and transcript ---------------------------------------------------


class MailboxView(W.VBox):
    """The server's mailbox as a table, with refresh and mbox export."""

    def __init__(self, server, path: str = "lab-mailbox.mbox"):
        self.server = server
        self.table = W.HTML()
        self.message = W.HTML()
        self.path = W.Text(value=path, description="mbox file")
        refresh = W.Button(description="refresh", icon="refresh")
        refresh.on_click(lambda _b: self.refresh())
        export = W.Button(description="export mbox", icon="download")
        export.on_click(lambda _b: self.export())
        super().__init__([W.HBox([refresh, self.path, export]), self.message, self.table])
        self.refresh()

    def refresh(self) -> None:
        self.table.value = mailbox_html(self.server.mailbox)

    def export(self) -> str | None:
        try:
            out = self.server.mailbox.to_mbox(self.path.value)
        except OSError as exc:
            self.message.value = _message(f"cannot write {self.path.value!r}: {exc.strerror}")
            return None
        self.message.value = _message(
            f"wrote {len(self.server.mailbox)} message(s) to {out}", "info"
        )
        return out


class TranscriptView(W.VBox):
    """One session's transcript (newest by default), with text and JSON-lines export."""

    def __init__(self, server, path: str = "lab-transcript.txt"):
        self.server = server
        self.session = W.Dropdown(description="session")
        self.table = W.HTML()
        self.message = W.HTML()
        self.path = W.Text(value=path, description="save as", tooltip=".txt or .jsonl")
        refresh = W.Button(description="refresh", icon="refresh")
        refresh.on_click(lambda _b: self.refresh())
        save = W.Button(description="save", icon="download")
        save.on_click(lambda _b: self.save())
        self.session.observe(lambda _c: self._draw(), names="value")
        super().__init__(
            [W.HBox([self.session, refresh, self.path, save]), self.message, self.table]
        )
        self.refresh()

    def refresh(self) -> None:
        ids = [s.id for s in self.server.sessions]
        self.session.options = [("all", None)] + [(f"#{i}", i) for i in ids]
        self.session.value = ids[-1] if ids else None
        self._draw()

    def _draw(self) -> None:
        sid = self.session.value
        lines = self.server.transcript.lines(sid)
        self.table.value = (
            transcript_html(lines)
            if lines
            else _message("no dialogue yet: connect a client (server.client()) and refresh", "info")
        )

    def save(self) -> str | None:
        try:
            out = self.server.transcript.save(self.path.value, self.session.value)
        except OSError as exc:
            self.message.value = _message(f"cannot write {self.path.value!r}: {exc.strerror}")
            return None
        self.message.value = _message(f"saved to {out}", "info")
        return out


def transcript_view(server) -> TranscriptView:
    """The transcript of ``server``, one session at a time, with export."""
    return TranscriptView(server)
