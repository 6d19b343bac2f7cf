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


class SequenceError(Exception):
    """A command that the table does not allow in the current state (503)."""

    def __init__(self, state: State, command: Command):
        self.state, self.command = state, command
        self.reply_key = SEQUENCE_ERRORS.get((state, command), "bad_sequence")
        super().__init__(f"can't handle {command} when state={state}")


def is_allowed(state: State, command: Command, *, helo_required: bool = True) -> bool:
    """True if ``command`` is in order in ``state``."""
    return command in TRANSITIONS[state] or (
        not helo_required and (state, command) in LENIENT_TRANSITIONS
    )


def next_state(
    state: State, command: Command, *, ok: bool = True, helo_required: bool = True
) -> State:
    """The state after ``command`` got a success (``ok``) or failure reply.

    Raises ``SequenceError`` (and changes nothing) if the command is out of order.
    """
    state, command = State(state), Command(command)
    if command in TRANSITIONS[state]:
        target = TRANSITIONS[state][command]
    elif not helo_required and (state, command) in LENIENT_TRANSITIONS:
        target = LENIENT_TRANSITIONS[(state, command)]
    else:
        raise SequenceError(state, command)
    if ok:
        return target
    return FAILURE_TRANSITIONS.get((state, command), state)


def allowed_commands(state: State, *, helo_required: bool = True) -> list[Command]:
    """The commands that are in order in ``state``, in table order."""
    state = State(state)
    cmds = list(TRANSITIONS[state])
    if not helo_required:
        cmds += [c for (s, c) in LENIENT_TRANSITIONS if s is state and c not in cmds]
    return cmds


def edges() -> list[tuple[State, Command, State]]:
    """Every (from, command, to) edge of the table: what the state diagram draws."""
    return [(s, c, t) for s, moves in TRANSITIONS.items() for c, t in moves.items()]
