"""The SMTP dialogue as one explicit table (RFC 5321 §3.3, §4.1.1, §4.1.4).

Everything that decides which command may come next lives in this module:
the server's sequence checks, the step client's "what may I send now", the
state diagram in the lessons and the tests all read ``TRANSITIONS``.

Theory of operation (after h11's ``_state.py``): a session is in exactly one
``State``.  A command either succeeds (2xx/3xx reply) and moves the session
along ``TRANSITIONS[state][command]``, or fails (4xx/5xx) and leaves the state
where it was (§4.1.4: "the SMTP server MUST stay in the same state").  A
command with no entry for the current state is out of order: the server
answers 503 (or the persona's word for it, ``SEQUENCE_ERRORS``) and the state
does not change.  Exactly one reply per command (§4.2).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class State(str, enum.Enum):
    """Where an SMTP session is, seen from the server."""

    CONNECTED = "connected"  # 220 sent; no HELO/EHLO accepted yet (§3.1)
    GREETED = "greeted"  # HELO/EHLO accepted; no mail transaction open (§4.1.1.1)
    MAIL = "mail"  # MAIL accepted: transaction open, no recipient yet (§4.1.1.2)
    RCPT = "rcpt"  # at least one RCPT accepted (§4.1.1.3)
    DATA = "data"  # 354 sent; message text until <CRLF>.<CRLF> (§4.1.1.4)
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


S, C = State, Command
_OPEN = (S.CONNECTED, S.GREETED, S.MAIL, S.RCPT)  # states that read commands

# Commands that may come "at any time during a session, or without
# previously initializing a session" and do not change it (§4.1.4).
_ANYTIME = {C.NOOP: None, C.VRFY: None, C.EXPN: None, C.HELP: None}

TRANSITIONS: Mapping[State, Mapping[Command, State]] = {
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
        C.RSET: S.GREETED,
        C.QUIT: S.CLOSED,
    },
    S.DATA: {
        C.END_OF_DATA: S.GREETED,  # §4.1.1.4: the transaction is over either way
    },
    S.CLOSED: {},
}
# NOOP, VRFY, EXPN and HELP never move a session (§4.1.4).
for _state in _OPEN:
    TRANSITIONS[_state].update({cmd: _state for cmd in _ANYTIME})  # type: ignore[attr-defined]

# When a failing reply still moves the session: after the final dot the
# transaction ends whatever the reply (§4.1.1.4, §3.3); 421 closes (§3.8).
FAILURE_TRANSITIONS: Mapping[tuple[State, Command], State] = {
    (S.DATA, C.END_OF_DATA): S.GREETED,
}

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
}


@dataclass(frozen=True)
class Variant:
    """A way a real server bends this table: edges it refuses, or edges it adds."""

    about: str
    forbids: frozenset = frozenset()  # (state, command) pairs answered with reply_key
    reply_key: str = "bad_sequence"
    allows: Mapping = field(
        default_factory=lambda: MappingProxyType({})
    )  # (state, command) -> state


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
    # clamsmtpd 1.10 answers DATA with its own 354 at once and spools the
    # message; only after the final dot does it send DATA to the server behind
    # it, whose refusal (this table's ordinary one) becomes the final reply.
    "data_spooled_first": Variant(
        "DATA gets 354 even without recipients; the refusal comes after the dot (clamsmtpd)",
        allows=MappingProxyType({(S.GREETED, C.DATA): S.DATA, (S.MAIL, C.DATA): S.DATA}),
    ),
}


def _variants(names) -> list[Variant]:
    try:
        return [VARIANTS[n] for n in names]
    except KeyError as exc:
        raise ValueError(
            f"no sequence variant called {exc.args[0]!r}; known: {', '.join(VARIANTS)}"
        ) from None


class SequenceError(Exception):
    """A command that the table does not allow in the current state (503)."""

    def __init__(self, state: State, command: Command, reply_key: str | None = None):
        self.state, self.command = state, command
        self.reply_key = reply_key or SEQUENCE_ERRORS.get((state, command), "bad_sequence")
        super().__init__(f"can't handle {command} when state={state}")


def _target(state: State, command: Command, helo_required: bool, variants) -> State:
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


def is_allowed(state: State, command: Command, *, helo_required: bool = True, variants=()) -> bool:
    """True if ``command`` is in order in ``state`` (under the named ``VARIANTS``)."""
    return refusal(state, command, helo_required=helo_required, variants=variants) is None


def refusal(
    state: State, command: Command, *, helo_required: bool = True, variants=()
) -> str | None:
    """The persona reply key refusing an out-of-order ``command``, or None if it is in order."""
    try:
        _target(State(state), Command(command), helo_required, variants)
    except SequenceError as err:
        return err.reply_key
    return None


def next_state(
    state: State, command: Command, *, ok: bool = True, helo_required: bool = True, variants=()
) -> State:
    """The state after ``command`` got a success (``ok``) or failure reply.

    Raises ``SequenceError`` (and changes nothing) if the command is out of order.
    """
    state, command = State(state), Command(command)
    target = _target(state, command, helo_required, variants)
    if ok:
        return target
    return FAILURE_TRANSITIONS.get((state, command), state)


def allowed_commands(state: State, *, helo_required: bool = True, variants=()) -> list[Command]:
    """The commands that are in order in ``state``, in table order."""
    state = State(state)
    cmds = list(TRANSITIONS[state])
    if not helo_required:
        cmds += [c for (s, c) in LENIENT_TRANSITIONS if s is state and c not in cmds]
    for v in _variants(variants):
        cmds += [c for (s, c) in v.allows if s is state and c not in cmds]
    return [c for c in cmds if is_allowed(state, c, helo_required=helo_required, variants=variants)]


def edges() -> list[tuple[State, Command, State]]:
    """Every (from, command, to) edge of the table: what the state diagram draws."""
    return [(s, c, t) for s, moves in TRANSITIONS.items() for c, t in moves.items()]
