"""How a server reads the client's command lines: verbs, paths and ESMTP parameters.

The session (``session.py``) asks its ``Grammar`` about each line that
arrived, in this order: the next line (``read_command``, ``read_text``), a
program's own answer to the raw line (``screen``), how much of it the server
keeps (``keep``), its text, verb and argument (``read``: ``decode`` then
``split``), whether it is too long, which command it is (``command``, and
``unknown_verb`` for a verb the lab does not know), a program's own answer
before the lab's checks (``before``) or instead of the lab's handler
(``respond``), the HELO name (``helo``), the path in ``MAIL FROM:<...>`` /
``RCPT TO:<...>`` (``parse_path``, RFC 5321 §4.1.2) and its ESMTP parameters
(``path_parameters``, §4.1.1.11), who may receive mail (``recipient``, after
the lab's checks in ``checks.py``), VRFY, arguments where none belong, and how
message text is cut into lines, judged and collected (``text_bytes``,
``text_line``, ``final_dot``, ``message_text``).  The answers are reply keys
(``Refusal``), never wording: the persona words them.  Each default is the
lab's standard behaviour, so a program's grammar overrides only where the
program differs.

A grammar is made for one session and bound to it (``bind``), with a
read-only ``View`` of the session at each decision, so a program whose answers
depend on what came before (Sendmail's "Command rejected" mode, OpenSMTPD's
DSN NOTIFY flags, Exim's error counters, Postfix's remembered SIZE) keeps that
state in its grammar.

Real servers differ here more than anywhere: quoting, source routes, a
missing ``<>``, unknown parameters.  ``Grammar`` is today's reading, steered by
the persona's flags (``requires_brackets``, ``keyword_is_part_of_verb``,
``unsupported_verbs``, ``no_argument_verbs``, ``checks_size_param``); a persona
that reads lines its own way names a subclass in ``Persona.grammar``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .chunking import BdatCommand, parse_bdat
from .frozen import fast_init
from .lines import READ_LIMIT, LineBuffer, MessageText, TooLong
from .states import Command, State

if TYPE_CHECKING:
    from .auth import Exchange
    from .events import ClientLine, Event
    from .personas import Persona
    from .policy import Policy
    from .session import Session
    from .setup import Fields, Setup

AUTH_LINE_LIMIT = 12288  # RFC 4954 §4: AUTH lines may be this long, whatever the command limit

# The ESMTP parameters the lab knows (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531
# SMTPUTF8, RFC 3461 DSN's RET/ENVID/NOTIFY/ORCPT, RFC 4954 AUTH) ...
ESMTP_PARAMETERS: dict[Command, frozenset[str]] = {
    Command.MAIL: frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}),
    Command.RCPT: frozenset({"NOTIFY", "ORCPT"}),
}
# ... and the EHLO keyword that offers each: a client may use a parameter only when
# the server advertised its extension (RFC 5321 §4.1.1.11, RFC 3461 §4).
PARAMETER_EXTENSIONS: dict[str, str] = {
    "SIZE": "SIZE",
    "BODY": "8BITMIME",  # BODY=7BIT and BODY=8BITMIME (RFC 6152 §2)
    "SMTPUTF8": "SMTPUTF8",
    "RET": "DSN",
    "ENVID": "DSN",
    "NOTIFY": "DSN",
    "ORCPT": "DSN",
    # AUTH= (RFC 4954 §5) is known whether AUTH is advertised now or not (no users,
    # not inside TLS yet), as Postfix compiled with SASL takes it.
    "AUTH": "",
}
# BODY=BINARYMIME is RFC 3030 §3's, offered by its own keyword.
BODY_EXTENSIONS: dict[str, str] = {
    "7BIT": "8BITMIME",
    "8BITMIME": "8BITMIME",
    "BINARYMIME": "BINARYMIME",
}


@fast_init
@dataclass(frozen=True, slots=True)
class Path:
    """The address of ``MAIL FROM:<...>`` or ``RCPT TO:<...>`` and the parameters after it."""

    address: str  # "" for the null reverse-path <> (§4.5.5)
    parameters: tuple[str, ...] = ()
    # How the reply names the address ({addr}); None: ``address``.  Sendmail echoes
    # the argument as typed ("<a@b>junk... Sender ok").
    echo: str | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A grammar's answer: a persona reply key and the fields its wording may use.

    Mostly a refusal, hence the name; a grammar that words a success its own way
    (``recipient``, ``vrfy``) returns one too.  ``close``: the server hangs up after
    the reply (a 421 closes anyway, RFC 5321 §3.8).  ``count``: the reply counts
    like an unknown command towards ``Persona.unknown_command_limit``.
    ``exchange``: an AUTH exchange (RFC 4954) the session starts with it.
    """

    key: str
    arg: str = ""
    fields: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    close: bool = False
    count: bool = False
    exchange: Exchange | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class CommandLine:
    """One command line as a server read it: the text, the verb (upper case), the argument."""

    text: str
    verb: str
    arg: str


