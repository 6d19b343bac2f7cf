"""OpenSMTPD 6.8 (Debian), recorded from the real program on loopback."""

from __future__ import annotations

from types import MappingProxyType

from .base import SYNTAX, Persona, recorded_policy, register
from .generic import GENERIC

# --- OpenSMTPD 6.8 ------------------------------------------------------------------
# Recorded: tests/recordings/opensmtpd-6.8.0.json (Debian's 6.8.0p2; no HELO
# checks in its default configuration: they need a built-in filter, phase helo).  OpenSMTPD parses "MAIL FROM" and "RCPT TO" as whole
# verbs, implements neither VRFY nor EXPN, refuses a second HELO and RSET before
# HELO, refuses arguments on RSET, NOOP and DATA, and does not check MAIL's SIZE=.
_OPENSMTPD_SEQUENCE = "503 5.5.1 Invalid command: Command not allowed at this point."
_OPENSMTPD_UNKNOWN = "500 5.5.1 Invalid command: Command unrecognized"
_OPENSMTPD_NO_ARGS = "500 5.5.4 Invalid command arguments: command does not accept arguments."
OPENSMTPD = dict(
    GENERIC,
    **{
        "greeting": "220 {hostname} ESMTP OpenSMTPD",
        "helo_ok": "250 {hostname} Hello {arg} [{client}], pleased to meet you",
        "ehlo_ok": "250 {hostname} Hello {arg} [{client}], pleased to meet you",
        "helo_syntax": "501 5.5.1 Invalid command: HELO requires domain name",
        "ehlo_syntax": "501 5.5.1 Invalid command: EHLO requires domain name",
        "helo_invalid": "501 5.5.4 Invalid command arguments: Invalid domain name",
        # OpenSMTPD has no such checks; the lab's words in its style, never recorded.
        "helo_non_fqdn": "501 5.5.4 Invalid command arguments: Invalid domain name",
        "helo_unknown": "501 5.5.4 Invalid command arguments: Host not found",
        "need_helo": _OPENSMTPD_SEQUENCE,
        "need_mail": _OPENSMTPD_SEQUENCE,
        "need_rcpt": _OPENSMTPD_SEQUENCE,
        "no_valid_recipients": "503 5.5.4 Invalid command arguments: No recipient specified",
        "nested_mail": _OPENSMTPD_SEQUENCE,
        "bad_sequence": _OPENSMTPD_SEQUENCE,
        "need_ehlo_for_auth": "503 5.5.1 Invalid command: Command not supported",
        "auth_in_transaction": _OPENSMTPD_SEQUENCE,
        "starttls_in_transaction": _OPENSMTPD_SEQUENCE,
        "unknown_command": _OPENSMTPD_UNKNOWN,
        "empty_line": _OPENSMTPD_UNKNOWN,
        "bad_bytes": _OPENSMTPD_UNKNOWN,
        "line_too_long": "500 5.5.1 Invalid command: Line too long",
        "text_line_too_long": "500 5.5.1 Invalid command: Line too long",
        "mail_ok": "250 2.0.0 Ok",
        "mail_syntax": "553 5.1.0 Sender address syntax error",
        "mail_param_unknown": "503 5.5.4 Unsupported option {arg}",
        "rcpt_ok": "250 2.1.5 Destination address valid: Recipient ok",
        "rcpt_syntax": "501 5.1.3 Recipient address syntax error",
        "relay_denied": "550 Invalid recipient: <{addr}>",
        "too_many_recipients": "452 4.5.3 Too many recipients",
        # Never said: OpenSMTPD 6.8 does not check SIZE= at MAIL (checks_size_param=False).
        "size_param_exceeded": "552 5.3.4 Message too big for system",
        "data_go": '354 Enter mail, end with "." on a line by itself',
        "data_syntax": _OPENSMTPD_NO_ARGS,
        "data_ok": "250 2.0.0 {queue_id} Message accepted for delivery",
        "data_too_big": "554 5.3.4 Message too big for system: Transaction failed, message too big",
        "rset_ok": "250 2.0.0 Reset state",
        "rset_syntax": _OPENSMTPD_NO_ARGS,
        "noop_ok": "250 2.0.0 Ok",
        "noop_syntax": _OPENSMTPD_NO_ARGS,
        "vrfy_ok": _OPENSMTPD_UNKNOWN,  # never said: VRFY is an unsupported verb
        "vrfy_syntax": _OPENSMTPD_UNKNOWN,
        "expn": _OPENSMTPD_UNKNOWN,
        "help": (
            "214-2.0.0 This is OpenSMTPD\n"
            "214-2.0.0 To report bugs in the implementation, please contact bugs@openbsd.org\n"
            "214-2.0.0 with full details\n"
            "214 2.0.0 End of HELP info"
        ),
        "quit": "221 2.0.0 Bye",
        "too_many_unknown": "421 4.7.0 {hostname} Too many errors, closing connection",
        "too_many_errors": "421 4.7.0 {hostname} Too many errors, closing connection",
        "timeout": "421 4.4.2 {hostname} Timeout",
        "too_many_connections": "421 4.7.0 {hostname} Too many connections, try again later",
        "shutdown": "421 4.3.2 {hostname} Service shutting down",
        "starttls_not_offered": "503 5.5.1 Invalid command: Command not supported",
        "auth_not_offered": "503 5.5.1 Invalid command: Command not supported",
        "already_greeted": "503 5.5.1 Invalid command: Already identified",
        "need_helo_for_vrfy": _OPENSMTPD_SEQUENCE,
        # OpenSMTPD 6.8 has no greylisting or identity checks of its own: the lab's
        # words in its style ("Invalid ...: reason").
        "greylisted": "451 4.7.1 Temporary failure: <{addr}> greylisted, try again in {wait} seconds",
        "client_unknown": "450 4.7.25 Temporary failure: no reverse DNS for [{client}]",
        "helo_mismatch": "450 4.7.1 Temporary failure: HELO name {helo} does not match [{client}]",
        "internal_error": "421 4.3.0 {hostname} Temporary failure",
        "connection_refused": "554 5.7.1 {hostname} Connection refused for [{client}]",
        "user_unknown": "550 Invalid recipient: <{addr}>",  # OpenSMTPD's own
    },
)


