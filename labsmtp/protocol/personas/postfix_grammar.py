"""How Postfix 3.7's smtpd reads command lines (smtpd.c, smtpd_chat.c, as a model).

- A line is read up to ``line_length_limit`` (2048) octets; the rest, up to the LF,
  is dropped and the head is answered as if it were the whole line.  Nothing is
  refused for being longer than RFC 5321's 512 octets.
- LF alone ends a line and CRs before it are dropped; invalid UTF-8 anywhere is
  "bad UTF-8 syntax"; a NUL ends the command (the rest of the line is not read).
- Words are split by ``postfix_address.smtpd_tokens``.  A first word that is no
  command Postfix knows, and looks like a header ("Name:") or is in
  ``smtpd_forbidden_commands`` (CONNECT, GET, POST, anything not starting with a
  letter), gets "221 2.7.0 Error: I can break rules, too. Goodbye." and the
  session ends.  ETRN, XCLIENT and XFORWARD are Postfix's own commands.
- MAIL FROM and RCPT TO: the address word goes through Postfix's RFC 822 parser
  (``extract``), so brackets are optional, quotes and source routes are fine, a
  word with two addresses is not; then each ESMTP parameter is checked in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..grammar import Grammar, Path, Refusal
from ..lines import TooLong
from ..states import Command, State
from ..xtext import xtext_decode, xtext_ok
from .postfix_address import (
    extract,
    is_header,
    resolve,
    smtpd_tokens,
    valid_hostname,
    valid_literal,
)
from .postfix_checks import PostfixChecks

if TYPE_CHECKING:
    from ..policy import Policy
    from ..session import Session
    from ..setup import Setup
    from .base import Persona

NON_LETTER = "regexp:{{/^[^A-Z]/ Bogus}}"  # the stock smtpd_forbidden_commands pattern
MAX_OFF_T = 2**63 - 1  # SIZE beyond this: "file system imposed limit"
DSN_NOTIFY = ("SUCCESS", "FAILURE", "DELAY", "NEVER")


def _notify_ok(value: str) -> bool:
    """dsn_notify_mask(): SUCCESS, FAILURE, DELAY, or NEVER alone (any case)."""
    names = [n for n in value.replace("\t", ",").replace(" ", ",").split(",") if n]
    if not names or any(n.upper() not in DSN_NOTIFY for n in names):
        return False
    return "NEVER" not in {n.upper() for n in names} or len({n.upper() for n in names}) == 1


class PostfixGrammar(Grammar):
    """Postfix 3.7's smtpd: its line reader, tokenizer, address parser and parameters."""

    # smtpd_forbid_bare_newline = no: a bare LF ends a line of message text too, so
    # "<LF>.<LF>" ends the message (and the rest is read as commands).
    text_line_end = b"\n"

    def __init__(self, persona: Persona, setup: Setup | None = None) -> None:
        super().__init__(persona, setup)
        self._msg_size = 0  # a MAIL's SIZE=, kept after a refusal until the transaction ends

    def final_dot(self, line: bytes) -> bool:
        return line.rstrip(b"\r\n") == b"."

    def reset(self) -> None:
        self._msg_size = 0

    def keep(self, line: bytes | TooLong) -> bytes | TooLong:
        limit = int(self.settings.get("line_length_limit", 2048))
        if isinstance(line, TooLong):
            return line.head[:limit] + b"\n"
        content = line[:-1] if line.endswith(b"\n") else line
        if len(content) + 1 <= limit or (len(content) == limit and content.endswith(b"\r")):
            return line
        return content[:limit] + b"\n"  # smtp_get() with a bound; the rest is skipped

    def line_limit(self, verb: str, policy: Policy) -> int:
        return 2**62  # read() already cut the line: nothing is refused for its length

    def decode(self, line: bytes) -> str | None:
        raw = line[:-1] if line.endswith(b"\n") else line
        try:
            text = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            return None  # "bad UTF-8 syntax", checked on the whole line, NUL or not
        return text.split("\x00", 1)[0]  # a C string ends at the NUL

    def split(self, text: str) -> tuple[str, str]:
        words = smtpd_tokens(text)
        if not words:
            return "", ""
        return words[0].text.upper(), text[words[0].end :].lstrip(" \t\n\r\f\v")

    def forbidden(self, word: str) -> bool:
        """smtpd_forbidden_commands (or a header line): Postfix hangs up."""
        for entry in self.settings.get("smtpd_forbidden_commands", ()):
            if entry == NON_LETTER:
                if not ("a" <= word[:1].lower() <= "z"):
                    return True
            elif word.upper() == entry.upper():
                return True
        return is_header(word)

    def unknown_verb(self, verb: str, text: str, session: Session) -> Refusal:
        words = smtpd_tokens(text)
        if verb == "ETRN":
            return self._etrn([w.text for w in words[1:]], session)
        if verb in ("XCLIENT", "XFORWARD"):
            if session.state in (State.MAIL, State.RCPT):
                return Refusal("auth_in_transaction")
            if len(words) < 2:
                return Refusal("xclient_syntax", verb)
            return Refusal("xclient_denied")  # smtpd_authorized_xclient_hosts is empty
        if self.forbidden(words[0].text):
            return Refusal("forbidden_command", close=True)
        return Refusal("unknown_command")

    def _etrn(self, args: list[str], session: Session) -> Refusal:
        """ETRN (RFC 1985): stock Postfix has no fast_flush_domains, so 459 at best."""
        if session.setup.helo_required and session.helo is None:
            return Refusal("etrn_need_helo")
        if session.state in (State.MAIL, State.RCPT):
            return Refusal("etrn_in_transaction")
        if len(args) != 1:
            return Refusal("etrn_syntax")
        domain = args[0][1:] if args[0][:1] in "@#" else args[0]
        if not valid_hostname(domain) and not valid_literal(domain):
            return Refusal("etrn_invalid")
        checks = session.checks
        if isinstance(checks, PostfixChecks):
            refused = checks.delayed_checks(session)
            if refused is not None:
                return refused
        return Refusal("etrn_unavailable", domain)

    def helo_name_in(self, argument: str) -> str | None:
        words = smtpd_tokens(argument)
        return " ".join(w.text for w in words) if words else None  # several words: one name

    def path(self, argument: str, keyword: str) -> Path | Refusal | None:
        words = smtpd_tokens(argument)
        if len(words) < 2 or words[0].text.lower() != keyword.lower():
            return None
        bad = Refusal("mail_bad_address" if keyword == "FROM:" else "rcpt_bad_address")
        if words[1].bad:
            return bad
        params = tuple(w.text for w in words[2:])
        smtputf8 = keyword == "FROM:" and any(p.lower() == "smtputf8" for p in params)
        found = extract(words[1].text)
        strict = bool(self.settings.get("strict_rfc821_envelopes", False))
        if found.addresses > 1 or (strict and (found.other or not words[1].text.startswith("<"))):
            return bad
        address = found.address
        if not address and keyword == "TO:":
            return bad
        if address and (strict and address.startswith("@") or self._bad_domain(address, smtputf8)):
            return bad
        return Path(address, params)

    def _bad_domain(self, address: str, smtputf8: bool) -> bool:
        """smtpd_check_addr(): the address resolves to an invalid domain."""
        setup = self.setup
        if setup is None:
            return False
        policy, hostname = setup.policy, setup.hostname

        def local(domain: str) -> bool:
            if domain.startswith("["):
                return domain[1:-1].lower() in ("127.0.0.1", "ipv6:::1")
            return policy.is_local_domain(domain, hostname)

        return resolve(address, local, hostname, smtputf8).error

    def parameters(self, command: Command, path: Path, size_limit: int) -> Refusal | None:
        if command is Command.RCPT:
            return self._rcpt_parameters(path)
        seen: set[str] = set()
        for param in path.parameters:
            name, eq, value = param.partition("=")
            key = (name.upper() + eq) if eq else param.upper()
            refused = self._mail_parameter(key, value, param, seen)
            if refused is not None:
                return refused
        if self._msg_size > size_limit:  # smtpd_check_size(), after every parameter
            return Refusal("size_param_exceeded")
        return None

    def _mail_parameter(self, key: str, value: str, param: str, seen: set[str]) -> Refusal | None:
        if key == "BODY=" and value.upper() in ("8BITMIME", "7BIT") or key == "SMTPUTF8":
            return None
        if key == "SIZE=":
            if not (value.isascii() and value.isdigit()):
                return Refusal("size_syntax")
            if int(value) > MAX_OFF_T:
                return Refusal("size_overflow")
            self._msg_size = int(value)
            return None
        if key == "AUTH=":  # accepted without SASL; only one AUTH= that is not <>
            if "AUTH=" in seen:
                return Refusal("auth_param_twice")
            if value != "<>":
                seen.add("AUTH=")
            return None
        if key == "RET=":
            if "RET=" in seen or value.upper() not in ("FULL", "HDRS"):
                return Refusal("ret_syntax")
            seen.add(key)
            return None
        if key == "ENVID=":
            printable = xtext_ok(value) and value and xtext_decode(value).isprintable()
            if "ENVID=" in seen or not printable or not xtext_decode(value).isascii():
                return Refusal("envid_syntax")
            seen.add(key)
            return None
        return Refusal("mail_param_unknown", param)

    def _rcpt_parameters(self, path: Path) -> Refusal | None:
        seen: set[str] = set()
        for param in path.parameters:
            name, eq, value = param.partition("=")
            key = name.upper() + eq
            if key == "NOTIFY=":
                if key in seen or not _notify_ok(value):
                    return Refusal("notify_syntax")
            elif key == "ORCPT=":
                kind, semi, coded = value.partition(";")
                if key in seen or not semi or not kind or not xtext_ok(coded):
                    return Refusal("orcpt_syntax")
            else:
                return Refusal("mail_param_unknown", param)
            seen.add(key)
        return None
