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

``Session`` is made of parts, one module each: ``session_core.py`` (the
state it keeps, replies, state changes and counters), ``session_auth.py``
(the AUTH exchange), ``message.py`` (DATA's text, the final dot, BDAT
chunks, the stored message and its trace fields) and
``session_commands.py`` (command lines and one method per command).  This
module adds the driver's side and the hooks for a grammar that answers
commands its own way (``Grammar.respond``).

Where new behaviour goes: how a server reads lines (its parser, its limits,
what it does past them) is its ``Grammar``; what the server decides about
a client is a policy hook of ``Setup`` (``identity``, ``recipients``); BDAT
(RFC 3030) reads a chunk whole (``chunking.py``) before its fault point, and
its last chunk is stored as the final dot's text is (``_store``); whether an
extension is offered now is ``offers`` (the grammar asks it about ESMTP
parameters); a trace field for the stored message goes where
``MessageAccepted`` is made (``message.py``).
"""

from __future__ import annotations

from . import states
from .events import Answer, ClientLine, Event, Note, Pending, Turn
from .grammar import AUTH_LINE_LIMIT
from .session_commands import CommandPart
from .session_core import code_of, counts_as_error
from .setup import REVERSE_NAMES, Setup
from .states import Command, Stage, State
from .trace import TlsInfo

__all__ = ["AUTH_LINE_LIMIT", "REVERSE_NAMES", "Session", "Setup"]


class Session(CommandPart):
    """One SMTP connection as the server sees it: bytes in, turns and events out."""

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
        return [answer, *self._move(states.after_greeting(code_of(answer)))]

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
            return [answer, *self._move(states.after_greeting(code_of(answer)))]
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
        if counts_as_error(code):
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

    @property
    def sender(self) -> str:
        """MAIL FROM's address in the open transaction ('' if none)."""
        return self.mail_from or ""

    @property
    def recipients(self) -> tuple[str, ...]:
        """The recipients accepted in the open transaction."""
        return tuple(self.rcpt_tos)
