"""The SMTP dialogue as one explicit table (RFC 5321 §3.3, §4.1.1, §4.1.4).

Rule 1 (h11's): everything that moves a session from one state to another
lives in this module.  The server's session (``session.py``), the step
client's "what may I send now", the in-memory pair, the state diagram in the
lessons and the tests all read ``TRANSITIONS``; nothing else assigns a state.

Theory of operation (after h11's ``_state.py``): a session is in exactly one
``State``.  A command either succeeds (2xx/3xx reply) and moves the session
along ``TRANSITIONS[state][command]``, or fails (4xx/5xx) and leaves the state
where it was (§4.1.4: "the SMTP server MUST stay in the same state").  A
command with no entry for the current state is out of order: the server
answers 503 (or the persona's word for it, ``SEQUENCE_ERRORS``) and the state
does not change.  Exactly one reply per command (§4.2).  A 421 reply closes
the session whatever the command (§3.8), and so does a closed connection.
A 554 greeting (§3.1: "no SMTP service here") leads to ``REFUSED``, where
the server waits for QUIT and answers every other command 503.

``Stage`` names the points of a dialogue (the greeting, HELO, MAIL, ..., the
final dot): fault rules, trials, the client's error phases, the command line's
exit codes and the table of usual replies all speak of stages.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import LabError, LabValueError


class State(str, enum.Enum):
    """Where an SMTP session is, seen from the server."""

    CONNECTED = "connected"  # 220 sent; no HELO/EHLO accepted yet (§3.1)
    GREETED = "greeted"  # HELO/EHLO accepted; no mail transaction open (§4.1.1.1)
    MAIL = "mail"  # MAIL accepted: transaction open, no recipient yet (§4.1.1.2)
    RCPT = "rcpt"  # at least one RCPT accepted (§4.1.1.3)
    DATA = "data"  # 354 sent; message text until <CRLF>.<CRLF> (§4.1.1.4)
    REFUSED = "refused"  # 554 greeting sent: only QUIT is served, the rest gets 503 (§3.1)
    CHUNKING = "chunking"  # BDAT chunks taken, no BDAT LAST yet (RFC 3030 §2)
    CLOSED = "closed"  # 221 or 421 sent, or the connection is gone (§3.8)

    def __str__(self) -> str:
        return self.value


class Command(str, enum.Enum):
    """The events that move a session: SMTP verbs plus the end of message text."""

    HELO = "HELO"
    EHLO = "EHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    END_OF_DATA = "."  # the line holding only a dot (§4.1.1.4)
    BDAT = "BDAT"  # RFC 3030: one chunk of the message, more to come
    BDAT_LAST = "BDAT LAST"  # RFC 3030: the last chunk; the message is complete
    RSET = "RSET"
    NOOP = "NOOP"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    QUIT = "QUIT"
    STARTTLS = "STARTTLS"  # RFC 3207
    AUTH = "AUTH"  # RFC 4954

    def __str__(self) -> str:
        return self.value


class Stage(str, enum.Enum):
    """A point of the dialogue where the server answers: the vocabulary of faults,
    trials, client phases, exit codes and the table of usual replies."""

    CONNECT = "connect"  # the connection is accepted and the 220 greeting is due (§3.1)
    HELO = "helo"  # HELO or EHLO: one stage, as the table treats them (§4.1.1.1)
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # DATA and its 354
    DOT = "dot"  # the final dot: the reply that says whether the message is taken
    BDAT = "bdat"  # a BDAT chunk (RFC 3030), read whole before its reply; LAST included
    RSET = "rset"
    NOOP = "noop"
    VRFY = "vrfy"
    EXPN = "expn"
    HELP = "help"
    QUIT = "quit"
    STARTTLS = "starttls"  # RFC 3207
    AUTH = "auth"  # RFC 4954
    TLS = "tls"  # a TLS handshake, after STARTTLS or at once on an implicit-TLS port

    def __str__(self) -> str:
        return self.value

    # Stage.RCPT and "rcpt" are one dict key (Enum hashes the member name otherwise);
    # str's own hash, not a Python method: the fault engine looks a stage up per command.
    __hash__ = str.__hash__

    @property
    def answers(self) -> str:
        """The command a reply at this stage answers, as replies and transcripts name it."""
        return _ANSWERS.get(self, self.value.upper())

    @property
    def described(self) -> str:
        """How an error message names the stage: 'the greeting', 'after the final dot', 'MAIL'."""
        return _DESCRIBED.get(self, self.value.upper())

    @classmethod
    def of(cls, name: str | Command | Stage) -> Stage | None:
        """The stage of a command, a reply's command label ('CONNECT', '.') or a stage name."""
        if isinstance(name, Stage):
            return name
        key = str(name)
        return _STAGE_OF_NAME.get(key) or _STAGE_OF_NAME.get(key.lower())