@fast_init
@dataclass(frozen=True, slots=True)
class View:
    """What a grammar may know of its session when it decides (a snapshot, read-only)."""

    setup: Setup
    client_ip: str
    state: State
    helo: str | None  # the accepted HELO/EHLO name
    extended: bool  # greeted with EHLO
    sender: str | None  # MAIL FROM's address in the open transaction
    recipients: tuple[str, ...]  # the recipients accepted in it
    user: str | None  # authenticated as
    tls: bool
    input_waiting: bool  # more bytes had already arrived after this line (pipelined)


class Grammar:
    """The lab's reading of command lines, steered by one persona's flags."""

    # What ends a command line: LF, so a bare LF is tolerated as Postfix does.
    command_line_end = b"\n"
    # What ends a line of message text: CRLF only (§4.1.1.4: only <CRLF>.<CRLF> ends it).
    text_line_end = b"\r\n"
    # Bytes kept of one line; a longer line is TooLong, answered with overflow_key
    # (a command line) or counted and refused at the final dot (message text), unless
    # text_overflow_key names a reply for it.  eager_overflow: say so as soon as the
    # limit is passed, without waiting for the line's end.
    read_limit = READ_LIMIT
    eager_overflow = False
    overflow_key = "line_too_long"
    text_overflow_key: str | None = None
    # True: input already waiting behind a command line (or behind the final dot)
    # when the server reads it is refused with the reply "pipelining" (a server that
    # does not offer PIPELINING, RFC 2920, and checks: OpenSMTPD).
    refuses_pipelining = False
    # The session this grammar reads for (bind).
    setup: Setup | None = None
    client_ip = ""

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        self.persona = persona
        self.setup = setup  # the server's settings (None: a grammar on its own, in tests)
        self.settings: Mapping[str, Any] = setup.settings if setup else MappingProxyType({})

        # Whether an extension (an EHLO keyword: "DSN", "CHUNKING") is offered to this
        # client now.  The session plugs in its own answer (``Session.offers``: TLS,
        # AUTH, keywords hidden by a fault, EHLO or HELO); alone, a grammar takes the
        # persona's list.
        self.offers: Callable[[str], bool] = self._listed

    def _listed(self, keyword: str) -> bool:
        return keyword.upper() in (k.split(" ", 1)[0].upper() for k in self.persona.ehlo_keywords)

    def bind(self, setup: Setup, client_ip: str) -> None:
        """Read for one session: its server's setup (settings, host name) and its client."""
        self.setup, self.settings, self.client_ip = setup, setup.settings, client_ip

    def reset(self) -> None:
        """The transaction is over (RSET, HELO, the final dot): forget what the grammar
        kept from it (Postfix keeps a refused MAIL's SIZE until then)."""

    # --- how the bytes become command lines (session.py asks these first) ------

    def read_command(self, lines: LineBuffer) -> bytes | TooLong | None:
        """The next command line from the client's bytes (None: not complete yet)."""
        return lines.line(self.command_line_end)

    def screen(
        self, session: Session, line: bytes | TooLong, more: bool
    ) -> tuple[ClientLine, list[Event]] | None:
        """A program's own answer to a command line before the session reads it as a
        command (its limits, its counters, its pipelining checks; ``more``: the client's
        next bytes are already here), as (the line for the transcript, the events);
        None: the session reads the line as usual."""
        return None

    def keep(self, line: bytes | TooLong) -> bytes | TooLong:
        """What the server keeps of a command line: all of it (``TooLong`` past the
        buffer).  Postfix reads the first line_length_limit octets and drops the rest."""
        return line

    def decode(self, line: bytes) -> str | None:
        """The text of a command line (its line end removed), or None if it is not text
        the server reads (answered ``bad_bytes``)."""
        try:
            return line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            return None

    def split(self, text: str) -> tuple[str, str]:
        """(verb in upper case, argument): the first word and the rest, trimmed;
        ("", "") for an empty line (only white space)."""
        if not text.strip():
            return "", ""
        word = text.split(" ", 1)[0]
        return word.upper(), text[len(word) :].strip()

    def too_long(self, line: bytes, text: str, verb: str, policy: Policy) -> bool:
        """True if the command line is over ``line_limit`` (answered ``line_too_long``)."""
        size = len(line if line.endswith(b"\r\n") else line + b"\r")
        return size > self.line_limit(verb, policy)

    def read(self, raw: bytes) -> CommandLine | None:
        """The command line in ``raw`` (its line end included); None: bytes this server
        cannot read (``bad_bytes``).  By default ``decode``, then ``split``."""
        text = self.decode(raw)
        if text is None:
            return None
        verb, arg = self.split(text)
        return CommandLine(text, verb, arg)

    def unknown_verb(self, verb: str, text: str, session: Session) -> Refusal:
        """The answer to a line whose verb names no command the lab knows.  A program
        that has more commands (Postfix's ETRN, XCLIENT) or that hangs up on some
        lines (Postfix's ``smtpd_forbidden_commands``) says so here."""
        return Refusal("unknown_command")

    def before(self, cmd: Command | None, line: CommandLine, view: View) -> Refusal | None:
        """This program's own answer to a command before the lab looks at it (the
        sequence table, fault points); None: no such answer.  ``cmd`` is None for a
        verb the table does not know: answering it makes it one of the program's own
        commands (Sendmail's ETRN), None leaves it an unknown command."""
        return None

    def helo(self, verb: str, arg: str, view: View) -> Refusal | str:
        """The program's own check of a HELO/EHLO argument: its refusal, or the name the
        client is known by from now on (the lab's smtpd_helo_restrictions still apply
        to that name after it)."""
        name = self.helo_name_in(arg)
        if name is None:
            return Refusal("helo_syntax" if verb == "HELO" else "ehlo_syntax")
        return name

    def helo_name_in(self, argument: str) -> str | None:
        """The name HELO/EHLO gives, or None for a syntax error (no name, or several words)."""
        return argument if argument and " " not in argument else None

    def keywords(self, words: list[str], view: View) -> list[str]:
        """The EHLO keywords this session offers, from the lab's list."""
        return words

    def parse_path(self, command: Command, argument: str, view: View) -> Path | Refusal:
        """The path of MAIL (``FROM:``) or RCPT (``TO:``), or the refusal of the argument."""
        keyword, syntax = (
            ("FROM:", "mail_syntax") if command is Command.MAIL else ("TO:", "rcpt_syntax")
        )
        path = self.path(argument, keyword)
        if isinstance(path, Refusal):
            return path
        if path is None or (command is Command.RCPT and not path.address):
            return Refusal(syntax)
        return path

    def path_parameters(self, command: Command, path: Path, view: View) -> Refusal | None:
        """The refusal of ``path``'s ESMTP parameters, or None (see ``parameters``)."""
        return self.parameters(command, path, view.setup.policy.message_size_limit)

    def recipient(self, path: Path, standard: Refusal | None, view: View) -> Refusal | None:
        """The answer to an RCPT whose path and parameters passed.  ``standard`` is the
        verdict of the persona's ``Checks`` (``relay_denied``, ``user_unknown``, ...,
        or None to accept); a program that checks more, or in another order, decides
        here.  None accepts."""
        if standard is None:
            return None
        return Refusal(standard.key, standard.arg, {"addr": path.address, **standard.fields})

    def vrfy(self, argument: str, view: View) -> Refusal | None:
        """The answer to VRFY with ``argument``; None: the lab's (``vrfy_syntax``,
        ``vrfy_ok``)."""
        return None

    def argument_refusal(self, command: Command, argument: str, view: View) -> Refusal | None:
        """The refusal of DATA, RSET or NOOP with ``argument``, or None to go on."""
        if self.refuses_argument(command, argument):
            return Refusal(f"{command.value.lower()}_syntax")
        return None

    def text_line(self, line: bytes) -> Refusal | None:
        """The refusal of a line of message text (``close``: at once, then hang up;
        otherwise after the final dot), or None."""
        return None

    def field(self, key: str, fields: Fields) -> object:
        """A reply field the lab does not compute (``{key}`` in this persona's wording);
        ``fields`` are the reply's other fields (and its setup, client, line).  KeyError
        if unknown."""
        raise KeyError(key)

    def respond(
        self, session: Session, cmd: Command | None, arg: str, verb: str
    ) -> list[Event] | None:
        """A program's own answer to a command that passed the sequence checks, or to
        the connection (``cmd`` None: the greeting is due); None: the session's own."""
        return None

    def requires_helo(self, session: Session) -> bool | None:
        """Whether MAIL needs a HELO/EHLO first for this client (None: Setup.helo_required)."""
        return None

    def read_text(self, lines: LineBuffer, limit: int | None = None) -> bytes | TooLong | None:
        """The next line of message text, up to ``text_line_end`` (§4.1.1.4: CRLF; a
        grammar may read to any LF, to judge the line in ``text_line``); ``TooLong``
        past ``limit`` bytes (None: the buffer's own)."""
        return lines.line(self.text_line_end, limit)

    def final_dot(self, line: bytes) -> bool:
        """True for the line that ends the message text (<CRLF>.<CRLF>, §4.1.1.4)."""
        return line == b".\r\n"

    # --- what the lines say -----------------------------------------------------

    def line_limit(self, verb: str, policy: Policy) -> int:
        """The longest command line (CRLF included) answered normally; longer gets
        ``line_too_long``.  §4.5.3.1.4's 512 by default, RFC 4954's 12,288 for AUTH."""
        limit = policy.command_line_limit
        return max(limit, AUTH_LINE_LIMIT) if verb == "AUTH" else limit

    def command(self, verb: str, argument: str) -> Command | None:
        """The command a line's verb names, or None for an unknown one.

        Exim and OpenSMTPD parse "MAIL FROM:" and "RCPT TO:" as the verb itself,
        so "MAIL" without "FROM:" is unknown to them.
        """
        try:
            cmd = Command(verb)
        except ValueError:
            return None
        if (
            cmd in (Command.END_OF_DATA, Command.BDAT_LAST)
            or verb in self.persona.unsupported_verbs
        ):
            return None
        if cmd is Command.BDAT and not self._listed("CHUNKING"):
            return None  # a program without CHUNKING does not know BDAT (RFC 3030)
        if self.persona.keyword_is_part_of_verb and cmd in (Command.MAIL, Command.RCPT):
            keyword = "FROM:" if cmd is Command.MAIL else "TO:"
            if not argument.upper().startswith(keyword):
                return None
        return cmd

    def bdat(self, argument: str) -> BdatCommand | None:
        """The chunk size and LAST flag of a BDAT line (RFC 3030 §2), or None if malformed."""
        return parse_bdat(argument)

    def refuses_argument(self, command: Command, argument: str) -> bool:
        """True if this server answers an argument on ``command`` with a syntax error."""
        return bool(argument) and command.value in self.persona.no_argument_verbs

    def path(self, argument: str, keyword: str) -> Path | Refusal | None:
        """Split 'FROM:<a@b> SIZE=10' into Path('a@b', ('SIZE=10',)); None if malformed
        (the command's syntax reply), or a ``Refusal`` naming the server's own reply."""
        if argument[: len(keyword)].upper() != keyword:
            return None
        rest = argument[len(keyword) :].strip()
        if not rest:
            return None
        if rest.startswith("<"):
            end = rest.find(">")
            if end < 0:
                return None
            address, params = rest[1:end], rest[end + 1 :].split()
        elif self.persona.requires_brackets:
            return None
        else:
            address, *params = rest.split()
        if any(c in address for c in " <>") or address.count("@") > 1:
            return None
        if "@" in address:
            local, _, domain = address.partition("@")
            if not local or not domain:
                return None
        if ":" in address and address.startswith("@"):  # source route (§4.1.2): drop it
            address = address.split(":", 1)[1]
        return Path(address, tuple(params))

    def text_bytes(self, line: bytes) -> bytes:
        """A line of message text as the server reads it, ending in CRLF (before
        ``text_line`` judges it)."""
        return line

    def message_text(self, size_limit: int, line_limit: int) -> MessageText:
        """What collects the message text after 354 (limits, un-stuffing, refusals)."""
        return MessageText(size_limit, line_limit)

    def parameters(self, command: Command, path: Path, size_limit: int) -> Refusal | None:
        """The refusal of ``path``'s ESMTP parameters, or None if they are acceptable."""
        known = ESMTP_PARAMETERS[command]
        for param in path.parameters:
            name, _, value = param.partition("=")
            if name.upper() not in known:
                return Refusal("mail_param_unknown", name)
            extension = PARAMETER_EXTENSIONS[name.upper()]
            if extension and not self.offers(extension):
                return Refusal("mail_param_unknown", name)
            if name.upper() == "BODY" and not self.offers(BODY_EXTENSIONS.get(value.upper(), "")):
                return Refusal("mail_param_unknown", name)
            if name.upper() == "SIZE":  # RFC 1870: SIZE=<octets>
                if not value.isdigit():
                    return Refusal("mail_syntax")
                if int(value) > size_limit and self.persona.checks_size_param:
                    return Refusal("size_param_exceeded")
        return None


def grammar_of(persona: Persona, setup: Setup | None = None) -> Grammar:
    """The grammar ``persona`` reads command lines with, on the server ``setup`` describes."""
    make = persona.grammar if persona.grammar is not None else Grammar
    return make(persona, setup)
