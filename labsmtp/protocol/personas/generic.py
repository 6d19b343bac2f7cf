"""The lab's default persona: plain RFC 5321 wording with RFC 3463 enhanced codes."""

from __future__ import annotations

from types import MappingProxyType

from .base import Persona, register

GENERIC = {
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
    "too_many_from_client": "421 4.7.0 {hostname} Too many connections from {client}, try again later",
    "shutdown": "421 4.3.2 {hostname} Service shutting down",
    "starttls_not_offered": "502 5.5.1 STARTTLS not available",
    "starttls_go": "220 2.0.0 Ready to start TLS",
    "auth_not_offered": "503 5.5.1 AUTH not available",
    "starttls_syntax": "501 5.5.4 Syntax: STARTTLS",
    "starttls_already": "503 5.5.1 TLS already active",
    "auth_challenge": "334 {arg}",
    "auth_ok": "235 2.7.0 Authentication successful",
    "auth_failed": "535 5.7.8 Authentication credentials invalid",
    "auth_required": "530 5.7.0 Authentication required",
    "auth_encryption_required": "538 5.7.11 Encryption required for requested authentication mechanism",
    "auth_already": "503 5.5.1 Already authenticated",
    "auth_mechanism_unknown": "504 5.5.4 Unrecognized authentication type",
    "auth_cancelled": "501 5.0.0 Authentication cancelled",
    "auth_undecodable": "501 5.5.2 Cannot decode response",
    "auth_syntax": "501 5.5.4 Syntax: AUTH mechanism [initial-response]",
    "already_greeted": "503 5.5.1 Bad sequence of commands: already greeted",
    "need_helo_for_vrfy": "503 5.5.1 Bad sequence of commands: send HELO or EHLO first",
    "noop_syntax": "501 5.5.4 Syntax: NOOP",
    "too_many_unknown": "421 4.7.0 {hostname} Too many unrecognized commands, closing connection",
    # The lab's own replies, in the words postgrey and Postfix use for them.
    "greylisted": "451 4.7.1 <{addr}>: Recipient address rejected: Greylisted, try again in {wait} seconds",
    "client_unknown": "450 4.7.25 Client host rejected: cannot find your hostname, [{client}]",
    # What RFC 5321 §4.1.4 forbids; no Postfix restriction does it: the lab's own words.
    "helo_mismatch": "450 4.7.1 <{helo}>: HELO name does not resolve to your address [{client}] (refused against RFC 5321 §4.1.4)",
    "internal_error": "421 4.3.0 {hostname} Internal error, closing connection",
    "fault_reply": "{status} {text}",
    "fault_reply_host": "{status} {hostname} {text}",
    "connection_refused": "554 5.7.1 Service unavailable; client [{client}] may not connect here",
    "access_denied": "503 5.7.0 Bad sequence of commands: this server refused the session (554); only QUIT is served",
    "user_unknown": "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in local recipient table",
    # BDAT (RFC 3030): the generic persona does not offer CHUNKING; the personas built
    # on it that do (and a fault that hides it) word it so.
    "bdat_ok": "250 2.0.0 {size} octets received",
    "bdat_last_ok": "250 2.0.0 OK: {total} octets queued as {queue_id}",
    "bdat_syntax": "501 5.5.4 Syntax: BDAT chunk-size [LAST]",
    "bdat_not_offered": "502 5.5.1 BDAT not available: CHUNKING was not offered",
    "bdat_discarded": "554 5.5.1 Transaction failed: {size} octets discarded after an earlier error; send RSET",
    "bdat_too_big": "552 5.3.4 Message size exceeds fixed limit",
    "bdat_empty": "501 5.5.4 Syntax: an empty chunk must be the LAST",
    "after_bdat": "503 5.5.1 Bad sequence of commands: {verb} after BDAT (RFC 3030)",
    "binarymime_needs_bdat": "503 5.5.1 Bad sequence of commands: BODY=BINARYMIME needs BDAT (RFC 3030)",
}

# Postfix 3.7 (smtpd.c, smtpd_check.c), checked against tests/recordings/postfix-3.7.json.


register(
    Persona(
        name="generic",
        software="labsmtp (RFC 5321 plain)",
        about="Plain RFC 5321 wording with RFC 3463 enhanced codes; the lab's default.",
        replies=MappingProxyType(GENERIC),
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