_ANSWERS = {Stage.CONNECT: "CONNECT", Stage.DOT: "."}
_DESCRIBED = {
    Stage.CONNECT: "the greeting",
    Stage.DOT: "after the final dot",
    Stage.TLS: "the TLS handshake",
}
# Every spelling of a stage: its own name, the command label its reply answers,
# the verbs that reach it, and the aliases fault specs have always accepted.
_STAGE_OF_NAME: dict[str, Stage] = {
    **{st.value: st for st in Stage},
    **{st.answers: st for st in Stage},
    "EHLO": Stage.HELO,
    "ehlo": Stage.HELO,
    "greeting": Stage.CONNECT,
    "banner": Stage.CONNECT,
    ".": Stage.DOT,
    "eod": Stage.DOT,
    "end": Stage.DOT,
    "BDAT LAST": Stage.BDAT,
    "chunk": Stage.BDAT,
}

S, C = State, Command
_OPEN = (S.CONNECTED, S.GREETED, S.MAIL, S.RCPT, S.CHUNKING)  # states that read commands

# Commands that may come "at any time during a session, or without
# previously initializing a session" and do not change it (§4.1.4).
_ANYTIME = {C.NOOP: None, C.VRFY: None, C.EXPN: None, C.HELP: None}

_TABLE: dict[State, dict[Command, State]] = {
    S.CONNECTED: {
        C.HELO: S.GREETED,  # §4.1.1.1
        C.EHLO: S.GREETED,  # §4.1.1.1
        C.RSET: S.CONNECTED,  # §4.1.1.5: RSET resets the transaction, not the greeting
        C.QUIT: S.CLOSED,  # §4.1.1.10: QUIT is fine even before a greeting
        C.STARTTLS: S.CONNECTED,  # RFC 3207 §4: servers may demand it before EHLO
    },
    S.GREETED: {
        C.HELO: S.GREETED,  # §4.1.4: a later EHLO resets as if RSET
        C.EHLO: S.GREETED,
        C.MAIL: S.MAIL,  # §4.1.1.2: MAIL begins a transaction
        C.RSET: S.GREETED,
        C.QUIT: S.CLOSED,
        C.STARTTLS: S.CONNECTED,  # RFC 3207 §4.2: after TLS the client must EHLO again
        C.AUTH: S.GREETED,  # RFC 4954 §4: only outside a transaction
    },
    S.MAIL: {
        C.HELO: S.GREETED,  # §4.1.4: HELO/EHLO aborts the open transaction
        C.EHLO: S.GREETED,
        C.RCPT: S.RCPT,  # §4.1.1.3
        C.RSET: S.GREETED,  # §4.1.1.5: aborts the transaction
        C.QUIT: S.CLOSED,
    },
    S.RCPT: {
        C.HELO: S.GREETED,
        C.EHLO: S.GREETED,
        C.RCPT: S.RCPT,  # §3.3: one or more RCPT
        C.DATA: S.DATA,  # §4.1.1.4: 354 moves to message text
        C.BDAT: S.CHUNKING,  # RFC 3030 §2: the first of several chunks
        C.BDAT_LAST: S.GREETED,  # RFC 3030 §2: the whole message in one chunk
        C.RSET: S.GREETED,
        C.QUIT: S.CLOSED,
    },
    S.DATA: {
        C.END_OF_DATA: S.GREETED,  # §4.1.1.4: the transaction is over either way
    },
    S.REFUSED: {
        C.QUIT: S.CLOSED,  # §3.1: after a 554 greeting the server "MUST wait for QUIT"
    },
    S.CHUNKING: {
        C.BDAT: S.CHUNKING,  # RFC 3030 §2: chunks follow one another
        C.BDAT_LAST: S.GREETED,  # the message is complete
        C.HELO: S.GREETED,  # §4.1.4: HELO/EHLO abort the transaction, chunks and all
        C.EHLO: S.GREETED,
        C.RSET: S.GREETED,  # RFC 3030 §2: RSET discards the chunks received
        C.QUIT: S.CLOSED,
    },
    S.CLOSED: {},
}
# NOOP, VRFY, EXPN and HELP never move a session (§4.1.4).
for _state in _OPEN:
    _TABLE[_state].update({cmd: _state for cmd in _ANYTIME})
