"""How a server reads the client's command lines: verbs, paths and ESMTP parameters.

The session (``session.py``) asks its ``Grammar`` about a line that arrived:
how much of it the server reads (``read``) and as what text (``decode``),
its verb and argument (``split``), which command it is (``command``, and
``unknown`` for a line that names none), whether the command may carry an
argument, which HELO name it gives (``helo_name``), what the path in
``MAIL FROM:<...>`` / ``RCPT TO:<...>`` is (RFC 5321 §4.1.2), and whether the
ESMTP parameters after it are acceptable (§4.1.1.11).  The answers are reply
keys, never wording: the persona words them.

Real servers differ here more than anywhere: quoting, source routes, a
missing ``<>``, unknown parameters.  ``Grammar`` is today's reading, steered by
the persona's flags (``requires_brackets``, ``keyword_is_part_of_verb``,
``unsupported_verbs``, ``no_argument_verbs``, ``checks_size_param``); a persona
that reads lines its own way names a subclass in ``Persona.grammar``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .lines import TooLong
from .states import Command

if TYPE_CHECKING:
    from .personas import Persona
    from .policy import Policy
    from .session import Session
    from .setup import Setup

AUTH_LINE_LIMIT = 12288  # RFC 4954 §4: AUTH lines may be this long, whatever the command limit

# The ESMTP parameters the lab's EHLO keywords promise (RFC 1870 SIZE, RFC 6152
# BODY, RFC 6531 SMTPUTF8, RFC 3461 DSN's RET/ENVID/NOTIFY/ORCPT, RFC 4954 AUTH).
ESMTP_PARAMETERS: dict[Command, frozenset[str]] = {
    Command.MAIL: frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"}),
    Command.RCPT: frozenset({"NOTIFY", "ORCPT"}),
}


@dataclass(frozen=True)
class Path:
    """The address of ``MAIL FROM:<...>`` or ``RCPT TO:<...>`` and the parameters after it."""

    address: str  # "" for the null reverse-path <> (§4.5.5)
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """Why a line is refused: a persona reply key and the fields its wording may use."""

    key: str
    arg: str = ""
    close: bool = False  # the server hangs up after this reply (Postfix's non-SMTP commands)


class Grammar:
    """The lab's reading of command lines, steered by one persona's flags."""

    # What ends a command line: LF, so a bare LF is tolerated as Postfix does.
    command_line_end = b"\n"
    # What ends a line of message text: CRLF (§4.1.1.4); Postfix reads a bare LF too.
    text_line_end = b"\r\n"

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        self.persona = persona
        self.setup = setup  # the server's settings (None: a grammar on its own, in tests)
        self.settings: Mapping[str, Any] = setup.settings if setup else MappingProxyType({})

    def is_final_dot(self, line: bytes) -> bool:
        """True for the line that ends message text: '.' and its line end (§4.1.1.4)."""
        return line == b".\r\n"

    def reset(self) -> None:
        """The transaction is over (RSET, HELO, the final dot): forget what the grammar
        kept from it (Postfix keeps a refused MAIL's SIZE until then)."""

    def read(self, line: bytes | TooLong) -> bytes | TooLong:
        """What the server keeps of a command line: all of it (``TooLong`` past the
        buffer).  Postfix reads the first line_length_limit octets and drops the rest."""
        return line

    def decode(self, line: bytes) -> str | None:
        """The command line as text without its line end; None if it is not UTF-8."""
        try:
            return line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            return None

    def split(self, text: str) -> tuple[str, str]:
        """(verb in upper case, argument): the first word and the rest, trimmed;
        ("", "") for an empty line (only white space)."""
        if not text.strip():
            return "", ""
        verb = text.split(" ", 1)[0].upper()
        return verb, text[len(verb) :].strip()

    def unknown(self, verb: str, text: str, session: Session) -> Refusal:
        """The answer to a line whose verb names no command the lab knows.  A program
        that has more commands (Postfix's ETRN, XCLIENT) or that hangs up on some
        lines (Postfix's ``smtpd_forbidden_commands``) says so here."""
        return Refusal("unknown_command")

    def helo_name(self, argument: str) -> str | None:
        """The name HELO/EHLO gives, or None for a syntax error (no name, or several words)."""
        return argument if argument and " " not in argument else None

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
        if cmd is Command.END_OF_DATA or verb in self.persona.unsupported_verbs:
            return None
        if self.persona.keyword_is_part_of_verb and cmd in (Command.MAIL, Command.RCPT):
            keyword = "FROM:" if cmd is Command.MAIL else "TO:"
            if not argument.upper().startswith(keyword):
                return None
        return cmd

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

    def parameters(self, command: Command, path: Path, size_limit: int) -> Refusal | None:
        """The refusal of ``path``'s ESMTP parameters, or None if they are acceptable."""
        known = ESMTP_PARAMETERS[command]
        for param in path.parameters:
            name, _, value = param.partition("=")
            if name.upper() not in known:
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
