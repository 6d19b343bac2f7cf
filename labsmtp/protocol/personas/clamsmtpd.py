"""clamsmtpd 1.10 (Debian 12), a virus-scanning SMTP proxy, in front of stock Postfix 3.7.

The persona is the real chain (``tests/recordings/stock/clamsmtpd.conf``): Debian's
clamsmtpd.conf (XClient off, no Header, TimeOut 180) relaying to the stock
Postfix of ``postfix.py``.  ``ClamsmtpdRelay`` plays clamsmtpd's loop (smtppass.c,
as a model) around an in-memory Postfix session:

- a line of 8190 octets or more gets clamsmtpd's "500 Line too long";
- a line starting with DATA gets clamsmtpd's own 354 at once, whatever the
  transaction, and everything up to "<CRLF>.<CRLF>" is message text; then
  clamsmtpd sends DATA to Postfix, reads *one* reply line, and passes it on
  (Postfix's refusal, or after a 354 the message and Postfix's reply to its dot);
- STARTTLS and BDAT: "502 Command not implemented"; XCLIENT: "554 Insufficient
  authorization"; every other line goes to Postfix, cut at a NUL (C strings), so
  the rest of that line and the start of the next reach Postfix as one line;
- Postfix's replies are passed on line by line, but only once every line the client
  has sent is handled: a pipelined group gets its replies shifted, as the real
  proxy's do.  Postfix's greeting becomes "220 smtp.passthru", the first line of a
  successful HELO/EHLO reply "250 smtp.passthru", and while the last client line is
  EHLO the keywords clamsmtpd cannot relay (PIPELINING, STARTTLS, CHUNKING, ...)
  are left out, the last one replaced by "250 XFILTERED".

Postfix sees the proxy's own address, 127.0.0.1 (in its mynetworks), so any client
may relay through clamsmtpd.  The Postfix behind it takes Postfix's settings
(``LabServer(persona="clamsmtpd", smtpd_delay_reject=False)``).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..events import Answer, ClientLine, Event, MessageAccepted, Note, Turn
from ..lines import TooLong
from ..relay import Relay
from ..states import State
from .base import Persona, get_persona, register
from .postfix import POSTFIX, RECORDED_POLICY, SETTINGS

# spio.h: SP_LINE_LENGTH is MAXPATHLEN + 128 (4224 on Linux, where MAXPATHLEN is 4096);
# LINE_TOO_LONG(l) is l >= SP_LINE_LENGTH - 2: such a line (CRLF counted) is refused.
LINE_TOO_LONG = 4096 + 128 - 2
# EHLO keywords clamsmtpd does not pass on (smtppass.c).
FILTERED = ("PIPELINING", "STARTTLS", "CHUNKING", "BINARYMIME", "CHECKPOINT", "XCLIENT", "XEXCH50")
BACKEND_IP = "127.0.0.1"  # XClient: off, so Postfix sees clamsmtpd's own address

if TYPE_CHECKING:
    from ..session import Session


def first_word(line: bytes, word: bytes) -> bool:
    """is_first_word(): after leading blanks, ``word`` (any case), then the end or a blank."""
    rest = line.lstrip(b" \t\r\n\f\v")
    return rest[: len(word)].upper() == word and rest[len(word) : len(word) + 1] in (
        b"",
        *[bytes([c]) for c in b" \t\r\n\f\v"],
    )


def _successful(line: str) -> tuple[bool, bool]:
    """get_successful_rsp(): (a 2xx line, continued with '-')."""
    text = line.lstrip()
    ok = len(text) >= 4 and text[0] == "2" and text[1:3].isdigit() and text[3] in " -"
    return ok, ok and text[3] == "-"


class ClamsmtpdRelay(Relay):
    """clamsmtpd's loop for one client, with its own Postfix behind it."""

    def __init__(self, session: Session) -> None:
        from ..session import Session  # session.py imports the personas: late, no cycle

        super().__init__(session)
        setup = session.setup
        # The Postfix behind offers what a stock Postfix offers (STARTTLS unless the lab
        # says tls=False); clamsmtpd filters it out of its EHLO reply anyway.
        backend = dataclasses.replace(
            setup, persona=get_persona("postfix"), users=MappingProxyType({})
        )
        self.backend = Session(backend, session.persona.backend_client_ip or BACKEND_IP)
        self.pending: list[str | MessageAccepted] = []  # Postfix's output, not yet read
        self.first = True  # Postfix's first line is its greeting
        self.filter_host = False  # the next 2xx line answers HELO/EHLO
        self.last = b""  # the last client line (C string)
        self.message: list[bytes] | None = None  # collecting message text
        # The last text line ended with CRLF: only then is "." CRLF the end.  A new
        # connection starts without (so an empty message's "." is message text).
        self.crlf = False
        self.stuck = False  # waiting for a reply Postfix will never send
        self.lost = 0  # lines written after Postfix hung up
        self.gone = False  # Postfix hung up unasked and its last reply has been passed on
        self.unasked = False  # Postfix's last reply before hanging up answered no line

    @property
    def collecting(self) -> bool:
        return self.message is not None

    # --- Postfix, behind ----------------------------------------------------------------

    def _send(self, data: bytes) -> list[Event]:
        """Write to Postfix; it answers at once, into ``pending``.  Once Postfix has hung
        up, the first write is lost and the next fails: clamsmtpd says what Postfix said
        last, then "451 Local Error", and closes."""
        b = self.backend
        if not data:
            return []
        if b.closing and self.gone:
            return self._own("relay_failed") + self.session.hang_up()
        if b.closing:
            self.lost += 1
            if self.lost < 2:
                return []
            events = self._relay(hang_up=False) + self._own("relay_failed")
            return events + self.session.hang_up()
        b.receive(data)
        while (turn := b.next_turn()) is not None:
            events = list(turn.events)
            if turn.pending is not None:
                events += b.respond(turn.pending)
            self._take(events)
            # two replies to one line, and the end: the last was Postfix's own
            self.unasked = b.closing and sum(isinstance(e, Answer) for e in events) > 1
        return []

    def _take(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Answer):
                self.pending.extend(ev.lines)
            elif isinstance(ev, MessageAccepted):
                self.pending.append(ev)

    def _read_line(self) -> tuple[str | None, list[Event]]:
        """read_server_response(): Postfix's next line (None: it has none to give)."""
        events: list[Event] = []
        while self.pending:
            item = self.pending.pop(0)
            if isinstance(item, MessageAccepted):
                events.append(self._stored(item))
            else:
                return item, events
        return None, events

    def _stored(self, ev: MessageAccepted) -> MessageAccepted:
        # What Postfix accepted, stamped as the chain does (trace.py "clamsmtpd").
        self.session.helo = self.backend.helo
        self.session.extended = self.backend.extended
        parameters = (ev.mail_parameters, ev.rcpt_parameters)  # DSN's RET, ENVID, NOTIFY
        return self.session.accepted(
            ev.queue_id, ev.mail_from, ev.rcpt_tos, ev.sent, parameters=parameters
        )

    # --- to the client ---------------------------------------------------------------

    def _relay(self, hang_up: bool = True) -> list[Event]:
        """Pass Postfix's waiting lines on, filtered as clamsmtpd filters them."""
        events: list[Event] = []
        out: list[str] = []
        while True:
            line, stored = self._read_line()
            if stored:
                events += self._flush(out) + stored
                out = []
            if line is None:
                break
            out += self._filter(line)
        events += self._flush(out)
        if hang_up and self.backend.closing and not self.pending:
            # Postfix hung up.  When it closed in answer to a line (221 to QUIT or to
            # junk), clamsmtpd's next read is the EOF: it closes too.  When it spoke
            # unasked first (its 421 after the reply to the 20th error), the client's
            # next line was already on its way: clamsmtpd writes it to the dead socket,
            # reads the reset, and says "451 Local Error" (_send).
            if self.unasked:
                self.gone = True
            else:
                events += self.session.hang_up()
        return events

    def _filter(self, line: str) -> list[str]:
        if self.first:
            self.first = False
            if line.startswith("220"):
                return self.session.render("greeting")
        ok, more = _successful(line)
        if not ok:
            return [line]
        if self.filter_host:
            self.filter_host = False
            return [("250-" if more else "250 ") + "smtp.passthru"]
        if first_word(self.last, b"EHLO") and line[4:].split(" ", 1)[0].upper() in FILTERED:
            return [] if more else ["250 XFILTERED"]
        return [line]

    def _flush(self, lines: list[str]) -> list[Event]:
        """The lines as replies: each ends at a line that is not continued ('250-')."""
        events: list[Event] = []
        group: list[str] = []
        for ln in lines:
            group.append(ln)
            if ln[3:4] != "-":
                events.append(Answer(tuple(group), None))
                group = []
        if group:
            events.append(Answer(tuple(group), None))
        return events

    def _own(self, key: str) -> list[Event]:
        return [Answer(tuple(self.session.render(key)), None)]

    # --- the loop ----------------------------------------------------------------------

    def greeting(self) -> list[Event]:
        self._take(self.backend.respond(self.backend.connect()))
        return self._relay() + self._state()

    def next_turn(self) -> Turn | None:
        if self.stuck:
            return None
        lines = self.session._lines
        if self.message is not None:
            return self._text(lines.line(b"\n", 2**62))
        got = lines.line(b"\n")
        if got is None:
            return None
        if isinstance(got, TooLong) or len(got) >= LINE_TOO_LONG:
            size = got.size if isinstance(got, TooLong) else len(got)
            seen = ClientLine(b"", None, f"a command line of {size} bytes (not shown)")
            return Turn((seen,), tuple(self._own("line_too_long")))
        line = got.split(b"\x00", 1)[0]  # a C string: the rest of the line is lost
        seen = ClientLine(got, line.split(b" ", 1)[0].strip().decode("latin-1").upper() or None)
        self.filter_host = False
        self.last = line
        events = self._command(line)
        if self.session.closing:
            return Turn((seen,), tuple(events))
        if not lines and self.message is None:  # every client line handled: Postfix's turn
            events += self._relay()
        return Turn((seen,), tuple(events + self._state()))

    def _command(self, line: bytes) -> list[Event]:
        if first_word(line, b"DATA"):
            self.message = []
            return self._own("data_go")
        if first_word(line, b"EHLO") or first_word(line, b"HELO"):
            self.filter_host = True
        elif first_word(line, b"STARTTLS") or first_word(line, b"BDAT"):
            return self._own("starttls_not_offered")
        elif first_word(line, b"XCLIENT"):
            return self._own("xclient_refused")
        return self._send(line)

    def _text(self, got: bytes | TooLong | None) -> Turn | None:
        assert self.message is not None
        if got is None:
            return None
        raw = got.head if isinstance(got, TooLong) else got
        if self.crlf and raw == b".\r\n":
            return Turn((ClientLine(raw, "."),), tuple(self._end_of_data() + self._state()))
        # As recorded: a bare LF after a CRLF line reaches Postfix as CRLF, one after a
        # bare-LF line stays bare (so "<LF>.<LF>" can still end Postfix's DATA).
        if not raw.endswith(b"\r\n") and raw.endswith(b"\n") and self.crlf:
            raw = raw[:-1] + b"\r\n"
            self.crlf = False
        else:
            self.crlf = raw.endswith(b"\r\n")
        self.message.append(raw)
        return Turn((ClientLine(raw, None, "message text"),))

    def _end_of_data(self) -> list[Event]:
        """sp_done_data(): DATA to Postfix, one line back; after 354 the message."""
        message, self.message = self.message or [], None
        self.last = b".\r\n"
        failed = self._send(b"DATA\r\n")
        if failed:
            return failed
        line, events = self._read_line()
        if line is None:
            self.stuck = True  # clamsmtpd waits for Postfix, which waits for text
            return events + [Note("clamsmtpd waits for the server behind it")]
        if not first_word(line.encode("utf-8", "surrogateescape"), b"354"):
            return events + self._flush([line]) + self._relay()
        if any(b"\x00" in ln for ln in message):
            self.stuck = True  # as recorded: text with a NUL is never answered
            return events
        # A lone "." line inside the text is sent as ". " (sp_done_data()).
        body = b"".join(b". \r\n" if ln == b".\r\n" else ln for ln in message)
        failed = self._send(body + b".\r\n")
        if failed:
            return failed
        line, stored = self._read_line()
        events += stored
        if line is None:
            self.stuck = True
            return events
        return events + self._flush([line]) + self._relay()

    def _state(self) -> list[Event]:
        state = State.DATA if self.message is not None else self.backend.state
        if self.session.closing or state is State.CLOSED:
            return []  # clamsmtpd closes when it notices, not when Postfix does
        return self.session.move(state)