TRANSITIONS: Mapping[State, Mapping[Command, State]] = MappingProxyType(
    {state: MappingProxyType(moves) for state, moves in _TABLE.items()}
)

# When a failing reply still moves the session: after the final dot the
# transaction ends whatever the reply (§4.1.1.4, §3.3).
FAILURE_TRANSITIONS: Mapping[tuple[State, Command], State] = {
    (S.DATA, C.END_OF_DATA): S.GREETED,
    # RFC 3030 §2: a refused chunk fails the transaction; the server keeps reading
    # (and discarding) the chunks a pipelining client already sent, until BDAT LAST
    # or RSET.  A refused LAST chunk ends the transaction, as a refused final dot.
    (S.RCPT, C.BDAT): S.CHUNKING,
    (S.RCPT, C.BDAT_LAST): S.GREETED,
    (S.CHUNKING, C.BDAT_LAST): S.GREETED,
}

# §3.8: "421 <domain> Service not available, closing transmission channel" may
# answer any command (or come unasked), and the session is over.  The client
# and the server both read this: a 421 moves any state to CLOSED.
CLOSING_CODES: frozenset[int] = frozenset({421})
# RFC 7504 §3: 521 says the server does not accept mail (here: it cannot stay in step
# with the client, Postfix's BDAT without a size) and closes, for good.
NO_MAIL_CODES: frozenset[int] = frozenset({521})

# Postfix's smtpd_helo_required = no (its default) lets MAIL open a
# transaction before any greeting.  RFC 5321 §4.1.4 says a session with
# mail transactions "MUST first be initialized by the use of the EHLO
# command", so the strict table above refuses it; this is the local-policy
# exception, and the only one.
LENIENT_TRANSITIONS: Mapping[tuple[State, Command], State] = {
    (S.CONNECTED, C.MAIL): S.MAIL,
}

