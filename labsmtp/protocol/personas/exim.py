"""Exim 4.96 (Debian), recorded from the real program on loopback."""

from __future__ import annotations

from types import MappingProxyType

from .base import FQDN, Persona, recorded_policy, register
from .generic import GENERIC

# --- Exim 4.96 ------------------------------------------------------------------
# Recorded: tests/recordings/exim-4.96.json (settings inside: Debian's exim4 4.96,
# an ACL refusing a HELO name without a dot, relay_from_hosts = 127.0.0.1/32).
# Exim writes no enhanced status codes unless told to, and names no client name.
EXIM = dict(
    GENERIC,
    **{
        "greeting": "220 {hostname} ESMTP Exim 4.96 {date}",
        "helo_ok": "250 {hostname} Hello {arg} [{client}]",
        "ehlo_ok": "250 {hostname} Hello {arg} [{client}]",
        "helo_syntax": "501 Syntactically invalid HELO argument(s)",
        "ehlo_syntax": "501 Syntactically invalid EHLO argument(s)",
        "helo_invalid": "501 Syntactically invalid {verb} argument(s)",
        # The recording's acl_smtp_helo "deny message = ..." (Exim's default code is 550).
        "helo_non_fqdn": "550 HELO/EHLO argument must be a fully-qualified domain name",
        "helo_unknown": "550 HELO/EHLO argument does not resolve",  # not recorded: an ACL's words
        "need_helo": "503 HELO or EHLO required",
        "need_mail": "503 sender not yet given",
        # {verb}: DATA or BDAT, the command refused (smtp_in.c, DATA_BDAT)
        "need_rcpt": "503 valid RCPT command must precede {verb}",
        "no_valid_recipients": "503 valid RCPT command must precede {verb}",
        "nested_mail": "503 sender already given",
        "bad_sequence": "503 Bad sequence of commands",
        "need_ehlo_for_auth": "503 AUTH command used when not advertised",
        "auth_in_transaction": "503 5.5.0 AUTH not permitted during a mail transaction",
        "starttls_in_transaction": "503 STARTTLS command used when not advertised",
        "unknown_command": "500 unrecognized command",
        "empty_line": "500 unrecognized command",
        "bad_bytes": "500 unrecognized command",
        "line_too_long": "500 Command line too long",
        "text_line_too_long": "500 message line too long",
        "mail_ok": "250 OK",
        "mail_syntax": "501 MAIL must have an address operand",
        "mail_param_unknown": "555 Unsupported parameter",
        "rcpt_ok": "250 Accepted",
        "rcpt_syntax": "501 RCPT must have an address operand",
        "relay_denied": "550 relay not permitted",  # the recording's ACL message
        "too_many_recipients": "452 too many recipients",
        "size_param_exceeded": "552 Message size exceeds maximum permitted",
        "data_go": '354 Enter message, ending with "." on a line by itself',
        "data_syntax": "501 unexpected argument data",
        "data_ok": "250 OK id={queue_id}",
        "data_too_big": "552 Message size exceeds maximum permitted",
        "rset_ok": "250 Reset OK",
        "rset_syntax": "501 unexpected argument data",
        "noop_ok": "250 OK",
        "noop_syntax": "501 unexpected argument data",
        # No acl_smtp_vrfy: Exim neither confirms nor denies the address.
        "vrfy_ok": "252 Administrative prohibition",
        "vrfy_syntax": "501 empty address",
        "expn": "550 Administrative prohibition",
        "help": "214-Commands supported:\n214 AUTH HELO EHLO MAIL RCPT DATA BDAT NOOP QUIT RSET HELP",
        "quit": "221 {hostname} closing connection",
        # smtp_max_unknown_commands = 3: the 4th unknown command gets this, then Exim hangs up.
        "too_many_unknown": "500 Too many unrecognized commands",
        "too_many_errors": "421 {hostname} too many syntax or protocol errors",
        "timeout": "421 {hostname} SMTP incoming data timeout - closing connection.",
        # daemon.c: smtp_accept_max and smtp_accept_max_per_host, said before the banner.
        "too_many_connections": "421 Too many concurrent SMTP connections; please try again later.",
        "too_many_from_client": "421 Too many concurrent SMTP connections from this IP address; "
        "please try again later.",
        "shutdown": "421 {hostname} lost input connection",
        "starttls_not_offered": "503 STARTTLS command used when not advertised",
        "auth_not_offered": "503 AUTH command used when not advertised",
        "already_greeted": "503 Bad sequence of commands",
        "need_helo_for_vrfy": "503 HELO or EHLO required",
        # Exim has none of these itself: the lab's words in Exim's style (an ACL's
        # "defer"/"deny" message, no enhanced status codes).
        "greylisted": "451 <{addr}>: greylisted, try again in {wait} seconds",
        "client_unknown": "450 Client host [{client}] has no confirmed host name",
        "helo_mismatch": "450 HELO/EHLO argument {helo} does not match your address [{client}]",
        "internal_error": "421 {hostname} Temporary local problem - closing connection",
        "fault_reply": "{code} {text}",
        "fault_reply_host": "{code} {hostname} {text}",
        "connection_refused": "554 {hostname} Access denied for [{client}]",
        "user_unknown": "550 Unrouteable address",  # Exim's own, for an unknown local part
        # BDAT, recorded (generated/exim.json) and after smtp_in.c (bdat_getc, BDAT_CMD)
        # and receive.c: the last chunk's reply names the chunk and the total.
        "bdat_ok": "250 {size} byte chunk received",
        "bdat_last_ok": "250- {size} byte chunk, total {total}\n250 OK id={queue_id}",
        "bdat_syntax": "501 missing size for BDAT command",
        "bdat_not_offered": "503 BDAT command used when CHUNKING not advertised",
        "bdat_discarded": "503 only RSET accepted now",
        "bdat_too_big": "552 Message size exceeds maximum permitted",
        "bdat_empty": "504 zero size for BDAT command",
        "after_bdat": "503 only BDAT permissible after non-LAST BDAT",
    },
)