CLAMSMTPD = dict(
    POSTFIX,
    **{
        "greeting": "220 smtp.passthru",
        "helo_ok": "250 smtp.passthru",
        "ehlo_ok": "250 smtp.passthru",
        "data_go": "354 Start mail input; end with <CRLF>.<CRLF>",
        "starttls_not_offered": "502 Command not implemented",
        "line_too_long": "500 Line too long",
        "xclient_refused": "554 Insufficient authorization",
        "relay_failed": "451 Local Error",
        # clamsmtpd's own, at MaxConnections (smtppass.c's busy response)
        "too_many_connections": "421 Server busy, too many connections",
    },
)


register(
    Persona(
        name="clamsmtpd",
        software="clamsmtpd 1.10 in front of Postfix 3.7",
        about="clamsmtpd 1.10, a virus-scanning proxy, in front of a stock Postfix 3.7, as "
        "Debian 12 installs them (XClient off): it answers the greeting, HELO/EHLO and DATA "
        "itself (354 at once) and relays everything else, line by line.",
        replies=MappingProxyType(CLAMSMTPD),
        ehlo_keywords=(
            "SIZE {size}",
            "VRFY",
            "ETRN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "XFILTERED",
        ),
        source="tests/recordings/clamsmtpd-1.10.json",  # and generated/clamsmtpd.json
        # clamsmtpd.conf: MaxConnections (64) and TimeOut (180 s), as recorded; the rest
        # are the Postfix behind it.
        policy_names=MappingProxyType(
            {"MaxConnections": "max_connections", "TimeOut": "idle_timeout"}
        ),
        limit_defaults=MappingProxyType({"max_connections": 64, "idle_timeout": 180.0}),
        requires_brackets=False,
        helo_required_default=False,  # Postfix's default; the recording turned it on
        sequence_variants=("data_spooled_first",),
        no_argument_verbs=("RSET",),  # DATA is clamsmtpd's; RSET goes to Postfix
        backend_client_ip=BACKEND_IP,
        stock_tls=True,  # the Postfix behind lists STARTTLS; clamsmtpd passes the list on, but says 502
        platform_policy=RECORDED_POLICY,  # the Postfix behind it, as recorded
        settings=SETTINGS,  # the Postfix behind it
        setting_choices=get_persona("postfix").setting_choices,
        policy_defaults=get_persona("postfix").policy_defaults,
        relay=ClamsmtpdRelay,
    )
)
