"""Exim 4.96 (Debian 12, exim4-daemon-light), stock configuration, recorded from the real program.

The persona is Exim as Debian's exim4-config sets it up ("internet site",
tests/recordings/stock/exim.conf), with the lab's settings on top.  How it
reads and answers commands is exim_smtp.py / exim_commands.py (smtp_in.c),
its address parser exim_parse.py (parse.c), its ACLs exim_acl.py; this
module holds its words and its settings, under Exim's own names.
"""

from __future__ import annotations

from types import MappingProxyType

from .base import Persona, register
from .exim_smtp import grammar
from .generic import GENERIC

# Exim writes no enhanced status codes unless an ACL message has one.
EXIM = dict(
    GENERIC,
    **{
        "greeting": "220 {hostname} ESMTP Exim 4.96 {date}",
        # {arg}: the client's forward-confirmed reverse DNS name (host_lookup), else
        # the HELO argument as typed (exim_commands.hello).
        "helo_ok": "250 {hostname} Hello {arg} [{client}]",
        "ehlo_ok": "250 {hostname} Hello {arg} [{client}]",
        "helo_syntax": "501 Syntactically invalid HELO argument(s)",
        "ehlo_syntax": "501 Syntactically invalid EHLO argument(s)",
        # The lab's Postfix-named HELO switches, said as an Exim ACL would say them.
        "helo_invalid": "501 Syntactically invalid {verb} argument(s)",
        "helo_non_fqdn": "550 HELO/EHLO argument must be a fully-qualified domain name",
        "helo_unknown": "550 HELO/EHLO argument does not resolve",
        "need_helo": "503 HELO or EHLO required",
        "need_mail": "503 sender not yet given",
        # {verb}: DATA or BDAT, the command refused (smtp_in.c, DATA_BDAT)
        "need_rcpt": "503 valid RCPT command must precede {verb}",
        "no_valid_recipients": "503 valid RCPT command must precede {verb}",
        "nested_mail": "503 sender already given",
        "bad_sequence": "503 Bad sequence of commands",
        "need_ehlo_for_auth": "503 AUTH command used when not advertised",
        "auth_in_transaction": "503 not permitted in mail transaction",
        "auth_already": "503 already authenticated",
        "starttls_in_transaction": "503 STARTTLS command used when not advertised",
        "unknown_command": "500 unrecognized command",
        "empty_line": "500 unrecognized command",
        "bad_bytes": "500 unrecognized command",
        "line_too_long": "500 unrecognized command",  # a piece of a line past 16,384 octets
        "text_line_too_long": "550 maximum allowed line length is 998 octets, got {size}",
        "mail_ok": "250 OK",
        "mail_syntax": "501 MAIL must have an address operand",
        "mail_param_unknown": "501 {arg}: malformed address: {arg} may not follow",
        "rcpt_ok": "250 Accepted",
        "rcpt_syntax": "501 RCPT must have an address operand",
        # Debian's acl_check_rcpt ("require message = relay not permitted", and
        # "require verify = recipient", whose failure says "Unrouteable address").
        "relay_denied": "550 relay not permitted",
        "user_unknown": "550 Unrouteable address",
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
        # While STARTTLS is offered and TLS not yet on:
        "exim_help_tls": "214-Commands supported:\n"
        "214 AUTH STARTTLS HELO EHLO MAIL RCPT DATA BDAT NOOP QUIT RSET HELP",
        "quit": "221 {hostname} closing connection",
        "too_many_unknown": "500 Too many unrecognized commands",
        # Exim has no limit on failed commands as such (Postfix's hard_error_limit);
        # these are the lab's, in Exim's style.
        "too_many_errors": "421 {hostname} too many syntax or protocol errors",
        "timeout": "421 {hostname} SMTP incoming data timeout - closing connection.",
        # daemon.c: smtp_accept_max and smtp_accept_max_per_host, said before the banner.
        "too_many_connections": "421 Too many concurrent SMTP connections; please try again later.",
        "too_many_from_client": "421 Too many concurrent SMTP connections from this IP address; "
        "please try again later.",
        "shutdown": "421 {hostname} lost input connection",
        "starttls_not_offered": "503 STARTTLS command used when not advertised",
        "starttls_go": "220 TLS go ahead",
        "starttls_syntax": "501 unexpected argument data",
        "auth_not_offered": "503 AUTH command used when not advertised",
        "auth_ok": "235 Authentication succeeded",
        "auth_failed": "535 Incorrect authentication data",
        "already_greeted": "503 Bad sequence of commands",
        "need_helo_for_vrfy": "503 HELO or EHLO required",
        # Exim has none of these itself: the lab's words in Exim's style (an ACL's
        # "defer"/"deny" message, no enhanced status codes).
        "greylisted": "451 <{addr}>: greylisted, try again in {wait} seconds",
        "client_unknown": "450 Client host [{client}] has no confirmed host name",
        "helo_mismatch": "450 HELO/EHLO argument {helo} does not match your address [{client}] (the lab's check, against RFC 5321 §4.1.4)",
        "internal_error": "421 {hostname} Temporary local problem - closing connection",
        "fault_reply": "{code} {text}",
        "fault_reply_host": "{code} {hostname} {text}",
        "connection_refused": "554 {hostname} Access denied for [{client}]",
        # --- Exim's own situations (exim_commands.py), texts from smtp_in.c ---
        "exim_too_many_errors": "{code} Too many syntax or protocol errors",
        "exim_sync_error": "554 SMTP synchronization error",
        "exim_too_many_nonmail": "554 Too many nonmail commands",
        "exim_unexpected_argument": "501 unexpected argument data",
        "exim_nul": "501 NUL characters are not allowed in SMTP commands",
        "exim_address_error": "501 {data}: {error}",
        "exim_sender_unqualified": "501 {data}: sender address must contain a domain",
        "exim_recipient_unqualified": "501 {data}: recipient address must contain a domain",
        "exim_vrfy_error": "501 {error}",
        "exim_acl_refusal": "{code} {message}",
        "exim_helo_mismatch": "550 {hello} argument does not match calling host",
        "exim_all_rcpt_rejected": "503 All RCPT commands were rejected with this error:",
        "exim_rcpt_first": "503 Valid RCPT command must precede {verb}",
        "exim_etrn": "458 Administrative prohibition",
        "exim_etrn_in_transaction": "503 ETRN is not permitted inside a transaction",
        "exim_invalid_body": "501 invalid data for BODY",
        "exim_invalid_auth": "501 invalid data for AUTH",
        "exim_smtputf8": "501 SMTPUTF8 used when not advertised",
        "exim_mail_ok_prdr": "250 OK, PRDR Requested",
        "exim_closedown": "421 {message}",
        "exim_line_length": "550 maximum allowed line length is 998 octets, got {length}",
        "exim_header_syntax": "550 header syntax",
        "exim_bdat_not_offered": "503 BDAT command used when CHUNKING not advertised",
        "exim_bdat_size": "501 missing size for BDAT command",
        "access_denied": "503 Access denied for [{client}]: only QUIT is served",
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
        "exim_lost_connection": "421 Lost incoming connection",
    },
)

