"""Put the personas side by side: the same dialogue, who answered what.

``compare(lines)`` plays one dialogue against every persona and tabulates each
reply; ``compare_steps()`` plays the platform lesson's short dialogues (a HELO
with a fully-qualified name, a HELO without one, MAIL with no HELO, relaying
from a client outside mynetworks) and keeps the reply that matters in each.
Each persona runs on its own short-lived ``LabServer`` (real sockets, loopback)
configured as its real program was in its lab-config recording
(``LabServer.as_recorded``: the persona's own ``recorded_configuration()``).

``plots.plot_comparison(table)`` draws the table as a grid;
``compare_html(table)`` renders it for a notebook.
The Exchange persona is built from Microsoft's published reply formats, not
recorded; the table says so in its row label.
"""

from __future__ import annotations

import html
import itertools
import socket
from dataclasses import dataclass

from ..errors import LabValueError
from ..lab.client import ConnectionEnded, ReplyReader
from ..lab.labserver import LabServer
from ..protocol.personas import get_persona, persona_names
from ..protocol.replies import parse_reply, reply_class
from ..protocol.states import Stage
from ..style import CLASS_COLOURS

CONNECT_STEP = f"({Stage.CONNECT})"  # the column of the greeting

# The platform lesson's four questions: step name -> (client address, lines).
# The reply to the step's last line fills the cell.
PLATFORM_STEPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "HELO fqdn": ("127.0.0.1", ("HELO client.example.org",)),
    "HELO non-FQDN": ("127.0.0.1", ("HELO client",)),
    "missing HELO (MAIL first)": ("127.0.0.1", ("MAIL FROM:<a@example.org>",)),
    "relaying from 127.0.0.2": (
        "127.0.0.2",
        (
            "EHLO client.example.org",
            "MAIL FROM:<a@example.org>",
            "RCPT TO:<someone@elsewhere.example.net>",
        ),
    ),
}

_RUNS = itertools.count(1)  # unique server names: never stop a learner's own server

# The personas a learner meets in the platform lesson, in the article's order.
PLATFORMS = ("postfix", "exim", "sendmail", "opensmtpd", "exchange", "clamsmtpd")


@dataclass(frozen=True)
class Cell:
    """One persona's reply to one step: the line sent and the reply's lines (None: no reply)."""

    sent: str
    reply: tuple[str, ...] | None

    @property
    def code(self) -> int | None:
        return self._parsed().code if self.reply else None

    @property
    def enhanced(self) -> str | None:
        return self._parsed().enhanced if self.reply else None

    @property
    def klass(self) -> str:
        """'2xx' ... '5xx', or 'none' when the server closed or never answered."""
        return reply_class(self.code)

    @property
    def short(self) -> str:
        """Code and enhanced code, e.g. '550 5.7.54'; 'no reply' when there was none."""
        if not self.reply:
            return "no reply"
        return f"{self.code} {self.enhanced}" if self.enhanced else str(self.code)

    @property
    def text(self) -> str:
        return (
            "\n".join(self.reply)
            if self.reply
            else "(no reply: the connection closed or timed out)"
        )

    def _parsed(self):
        return parse_reply("".join(ln + "\r\n" for ln in self.reply).encode("utf-8", "replace"))


@dataclass(frozen=True)
class Comparison:
    """Who answered what: one row per persona, one column per step."""

    steps: tuple[str, ...]
    personas: tuple[str, ...]
    cells: dict  # persona -> tuple[Cell, ...], one per step

    def cell(self, persona: str, step: str) -> Cell:
        """The reply ``persona`` gave at ``step``."""
        return self.cells[persona][self.steps.index(step)]

    def rows(self) -> list[dict]:
        """One dict per persona: {'persona': name, step: 'code enhanced', ...}."""
        return [
            {"persona": p, **{s: c.short for s, c in zip(self.steps, self.cells[p], strict=True)}}
            for p in self.personas
        ]

    def __str__(self) -> str:
        """One block per step, one line per persona: narrow enough for any notebook column."""
        width = max(len(p) for p in self.personas) + 2
        out = []
        for i, step in enumerate(self.steps):
            out.append(step)
            out += [f"  {p:<{width}}{self.cells[p][i].short}" for p in self.personas]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return compare_html(self)


