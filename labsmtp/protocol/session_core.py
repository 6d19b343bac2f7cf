"""What every part of a session shares: its state, and the one road to a reply.

``SessionCore`` holds what one SMTP connection knows (the client, its HELO,
the open transaction, the counters) and the few methods every other part
goes through: ``_answer`` words a reply in the persona's terms, ``_advance``
and ``_move`` are the only way the state changes (through ``states.py``),
and ``_finish`` counts failed commands and closes at the hard error limit
(§3.8).  It also answers what a grammar may ask of the session now
(``view``, ``offers``).

The other parts build on it: the AUTH exchange (``session_auth.py``), the
message text and BDAT chunks (``message.py``), the command lines and one
method per command (``session_commands.py``); ``session.py`` puts them
together as ``Session``, with the driver's side and the hooks for grammars.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from . import auth, states
from .checks import Checks, checks_of
from .chunking import Chunk, Chunks
from .events import Answer, ClientLine, Event, HangUp, Note, StateChanged, Turn
from .grammar import Grammar, View, grammar_of
from .lines import LineBuffer, MessageText
from .relay import Relay
from .setup import Fields, Setup
from .states import Command, State
from .trace import TlsInfo

if TYPE_CHECKING:
    from .session import Session


def code_of(answer: Answer) -> int | None:
    """The reply code of ``answer`` (None: a malformed first line)."""
    first = answer.lines[0][:3] if answer.lines else ""
    return int(first) if first.isdigit() else None


def _offers_of(core: SessionCore) -> Callable[[str], bool]:
    """``core.offers`` for its grammar, through a weak reference: a grammar holding
    the bound method would make a cycle that only the garbage collector frees, once
    per connection (the grammar never outlives its session)."""
    ref = weakref.ref(core)

    def offers(keyword: str) -> bool:
        session = ref()
        return session is not None and session.offers(keyword)

    return offers


# Grammar's hooks that take a View (see SessionCore._view_for).
_VIEW_HOOKS = (
    "before",
    "helo",
    "keywords",
    "parse_path",
    "path_parameters",
    "recipient",
    "vrfy",
    "argument_refusal",
)


def counts_as_error(code: int | None) -> bool:
    """Whether a ``code`` reply counts as a failed command (Policy.hard_error_limit)."""
    # §3.8 counts failed commands; a 421 is the server closing, not the client failing.
    return code is not None and 400 <= code < 600 and code not in states.CLOSING_CODES


class SessionCore:
    """A session's state and the methods every part of it replies through."""

    def __init__(
        self, setup: Setup, client_ip: str, *, tls: bool = False, tls_info: TlsInfo | None = None
    ) -> None:
        self.setup, self.persona, self.policy = setup, setup.persona, setup.policy
        self.grammar: Grammar = grammar_of(setup.persona, setup)
        self.grammar.bind(setup, client_ip)
        self.checks: Checks = checks_of(setup.persona, setup)
        # A proxy persona (clamsmtpd) relays to a server of its own: it reads every line.
        relay = setup.persona.relay
        self.relay: Relay | None = relay(self._session) if relay else None
        self.grammar.offers = _offers_of(self)
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
        # The View hooks this persona's grammar overrides get a fresh snapshot each
        # time; Grammar's own ignore the view (path_parameters reads only its setup,
        # fixed for the session), so they share one: a View per command saved.
        kind = type(self.grammar)
        self._seeing = frozenset(
            h for h in _VIEW_HOOKS if getattr(kind, h) is not getattr(Grammar, h)
        )
        self._first_view = self.view()

    @property
    def _session(self) -> Session:
        # The grammar's and the checks' hooks take the whole Session, which this is a
        # part of: session.py's Session is the only class made from these parts.
        return cast("Session", self)

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
        return [answer, *self._advance(cmd, code_of(answer))]

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

    def hang_up(self) -> list[Event]:
        """The server closes without a reply (a fault, a failed handshake)."""
        return self._move(states.closed(self.state))

    def _closing_reply(self, key: str, label: str | None = None) -> list[Event]:
        """Reply ``key``; the state changes only if it is a reply that closes (421, 521)."""
        if key in self.persona.closes_silently:  # the program just hangs up
            why = {"timeout": "idle too long", "shutdown": "the server stops"}.get(key, key)
            note = Note(f"{why}: {self.persona.software} closes without a reply")
            return [note, *self.hang_up()]
        answer = self._answer(key, label)
        return [answer, *self._move(states.after_reply(self.state, None, code_of(answer)))]

    def _finish(self, events: list[Event], count: bool = True) -> list[Event]:
        """Count failed commands; at the hard error limit, 421 and close (§3.8)."""
        if count:
            self.errors += sum(
                1 for ev in events if isinstance(ev, Answer) and counts_as_error(code_of(ev))
            )
        if not self._closing and self.errors >= self.policy.hard_error_limit:
            events += self._closing_reply("too_many_errors")
        if self._close_after and not self._closing:
            events += self.hang_up()
        return events

    def _said(self, seen: ClientLine, events: list[Event]) -> Turn:
        return Turn((seen,), tuple(self._finish(events)))

    def _pipelined(self) -> bool:
        """A server that refuses pipelining (Grammar.refuses_pipelining) finds more input waiting."""
        return self.grammar.refuses_pipelining and bool(self._lines)

    def _reset_transaction(self) -> None:
        self.grammar.reset()
        self.mail_from, self.mail_options = None, []
        self.rcpt_tos, self.rcpt_options, self._rcpt_parameters = [], [], []
        self._last_rcpt = None
        self._chunks.reset()  # RFC 3030 §2: RSET (and a new transaction) drop the chunks

    @property
    def _helo_required(self) -> bool:
        # After STARTTLS the client MUST send EHLO again (RFC 3207 §4.2); most servers
        # insist, whatever their leniency about MAIL before HELO on a fresh connection.
        own = self.grammar.requires_helo(self._session)
        required = self.setup.helo_required if own is None else own
        return required or (self.tls_restarted and self.persona.tls_needs_new_helo)

    @property
    def _variants(self) -> tuple[str, ...]:
        return self.persona.sequence_variants  # the persona's departures from the table

    # --- what a grammar may ask of the session now ---------------------------------

    def _view_for(self, *hooks: str) -> View:
        """The View to pass to ``hooks``: a fresh one if the grammar overrides any."""
        seeing = self._seeing
        return self.view() if seeing and not seeing.isdisjoint(hooks) else self._first_view

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
        return self.grammar.keywords(words, self._view_for("keywords"))