# Exim's own settings, under Exim's names, with the values of Debian's stock
# configuration (tests/recordings/stock/exim.conf).  Host lists are Exim host
# lists: "*" (every client), "" (none), or "127.0.0.1 : 192.0.2.0/24".
SETTINGS = MappingProxyType(
    {
        "host_lookup": "*",  # Debian: reverse DNS of every client ("Hello <name>")
        "hosts_require_helo": "*",  # 4.96's default: MAIL needs HELO/EHLO first
        "helo_verify_hosts": "",  # HELO name must resolve to the client, or 550
        "helo_try_verify_hosts": "",  # the same check, only for ACLs (verify = helo)
        "helo_accept_junk_hosts": "",  # skip the HELO syntax check for these
        "helo_allow_chars": "",  # more characters allowed in a HELO name (e.g. "_")
        "acl_smtp_helo": "",  # an ACL run at HELO/EHLO, written as in Exim's configuration
        "acl_smtp_rcpt": "acl_check_rcpt",  # Debian's; "" for none (accept everything)
        "acl_smtp_data": "acl_check_data",  # Debian's (998-octet lines, header syntax); "" none
        "smtp_max_unknown_commands": 3,
        "smtp_max_synprot_errors": 3,
        "smtp_accept_max_nonmail": 10,
        "smtp_accept_max_nonmail_hosts": "*",
        "smtp_enforce_sync": True,  # "554 SMTP synchronization error" for early input
        "pipelining_advertise_hosts": "*",
        "pipelining_connect_advertise_hosts": "*",  # PIPECONNECT
        "chunking_advertise_hosts": "*",
        "prdr_enable": True,  # Debian turns it on (Exim's default is off)
        "smtputf8_advertise_hosts": "",  # Debian: not advertised (Exim's default: *)
        "accept_8bitmime": True,
        "qualify_domain": "lab.example.org",  # Debian: the mail name
    }
)