register(
    Persona(
        name="opensmtpd",
        software="OpenSMTPD 6.8 (Debian)",
        about="OpenSMTPD 6.8's replies, recorded from a real OpenSMTPD: no HELO checks in "
        "its default configuration (its built-in filters can add them), no second HELO, no "
        "VRFY, SIZE= not checked at MAIL.",
        replies=MappingProxyType(OPENSMTPD),
        ehlo_keywords=("8BITMIME", "ENHANCEDSTATUSCODES", "SIZE {size}", "DSN", "HELP"),
        source="tests/recordings/opensmtpd-6.8.0.json",
        # smtpd.conf(5): "smtp max-message-size", "smtp limit max-rcpt".
        policy_names=MappingProxyType(
            {"max-message-size": "message_size_limit", "max-rcpt": "max_recipients"}
        ),
        helo_required_default=True,
        # smtp.c: out of file descriptors, smtpd pauses its listening sockets ("fd
        # exhaustion"); new clients wait, unanswered.  There is no setting for it.
        waits_when_full=True,
        sequence_variants=("helo_once", "rset_needs_helo"),
        keyword_is_part_of_verb=True,
        unsupported_verbs=("VRFY", "EXPN"),
        no_argument_verbs=("RSET", "NOOP", "DATA"),
        checks_size_param=False,
        platform_policy=recorded_policy(SYNTAX),  # no HELO filter configured
        queue_id_format="########",
        queue_id_alphabet="0123456789abcdef",
    )
)