register(
    Persona(
        name="exim",
        software="Exim 4.96 (Debian)",
        about="Exim 4.96's replies, recorded from a real Exim: no enhanced codes, "
        "'Hello <name> [<ip>]', hangs up after the 4th unknown command.",
        replies=MappingProxyType(EXIM),
        ehlo_keywords=(
            "SIZE {size}",
            "8BITMIME",
            "PIPELINING",
            "PIPECONNECT",
            "CHUNKING",
            "STARTTLS",  # stock 4.96: tls_advertise_hosts = *, a self-signed certificate
            "SMTPUTF8",
            "HELP",
        ),
        source="tests/recordings/exim-4.96.json",
        stock_tls=True,
        requires_brackets=False,
        helo_required_default=True,  # Exim 4.96: hosts_require_helo = *
        unknown_command_limit=3,  # smtp_max_unknown_commands
        extensions_need_ehlo=True,  # smtp_in.c: *_advertised flags are set by EHLO only
        # Exim's names for the lab's limits, and 4.96's defaults (exim -bP: 20, unset,
        # 50000, 5m).
        policy_names=MappingProxyType(
            {
                "smtp_accept_max": "max_connections",
                "smtp_accept_max_per_host": "max_connections_per_client",
                "recipients_max": "max_recipients",
                "smtp_receive_timeout": "idle_timeout",
            }
        ),
        limit_defaults=MappingProxyType({"max_connections": 20, "max_recipients": 50000}),
        per_client_limit_spares_trusted=False,  # smtp_accept_max_per_host: every host
        sequence_variants=("only_bdat_after_chunk",),
        # Built-in HELO syntax check, plus the recording's ACL refusing a name without a dot.
        platform_policy=recorded_policy(FQDN),
        keyword_is_part_of_verb=True,
        date_format="{d:%a, %d %b %Y %H:%M:%S} +0000",
        queue_id_format="######-######-##",  # Exim 4.96's base-62 message id
        queue_id_alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    )
)