# The lab-configuration recording (tests/recordings/exim-4.96.json): record_exim.sh's
# exim.conf, in Exim's own settings plus the lab's shared switches.
LAB_CONFIG_HELO_ACL = """\
deny    message   = HELO/EHLO argument must be a fully-qualified domain name
        condition = ${if match{$sender_helo_name}{\\N\\.\\N}{no}{yes}}
accept
"""
RECORDED = MappingProxyType(
    dict(
        smtpd_helo_required=True,
        mydestination=("lab.example.org",),
        mynetworks=("127.0.0.1/32",),
        message_size_limit=1048576,
        host_lookup="",
        acl_smtp_helo=LAB_CONFIG_HELO_ACL,
        acl_smtp_data="",
        prdr_enable=False,
        smtputf8_advertise_hosts="*",
        tls=False,  # tls_advertise_hosts = (empty)
    )
)

register(
    Persona(
        name="exim",
        software="Exim 4.96 (Debian)",
        about="Exim 4.96 as Debian 12 ships it: no enhanced codes, 'Hello <reverse name> "
        "[<ip>]', a 16 KiB command buffer, three unknown commands or three syntax errors "
        "and it hangs up, 554 for commands sent too early.",
        replies=MappingProxyType(EXIM),
        ehlo_keywords=(
            "SIZE {size}",
            "8BITMIME",
            "PIPELINING",
            "PIPECONNECT",
            "CHUNKING",
            "PRDR",
            "HELP",
        ),
        source="tests/recordings/exim-4.96.json",
        requires_brackets=False,
        helo_required_default=True,  # hosts_require_helo = *
        unknown_command_limit=3,  # smtp_max_unknown_commands (exim_smtp.py counts them)
        no_argument_verbs=(),
        stock_tls=True,  # 4.96: tls_advertise_hosts = *, a self-signed certificate at start
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
        keyword_is_part_of_verb=True,
        date_format="{d:%a, %d %b %Y %H:%M:%S} +0000",
        queue_id_format="######-######-##",  # Exim 4.96's base-62 message id
        queue_id_alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        settings=SETTINGS,
        policy_defaults=MappingProxyType(
            dict(
                mydestination=("localhost", "lab.example.org"),  # local_domains = @:localhost:...
                message_size_limit=52428800,  # Exim's default message_size_limit (50M)
                hard_error_limit=2**31 - 1,  # no such limit: see smtp_max_synprot_errors
                text_line_limit=2**31 - 1,  # no limit while reading; Debian's data ACL checks 998
                command_line_limit=2**31 - 1,  # the 16 KiB buffer is exim_smtp.py's
            )
        ),
        platform_policy=RECORDED,
        grammar=grammar,
    )
)
