"""Postfix 3.7 (Debian), recorded from the real program on loopback."""

from __future__ import annotations

from types import MappingProxyType

from .base import FQDN, Persona, recorded_policy, register
from .generic import GENERIC

POSTFIX = dict(
    GENERIC,
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
        # smtpd.c, smtpd_client_connection_count_limit (anvil); the process limit has no
        # reply: the client waits (waits_when_full).
        "too_many_from_client": "421 4.7.0 {hostname} Error: too many connections from {client}",
        "shutdown": "421 4.3.2 {hostname} Service shutting down",
        "starttls_not_offered": "502 5.5.1 Error: command not implemented",
        "starttls_go": "220 2.0.0 Ready to start TLS",
        "auth_not_offered": "503 5.5.1 Error: authentication not enabled",
        # TLS and AUTH: not in the recording yet; wording after Postfix 3.7's smtpd.c
        # and xsasl, to re-check when record_postfix.sh learns STARTTLS and AUTH.
        "starttls_syntax": "501 5.5.4 Syntax: STARTTLS",
        "starttls_already": "503 5.5.1 Error: TLS already active",
        "auth_ok": "235 2.7.0 Authentication successful",
        "auth_failed": "535 5.7.8 Error: authentication failed: authentication failure",
        "auth_required": "530 5.7.0 Authentication required",
        "auth_encryption_required": "538 5.7.11 Encryption required for requested authentication mechanism",
        "auth_already": "503 5.5.1 Error: already authenticated",
        "auth_mechanism_unknown": "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
        "auth_cancelled": "501 5.7.0 Authentication aborted",
        "auth_undecodable": "501 5.5.2 Error: malformed authentication response",
        "auth_syntax": "501 5.5.4 Syntax: AUTH mechanism",
        # Postfix accepts a second HELO, VRFY before HELO and NOOP arguments and has no
        # separate unknown-command limit: these four are never said by the postfix persona.
        "already_greeted": "503 5.5.1 Error: bad sequence of commands",
        "need_helo_for_vrfy": "503 5.5.1 Error: send HELO/EHLO first",
        "noop_syntax": "501 5.5.4 Syntax: NOOP",
        "too_many_unknown": "421 4.7.0 {hostname} Error: too many errors",
        # Postfix's own reject_unknown_client_hostname text; the HELO mismatch, the
        # internal error and the refused connection are the lab's words in its style.
        "internal_error": "421 4.3.0 {hostname} Error: internal error, closing connection",
        "connection_refused": "554 5.7.1 <unknown[{client}]>: Client host rejected: Access denied",
        # BDAT, recorded (generated/postfix.json) and after smtpd.c's bdat_cmd/skip_bdat.
        # The two 521s are followed by a hang-up: the chunk cannot be skipped.
        "bdat_ok": "250 2.0.0 Ok: {size} bytes",
        "bdat_last_ok": "250 2.0.0 Ok: {total} bytes queued as {queue_id}",
        "bdat_syntax": "521 5.5.4 Syntax: BDAT count [LAST]",
        "bdat_not_offered": "521 5.5.1 Error: command not implemented",
        "bdat_discarded": "551 5.0.0 Discarded {size} bytes after earlier error",
        "bdat_too_big": "552 5.3.4 Chunk exceeds message size limit",
        "bdat_empty": "551 5.7.1 Null BDAT request",
        "after_bdat": "503 5.5.1 Error: {verb} after BDAT",
    },
)

# Postfix's names for the lab's limits (postconf(5)), and its stock values where they
# differ from Policy's: 50 connections per client, $mynetworks exempt.
LIMITS = MappingProxyType(
    {
        "default_process_limit": "max_connections",  # master.cf maxproc, default 100
        "smtpd_client_connection_count_limit": "max_connections_per_client",
        "smtpd_recipient_limit": "max_recipients",
        "smtpd_hard_error_limit": "hard_error_limit",
        "smtpd_timeout": "idle_timeout",
    }
)

# Postfix (record_postfix.sh): smtpd_helo_required = yes, reject_invalid_helo_hostname,
# reject_non_fqdn_helo_hostname, mydestination = $myhostname, lab.example.org, localhost.
RECORDED_POLICY = recorded_policy(FQDN, ("mx.lab.example.org", "lab.example.org", "localhost"))


register(
    Persona(
        name="postfix",
        software="Postfix 3.7 (Debian)",
        about="Postfix 3.7's codes, enhanced codes and texts, recorded from a real Postfix.",
        replies=MappingProxyType(POSTFIX),
        ehlo_keywords=(
            "PIPELINING",
            "SIZE {size}",
            "VRFY",
            "ETRN",
            "STARTTLS",  # stock: smtpd_tls_security_level = may, Debian's snakeoil cert
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ),
        source="tests/recordings/postfix-3.7.json",
        stock_tls=True,
        requires_brackets=False,
        helo_required_default=False,
        sequence_variants=("chunks_discarded_after_refusal",),
        policy_names=LIMITS,
        limit_defaults=MappingProxyType({"max_connections_per_client": 50}),
        waits_when_full=True,  # master(8): "service smtp has reached its process limit"
        refuses_empty_chunk=True,
        platform_policy=RECORDED_POLICY,
    )
)
