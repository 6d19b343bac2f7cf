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
from .grammar import AUTH_LINE_LIMIT, Grammar, grammar_of
from .lines import LineBuffer, MessageText, TooLong
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
        self.grammar: Grammar = grammar_of(setup.persona)
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
        self._lines = LineBuffer()
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
        self._rng: random.Random | None = None

    # --- the driver's side ---------------------------------------------------

    def connect(self) -> Pending:
        """The greeting, pending like a command (a fault may answer instead)."""
        return Pending(Stage.CONNECT, None, "", "")

    def refuse(self, key: str, reason: str | None = None) -> list[Event]:
        """Refuse the connection instead of greeting (too_many_connections, connection_refused).

        ``reason`` (an admission check's words) follows the persona's text, where
        Postfix puts an access(5) rule's text, so the client learns why.
        """
        answer = self._answer(key, "CONNECT")
        if reason:
            answer = Answer((*answer.lines[:-1], f"{answer.lines[-1]}: {reason}"), answer.command)
        return [answer, *self._move(states.closed(self.state))]

    def receive(self, data: bytes) -> None:
        """Bytes the client sent."""
        self._lines.feed(data)

    def next_turn(self) -> Turn | None:
        """What the next complete line(s) make; None until more bytes arrive (or once closing)."""
        if self._closing or self._tls_pending:
            return None
        if self._chunk is not None:
            return self._chunk_turn()
        if self._message is not None:
            return self._text_turn()
        line = self._lines.line(self.grammar.command_line_end)
        if line is None:
            return None
        if self._auth is not None:
            return self._auth_turn(line)
        return self._command_turn(line)

    def respond(self, pending: Pending) -> list[Event]:
        """The normal answer to ``pending``: what this server does with the command."""
        if pending.command is None:
            return [self._answer("greeting", "CONNECT")]
        handler = self._HANDLERS[pending.command]
        return self._finish(handler(self, pending.argument, pending.verb))

    def answered(self, pending: Pending, code: int | None) -> list[Event]:
        """The driver answered ``pending`` itself with a ``code`` reply (None: a malformed one)."""
        before = self.state
        events = self._advance(pending.command, code)
        if pending.command in (Command.END_OF_DATA, Command.BDAT_LAST):
            self._reset_transaction()
        elif pending.command is Command.BDAT:
            self._chunks.failed = True  # the chunk was not taken, whatever was said
        elif pending.command is Command.DATA and self.state is State.DATA:
            self._begin_message(before)  # a 354 is a 354, whoever said it
        if pending.stage is Stage.CONNECT:
            return events  # a greeting is not a failed command
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
        if self._message is not None or self._chunk is not None or self._chunks.parts:
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

    def _command_turn(self, line: bytes | TooLong) -> Turn:
        if isinstance(line, TooLong):
            seen = ClientLine(b"", None, f"a command line of {line.size} bytes (not shown)")
            return self._said(seen, [self._answer("line_too_long", None)])
        try:
            text: str | None = line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            text = None
        verb = (text or "").split(" ", 1)[0].upper()
        self._line = text or ""
        seen = ClientLine(line, verb or None)
        if text is None:
            return self._said(seen, [self._answer("bad_bytes", None)])
        if not text.strip():
            return self._said(seen, self._unknown("empty_line", None))
        limit = self.grammar.line_limit(verb, self.policy)
        if len(line if line.endswith(b"\r\n") else line + b"\r") > limit:
            return self._said(seen, [self._answer("line_too_long", verb)])
        arg = text[len(verb) :].strip()
        cmd = self.grammar.command(verb, arg)
        if cmd is Command.BDAT:
            return self._said(seen, self._bdat_line(arg, verb))
        refused = self._refusal(cmd, arg, verb)
        if refused is not None:
            return self._said(seen, refused)
        assert cmd is not None
        return Turn((seen,), pending=Pending(_STAGES[cmd], cmd, verb, arg))

    def _refusal(self, cmd: Command | None, arg: str, verb: str) -> list[Event] | None:
        """The answer to a command refused before any fault point, or None to go on."""
        if cmd is None:
            return self._unknown("unknown_command", verb)
        if cmd in (Command.EXPN, Command.HELP):
            return [self._answer(cmd.value.lower(), verb, arg=arg)]
        if cmd is Command.STARTTLS and not self.setup.tls_offered:
            return [self._answer("starttls_not_offered", verb)]
        if cmd is Command.AUTH and not self.setup.users:
            return [self._answer("auth_not_offered", verb)]
        key = states.refusal(
            self.state, cmd, helo_required=self._helo_required, variants=self._variants
        )
        return [self._answer(key, verb)] if key is not None else None

    def _unknown(self, key: str, verb: str | None) -> list[Event]:
        """An unknown command; past the persona's unknown_command_limit, the last word and close."""
        self.unknown += 1
        limit = self.persona.unknown_command_limit
        if limit and self.unknown > limit:
            return [self._answer("too_many_unknown", verb), *self.hang_up()]
        return [self._answer(key, verb)]

    def _text_turn(self) -> Turn | None:
        message = self._message
        assert message is not None
        seen: list[ClientLine] = []
        progressed = False
        while True:
            line = self._lines.line(b"\r\n")  # §4.1.1.4: only CRLF ends a text line
            if line is None:
                return Turn(tuple(seen)) if progressed else None
            progressed = True
            if line == b".\r\n":
                seen.append(ClientLine(line, "."))
                return self._final_dot(tuple(seen), message)
            if message.add(line):
                assert isinstance(line, bytes)
                seen.append(ClientLine(line, None, "message text"))

    def _final_dot(self, seen: tuple[ClientLine, ...], message: MessageText) -> Turn:
        self._message = None
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
        if message.refusal is not None:
            events.append(self._answer(message.refusal, "."))
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

    # --- one method per command (aiosmtpd's smtp_VERB) -------------------------

    def _helo(self, arg: str, verb: str) -> list[Event]:
        cmd = Command(verb)
        if not arg or " " in arg:
            return self._reply(cmd, "helo_syntax" if verb == "HELO" else "ehlo_syntax", verb)
        verdict = self.policy.helo_verdict(arg, resolves=self.setup.resolves)
        if verdict:
            return self._reply(cmd, verdict, verb, arg=arg)
        self.helo, self.extended = arg, verb == "EHLO"
        events: list[Event] = [Greeted(arg, self.extended)]
        if verb == "HELO":
            # §4.1.1.1: a server MUST NOT send the extended (multi-line) reply to HELO.
            events += self._reply(cmd, "helo_ok", verb, arg=arg)
        else:
            lines = self.persona.ehlo(self.ehlo_keywords(), self._fields({"arg": arg}))
            events += [Answer(tuple(lines), verb), *self._advance(cmd, 250)]
        identity = self.setup.identity
        if identity is not None:
            note = identity.at_helo(arg, self.client_ip)
            if note:
                events.append(Note(f"{identity.name}: {note}"))
        return events

    def _mail(self, arg: str, verb: str) -> list[Event]:
        if self.setup.mode == "submission" and self.user is None:
            # RFC 6409 §4.3 / RFC 4954 §6: a submission server wants to know who you are.
            return self._reply(Command.MAIL, "auth_required", "MAIL")
        path = self.grammar.path(arg, "FROM:")
        if path is None:
            return self._reply(Command.MAIL, "mail_syntax", "MAIL")
        refused = self.grammar.parameters(Command.MAIL, path, self.policy.message_size_limit)
        if refused is not None:
            return self._reply(Command.MAIL, refused.key, "MAIL", arg=refused.arg)
        self.mail_from, self.mail_options = path.address, list(path.parameters)
        return self._reply(Command.MAIL, "mail_ok", "MAIL", addr=path.address)

    def _rcpt(self, arg: str, verb: str) -> list[Event]:
        identity = self.setup.identity
        if identity is not None:
            key = identity.at_rcpt(self.helo or "", self.client_ip)
            if key is not None:
                note = Note(f"{identity.name}: refused at RCPT")
                return [note, *self._reply(Command.RCPT, key, "RCPT", helo=self.helo or "")]
        path = self.grammar.path(arg, "TO:")
        if path is None or not path.address:
            return self._reply(Command.RCPT, "rcpt_syntax", "RCPT")
        self._last_rcpt = path.address  # OpenSMTPD's Received: names the last RCPT given
        refused = self.grammar.parameters(Command.RCPT, path, self.policy.message_size_limit)
        if refused is not None:
            return self._reply(Command.RCPT, refused.key, "RCPT", arg=refused.arg)
        if len(self.rcpt_tos) >= self.policy.max_recipients:
            return self._reply(Command.RCPT, "too_many_recipients", "RCPT")
        # A proxy without XCLIENT (clamsmtpd) makes its server see the proxy's address.
        client_ip = self.persona.backend_client_ip or self.client_ip
        # Postfix's permit_sasl_authenticated: an authenticated client may relay.
        may = self.user is not None or self.policy.may_deliver(
            path.address, client_ip, self.setup.hostname
        )
        if not may:
            return self._reply(Command.RCPT, "relay_denied", "RCPT", addr=path.address)
        known = self.setup.recipients
        if known is not None and not known.knows(path.address):
            return self._reply(Command.RCPT, "user_unknown", "RCPT", addr=path.address)
        self.rcpt_tos.append(path.address)
        self.rcpt_options.extend(path.parameters)
        self._rcpt_parameters.append(tuple(path.parameters))
        return self._reply(Command.RCPT, "rcpt_ok", "RCPT", addr=path.address)

    def _data(self, arg: str, verb: str) -> list[Event]:
        if self.grammar.refuses_argument(Command.DATA, arg):
            return self._reply(Command.DATA, "data_syntax", "DATA")
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
        self._message = MessageText(self.policy.message_size_limit, self.policy.text_line_limit)

    def _end_of_data(self, arg: str, verb: str) -> list[Event]:
        return self._store(self._content, Command.END_OF_DATA, "data_ok")

    def _store(self, content: bytes, cmd: Command, key: str, **fields: object) -> list[Event]:
        """Store the message ``content`` with its trace fields, then reply ``key`` (250)."""
        queue_id = self._new_queue_id()
        now = self.setup.clock()
        ptr, confirmed = self.setup.reverse_of(self.client_ip)
        facts = trace.TraceFacts(
            helo_verb=("EHLO" if self.extended else "HELO") if self.helo else None,
            helo_name=self.helo,
            client_ip=self.client_ip,
            client_ptr=ptr,
            client_ptr_confirmed=confirmed,
            server_name=self.setup.hostname,
            queue_id=queue_id,
            recipients=tuple(self.rcpt_tos),
            sender=self.mail_from or "",
            date=now,
            tls=self.tls_info,
            auth_user=self.user,
            last_rcpt=self._last_rcpt,
        )
        # RFC 5321 §4.4: a Received: field on top, in the persona's own format; the lab's
        # mailbox is final delivery, so Return-Path: (and the program's other delivery
        # fields) too.
        stamped = trace.stamp(content, trace.trace(facts, self.persona.name))
        stored = MessageAccepted(
            queue_id=queue_id,
            mail_from=self.mail_from or "",
            rcpt_tos=tuple(self.rcpt_tos),
            content=stamped,
            helo=self.helo,
            client_ip=self.client_ip,
            client_name=ptr if confirmed else None,
            server_name=self.setup.hostname,
            protocol=self._protocol_keyword(),
            received=now,
            sent=content,
            mail_parameters=tuple(self.mail_options),
            rcpt_parameters=tuple(self._rcpt_parameters),
        )
        events: list[Event] = [stored]  # stored before its 250 goes out
        label = "." if cmd is Command.END_OF_DATA else "BDAT"
        events += self._reply(cmd, key, label, queue_id=queue_id, **fields)
        self._reset_transaction()
        return events

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
        if self.grammar.refuses_argument(Command.RSET, arg):
            return self._reply(Command.RSET, "rset_syntax", "RSET")
        self._reset_transaction()
        return self._reply(Command.RSET, "rset_ok", "RSET")

    def _noop(self, arg: str, verb: str) -> list[Event]:
        if self.grammar.refuses_argument(Command.NOOP, arg):  # §4.1.1.9 says ignore it
            return self._reply(Command.NOOP, "noop_syntax", "NOOP")
        return self._reply(Command.NOOP, "noop_ok", "NOOP")

    def _vrfy(self, arg: str, verb: str) -> list[Event]:
        if not arg:
            return self._reply(Command.VRFY, "vrfy_syntax", "VRFY")
        return self._reply(Command.VRFY, "vrfy_ok", "VRFY", arg=arg.strip("<>"))

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
            return self._reply(Command.AUTH, "auth_undecodable", "AUTH")
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

    # --- replies, states and counters -------------------------------------------

    def _fields(self, extra: dict[str, object]) -> Fields:
        return Fields(self.setup, self.client_ip, self._line, self.helo, extra)

    def _answer(self, key: str, command: str | None, **fields: object) -> Answer:
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
        return events

    def _reset_transaction(self) -> None:
        self.mail_from, self.mail_options = None, []
        self.rcpt_tos, self.rcpt_options, self._rcpt_parameters = [], [], []
        self._last_rcpt = None
        self._chunks.reset()  # RFC 3030 §2: RSET (and a new transaction) drop the chunks

    @property
    def _helo_required(self) -> bool:
        # After STARTTLS the client MUST send EHLO again (RFC 3207 §4.2), whatever the
        # persona's leniency about MAIL before HELO on a fresh connection.
        return self.setup.helo_required or self.tls_restarted

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
        return self.setup.ehlo_keywords(tls=self.tls, hidden=self.hidden_keywords)

    @property
    def sender(self) -> str:
        """MAIL FROM's address in the open transaction ('' if none)."""
        return self.mail_from or ""

    @property
    def recipients(self) -> tuple[str, ...]:
        """The recipients accepted in the open transaction."""
        return tuple(self.rcpt_tos)


# The stage each command reaches (a fault point).
_STAGES: dict[Command, Stage] = {cmd: Stage.of(cmd) or Stage.HELO for cmd in Command}
