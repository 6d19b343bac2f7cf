"""How a server reads the client's command lines: verbs, paths and ESMTP parameters.

The session (``session.py``) asks its ``Grammar`` four questions about a line
that arrived: which command it is, whether the command may carry an argument,
what the path in ``MAIL FROM:<...>`` / ``RCPT TO:<...>`` is (RFC 5321 §4.1.2),
and whether the ESMTP parameters after it are acceptable (§4.1.1.11).  The
answers are reply keys, never wording: the persona words them.

Real servers differ here more than anywhere: quoting, source routes, a
missing ``<>``, unknown parameters.  ``Grammar`` is today's reading, steered by
the persona's flags (``requires_brackets``, ``keyword_is_part_of_verb``,
``unsupported_verbs``, ``no_argument_verbs``, ``checks_size_param``); a persona
that reads lines its own way names a subclass in ``Persona.grammar``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .chunking import BdatCommand, parse_bdat
from .states import Command

if TYPE_CHECKING:
    from .personas import Persona
    from .policy import Policy

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


class Grammar:
    """The lab's reading of command lines, steered by one persona's flags."""

    # What ends a command line: LF, so a bare LF is tolerated as Postfix does
    # (message text ends at CRLF only, whatever the grammar: §4.1.1.4).
    command_line_end = b"\n"

    def __init__(self, persona: Persona) -> None:
        self.persona = persona
        # Whether an extension (an EHLO keyword: "DSN", "CHUNKING") is offered to this
        # client now.  The session plugs in its own answer (``Session.offers``: TLS,
        # AUTH, keywords hidden by a fault, EHLO or HELO); alone, a grammar takes the
        # persona's list.
        self.offers: Callable[[str], bool] = self._listed

    def _listed(self, keyword: str) -> bool:
        return keyword.upper() in (k.split(" ", 1)[0].upper() for k in self.persona.ehlo_keywords)

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

    def path(self, argument: str, keyword: str) -> Path | None:
        """Split 'FROM:<a@b> SIZE=10' into Path('a@b', ('SIZE=10',)); None if malformed."""
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


def grammar_of(persona: Persona) -> Grammar:
    """The grammar ``persona`` reads command lines with."""
    return persona.grammar(persona) if persona.grammar is not None else Grammar(persona)