def _talk(
    port: int, client: str, lines, timeout: float
) -> list[tuple[str, tuple[str, ...] | None]]:
    """Connect from ``client``, read the greeting, send each line, read one reply to each."""
    exchanges: list[tuple[str, tuple[str, ...] | None]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.bind((client, 0))
        sock.connect(("127.0.0.1", port))
        reader = ReplyReader(sock)

        def read() -> tuple[str, ...] | None:
            try:
                raw = reader.read()
            except ConnectionEnded as end:  # what came before the close, if anything
                return parse_reply(end.partial).lines or None
            except OSError:  # includes TimeoutError
                return None
            return parse_reply(raw).lines

        exchanges.append((CONNECT_STEP, read()))
        for line in lines:
            if exchanges[-1][1] is None:
                break  # the server hung up (or went quiet): nothing more can be said
            try:
                sock.sendall(line.encode("utf-8") + b"\r\n")
            except OSError:
                exchanges.append((line, None))
                break
            exchanges.append((line, read()))
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
    return exchanges


def _check_personas(personas) -> tuple[str, ...]:
    if personas is None:
        return PLATFORMS
    if isinstance(personas, str):
        personas = (personas,)
    names = tuple(get_persona(p).name for p in personas)  # a typo gets the list of names
    if not names:
        raise LabValueError(f"give at least one persona; choose from: {', '.join(persona_names())}")
    return names


def _run(personas, dialogues, timeout, policy_switches):
    """Play every (client, lines) dialogue against every persona; persona -> list of exchanges."""
    out = {}
    for name in personas:
        server = LabServer.as_recorded(
            name, name=f"compare-{name}-{next(_RUNS)}", **policy_switches
        )
        with server:
            out[name] = [_talk(server.port, client, lines, timeout) for client, lines in dialogues]
    return out


def compare(
    dialogue_lines,
    personas=None,
    *,
    client: str = "127.0.0.1",
    timeout: float = 3.0,
    **policy_switches,
) -> Comparison:
    """Play the same dialogue against each persona; a table of who answered what to each line.

    ``dialogue_lines``: the command lines to send, e.g. ``["HELO client", "QUIT"]``.
    ``personas``: names (default: the platform lesson's six).  Each persona's server
    is its program as recorded (``LabServer.as_recorded``); ``policy_switches``
    change that for every persona, e.g. ``smtpd_helo_required=False``.
    """
    if isinstance(dialogue_lines, str):
        dialogue_lines = [dialogue_lines]
    lines = tuple(dialogue_lines)
    if not lines or not all(isinstance(ln, str) for ln in lines):
        raise LabValueError(
            "dialogue_lines must be a list of command lines such as ['HELO client']"
        )
    names = _check_personas(personas)
    played = _run(names, [(client, lines)], timeout, policy_switches)
    steps = [CONNECT_STEP]
    for i, ln in enumerate(lines):
        steps.append(ln if ln not in steps else f"{ln} (#{i + 1})")
    sent = ("", *lines)
    cells = {}
    for name in names:
        got = played[name][0]  # shorter than sent if the server hung up early
        cells[name] = tuple(
            Cell(s, got[i][1] if i < len(got) else None) for i, s in enumerate(sent)
        )
    return Comparison(tuple(steps), names, cells)


def compare_steps(
    steps=None, personas=None, *, timeout: float = 3.0, **policy_switches
) -> Comparison:
    """The platform lesson's table: each step is a short dialogue; the cell is its last reply.

    ``steps``: {name: (client address, lines)}; default ``PLATFORM_STEPS`` (HELO fqdn,
    HELO non-FQDN, missing HELO, relaying from 127.0.0.2).
    """
    steps = dict(PLATFORM_STEPS if steps is None else steps)
    for name, value in steps.items():
        if not (isinstance(value, tuple) and len(value) == 2 and value[1]):
            raise LabValueError(f"step {name!r} must be (client address, [lines]), not {value!r}")
    names = _check_personas(personas)
    played = _run(
        names, [(c, tuple(lines)) for c, lines in steps.values()], timeout, policy_switches
    )
    # The cell is the reply to the step's last line; if the server hung up earlier,
    # it is that earlier exchange (the reason the step went no further).
    cells = {name: tuple(Cell(*exchanges[-1]) for exchanges in played[name]) for name in names}
    return Comparison(tuple(steps), names, cells)


def row_label(persona: str) -> str:
    """A persona's row label; says when the persona was not recorded from the real program."""
    p = get_persona(persona)
    return p.name if p.recorded else f"{p.name}\n(not recorded)"


def compare_html(table: Comparison) -> str:
    """The table as HTML for a notebook: coloured by reply class, the full reply on hover.

    Long words (addresses, command lines) break anywhere rather than widen the
    table past the notebook column.
    """
    if not isinstance(table, Comparison):
        raise LabValueError(
            "compare_html() wants the table that compare() or compare_steps() returns"
        )
    esc = html.escape
    cell_style = "padding:4px 8px;vertical-align:top;overflow-wrap:anywhere;text-align:left"
    head = "".join(f"<th style='{cell_style}'>{esc(s)}</th>" for s in table.steps)
    rows = []
    for p in table.personas:
        tds = []
        for cell in table.cells[p]:
            colour = CLASS_COLOURS[cell.klass]
            first = cell.reply[0][4:] if cell.reply else ""
            tds.append(
                f"<td title='{esc(cell.text, quote=True)}' style='background:{colour};"
                f"color:black;{cell_style}'><b>{esc(cell.short)}</b>"
                f"<br><small>{esc(first)}</small></td>"
            )
        label = esc(row_label(p)).replace("\n", "<br>")
        rows.append(f"<tr><th style='{cell_style}'>{label}</th>{''.join(tds)}</tr>")
    return (
        "<table style='border-collapse:separate;border-spacing:2px;max-width:100%'>"
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


@dataclass(frozen=True)
class PersonaTable:
    """The personas a learner can choose: name, the software it imitates, what to expect."""

    names: tuple[str, ...]

    def __str__(self) -> str:
        import textwrap

        out = []
        for name in self.names:
            p = get_persona(name)
            out.append(f"{name}: {p.software}")
            out += textwrap.wrap(p.about, 72, initial_indent="    ", subsequent_indent="    ")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        esc = html.escape
        style = "padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere"
        rows = "".join(
            f"<tr><td style='{style}'><b>{esc(n)}</b></td>"
            f"<td style='{style}'>{esc(get_persona(n).software)}</td>"
            f"<td style='{style}'>{esc(get_persona(n).about)}</td></tr>"
            for n in self.names
        )
        return (
            "<table style='border-collapse:collapse;max-width:100%'><thead><tr>"
            f"<th style='{style}'>persona</th><th style='{style}'>imitates</th>"
            f"<th style='{style}'>what it does</th></tr></thead><tbody>{rows}</tbody></table>"
        )


def persona_table(names=None) -> PersonaTable:
    """Every persona (or those named) as a table: name, software, and its description in full."""
    return PersonaTable(tuple(get_persona(n).name for n in (names or persona_names())))