# Which sequence error explains an out-of-order command.  The persona turns
# the key into words ("503 5.5.1 Error: need MAIL command" for Postfix).
SEQUENCE_ERRORS: Mapping[tuple[State, Command], str] = {
    (S.CONNECTED, C.MAIL): "need_helo",
    (S.CONNECTED, C.RCPT): "need_mail",
    (S.GREETED, C.RCPT): "need_mail",
    (S.CONNECTED, C.DATA): "need_rcpt",
    (S.GREETED, C.DATA): "need_rcpt",
    (S.MAIL, C.DATA): "no_valid_recipients",
    (S.MAIL, C.MAIL): "nested_mail",
    (S.RCPT, C.MAIL): "nested_mail",
    (S.CONNECTED, C.AUTH): "need_ehlo_for_auth",
    (S.MAIL, C.AUTH): "auth_in_transaction",
    (S.RCPT, C.AUTH): "auth_in_transaction",
    (S.MAIL, C.STARTTLS): "starttls_in_transaction",
    (S.RCPT, C.STARTTLS): "starttls_in_transaction",
    # §3.1: "SHOULD respond to any command other than QUIT with 503" after a 554 greeting.
    **{(S.REFUSED, c): "access_denied" for c in C if c not in (C.QUIT, C.END_OF_DATA)},
    # RFC 3030 §2: BDAT is DATA's alternative, with the same preconditions.
    **{(s, c): "need_rcpt" for s in (S.CONNECTED, S.GREETED) for c in (C.BDAT, C.BDAT_LAST)},
    (S.MAIL, C.BDAT): "no_valid_recipients",
    (S.MAIL, C.BDAT_LAST): "no_valid_recipients",
    # RFC 3030 §3: "DATA and BDAT commands cannot be used in the same transaction"
    # (503); a new MAIL or RCPT waits until the chunks are done, too.
    (S.CHUNKING, C.DATA): "after_bdat",
    (S.CHUNKING, C.MAIL): "after_bdat",
    (S.CHUNKING, C.RCPT): "after_bdat",
    (S.CHUNKING, C.AUTH): "auth_in_transaction",
    (S.CHUNKING, C.STARTTLS): "starttls_in_transaction",
}


@dataclass(frozen=True)
class Variant:
    """A way a real server bends this table: edges it refuses, or edges it adds."""

    about: str
    # (state, command) pairs answered with reply_key
    forbids: frozenset[tuple[State, Command]] = frozenset()
    reply_key: str = "bad_sequence"
    # (state, command) -> state: edges the variant adds
    allows: Mapping[tuple[State, Command], State] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # (state, command) -> state: where a failing reply leads, also for a command
    # refused as out of order
    fails_to: Mapping[tuple[State, Command], State] = field(
        default_factory=lambda: MappingProxyType({})
    )


# Real servers differ from RFC 5321 in the order they accept, not only in
# wording.  A persona names the variants it plays (``Persona.sequence_variants``);
# the server, the step client and the tests pass them to the functions below,
# so every ordering rule still lives in this module.
VARIANTS: Mapping[str, Variant] = {
    # OpenSMTPD 6.8 (smtp_session.c): "503 5.5.1 Invalid command: Already
    # identified".  §4.1.4 lets a client send EHLO again; OpenSMTPD refuses.
    "helo_once": Variant(
        "a second HELO/EHLO is refused and changes nothing (OpenSMTPD)",
        forbids=frozenset((s, c) for s in (S.GREETED, S.MAIL, S.RCPT) for c in (C.HELO, C.EHLO)),
        reply_key="already_greeted",
    ),
    # Sendmail PrivacyOptions=needvrfyhelo: "503 5.0.0 I demand that you
    # introduce yourself first" (§4.1.4 would allow VRFY at any time).
    "vrfy_needs_helo": Variant(
        "VRFY before HELO/EHLO is refused (Sendmail's needvrfyhelo)",
        forbids=frozenset({(S.CONNECTED, C.VRFY)}),
        reply_key="need_helo_for_vrfy",
    ),
    # OpenSMTPD 6.8 refuses RSET before HELO ("Command not allowed at this point").
    "rset_needs_helo": Variant(
        "RSET before HELO/EHLO is refused (OpenSMTPD)",
        forbids=frozenset({(S.CONNECTED, C.RSET)}),
    ),
    # Postfix 3.7 (smtpd.c starttls_cmd): STARTTLS has no transaction check; the
    # handshake resets the session, open transaction included (RFC 3207 §4.2).
    "starttls_anytime": Variant(
        "STARTTLS is allowed inside a transaction, which it ends (Postfix)",
        allows=MappingProxyType(
            {(S.MAIL, C.STARTTLS): S.CONNECTED, (S.RCPT, C.STARTTLS): S.CONNECTED}
        ),
    ),
    # clamsmtpd 1.10 answers DATA with its own 354 at once and spools the
    # message; only after the final dot does it send DATA to the server behind
    # it, whose refusal (this table's ordinary one) becomes the final reply.
    "data_spooled_first": Variant(
        "DATA gets 354 even without recipients; the refusal comes after the dot (clamsmtpd)",
        allows=MappingProxyType({(S.GREETED, C.DATA): S.DATA, (S.MAIL, C.DATA): S.DATA}),
    ),
    # Postfix 3.7 (smtpd.c, skip_bdat): a refused BDAT that is not LAST, even one
    # refused for want of recipients, puts the session in its "discard" state: later
    # chunks are read and refused ("551 5.0.0 Discarded N bytes after earlier
    # error") until BDAT LAST or RSET; MAIL, RCPT and DATA meanwhile get 503.
    "chunks_discarded_after_refusal": Variant(
        "a refused BDAT starts discarding later chunks until BDAT LAST or RSET (Postfix)",
        fails_to=MappingProxyType(
            {
                (S.GREETED, C.BDAT): S.CHUNKING,
                (S.MAIL, C.BDAT): S.CHUNKING,
                (S.MAIL, C.BDAT_LAST): S.GREETED,  # mail_reset(): the transaction is over
            }
        ),
    ),
    # Exim 4.96 (smtp_in.c, bdat_getc): after a non-LAST chunk only BDAT, NOOP,
    # RSET and QUIT are read; anything else is "503 only BDAT permissible after
    # non-LAST BDAT".
    "only_bdat_after_chunk": Variant(
        "after a non-LAST BDAT only BDAT, NOOP, RSET and QUIT are taken (Exim)",
        forbids=frozenset(
            (S.CHUNKING, c)
            for c in (C.HELO, C.EHLO, C.MAIL, C.RCPT, C.DATA, C.VRFY, C.EXPN, C.HELP)
            + (C.STARTTLS, C.AUTH)
        ),
        reply_key="after_bdat",
    ),
}


