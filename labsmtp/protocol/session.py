"""The server's side of one SMTP connection, without sockets (sans-IO, after h11).

Theory of operation.  A ``Session`` is fed the bytes a client sent
(``receive``) and hands back, one ``Turn`` at a time (``next_turn``), what
it made of them: the lines read (for the transcript), the events it already
decided (``Answer`` a reply, ``StateChanged``, ``HangUp``, ...) and, for a
command that passed every sequence check, a ``Pending`` command: a fault
point.  Whoever drives the session answers a pending command either with
``respond`` (the normal behaviour: parse, check policy, reply in the
persona's words) or with ``answered`` (it sent a reply of its own, a fault;
the session moves along the table as that reply says).

The session owns the rules of the dialogue: command decoding and line limits
(``lines.py``), verbs, paths and parameters (the persona's ``Grammar``),
sequence checks and every state change (``states.py``), relay and size
decisions (``Policy``), DATA accounting and dot-unstuffing, the AUTH
exchange (``auth.py``), and reply wording (``Persona``).  It never reads a
socket, starts a timer or sleeps: ``lab/server.py`` does that, and
``pair.py`` drives a session in memory for tests.

Where new behaviour goes: how a server reads lines (its parser, its limits,
what it does past them) is its ``Grammar``; what the server decides about
a client is a policy hook of ``Setup`` (``identity``, ``recipients``); BDAT
(RFC 3030) reads a chunk whole (``chunking.py``) before its fault point, and
its last chunk is stored as the final dot's text is (``_store``); whether an
extension is offered now is ``offers`` (the grammar asks it about ESMTP
parameters); a trace field for the stored message goes where
``MessageAccepted`` is made.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from . import auth, states, trace
from .checks import Checks, checks_of
from .chunking import Chunk, Chunks, longest_line
from .events import (
    Answer,
    Authenticated,
    AuthFailed,
    ClientLine,
    Event,
    Greeted,
    HangUp,
    MessageAccepted,
    Note,
    Pending,
    StateChanged,
    TLSRequested,
    Turn,
)
from .grammar import AUTH_LINE_LIMIT, CommandLine, Grammar, Path, Refusal, View, grammar_of
from .lines import LineBuffer, MessageText, TooLong
from .relay import Relay
from .setup import REVERSE_NAMES, Fields, Setup
from .states import Command, Stage, State
from .trace import TlsInfo

__all__ = ["AUTH_LINE_LIMIT", "REVERSE_NAMES", "Session", "Setup"]


def _code(answer: Answer) -> int | None:
    first = answer.lines[0][:3] if answer.lines else ""
    return int(first) if first.isdigit() else None


def _counts_as_error(code: int | None) -> bool:
    # §3.8 counts failed commands; a 421 is the server closing, not the client failing.
    return code is not None and 400 <= code < 600 and code not in states.CLOSING_CODES


class Session:
    """One SMTP connection as the server sees it: bytes in, turns and events out."""

    def __init__(
        self, setup: Setup, client_ip: str, *, tls: bool = False, tls_info: TlsInfo | None = None
    ) -> None:
        self.setup, self.persona, self.policy = setup, setup.persona, setup.policy
        self.grammar: Grammar = grammar_of(setup.persona, setup)
        self.grammar.bind(setup, client_ip)
        self.checks: Checks = checks_of(setup.persona, setup)
        # A proxy persona (clamsmtpd) relays to a server of its own: it reads every line.
        self.relay: Relay | None = setup.persona.relay(self) if setup.persona.relay else None
        self.grammar.offers = self.offers
        self.client_ip = client_ip
        self.state = states.opened()
        self.tls = tls  # inside TLS (implicit TLS: from the first byte)
        self.tls_info = tls_info  # version and cipher, for the Received: field
        self.tls_restarted = False  # STARTTLS done: a fresh EHLO is needed before MAIL
        self.helo: str | None = None
        self.extended = False  # greeted with EHLO
        self.user: str | None = None  # authenticated as
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.rcpt_tos: list[str] = []
        self._last_rcpt: str | None = None  # the last RCPT's address, accepted or not
        self.rcpt_options: list[str] = []
        self._rcpt_parameters: list[tuple[str, ...]] = []  # each accepted RCPT's, in order
        self.errors = 0  # failed commands (Policy.hard_error_limit)
        self.unknown = 0  # unknown commands (Persona.unknown_command_limit)
        self.hidden_keywords: frozenset[str] = frozenset()  # EHLO keywords left out (faults)
        self._lines = LineBuffer(self.grammar.read_limit, eager=self.grammar.eager_overflow)
        self._line = ""  # the command being answered: {line}, {verb}, {word}, {keyword}
        self._auth: auth.Exchange | None = None
        self._message: MessageText | None = None
        self._data_from = State.RCPT  # the state DATA was entered from
        self._dot_refusal: str | None = None  # a proxy's refusal, said after the dot
        self._content = b""
        self._chunk: Chunk | None = None  # a BDAT chunk being read (RFC 3030)
        self._chunks = Chunks()  # the transaction's chunks so far
        self._tls_pending = False
        self._closing = False
        self._close_after = False  # a reply the persona closes after was said
        self._rng: random.Random | None = None

    # --- the driver's side ---------------------------------------------------

    def connect(self) -> Pending:
        """The greeting, pending like a command (a fault may answer instead)."""
        return Pending(Stage.CONNECT, None, "", "")

    def refuse(self, key: str, reason: str | None = None) -> list[Event]:
        """Refuse the connection instead of greeting (too_many_connections, connection_refused).

        ``reason`` (an admission check's words) follows the persona's text, where
        Postfix puts an access(5) rule's text, so the client learns why.  A 421
        closes at once (§3.8); after a 554 the session waits for QUIT (§3.1).
        """
        answer = self._answer(key, "CONNECT")
        if reason:
            answer = Answer((*answer.lines[:-1], f"{answer.lines[-1]}: {reason}"), answer.command)
        return [answer, *self._move(states.after_greeting(_code(answer)))]

    def receive(self, data: bytes) -> None:
        """Bytes the client sent."""
        self._lines.feed(data)

    def next_turn(self) -> Turn | None:
        """What the next complete line(s) make; None until more bytes arrive (or once closing)."""
        if self._closing or self._tls_pending:
            return None
        if self.relay is not None:
            return self.relay.next_turn()
        if self._chunk is not None:
            return self._chunk_turn()
        if self._message is not None:
            return self._text_turn()
        if self._auth is not None:
            line = self._lines.line(self.grammar.command_line_end)
            return None if line is None else self._auth_turn(line)
        line = self.grammar.read_command(self._lines)
        if line is None:
            return None
        return self._command_turn(line)

    def respond(self, pending: Pending) -> list[Event]:
        """The normal answer to ``pending``: what this server does with the command."""
        own = self.grammar.respond(self, pending.command, pending.argument, pending.verb)
        if pending.command is None:
            if own is not None:
                return own
            if self.relay is not None:
                return self.relay.greeting()
            refused = self.checks.at_connect(self)
            if refused is None:
                return [self._answer("greeting", "CONNECT")]
            answer = self._answer(refused.key, "CONNECT", arg=refused.arg)
            return [answer, *self._move(states.after_greeting(_code(answer)))]
        if own is not None:  # the program answers this command its own way
            return self._finish(own)
        handler = self._HANDLERS[pending.command]
        return self._finish(handler(self, pending.argument, pending.verb))

    def answered(self, pending: Pending, code: int | None) -> list[Event]:
        """The driver answered ``pending`` itself with a ``code`` reply (None: a malformed one)."""
        if pending.stage is Stage.CONNECT:
            return self._move(states.after_greeting(code))  # a greeting is not a failed command
        before = self.state
        events = self._advance(pending.command, code)
        if pending.command in (Command.END_OF_DATA, Command.BDAT_LAST):
            self._reset_transaction()
        elif pending.command is Command.BDAT:
            self._chunks.failed = True  # the chunk was not taken, whatever was said
        elif pending.command is Command.DATA and self.state is State.DATA:
            self._begin_message(before)  # a 354 is a 354, whoever said it
        if _counts_as_error(code):
            self.errors += 1
        return self._finish(events, count=False)

    def tls_started(self, info: TlsInfo | None = None) -> list[Event]:
        """The TLS handshake after STARTTLS succeeded: the session starts over (RFC 3207 §4.2)."""
        self._tls_pending = False
        self.tls = self.tls_restarted = True
        self.tls_info = info
        self.helo, self.extended, self.user = None, False, None
        self._reset_transaction()
        return []

    def hang_up(self) -> list[Event]:
        """The server closes without a reply (a fault, a failed handshake)."""
        return self._move(states.closed(self.state))

    def timed_out(self) -> list[Event]:
        """The client was idle too long: 421 before closing (§4.5.3.2)."""
        return self._closing_reply("timeout")

    def shutting_down(self) -> list[Event]:
        """The lab server stops under a live session: 421 (§3.8)."""
        return self._closing_reply("shutdown")

    def internal_error(self) -> list[Event]:
        """The lab failed; the client gets 421 rather than silence or a traceback."""
        return self._closing_reply("internal_error")

    def eof(self) -> Turn:
        """The client closed its side: what was left unfinished."""
        collecting = self.relay is not None and self.relay.collecting
        if self._message is not None or self._chunk is not None or self._chunks.parts or collecting:
            self._message = self._chunk = None
            return Turn((), (Note("connection lost in the middle of the message; nothing stored"),))
        rest = self._lines.rest()
        if rest:
            return Turn((ClientLine(rest, None, "incomplete line before the connection closed"),))
        return Turn(())

    def closed(self) -> list[Event]:
        """The connection is gone."""
        self._closing = True
        return self._move(states.closed(self.state))

    def hide_keywords(self, keywords: frozenset[str]) -> None:
        """Leave these keywords out of later EHLO replies (smtp-sink's -P, -8, -E)."""
        self.hidden_keywords = self.hidden_keywords | keywords

    def move(self, state: State) -> list[Event]:
        """A relay's session takes the state of the server behind it (``relay.py``)."""
        return self._move(state)

    def render(self, key: str, **fields: object) -> list[str]:
        """Reply ``key`` in this server's words, with this session's fields."""
        return self.persona.render(key, self._fields(fields))

    @property
    def closing(self) -> bool:
        """True once the session has decided to close (or the connection is gone)."""
        return self._closing

    @property
    def tls_pending(self) -> bool:
        """True between STARTTLS's 220 and ``tls_started`` (nothing is read meanwhile)."""
        return self._tls_pending

    # --- reading lines ---------------------------------------------------------

    def _command_turn(self, got: bytes | TooLong) -> Turn:
        own = self.grammar.screen(self, got, more=bool(self._lines))
        if own is not None:  # the program's own answer to this line (its reader, its limits)
            seen, events = own
            return self._said(seen, events)
        line = self.grammar.keep(got)  # what the server reads of it (Postfix: its head)
        if isinstance(got, TooLong):
            seen = ClientLine(b"", None, f"a command line of {got.size} bytes (not shown)")
        if isinstance(line, TooLong):
            return self._said(seen, self._line_reply(self.grammar.overflow_key, None))
        read = self.grammar.read(line)
        verb = read.verb if read is not None else ""
        self._line = read.text if read is not None else ""
        if not isinstance(got, TooLong):
            seen = ClientLine(line, verb or None)
        if self._pipelined():
            return self._said(seen, [self._answer("pipelining", verb or None)])
        if read is None:
            return self._said(seen, [self._answer("bad_bytes", None)])
        if not read.text.strip() or not (read.verb or read.arg):
            return self._said(seen, self._unknown("empty_line", None))
        if self.grammar.too_long(line, read.text, verb, self.policy):
            return self._said(seen, self._line_reply("line_too_long", verb))
        cmd = self.grammar.command(verb, read.arg)
        if cmd is Command.BDAT:
            return self._said(seen, self._bdat_line(read.arg, verb))
        refused = self._refusal(cmd, read)
        if refused is not None:
            return self._said(seen, refused)
        assert cmd is not None
        return Turn((seen,), pending=Pending(_STAGES[cmd], cmd, verb, read.arg))

    def _refusal(self, cmd: Command | None, line: CommandLine) -> list[Event] | None:
        """The answer to a command refused before any fault point, or None to go on."""
        arg, verb = line.arg, line.verb
        own = self.grammar.before(cmd, line, self.view())
        if own is not None:
            return self._own(own, verb, cmd)
        if cmd is None:
            return self._unknown_verb(verb, line.text)
        if self.state is State.REFUSED and cmd is not Command.QUIT:
            return [self._answer("access_denied", verb)]  # §3.1: only QUIT after a 554
        if cmd in (Command.EXPN, Command.HELP):
            return [self._answer(cmd.value.lower(), verb, arg=arg)]
        if cmd is Command.STARTTLS and not self.setup.tls_offered:
            return [self._answer("starttls_not_offered", verb)]
        if cmd is Command.AUTH and not self.setup.users and not self._auth_waits_for_helo:
            return [self._answer("auth_not_offered", verb)]
        key = states.refusal(
            self.state, cmd, helo_required=self._helo_required, variants=self._variants
        )
        return [self._answer(key, verb)] if key is not None else None

    def _unknown_verb(self, verb: str, text: str) -> list[Event]:
        """A line whose verb the lab's table does not know: the program's own answer."""
        refused = self.grammar.unknown_verb(verb, text, self)
        answer = self._answer(refused.key, verb, arg=refused.arg)
        if refused.close:  # Postfix's "I can break rules, too": the session ends here
            return [answer, *self.hang_up()]
        if self.state is State.REFUSED:
            return [self._answer("access_denied", verb)]
        if refused.key != "unknown_command":  # a command of the program's own (ETRN)
            return [answer]
        return self._unknown("unknown_command", verb)

    def _line_reply(self, key: str, verb: str | None) -> list[Event]:
        """The reply to a line that is no command (too long): a 421 closes (§3.8)."""
        answer = self._answer(key, verb)
        return [answer, *self._advance(None, _code(answer))]

    def _unknown(self, key: str, verb: str | None, **fields: object) -> list[Event]:
        """An unknown command; past the persona's unknown_command_limit, the last word and close."""
        self.unknown += 1
        limit = self.persona.unknown_command_limit
        if limit and self.unknown > limit:
            return [self._answer("too_many_unknown", verb), *self.hang_up()]
        return [self._answer(key, verb, **fields)]

    def _own(self, own: Refusal, label: str | None, cmd: Command | None) -> list[Event]:
        """A grammar's own answer (``Grammar.before``): counted, closing, or an AUTH exchange."""
        fields = {"arg": own.arg, **own.fields}
        if own.count:
            return self._unknown(own.key, label, **fields)
        if own.exchange is not None:  # its challenge (334) is the answer
            self._auth = own.exchange
            return self._auth_step(own.arg or None)
        answer = self._answer(own.key, label, **fields)
        events: list[Event] = [answer, *self._advance(cmd, _code(answer))]
        return [*events, *self.hang_up()] if own.close else events

    def view(self) -> View:
        """What the grammar may know of this session now."""
        return View(
            self.setup,
            self.client_ip,
            self.state,
            self.helo,
            self.extended,
            self.mail_from,
            tuple(self.rcpt_tos),
            self.user,
            self.tls,
            bool(self._lines),
        )

    def _text_turn(self) -> Turn | None:
        message = self._message
        assert message is not None
        seen: list[ClientLine] = []
        progressed = False
        while True:
            line = self.grammar.read_text(self._lines, self._text_read_limit)
            if line is None:
                return Turn(tuple(seen)) if progressed else None
            progressed = True
            if isinstance(line, TooLong) and self.grammar.text_overflow_key is not None:
                self._message = None  # the server gives up on the message at once
                seen.append(ClientLine(b"", None, f"a text line of {line.size} bytes (not shown)"))
                answer = self._answer(self.grammar.text_overflow_key, None)
                return Turn(tuple(seen), tuple(self._finish([answer])))
            if isinstance(line, bytes):
                line = self.grammar.text_bytes(line)
            if isinstance(line, bytes) and self.grammar.final_dot(line):
                seen.append(ClientLine(line, "."))
                return self._final_dot(tuple(seen), message)
            if isinstance(line, bytes) and (own := self.grammar.text_line(line)) is not None:
                if own.close:  # said at once, and the connection ends
                    seen.append(ClientLine(line, None, "message text"))
                    self._message = None
                    return Turn(tuple(seen), (*self._closing_reply(own.key), *self.hang_up()))
                message.refuse(own.key)
            if message.add(line):
                assert isinstance(line, bytes)
                seen.append(ClientLine(line, None, "message text"))

    def _final_dot(self, seen: tuple[ClientLine, ...], message: MessageText) -> Turn:
        self._message = None
        if self._pipelined():  # more was sent behind the final dot: nothing is stored
            return Turn(seen, tuple(self._finish([self._answer("pipelining", ".")])))
        events: list[Event] = []
        if message.hidden:
            events.append(
                Note(
                    f"{message.hidden} more lines of message text "
                    f"({message.hidden_bytes} bytes) not shown"
                )
            )
        if self._dot_refusal is not None:
            # The proxy's 354 came first; the server behind it refuses now and its
            # transaction is where it was.
            events.append(self._answer(self._dot_refusal, "."))
            entered_from = self._data_from
            events += self._move(states.after_final_dot(entered_from, ok=False, refused=True))
            self.errors += 1
            return Turn(seen, tuple(self._finish(events, count=False)))
        refused = self.checks.at_dot(self, message)
        if refused is not None:
            events.append(self._answer(refused.key, ".", arg=refused.arg))
            events += self._move(states.after_final_dot(self._data_from, ok=False))
            self._reset_transaction()
            return Turn(seen, tuple(self._finish(events)))
        self._content = message.content()
        return Turn(seen, tuple(events), Pending(Stage.DOT, Command.END_OF_DATA, ".", ""))

    # --- BDAT: a chunk read whole, then its reply (RFC 3030 §2) ------------------

    def _bdat_line(self, arg: str, verb: str) -> list[Event]:
        """A BDAT line: refused at once, or the chunk is read before anything is said."""
        # Both refusals leave the chunk unread: its bytes come as commands next, unless
        # the persona's reply is a 521 (Postfix), which closes (RFC 7504 §3).
        if not self.offers("CHUNKING"):
            return self._closing_reply("bdat_not_offered", verb)
        bdat = self.grammar.bdat(arg)
        if bdat is None:
            return self._closing_reply("bdat_syntax", verb)
        command = Command.BDAT_LAST if bdat.last else Command.BDAT
        self._chunk = Chunk(bdat, arg, keep=self._chunk_refusal(command, bdat.size) is None)
        return []

    def _chunk_turn(self) -> Turn | None:
        chunk = self._chunk
        assert chunk is not None
        if not chunk.feed(self._lines) and not chunk.complete:
            return None
        if not chunk.complete:
            return Turn(())  # part of the chunk: the idle timer starts over
        shown, hidden = chunk.lines(self._chunks.budget())
        self._chunks.shown += len(shown)
        seen = tuple(ClientLine(ln, None, "BDAT chunk") for ln in shown)
        notes: list[Event] = []
        if hidden:
            notes.append(Note(f"{hidden} more bytes of the BDAT chunk not shown"))
        command = Command.BDAT_LAST if chunk.command.last else Command.BDAT
        key = self._chunk_refusal(command, chunk.command.size)
        if key is None:
            self._content = bytes(chunk.data)
            self._chunk = None
            return Turn(seen, tuple(notes), Pending(Stage.BDAT, command, "BDAT", chunk.argument))
        self._chunk = None
        return Turn(seen, (*notes, *self._finish(self._chunk_refused(command, key, chunk))))

    def _chunk_refusal(self, command: Command, size: int) -> str | None:
        """The reply key refusing a chunk of ``size`` octets, or None to take it."""
        if size == 0 and command is Command.BDAT and self.persona.refuses_empty_chunk:
            return "bdat_empty"
        if self._chunks.failed and self.state is State.CHUNKING:
            return "bdat_discarded"
        key = states.refusal(
            self.state, command, helo_required=self._helo_required, variants=self._variants
        )
        if key is not None:
            return key
        if not self._chunks.fits(size, self.policy.message_size_limit):
            return "bdat_too_big"  # RFC 1870 with RFC 3030 §4: the limit spans the chunks
        return None

    def _chunk_refused(self, command: Command, key: str, chunk: Chunk) -> list[Event]:
        answer = self._answer(key, "BDAT", size=chunk.command.size, total=self._chunks.size)
        events: list[Event] = [answer]
        new = states.after_reply(
            self.state,
            command,
            _code(answer),
            helo_required=self._helo_required,
            variants=self._variants,
        )
        events += self._move(new)
        if new is State.CHUNKING:
            self._chunks.failed = True  # RFC 3030 §2: the rest of the message is discarded
        elif command is Command.BDAT_LAST and new is not State.CLOSED:
            self._chunks.reset()
            if new is State.GREETED:
                self._reset_transaction()
        return events

    def _auth_turn(self, line: bytes | TooLong) -> Turn:
        if isinstance(line, TooLong):
            seen = ClientLine(b"", None, f"a command line of {line.size} bytes (not shown)")
            return self._said(seen, self._auth_step(auth.Undecodable()))
        # Base64 of a password: recorded on purpose, so a lesson can decode it.
        seen = ClientLine(line, "AUTH", "AUTH response")
        return self._said(seen, self._auth_step(line.rstrip(b"\r\n").decode("ascii", "replace")))

    def _said(self, seen: ClientLine, events: list[Event]) -> Turn:
        return Turn((seen,), tuple(self._finish(events)))

    def _pipelined(self) -> bool:
        """A server that refuses pipelining (Grammar.refuses_pipelining) finds more input waiting."""
        return self.grammar.refuses_pipelining and bool(self._lines)

    # --- one method per command (aiosmtpd's smtp_VERB) -------------------------

    def _helo(self, arg: str, verb: str) -> list[Event]:
        cmd = Command(verb)
        own = self.grammar.helo(verb, arg, self.view())
        if isinstance(own, Refusal):
            return self._own(own, verb, cmd)
        name = own
        refused = self.checks.at_helo(self, name)
        if refused is not None:
            return self._reply(cmd, refused.key, verb, arg=refused.arg)
        self.helo, self.extended = name, verb == "EHLO"
        events: list[Event] = [Greeted(name, self.extended)]
        if verb == "HELO":
            # §4.1.1.1: a server MUST NOT send the extended (multi-line) reply to HELO.
            events += self._reply(cmd, "helo_ok", verb, arg=name)
        else:
            lines = self.persona.ehlo(self.ehlo_keywords(), self._fields({"arg": name}))
            events += [Answer(tuple(lines), verb), *self._advance(cmd, 250)]
        identity = self.setup.identity
        if identity is not None:
            note = identity.at_helo(name, self.client_ip)
            if note:
                events.append(Note(f"{identity.name}: {note}"))
        return events

    def _mail(self, arg: str, verb: str) -> list[Event]:
        if self.setup.mode == "submission" and self.user is None:
            # RFC 6409 §4.3 / RFC 4954 §6: a submission server wants to know who you are.
            return self._reply(Command.MAIL, "auth_required", "MAIL")
        path = self.grammar.parse_path(Command.MAIL, arg, self.view())
        if isinstance(path, Refusal):
            return self._own(path, "MAIL", Command.MAIL)
        refused = self.grammar.path_parameters(Command.MAIL, path, self.view())
        if refused is not None:
            return self._own(refused, "MAIL", Command.MAIL)
        self.mail_from, self.mail_options = path.address, list(path.parameters)
        return self._reply(Command.MAIL, "mail_ok", "MAIL", addr=_echo(path))

    def _rcpt(self, arg: str, verb: str) -> list[Event]:
        identity = self.setup.identity
        if identity is not None:
            key = identity.at_rcpt(self.helo or "", self.client_ip)
            if key is not None:
                note = Note(f"{identity.name}: refused at RCPT")
                return [note, *self._reply(Command.RCPT, key, "RCPT", helo=self.helo or "")]
        path = self.grammar.parse_path(Command.RCPT, arg, self.view())
        if isinstance(path, Refusal):
            return self._own(path, "RCPT", Command.RCPT)
        self._last_rcpt = path.address  # OpenSMTPD's Received: names the last RCPT given
        refused = self.grammar.path_parameters(Command.RCPT, path, self.view())
        if refused is not None:
            return self._own(refused, "RCPT", Command.RCPT)
        standard = self.checks.at_rcpt(self, path.address)
        if standard is not None and standard.key == "too_many_recipients":
            return self._reply(Command.RCPT, standard.key, "RCPT")  # counted before all else
        own = self.grammar.recipient(path, standard, self.view())
        if own is not None and own.key != "rcpt_ok":
            return self._own(own, "RCPT", Command.RCPT)
        self.rcpt_tos.append(path.address)
        self.rcpt_options.extend(path.parameters)
        self._rcpt_parameters.append(tuple(path.parameters))
        fields = {"addr": _echo(path), **(own.fields if own is not None else {})}
        return self._reply(Command.RCPT, "rcpt_ok", "RCPT", **fields)

    def _data(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.argument_refusal(Command.DATA, arg, self.view())
        if own is not None:
            return self._own(own, "DATA", Command.DATA)
        if any(p.upper() == "BODY=BINARYMIME" for p in self.mail_options):
            return self._reply(Command.DATA, "binarymime_needs_bdat", "DATA")  # RFC 3030 §3
        before = self.state
        events = self._reply(Command.DATA, "data_go", "DATA")
        self._begin_message(before)
        return events

    def _begin_message(self, before: State) -> None:
        """354 went out: message text follows, until the final dot (§4.1.1.4)."""
        # Only a sequence variant (clamsmtpd's "data_spooled_first") lets DATA through
        # without recipients: the table's own refusal then answers the final dot.
        self._dot_refusal = states.refused_after_dot(
            before, helo_required=self._helo_required, variants=self._variants
        )
        self._data_from = before
        self._message = self.grammar.message_text(
            self.policy.message_size_limit, self.policy.text_line_limit
        )

    def _end_of_data(self, arg: str, verb: str) -> list[Event]:
        return self._store(self._content, Command.END_OF_DATA, "data_ok")

    def _store(self, content: bytes, cmd: Command, key: str, **fields: object) -> list[Event]:
        """Store the message ``content`` with its trace fields, then reply ``key`` (250)."""
        queue_id = self._new_queue_id()
        stored = self.accepted(
            queue_id, self.mail_from or "", tuple(self.rcpt_tos), content, self._last_rcpt
        )
        events: list[Event] = [stored]  # stored before its 250 goes out
        label = "." if cmd is Command.END_OF_DATA else "BDAT"
        events += self._reply(cmd, key, label, queue_id=queue_id, **fields)
        self._reset_transaction()
        return events

    def trace_facts(
        self,
        queue_id: str,
        sender: str,
        recipients: tuple[str, ...],
        last_rcpt: str | None = None,
    ) -> trace.TraceFacts:
        """What this server knows about a message it takes now (its Received: field)."""
        ptr, confirmed = self.setup.reverse_of(self.client_ip)
        return trace.TraceFacts(
            helo_verb=("EHLO" if self.extended else "HELO") if self.helo else None,
            helo_name=self.helo,
            client_ip=self.client_ip,
            client_ptr=ptr,
            client_ptr_confirmed=confirmed,
            server_name=self.setup.hostname,
            queue_id=queue_id,
            recipients=recipients,
            sender=sender,
            date=self.setup.clock(),
            tls=self.tls_info,
            auth_user=self.user,
            last_rcpt=last_rcpt,
        )

    def accepted(
        self,
        queue_id: str,
        sender: str,
        recipients: tuple[str, ...],
        content: bytes,
        last_rcpt: str | None = None,
        parameters: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] | None = None,
    ) -> MessageAccepted:
        """The message this session's server takes, stamped with its trace fields
        (a relay calls it for what the server behind it accepted, with the ESMTP
        ``parameters`` of MAIL and of each RCPT it passed on)."""
        facts = self.trace_facts(queue_id, sender, recipients, last_rcpt)
        now, ptr, confirmed = facts.date, facts.client_ptr, facts.client_ptr_confirmed
        # RFC 5321 §4.4: a Received: field on top, in the persona's own format; the lab's
        # mailbox is final delivery, so Return-Path: (and the program's other delivery
        # fields) too.
        stamped = trace.stamp(content, trace.trace(facts, self.persona.name))
        return MessageAccepted(
            queue_id=queue_id,
            mail_from=sender,
            rcpt_tos=recipients,
            content=stamped,
            helo=self.helo,
            client_ip=self.client_ip,
            client_name=ptr if confirmed else None,
            server_name=self.setup.hostname,
            protocol=self._protocol_keyword(),
            received=now,
            sent=content,
            mail_parameters=parameters[0] if parameters else tuple(self.mail_options),
            rcpt_parameters=parameters[1] if parameters else tuple(self._rcpt_parameters),
        )

    def _bdat(self, arg: str, verb: str) -> list[Event]:
        """A chunk that passed every check (and its fault point): take it, more to come."""
        self._chunks.add(self._content)
        size, total = len(self._content), self._chunks.size
        return self._reply(Command.BDAT, "bdat_ok", "BDAT", size=size, total=total)

    def _bdat_last(self, arg: str, verb: str) -> list[Event]:
        """The last chunk: the message is complete, and stored as a DATA message is."""
        self._chunks.add(self._content)
        size, total = len(self._content), self._chunks.size
        content = self._chunks.content()
        self._chunks.reset()
        binary = any(p.upper() == "BODY=BINARYMIME" for p in self.mail_options)
        if not binary and longest_line(content) > self.policy.text_line_limit:
            # §4.5.3.1.6 holds for BDAT too, unless the body is binary (RFC 3030 §3).
            events = self._reply(Command.BDAT_LAST, "text_line_too_long", "BDAT")
            self._reset_transaction()
            return events
        return self._store(content, Command.BDAT_LAST, "bdat_last_ok", size=size, total=total)

    def _rset(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.argument_refusal(Command.RSET, arg, self.view())
        if own is not None:
            return self._own(own, "RSET", Command.RSET)
        self._reset_transaction()
        return self._reply(Command.RSET, "rset_ok", "RSET")

    def _noop(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.argument_refusal(Command.NOOP, arg, self.view())
        if own is not None:  # §4.1.1.9 says ignore the argument; some servers refuse it
            return self._own(own, "NOOP", Command.NOOP)
        return self._reply(Command.NOOP, "noop_ok", "NOOP")

    def _vrfy(self, arg: str, verb: str) -> list[Event]:
        own = self.grammar.vrfy(arg, self.view())
        if own is not None:
            return self._own(own, "VRFY", Command.VRFY)
        said = self.checks.vrfy(self, arg)
        return self._reply(Command.VRFY, said.key, "VRFY", arg=said.arg, addr=said.arg)

    def _quit(self, arg: str, verb: str) -> list[Event]:
        return self._reply(Command.QUIT, "quit", "QUIT")  # the table moves the session to CLOSED

    def _starttls(self, arg: str, verb: str) -> list[Event]:
        if arg:
            return self._reply(Command.STARTTLS, "starttls_syntax", "STARTTLS")
        if self.tls:
            return self._reply(Command.STARTTLS, "starttls_already", "STARTTLS")
        self._tls_pending = True  # nothing more is read until the handshake is done
        # Plaintext pipelined after STARTTLS is not trusted (RFC 3207 §4.2, §6): it is
        # dropped now, before the handshake, so nothing sent inside TLS is lost.
        self._lines.clear()
        return [*self._reply(Command.STARTTLS, "starttls_go", "STARTTLS"), TLSRequested()]

    def _auth_command(self, arg: str, verb: str) -> list[Event]:
        if not self.extended:
            return self._reply(Command.AUTH, "need_ehlo_for_auth", "AUTH")  # RFC 4954 §4
        if not self.tls and self.setup.auth_require_tls:
            return self._reply(Command.AUTH, "auth_encryption_required", "AUTH")
        if self.user is not None:
            return self._reply(Command.AUTH, "auth_already", "AUTH")
        mechanism, _, initial = arg.partition(" ")
        mechanism, initial = mechanism.upper(), initial.strip()
        if not mechanism:
            return self._reply(Command.AUTH, "auth_syntax", "AUTH")
        if mechanism not in auth.MECHANISMS:
            return self._reply(Command.AUTH, "auth_mechanism_unknown", "AUTH")
        self._auth = auth.Exchange(mechanism)
        return self._auth_step(initial or None)

    def _auth_step(self, response: str | None | auth.Undecodable) -> list[Event]:
        """One client response in the AUTH exchange (None: ask for the first one)."""
        ex = self._auth
        assert ex is not None
        try:
            if isinstance(response, auth.Undecodable):
                raise response
            got = ex.respond(response)
        except auth.Cancelled:
            self._auth = None
            return self._reply(Command.AUTH, "auth_cancelled", "AUTH")
        except auth.Undecodable:
            self._auth = None
            shown = response if isinstance(response, str) else ""
            return self._reply(Command.AUTH, "auth_undecodable", "AUTH", arg=shown)
        if isinstance(got, str):
            return [self._answer("auth_challenge", "AUTH", arg=got)]
        self._auth = None
        authzid, user, password = got
        if not auth.credentials_ok(self.setup.users, user, password, authzid):
            failed = AuthFailed(user, ex.mechanism)
            return [failed, *self._reply(Command.AUTH, "auth_failed", "AUTH")]
        self.user = user
        return [Authenticated(user, ex.mechanism), *self._reply(Command.AUTH, "auth_ok", "AUTH")]

    _HANDLERS: dict[Command, Callable[[Session, str, str], list[Event]]] = {
        Command.HELO: _helo,
        Command.EHLO: _helo,
        Command.MAIL: _mail,
        Command.RCPT: _rcpt,
        Command.DATA: _data,
        Command.END_OF_DATA: _end_of_data,
        Command.BDAT: _bdat,
        Command.BDAT_LAST: _bdat_last,
        Command.RSET: _rset,
        Command.NOOP: _noop,
        Command.VRFY: _vrfy,
        Command.QUIT: _quit,
        Command.STARTTLS: _starttls,
        Command.AUTH: _auth_command,
    }

    # --- for a grammar that answers commands its own way (Grammar.respond) -----

    def answer(self, key: str, label: str | None, **fields: object) -> Answer:
        """Reply ``key`` in the persona's words, with this session's fields; no state change."""
        return self._answer(key, label, **fields)

    def advance(self, cmd: Command | None, code: int | None) -> list[Event]:
        """Move along the state table as a ``code`` reply to ``cmd`` says (states.py)."""
        return self._advance(cmd, code)

    def begin_message(self, before: State) -> None:
        """354 went out for a DATA entered from ``before``: message text follows."""
        self._begin_message(before)

    def reset_transaction(self) -> None:
        """Forget the sender and recipients (RSET, HELO, a refused MAIL)."""
        self._reset_transaction()

    def discard_input(self, n: int) -> None:
        """Read and drop the client's next ``n`` bytes (a refused BDAT's chunk)."""
        self._lines.skip(n)

    @property
    def pending_input(self) -> bool:
        """True if the client's next bytes are already here: sent before the reply
        now due could have reached it (what a synchronisation check looks at)."""
        return bool(self._lines)

    @property
    def message_content(self) -> bytes:
        """The message text of the final dot being answered (un-stuffed)."""
        return self._content

    # --- replies, states and counters -------------------------------------------

    def _fields(self, extra: dict[str, object]) -> Fields:
        return Fields(self.setup, self.client_ip, self._line, self.helo, extra, self.grammar.field)

    def _answer(self, key: str, command: str | None, **fields: object) -> Answer:
        if key in self.persona.closes_after:
            self._close_after = True  # the server hangs up once this is said
        return Answer(tuple(self.persona.render(key, self._fields(fields))), command)

    def _reply(self, cmd: Command, key: str, label: str, **fields: object) -> list[Event]:
        """Reply ``key`` to ``cmd``, and move along the table as its code says."""
        answer = self._answer(key, label, **fields)
        return [answer, *self._advance(cmd, _code(answer))]

    def _advance(self, cmd: Command | None, code: int | None) -> list[Event]:
        new = states.after_reply(
            self.state, cmd, code, helo_required=self._helo_required, variants=self._variants
        )
        if cmd in (Command.HELO, Command.EHLO, Command.RSET) and code and 200 <= code < 400:
            self._reset_transaction()  # §4.1.4: HELO/EHLO clear the transaction like RSET
        return self._move(new)

    def _move(self, new: State) -> list[Event]:
        if new is self.state:
            return []
        self.state = new
        events: list[Event] = [StateChanged(new)]
        if new is State.CLOSED and not self._closing:
            self._closing = True
            events.append(HangUp())
        return events

    def _closing_reply(self, key: str, label: str | None = None) -> list[Event]:
        """Reply ``key``; the state changes only if it is a reply that closes (421, 521)."""
        if key in self.persona.closes_silently:  # the program just hangs up
            why = {"timeout": "idle too long", "shutdown": "the server stops"}.get(key, key)
            note = Note(f"{why}: {self.persona.software} closes without a reply")
            return [note, *self.hang_up()]
        answer = self._answer(key, label)
        return [answer, *self._move(states.after_reply(self.state, None, _code(answer)))]

    def _finish(self, events: list[Event], count: bool = True) -> list[Event]:
        """Count failed commands; at the hard error limit, 421 and close (§3.8)."""
        if count:
            self.errors += sum(
                1 for ev in events if isinstance(ev, Answer) and _counts_as_error(_code(ev))
            )
        if not self._closing and self.errors >= self.policy.hard_error_limit:
            events += self._closing_reply("too_many_errors")
        if self._close_after and not self._closing:
            events += self.hang_up()
        return events

    @property
    def _text_read_limit(self) -> int:
        if self.grammar.text_overflow_key is not None:
            return self._lines.limit  # a program that gives up on a long text line at once
        # A server that takes long text lines (Postfix) keeps them whole, up to the size limit.
        longest = min(self.policy.text_line_limit, self.policy.message_size_limit) + 2
        return max(self._lines.limit, longest)

    def _reset_transaction(self) -> None:
        self.grammar.reset()
        self.mail_from, self.mail_options = None, []
        self.rcpt_tos, self.rcpt_options, self._rcpt_parameters = [], [], []
        self._last_rcpt = None
        self._chunks.reset()  # RFC 3030 §2: RSET (and a new transaction) drop the chunks

    @property
    def _auth_waits_for_helo(self) -> bool:
        """AUTH is refused for want of HELO before anything else is asked (the persona's
        order; the state table words it: need_ehlo_for_auth)."""
        helo_first = self.persona.auth_asks_helo_first and self._helo_required
        return helo_first and self.state is State.CONNECTED

    @property
    def _helo_required(self) -> bool:
        # After STARTTLS the client MUST send EHLO again (RFC 3207 §4.2); most servers
        # insist, whatever their leniency about MAIL before HELO on a fresh connection.
        own = self.grammar.requires_helo(self)
        required = self.setup.helo_required if own is None else own
        return required or (self.tls_restarted and self.persona.tls_needs_new_helo)

    @property
    def _variants(self) -> tuple[str, ...]:
        return self.persona.sequence_variants  # the persona's departures from the table

    def _protocol_keyword(self) -> str:
        """RFC 3848's WITH keyword for a Received: field: SMTP, ESMTP, ESMTPS, ESMTPSA."""
        if not self.extended:
            return "SMTP"
        return "ESMTP" + ("S" if self.tls else "") + ("A" if self.user else "")

    def _new_queue_id(self) -> str:
        if self.setup.queue_id is not None:
            return self.setup.queue_id()
        if self._rng is None:
            self._rng = random.Random()
        return self.persona.new_queue_id(self._rng)

    def offers(self, keyword: str) -> bool:
        """Whether the extension ``keyword`` ("CHUNKING", "DSN", ...) is offered to this
        client now: in this session's EHLO list (TLS, AUTH, faults' hidden keywords
        counted) and, for a persona whose program sets it only then, after EHLO."""
        if self.persona.extensions_need_ehlo and not self.extended:
            return False
        wanted = keyword.upper()
        return any(k.split(" ", 1)[0].upper() == wanted for k in self.ehlo_keywords())

    def ehlo_keywords(self) -> list[str]:
        """The EHLO keywords for this session: STARTTLS before TLS, AUTH inside it."""
        words = self.setup.ehlo_keywords(tls=self.tls, hidden=self.hidden_keywords)
        return self.grammar.keywords(words, self.view())

    @property
    def sender(self) -> str:
        """MAIL FROM's address in the open transaction ('' if none)."""
        return self.mail_from or ""

    @property
    def recipients(self) -> tuple[str, ...]:
        """The recipients accepted in the open transaction."""
        return tuple(self.rcpt_tos)


def _echo(path: Path) -> str:
    """How a reply names the path's address ({addr})."""
    return path.address if path.echo is None else path.echo


# The stage each command reaches (a fault point).
_STAGES: dict[Command, Stage] = {cmd: Stage.of(cmd) or Stage.HELO for cmd in Command}
