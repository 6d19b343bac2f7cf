"""Notebook widgets: step through a dialogue, run the fault lab, read mailbox and transcript.

Every widget shows a useful result as soon as it is displayed (so "Run All"
produces output without a click), reports bad values as a message inside
the panel rather than a traceback, and updates in place.  Plots are shown
as PNG images rendered from the Figures in ``plots.py``, which keeps them
working with any matplotlib backend.
"""

from __future__ import annotations

import html
import io
import time

import ipywidgets as W
from matplotlib.figure import Figure

from ..errors import LabConnectionError, LabError
from ..lab.faults import STAGES, parse_fault
from ..lab.trials import POLICIES, run_trials
from ..protocol import states
from ..protocol.states import Command
from ..render import mailbox_html, transcript_html
from . import plots

_OK_STYLE = "success"  # legal next commands: green buttons (ipywidgets' palette)


def figure_png(fig) -> bytes:
    """A Figure as PNG bytes (what an Image widget shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _message(text: str, kind: str = "error") -> str:
    colour = {"error": "#D55E00", "info": "#333333"}[kind]
    return f'<div style="color:{colour};white-space:pre-wrap">{html.escape(text)}</div>'


def _own_server(server, name: str):
    if server is not None:
        return server
    from ..lab.server import LabServer

    return LabServer(name=name, seed=1).start()


def _ensure_running(server) -> None:
    # A lesson's last cell stops its servers (stop_all), yet a learner may go back
    # and press a button: start the server again rather than fail.
    if not server.running:
        server.start()


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


class DialogueStepper(W.VBox):
    """One button per SMTP command; legal next ones are green, every one can be pressed."""

    def __init__(self, server=None, *, connect: bool = True):
        self.server = _own_server(server, "stepper")
        self.client = None
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
        row1 = W.HBox([self.connect_button] + [self.buttons[c] for c, _ in _STEPS[:5]])
        row2 = W.HBox([self.buttons[c] for c, _ in _STEPS[5:]])
        super().__init__(
            [
                W.HBox([self.helo_name, self.sender, self.recipient]),
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

    def connect(self) -> None:
        """Open a new connection (closing the old one) and show the greeting."""
        if self.client is not None:
            self.client.close()
        _ensure_running(self.server)
        self.client = self.server.client(connect=False, timeout=5.0)
        try:
            reply = self.client.connect()
            self.status.value = _message(f"connected: {reply}", "info")
        except LabError as exc:
            self.status.value = _message(str(exc))
        self._refresh()

    def press(self, cmd: Command):
        """Send ``cmd`` whether or not it is legal now (that is how one meets 503)."""
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
            self.status.value = _message(reply.explain(), "info" if reply.ok else "error")
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


def dialogue_stepper(server=None) -> DialogueStepper:
    """A dialogue stepper for ``server`` (or a new lab server), already connected."""
    return DialogueStepper(server)


# --- the fault lab ------------------------------------------------------------

_ACTIONS = {
    "reply with code": "{code}",
    "421 and hang up": "421",
    "hang up, no reply": "drop",
    "delay (tarpit)": "delay={delay}ms",
    "greylist (300 s)": "greylist=300s",
    "malformed reply": "malformed",
    "cut off in DATA": "cut",
}


class FaultLab(W.VBox):
    """Set one fault, run N real trials, see outcomes and reply codes; updates in place.

    Each run replaces the server's fault rules with the panel's one rule.
    """

    def __init__(self, server=None, *, trials: int = 100, seed: int = 1, auto: bool = True):
        self.server = _own_server(server, "fault-lab")
        self.stage = W.Dropdown(options=list(STAGES), value="rcpt", description="stage")
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
            value=trials, min=10, max=2000, step=10, description="trials", continuous_update=False
        )
        self.retry = W.ToggleButtons(options=list(POLICIES), value="none", description="retry")
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.run_button.on_click(lambda _b: self.run())
        self.progress = W.IntProgress(value=0, min=0, max=trials, description="progress")
        self.message = W.HTML()
        self.summary = W.HTML()
        # One figure, two axes, reused for every run: a fixed layout (no constrained
        # layout pass) and one PNG per redraw keep a slider move well under a second.
        self.figure = Figure(figsize=(15, 5.2))
        self.figure.subplots_adjust(left=0.05, right=0.9, bottom=0.12, top=0.84, wspace=0.25)
        self._outcome_ax, self._codes_ax = self.figure.subplots(1, 2, width_ratios=[1, 1.4])
        self.image = W.Image(format="png", layout=W.Layout(width="100%"))
        self.results = None
        self.redraw_seconds = None  # how long the last run + redraw took
        controls = W.VBox(
            [
                W.HBox([self.stage, self.action, self.code]),
                W.HBox([self.probability, self.delay, self.seed]),
                W.HBox([self.trials, self.retry]),
                W.HBox([self.run_button, self.progress]),
            ]
        )
        super().__init__([controls, self.message, self.image, self.summary])
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
                w.observe(lambda _change: self.run(), names="value")
        self.run()  # a default result without any click

    def spec(self) -> str:
        """The fault spec the controls describe, e.g. 'rcpt:451:0.3'."""
        what = _ACTIONS[self.action.value].format(code=self.code.value, delay=self.delay.value)
        spec = f"{self.stage.value}:{what}"
        p = self.probability.value
        if p < 1:
            spec += f":{p:g}"
        return spec

    def run(self):
        """Run the trials for the current settings and redraw (errors go to the panel)."""
        started = time.perf_counter()
        _ensure_running(self.server)
        if self.probability.value <= 0:
            faults = []
        else:
            try:
                faults = [parse_fault(self.spec())]
            except LabError as exc:
                self.message.value = _message(str(exc).split("\nfault spec:")[0])
                return None
        self.message.value = _message(
            f"fault: {faults[0].name if faults else 'none'} - running {self.trials.value} trials...",
            "info",
        )
        self.progress.max = self.trials.value
        self.progress.value = 0

        def progress(done, total):
            self.progress.value = done

        try:
            r = run_trials(
                self.server,
                self.trials.value,
                retry=self.retry.value,
                seed=self.seed.value,
                faults=faults,
                progress=progress,
            )
        except LabError as exc:
            self.message.value = _message(str(exc))
            return None
        self.results = r
        for ax in (self._outcome_ax, self._codes_ax):
            ax.clear()
        plots.outcome_bars(r, ax=self._outcome_ax)
        plots.codes_by_stage(r, ax=self._codes_ax)
        self.image.value = figure_png(self.figure)
        self.summary.value = f"<pre>{html.escape(r.summary())}</pre>"
        self.redraw_seconds = time.perf_counter() - started
        self.message.value = _message(
            f"fault: {faults[0].name if faults else 'none'}; {len(r.trials)} trials in "
            f"{r.elapsed:.2f} s, drawn in {self.redraw_seconds:.2f} s",
            "info",
        )
        return r


def fault_lab(server=None, **kwargs) -> FaultLab:
    """The fault lab panel (runs once at once, then on every change or Run)."""
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


def mailbox_view(server) -> MailboxView:
    """The mailbox of ``server`` with an mbox export button."""
    return MailboxView(server)


def transcript_view(server) -> TranscriptView:
    """The transcript of ``server``, one session at a time, with export."""
    return TranscriptView(server)


stepper = dialogue_stepper  # ``widgets.stepper(server)`` in a lesson