def _variants(names: Iterable[str]) -> list[Variant]:
    try:
        return [VARIANTS[n] for n in names]
    except KeyError as exc:
        raise LabValueError(
            f"no sequence variant called {exc.args[0]!r}; known: {', '.join(VARIANTS)}"
        ) from None


class SequenceError(LabError):
    """A command that the table does not allow in the current state (503)."""

    def __init__(self, state: State, command: Command, reply_key: str | None = None):
        self.state, self.command = state, command
        self.reply_key = reply_key or SEQUENCE_ERRORS.get((state, command), "bad_sequence")
        super().__init__(f"can't handle {command} when state={state}")


def _target(state: State, command: Command, helo_required: bool, variants: Iterable[str]) -> State:
    """Where ``command`` leads from ``state``; raises SequenceError if it is out of order."""
    vs = _variants(variants)
    for v in vs:
        if (state, command) in v.forbids:
            raise SequenceError(state, command, v.reply_key)
    if command in TRANSITIONS[state]:
        return TRANSITIONS[state][command]
    for v in vs:
        if (state, command) in v.allows:
            return v.allows[(state, command)]
    if not helo_required and (state, command) in LENIENT_TRANSITIONS:
        return LENIENT_TRANSITIONS[(state, command)]
    raise SequenceError(state, command)


def is_allowed(
    state: State, command: Command, *, helo_required: bool = True, variants: Iterable[str] = ()
) -> bool:
    """True if ``command`` is in order in ``state`` (under the named ``VARIANTS``)."""
    return refusal(state, command, helo_required=helo_required, variants=variants) is None


def refusal(
    state: State, command: Command, *, helo_required: bool = True, variants: Iterable[str] = ()
) -> str | None:
    """The persona reply key refusing an out-of-order ``command``, or None if it is in order."""
    try:
        _target(State(state), Command(command), helo_required, variants)
    except SequenceError as err:
        return err.reply_key
    return None


def next_state(
    state: State,
    command: Command,
    *,
    ok: bool = True,
    helo_required: bool = True,
    variants: Iterable[str] = (),
) -> State:
    """The state after ``command`` got a success (``ok``) or failure reply.

    Raises ``SequenceError`` (and changes nothing) if the command is out of order.
    """
    # The session passes members already; converting them again costs a Python call each.
    if type(state) is not State:
        state = State(state)
    if type(command) is not Command:
        command = Command(command)
    target = _target(state, command, helo_required, variants)
    if ok:
        return target
    return FAILURE_TRANSITIONS.get((state, command), state)


