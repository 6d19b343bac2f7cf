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
a client is a policy hook of ``Setup`` (``identity``, ``recipients``); a new
way into message text (BDAT, RFC 3030) is another command that starts a
``MessageText`` and ends in the same ``Pending`` final-dot stage; a trace
field for the stored message goes where ``MessageAccepted`` is made.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from . import auth, states, trace
from .checks import Checks, checks_of
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
from .grammar import AUTH_LINE_LIMIT, Grammar, Refusal, grammar_of
from .lines import READ_LIMIT, LineBuffer, MessageText, TooLong
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
        self.checks: Checks = checks_of(setup.persona, setup)
        # A proxy persona (clamsmtpd) relays to a server of its own: it reads every line.
        self.relay: Relay | None = setup.persona.relay(self) if setup.persona.relay else None
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
            if self.relay is not None:
                return self.relay.greeting()
            refused = self.checks.at_connect(self)
            if refused is None:
                return [self._answer("greeting", "CONNECT")]
            answer = self._answer(refused.key, "CONNECT", arg=refused.arg)
            return [answer, *self._move(states.after_greeting(_code(answer)))]
        handler = self._HANDLERS[pending.command]
        return self._finish(handler(self, pending.argument, pending.verb))

    def answered(self, pending: Pending, code: int | None) -> list[Event]:
        """The driver answered ``pending`` itself with a ``code`` reply (None: a malformed one)."""
        if pending.stage is Stage.CONNECT:
            return self._move(states.after_greeting(code))  # a greeting is not a failed command
        before = self.state
        events = self._advance(pending.command, code)
        if pending.command is Command.END_OF_DATA:
            self._reset_transaction()
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
        if self._message is not None or (self.relay is not None and self.relay.collecting):
            self._message = None
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
        line = self.grammar.read(got)  # what the server reads of it (Postfix: its head)
        if isinstance(got, TooLong):
            seen = ClientLine(b"", None, f"a command line of {got.size} bytes (not shown)")
        if isinstance(line, TooLong):
            return self._said(seen, [self._answer("line_too_long", None)])
        text = self.grammar.decode(line)
        verb, arg = self.grammar.split(text or "")
        self._line = text or ""
        if not isinstance(got, TooLong):
            seen = ClientLine(line, verb or None)
        if text is None:
            return self._said(seen, [self._answer("bad_bytes", None)])
        if not verb and not arg:
            return self._said(seen, self._unknown("empty_line", None))
        limit = self.grammar.line_limit(verb, self.policy)
        if len(line if line.endswith(b"\r\n") else line + b"\r") > limit:
            return self._said(seen, [self._answer("line_too_long", verb)])
        cmd = self.grammar.command(verb, arg)
        refused = self._refusal(cmd, arg, verb, text)
        if refused is not None:
            return self._said(seen, refused)
        assert cmd is not None
        return Turn((seen,), pending=Pending(_STAGES[cmd], cmd, verb, arg))

    def _refusal(self, cmd: Command | None, arg: str, verb: str, text: str) -> list[Event] | None:
        """The answer to a command refused before any fault point, or None to go on."""
        if cmd is None:
            return self._unknown_verb(verb, text)
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
        refused = self.grammar.unknown(verb, text, self)
        answer = self._answer(refused.key, verb, arg=refused.arg)
        if refused.close:  # Postfix's "I can break rules, too": the session ends here
            return [answer, *self.hang_up()]
        if self.state is State.REFUSED:
            return [self._answer("access_denied", verb)]
        if refused.key != "unknown_command":  # a command of the program's own (ETRN)
            return [answer]
        return self._unknown("unknown_command", verb)

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
            # §4.1.1.4: only CRLF ends a text line (unless the program reads a bare LF too)
            line = self._lines.line(self.grammar.text_line_end, self._text_read_limit)
            if line is None:
                return Turn(tuple(seen)) if progressed else None
            progressed = True
            if not isinstance(line, TooLong) and self.grammar.is_final_dot(line):
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
        refused = self.checks.at_dot(self, message)
        if refused is not None:
            events.append(self._answer(refused.key, ".", arg=refused.arg))
            events += self._move(states.after_final_dot(self._data_from, ok=False))
            self._reset_transaction()
            return Turn(seen, tuple(self._finish(events)))
        self._content = message.content()
        return Turn(seen, tuple(events), Pending(Stage.DOT, Command.END_OF_DATA, ".", ""))

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
        name = self.grammar.helo_name(arg)
        if name is None:
            return self._reply(cmd, "helo_syntax" if verb == "HELO" else "ehlo_syntax", verb)
        refused = self.checks.at_helo(self, name)
        if refused is not None:
            return self._reply(cmd, refused.key, verb, arg=refused.arg)
        arg = name
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
        if isinstance(path, Refusal):
            return self._reply(Command.MAIL, path.key, "MAIL", arg=path.arg)
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
        if isinstance(path, Refusal):
            return self._reply(Command.RCPT, path.key, "RCPT", arg=path.arg)
        if path is None or not path.address:
            return self._reply(Command.RCPT, "rcpt_syntax", "RCPT")
        self._last_rcpt = path.address  # OpenSMTPD's Received: names the last RCPT given
        refused = self.grammar.parameters(Command.RCPT, path, self.policy.message_size_limit)
        if refused is not None:
            return self._reply(Command.RCPT, refused.key, "RCPT", arg=refused.arg)
        refused = self.checks.at_rcpt(self, path.address)
        if refused is not None:
            fields = {"addr": path.address, "arg": refused.arg}
            return self._reply(Command.RCPT, refused.key, "RCPT", **fields)
        self.rcpt_tos.append(path.address)
        self.rcpt_options.extend(path.parameters)
        return self._reply(Command.RCPT, "rcpt_ok", "RCPT", addr=path.address)

    def _data(self, arg: str, verb: str) -> list[Event]:
        if self.grammar.refuses_argument(Command.DATA, arg):
            return self._reply(Command.DATA, "data_syntax", "DATA")
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
        queue_id = self._new_queue_id()
        stored = self.accepted(
            queue_id, self.mail_from or "", tuple(self.rcpt_tos), self._content, self._last_rcpt
        )
        events: list[Event] = [stored]  # stored before its 250 goes out
        events += self._reply(Command.END_OF_DATA, "data_ok", ".", queue_id=queue_id)
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
    ) -> MessageAccepted:
        """The message this session's server takes, stamped with its trace fields
        (a relay calls it for what the server behind it accepted)."""
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
        )

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

    def _closing_reply(self, key: str) -> list[Event]:
        answer = self._answer(key, None)
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

    @property
    def _text_read_limit(self) -> int:
        # A server that takes long text lines (Postfix) keeps them whole, up to the size limit.
        longest = min(self.policy.text_line_limit, self.policy.message_size_limit) + 2
        return max(READ_LIMIT, longest)

    def _reset_transaction(self) -> None:
        self.grammar.reset()
        self.mail_from, self.mail_options = None, []
        self.rcpt_tos, self.rcpt_options = [], []
        self._last_rcpt = None

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
        again = self.tls_restarted and self.persona.tls_needs_new_helo
        return self.setup.helo_required or again

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
