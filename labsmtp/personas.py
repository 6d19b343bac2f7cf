"""Personas: who the lab server pretends to be, and its exact words.

A persona is data, not code: a greeting, an EHLO keyword list and one reply
template per situation (``REPLY_KEYS``).  The server decides *what* happens
(from the state table and the policy); the persona decides *how it is said*.

``generic`` speaks RFC 5321 and RFC 3463 plainly.  ``postfix`` answers with
the codes, enhanced codes and texts of Postfix 3.7 as recorded from a real
Postfix on loopback (``tests/recordings/postfix-3.7.json``, re-recorded by
``tests/recordings/record_postfix.sh``); ``tests/test_persona_fixtures.py``
replays every recorded dialogue against the persona.

Templates use ``str.format`` fields: ``{hostname}`` (the server's name),
``{arg}`` (the command's argument), ``{addr}`` (an address), ``{client}``
(the client's IP), ``{queue_id}``, ``{size}``.  A template with several lines
(separated by newlines) becomes a multi-line reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

# Every situation the server can reply to; each persona must word all of them.
REPLY_KEYS = (
    "greeting",  # the 220 banner, without the code
    "helo_ok",
    "ehlo_ok",  # first line of the EHLO reply; keywords follow
    "helo_syntax",  # HELO with no argument
    "ehlo_syntax",
    "helo_invalid",  # reject_invalid_helo_hostname
    "helo_non_fqdn",  # reject_non_fqdn_helo_hostname
    "helo_unknown",  # reject_unknown_helo_hostname (no A/AAAA record)
    "need_helo",  # MAIL before HELO/EHLO with smtpd_helo_required
    "need_mail",  # RCPT outside a transaction
    "need_rcpt",  # DATA outside a transaction
    "no_valid_recipients",  # DATA in a transaction with no accepted RCPT
    "nested_mail",  # MAIL inside a transaction
    "bad_sequence",  # any other out-of-order command
    "need_ehlo_for_auth",
    "auth_in_transaction",
    "starttls_in_transaction",
    "unknown_command",
    "empty_line",
    "bad_bytes",  # a command line that is not ASCII / UTF-8
    "line_too_long",  # a command line over the limit (§4.5.3.1.4)
    "text_line_too_long",  # a message line over the limit (§4.5.3.1.6)
    "mail_ok",
    "mail_syntax",
    "mail_param_unknown",  # an ESMTP parameter the server did not offer (555)
    "rcpt_ok",
    "rcpt_syntax",
    "relay_denied",
    "too_many_recipients",
    "size_param_exceeded",  # MAIL ... SIZE=n above message_size_limit
    "data_go",
    "data_syntax",
    "data_ok",
    "data_too_big",
    "rset_ok",
    "rset_syntax",
    "noop_ok",
    "vrfy_ok",
    "vrfy_syntax",
    "expn",
    "help",
    "quit",
    "too_many_errors",  # 421 after the hard error limit (§3.8 allows 421 + close)
    "timeout",  # 421 before closing an idle connection (§4.5.3.2)
    "too_many_connections",  # 421 instead of 220 when full
    "shutdown",  # 421 when the lab server is stopped under a live session
    "starttls_not_offered",
    "starttls_go",
    "auth_not_offered",
)


@dataclass(frozen=True)
class Persona:
    """The identity and exact wording of one (real or generic) SMTP server."""

    name: str
    software: str
    about: str
    replies: MappingProxyType
    ehlo_keywords: tuple[str, ...]
    source: str = ""
    # Behaviour that differs between real servers, not just wording.
    requires_brackets: bool = True  # MAIL FROM:a@b (no <>) is a syntax error
    unknown_command_counts_as_error: bool = True
    hard_error_limit: int = 20  # Postfix smtpd_hard_error_limit
    helo_required_default: bool = False
    extras: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def template(self, key: str) -> str:
        try:
            return self.replies[key]
        except KeyError:
            raise KeyError(f"persona {self.name!r} has no wording for {key!r}") from None

    def render(self, key: str, **fields) -> list[str]:
        """The reply lines (without CRLF) for situation ``key``."""
        text = self.template(key).format(**fields)
        return _multiline(text.split("\n"))

    def ehlo(self, keywords: list[str], **fields) -> list[str]:
        """The whole EHLO reply: the greeting line, then one keyword per line."""
        first = self.template("ehlo_ok").format(**fields)
        return _multiline([first] + list(keywords))


def _multiline(lines: list[str]) -> list[str]:
    """Give every line but the last a hyphen after the code (§4.2.1)."""
    if not lines:
        return lines
    code = lines[0][:3]
    out = []
    for i, ln in enumerate(lines):
        body = ln[4:] if ln[:3] == code and len(ln) >= 4 else ln
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{code}{sep}{body}")
    return out


_GENERIC = {
    "greeting": "220 {hostname} ESMTP labsmtp ready",
    "helo_ok": "250 {hostname} greets {arg}",
    "ehlo_ok": "250 {hostname} greets {arg}",
    "helo_syntax": "501 5.5.4 Syntax: HELO hostname",
    "ehlo_syntax": "501 5.5.4 Syntax: EHLO hostname",
    "helo_invalid": "501 5.5.2 <{arg}>: HELO rejected: invalid name",
    "helo_non_fqdn": "504 5.5.2 <{arg}>: HELO rejected: need fully-qualified hostname",
    "helo_unknown": "450 4.7.1 <{arg}>: HELO rejected: host not found",
    "need_helo": "503 5.5.1 Bad sequence of commands: send HELO or EHLO first",
    "need_mail": "503 5.5.1 Bad sequence of commands: need MAIL first",
    "need_rcpt": "503 5.5.1 Bad sequence of commands: need RCPT first",
    "no_valid_recipients": "503 5.5.1 Bad sequence of commands: no valid recipients",
    "nested_mail": "503 5.5.1 Bad sequence of commands: a transaction is already open",
    "bad_sequence": "503 5.5.1 Bad sequence of commands",
    "need_ehlo_for_auth": "503 5.5.1 Bad sequence of commands: send EHLO first",
    "auth_in_transaction": "503 5.5.1 Bad sequence of commands: AUTH not allowed in a transaction",
    "starttls_in_transaction": "503 5.5.1 Bad sequence of commands: STARTTLS not allowed in a transaction",
    "unknown_command": "500 5.5.2 Syntax error, command unrecognized",
    "empty_line": "500 5.5.2 Syntax error: empty command",
    "bad_bytes": "500 5.5.2 Syntax error: command is not ASCII",
    "line_too_long": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.4: 512 octets)",
    "text_line_too_long": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6: 1000 octets)",
    "mail_ok": "250 2.1.0 Sender <{addr}> OK",
    "mail_syntax": "501 5.5.4 Syntax: MAIL FROM:<address>",
    "mail_param_unknown": "555 5.5.4 Unsupported parameter: {arg}",
    "rcpt_ok": "250 2.1.5 Recipient <{addr}> OK",
    "rcpt_syntax": "501 5.5.4 Syntax: RCPT TO:<address>",
    "relay_denied": "554 5.7.1 <{addr}>: Relay access denied",
    "too_many_recipients": "452 4.5.3 Too many recipients",
    "size_param_exceeded": "552 5.3.4 Message size exceeds fixed limit",
    "data_go": "354 End data with <CR><LF>.<CR><LF>",
    "data_syntax": "501 5.5.4 Syntax: DATA",
    "data_ok": "250 2.0.0 OK: queued as {queue_id}",
    "data_too_big": "552 5.3.4 Message size exceeds fixed limit",
    "rset_ok": "250 2.0.0 OK",
    "rset_syntax": "501 5.5.4 Syntax: RSET",
    "noop_ok": "250 2.0.0 OK",
    "vrfy_ok": "252 2.0.0 Cannot VRFY user, but will accept message for <{arg}>",
    "vrfy_syntax": "501 5.5.4 Syntax: VRFY address",
    "expn": "502 5.5.1 EXPN not implemented",
    "help": "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\n"
    "214 2.0.0 See RFC 5321",
    "quit": "221 2.0.0 {hostname} closing connection",
    "too_many_errors": "421 4.7.0 {hostname} Too many errors, closing connection",
    "timeout": "421 4.4.2 {hostname} Timeout exceeded, closing connection",
    "too_many_connections": "421 4.7.0 {hostname} Too many connections, try again later",
    "shutdown": "421 4.3.2 {hostname} Service shutting down",
    "starttls_not_offered": "502 5.5.1 STARTTLS not available",
    "starttls_go": "220 2.0.0 Ready to start TLS",
    "auth_not_offered": "503 5.5.1 AUTH not available",
}

# Postfix 3.7 (smtpd.c, smtpd_check.c), checked against tests/recordings/postfix-3.7.json.
_POSTFIX = dict(
    _GENERIC,
    **{
        "greeting": "220 {hostname} ESMTP Postfix (Debian/GNU)",
        "helo_ok": "250 {hostname}",
        "ehlo_ok": "250 {hostname}",
        "helo_syntax": "501 Syntax: HELO hostname",
        "ehlo_syntax": "501 Syntax: EHLO hostname",
        "helo_invalid": "501 5.5.2 <{arg}>: Helo command rejected: Invalid name",
        "helo_non_fqdn": "504 5.5.2 <{arg}>: Helo command rejected: need fully-qualified hostname",
        "helo_unknown": "450 4.7.1 <{arg}>: Helo command rejected: Host not found",
        "need_helo": "503 5.5.1 Error: send HELO/EHLO first",
        "need_mail": "503 5.5.1 Error: need MAIL command",
        "need_rcpt": "503 5.5.1 Error: need RCPT command",
        "no_valid_recipients": "554 5.5.1 Error: no valid recipients",
        "nested_mail": "503 5.5.1 Error: nested MAIL command",
        "bad_sequence": "503 5.5.1 Error: bad sequence of commands",
        "need_ehlo_for_auth": "503 5.5.1 Error: send HELO/EHLO first",
        "auth_in_transaction": "503 5.5.1 Error: MAIL transaction in progress",
        "starttls_in_transaction": "503 5.5.1 Error: MAIL transaction in progress",
        "unknown_command": "500 5.5.2 Error: command not recognized",
        "empty_line": "500 5.5.2 Error: bad syntax",
        "bad_bytes": "500 5.5.2 Error: bad UTF-8 syntax",
        "line_too_long": "500 5.5.2 Error: command too long",
        "text_line_too_long": "500 5.5.2 Error: line too long",
        "mail_ok": "250 2.1.0 Ok",
        "mail_syntax": "501 5.5.4 Syntax: MAIL FROM:<address>",
        "mail_param_unknown": "555 5.5.4 Unsupported option: {arg}",
        "rcpt_ok": "250 2.1.5 Ok",
        "rcpt_syntax": "501 5.5.4 Syntax: RCPT TO:<address>",
        "relay_denied": "554 5.7.1 <{addr}>: Relay access denied",
        "too_many_recipients": "452 4.5.3 Error: too many recipients",
        "size_param_exceeded": "552 5.3.4 Message size exceeds fixed limit",
        "data_go": "354 End data with <CR><LF>.<CR><LF>",
        "data_syntax": "501 5.5.4 Syntax: DATA",
        "data_ok": "250 2.0.0 Ok: queued as {queue_id}",
        "data_too_big": "552 5.3.4 Error: message file too big",
        "rset_ok": "250 2.0.0 Ok",
        "rset_syntax": "501 5.5.4 Syntax: RSET",
        "noop_ok": "250 2.0.0 Ok",
        "vrfy_ok": "252 2.0.0 {arg}",
        "vrfy_syntax": "501 5.5.4 Syntax: VRFY address [SMTPUTF8]",
        # Postfix implements neither EXPN nor HELP: both are unknown commands.
        "expn": "500 5.5.2 Error: command not recognized",
        "help": "500 5.5.2 Error: command not recognized",
        "quit": "221 2.0.0 Bye",
        "too_many_errors": "421 4.7.0 {hostname} Error: too many errors",
        "timeout": "421 4.4.2 {hostname} Error: timeout exceeded",
        "too_many_connections": "421 4.7.0 {hostname} Error: too many connections from {client}",
        "shutdown": "421 4.3.2 {hostname} Service shutting down",
        "starttls_not_offered": "502 5.5.1 Error: command not implemented",
        "starttls_go": "220 2.0.0 Ready to start TLS",
        "auth_not_offered": "503 5.5.1 Error: authentication not enabled",
    },
)

_REGISTRY: dict[str, Persona] = {}


def register(persona: Persona) -> Persona:
    """Add a persona to the registry (checks it words every situation)."""
    missing = [k for k in REPLY_KEYS if k not in persona.replies]
    if missing:
        raise ValueError(f"persona {persona.name!r} has no wording for: {', '.join(missing)}")
    _REGISTRY[persona.name] = persona
    return persona


register(
    Persona(
        name="generic",
        software="labsmtp (RFC 5321 plain)",
        about="Plain RFC 5321 wording with RFC 3463 enhanced codes; the lab's default.",
        replies=MappingProxyType(_GENERIC),
        ehlo_keywords=(
            "PIPELINING",
            "SIZE {size}",
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "HELP",
        ),
        helo_required_default=True,
    )
)
register(
    Persona(
        name="postfix",
        software="Postfix 3.7 (Debian)",
        about="Postfix 3.7's codes, enhanced codes and texts, recorded from a real Postfix.",
        replies=MappingProxyType(_POSTFIX),
        ehlo_keywords=(
            "PIPELINING",
            "SIZE {size}",
            "VRFY",
            "ETRN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ),
        source="tests/recordings/postfix-3.7.json",
        requires_brackets=False,
        helo_required_default=False,
    )
)


def get_persona(name: str | Persona) -> Persona:
    """The persona called ``name`` (see ``persona_names()``)."""
    if isinstance(name, Persona):
        return name
    if not isinstance(name, str):
        raise TypeError(f"persona must be a name such as 'postfix', not {type(name).__name__}")
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(
            f"no persona called {name!r}; choose one of: {', '.join(persona_names())}"
        ) from None


def persona_names() -> list[str]:
    """The names of all personas the lab can play."""
    return sorted(_REGISTRY)
