"""What a session says happened: small frozen records named after protocol nouns.

The session (``session.py``) turns what the client sent into these, in the
order they happen; whoever drives it (the lab server, the in-memory pair)
acts on each in turn: sends an ``Answer``, stores a ``MessageAccepted``,
closes the connection on ``HangUp``.  As in h11: don't subclass these.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .frozen import fast_init
from .states import Command, Stage, State


@fast_init
@dataclass(frozen=True, slots=True)
class ClientLine:
    """A line the client sent, as it crossed the wire (for the transcript)."""

    raw: bytes
    command: str | None = None  # the verb as sent ("EHLO"), "." or "AUTH"; None for garbage
    note: str = ""  # "message text", "AUTH response", "a command line of N bytes (not shown)"


@fast_init
@dataclass(frozen=True, slots=True)
class Pending:
    """A command that passed the sequence checks and waits for its answer.

    A fault point: the driver answers it with ``Session.respond`` (the normal
    behaviour) or ``Session.answered`` (a reply it sent instead).
    """

    stage: Stage
    command: Command | None  # None: the greeting (Stage.CONNECT)
    verb: str  # as the client wrote it, in upper case ("EHLO", "MAIL")
    argument: str


@fast_init
@dataclass(frozen=True, slots=True)
class Answer:
    """A reply to send now (lines without CRLF)."""

    lines: tuple[str, ...]
    command: str | None  # what it answers: "MAIL", ".", "CONNECT"; None for unasked replies


@fast_init
@dataclass(frozen=True, slots=True)
class StateChanged:
    """The session moved along the state table."""

    state: State


@fast_init
@dataclass(frozen=True, slots=True)
class Greeted:
    """HELO or EHLO was accepted."""

    name: str
    extended: bool  # EHLO


@dataclass(frozen=True, slots=True)
class MessageAccepted:
    """A message the server takes: store it before its 250 goes out.

    Carries what a ``Received:`` trace field needs (RFC 5321 §4.4).
    """

    queue_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes  # as stored: the trace fields (Received:, Return-Path:) on top of ``sent``
    helo: str | None
    client_ip: str
    client_name: str | None  # what the lab's reverse DNS calls the client
    server_name: str
    protocol: str  # RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA
    received: datetime.datetime
    sent: bytes = b""  # the text the client sent, after dot-unstuffing, CRLF line ends
    mail_parameters: tuple[str, ...] = ()  # MAIL FROM's ESMTP parameters ("RET=HDRS", ...)
    rcpt_parameters: tuple[tuple[str, ...], ...] = ()  # each RCPT's, in rcpt_tos order


@dataclass(frozen=True, slots=True)
class Authenticated:
    """AUTH succeeded (RFC 4954)."""

    user: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """AUTH named a user and a wrong password (or a user that does not exist)."""

    user: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class TLSRequested:
    """STARTTLS got 220: the TLS handshake starts once the reply is out (RFC 3207)."""


@fast_init
@dataclass(frozen=True, slots=True)
class Note:
    """Something for the transcript's record that is neither a line nor a reply."""

    text: str


@fast_init
@dataclass(frozen=True, slots=True)
class HangUp:
    """The server closes the connection once the replies before it are out."""


Event = (
    Answer
    | StateChanged
    | Greeted
    | MessageAccepted
    | Authenticated
    | AuthFailed
    | TLSRequested
    | Note
    | HangUp
)


@fast_init
@dataclass(frozen=True, slots=True)
class Turn:
    """What the session made of the next piece of the client's input."""

    received: tuple[ClientLine, ...]  # the lines read, in order
    events: tuple[Event, ...] = ()  # what the session already decided
    pending: Pending | None = None  # a command still to answer (a fault point)