def allowed_commands(
    state: State, *, helo_required: bool = True, variants: Iterable[str] = ()
) -> list[Command]:
    """The commands that are in order in ``state``, in table order."""
    state = State(state)
    cmds = list(TRANSITIONS[state])
    if not helo_required:
        cmds += [c for (s, c) in LENIENT_TRANSITIONS if s is state and c not in cmds]
    for v in _variants(variants):
        cmds += [c for (s, c) in v.allows if s is state and c not in cmds]
    return [c for c in cmds if is_allowed(state, c, helo_required=helo_required, variants=variants)]


def after_reply(
    state: State,
    command: Command | None,
    code: int | None,
    *,
    helo_required: bool = True,
    variants: Iterable[str] = (),
) -> State:
    """The state after the server answered ``command`` (None: a line it did not know,
    or no command at all) with ``code`` (None: no valid reply).

    421 closes the session (§3.8); a command out of order leaves the state where
    it was (the 503 changed nothing); otherwise ``next_state`` with the reply's
    first digit.  The server's session and the step client both ask this.
    """
    if code in CLOSING_CODES or code in NO_MAIL_CODES:
        return S.CLOSED
    if command is None:
        return State(state)
    ok = code is not None and 200 <= code < 400
    if not ok:
        for v in _variants(variants):
            if (state, command) in v.fails_to:
                return v.fails_to[(state, command)]
    try:
        return next_state(state, command, ok=ok, helo_required=helo_required, variants=variants)
    except SequenceError:
        return State(state)


def opened() -> State:
    """Where every new connection starts: the 220 greeting is due (§3.1)."""
    return S.CONNECTED


def closed(state: State) -> State:
    """The state once the connection is gone, whoever closed it (§3.8)."""
    return S.CLOSED


def after_greeting(code: int | None) -> State:
    """The state after the server's first reply: 220 serves the client (§3.1), 421
    closes at once (§3.8), and 554 (or any other refusal) refuses the session and
    waits for QUIT, answering 503 to everything else (§3.1)."""
    if code in CLOSING_CODES:
        return S.CLOSED
    if code is not None and 400 <= code < 600:
        return S.REFUSED
    return S.CONNECTED


def refused_after_dot(
    state: State, *, helo_required: bool = True, variants: Iterable[str] = ()
) -> str | None:
    """Under a variant that answers DATA with 354 before any recipient (clamsmtpd's
    ``data_spooled_first``): the plain table's refusal of that DATA, which the
    server behind the proxy says after the final dot.  None when DATA is in
    order by the plain table (or refused at once under the variants)."""
    if refusal(state, C.DATA, helo_required=helo_required, variants=variants) is not None:
        return None
    return refusal(state, C.DATA, helo_required=helo_required)


def after_final_dot(entered_from: State, *, ok: bool, refused: bool = False) -> State:
    """The state after the reply to the final dot of a DATA entered from ``entered_from``.

    Normally the transaction is over either way (§4.1.1.4).  A DATA that only a
    proxy let in (``refused_after_dot``) never reached the server behind it,
    whose transaction is still where it was.
    """
    if refused:
        return State(entered_from)
    return next_state(S.DATA, C.END_OF_DATA, ok=ok)


def edges(*, chunking: bool = True) -> list[tuple[State, Command, State]]:
    """Every (from, command, to) edge of the table: what the state diagram draws.

    ``chunking=False`` leaves out RFC 3030's BDAT edges and the CHUNKING state: the
    dialogue of RFC 5321 alone.
    """
    bdat = (C.BDAT, C.BDAT_LAST)
    return [
        (s, c, t)
        for s, moves in TRANSITIONS.items()
        for c, t in moves.items()
        if chunking or not (c in bdat or S.CHUNKING in (s, t))
    ]
