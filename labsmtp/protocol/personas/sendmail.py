"""Sendmail 8.17 (Debian), recorded from the real program on loopback."""

from __future__ import annotations

from types import MappingProxyType

from .base import SYNTAX, Persona, recorded_policy, register
from .generic import GENERIC

# --- Sendmail 8.17 ---------------------------------------------------------------
# Recorded: tests/recordings/sendmail-8.17.json (Debian's sendmail 8.17.1.9 with
# PrivacyOptions needmailhelo, needexpnhelo, needvrfyhelo).  Sendmail ignores
# the HELO argument and greets the client by its reverse-DNS name ({peer}).
SENDMAIL = dict(
    GENERIC,
    **{
        "greeting": "220 {hostname} ESMTP Sendmail 8.17.1.9/8.17.1.9; {date}",
        "helo_ok": "250 {hostname} Hello {peer}, pleased to meet you",
        "ehlo_ok": "250 {hostname} Hello {peer}, pleased to meet you",
        "helo_syntax": "501 5.0.0 HELO requires domain address",
        "ehlo_syntax": "501 5.0.0 EHLO requires domain address",
        "helo_invalid": "501 5.0.0 Invalid domain name",
        # Sendmail has no non-FQDN or unknown-HELO check of its own (HELO names are
        # accepted); these two are the lab's words in Sendmail's style, never recorded.
        "helo_non_fqdn": "501 5.0.0 Invalid domain name",
        "helo_unknown": "450 4.7.1 <{arg}>... Domain name not found",
        "need_helo": "503 5.0.0 Polite people say HELO first",
        "need_mail": "503 5.0.0 Need MAIL before RCPT",
        "need_rcpt": "503 5.0.0 Need MAIL command",
        "no_valid_recipients": "503 5.0.0 Need RCPT (recipient)",
        "nested_mail": "503 5.5.0 Sender already specified",
        "bad_sequence": "503 5.0.0 Bad sequence of commands",
        "need_ehlo_for_auth": "503 5.3.3 AUTH not available",
        "auth_in_transaction": "503 5.5.0 AUTH not permitted during a mail transaction",
        "starttls_in_transaction": "503 5.5.0 STARTTLS not permitted during a mail transaction",
        "unknown_command": '500 5.5.1 Command unrecognized: "{line}"',
        "empty_line": '500 5.5.1 Command unrecognized: ""',
        "bad_bytes": "500 5.5.1 Command unrecognized",
        "line_too_long": "500 5.5.0 Command line too long",
        "text_line_too_long": "500 5.5.0 Line too long",
        "mail_ok": "250 2.1.0 <{addr}>... Sender ok",
        "mail_syntax": '501 5.5.2 Syntax error in parameters scanning "{keyword}"',
        "mail_param_unknown": "555 5.5.4 {arg} parameter unrecognized",
        "rcpt_ok": "250 2.1.5 <{addr}>... Recipient ok",
        "rcpt_syntax": '501 5.5.2 Syntax error in parameters scanning "{keyword}"',
        # As recorded from 127.0.0.2, which has no reverse-DNS name.
        "relay_denied": "550 5.7.1 <{addr}>... Relaying denied. IP name lookup failed [{client}]",
        "too_many_recipients": "452 4.5.3 Too many recipients",
        "size_param_exceeded": "552 5.2.3 Message size exceeds fixed maximum message size ({limit})",
        "data_go": "354 End data with <CR><LF>.<CR><LF>",
        "data_syntax": "501 5.5.4 Syntax: DATA",  # never said: Sendmail ignores DATA's argument
        "data_ok": "250 2.0.0 {queue_id} Message accepted for delivery",
        "data_too_big": "552 5.2.3 Message exceeds maximum fixed size ({limit})",
        "rset_ok": "250 2.0.0 Reset state",
        "rset_syntax": "501 5.5.4 Syntax: RSET",  # never said: Sendmail ignores RSET's argument
        "noop_ok": "250 2.0.0 OK",
        # Sendmail looks the local part up; the lab has one answer for every name.
        "vrfy_ok": "250 2.1.5 <{arg}@{hostname}>",
        "vrfy_syntax": "501 5.5.2 Argument required",
        "expn": "502 5.7.0 Sorry, we do not allow this operation",
        "help": (
            "214-2.0.0 This is sendmail version 8.17.1.9\n"
            "214-2.0.0 Topics:\n"
            "214-2.0.0 \tHELO\tEHLO\tMAIL\tRCPT\tDATA\n"
            "214-2.0.0 \tRSET\tNOOP\tQUIT\tHELP\tVRFY\n"
            "214-2.0.0 \tEXPN\tVERB\tETRN\tDSN\tAUTH\n"
            "214-2.0.0 \tSTARTTLS\n"
            '214-2.0.0 For more info use "HELP <topic>".\n'
            "214-2.0.0 To report bugs in the implementation see\n"
            "214-2.0.0 \thttp://www.sendmail.org/email-addresses.html\n"
            "214-2.0.0 For local information send email to Postmaster at your site.\n"
            "214 2.0.0 End of HELP info"
        ),
        "quit": "221 2.0.0 {hostname} closing connection",
        # MAXBADCOMMANDS (25) in sendmail/srvrsmtp.c; not in the recording.
        "too_many_unknown": "421 4.7.0 {hostname} Too many bad commands; closing connection",
        "too_many_errors": "421 4.7.0 {hostname} Too many bad commands; closing connection",
        "timeout": "421 4.4.1 {hostname} Lost input channel from {peer}",
        # At MaxDaemonChildren (unset in Debian: no limit) Sendmail closes its listening
        # socket for a while, so the client's connect() fails: there is no reply.  The
        # lab answers in FEATURE(conncontrol)'s words instead.
        "too_many_connections": "421 4.3.2 {hostname} Too many open connections",
        # FEATURE(conncontrol, nodelay, terminate), the access map's ClientConn: limit
        # (cf/m4/proto.m4), said instead of the greeting.
        "too_many_from_client": "421 4.3.2 Too many open connections.",
        "shutdown": "421 4.3.2 {hostname} Shutting down",
        "starttls_not_offered": "454 4.3.3 TLS not available after start",
        "auth_not_offered": "504 5.3.3 AUTH mechanism {word} not available",
        "already_greeted": "503 5.0.0 Bad sequence of commands",
        "need_helo_for_vrfy": "503 5.0.0 I demand that you introduce yourself first",
        # Not Sendmail's own: the lab's words in its style ("<address>... text");
        # the greylisting text is milter-greylist's, which Sendmail sites use.
        "greylisted": "451 4.7.1 <{addr}>... Greylisting in action, please come back in {wait} seconds",
        "client_unknown": "450 4.7.1 [{client}]... Client host name lookup failed",
        "helo_mismatch": "450 4.7.1 <{helo}>... Host name does not match your address [{client}]",
        "internal_error": "421 4.3.0 {hostname} Internal software error, closing connection",
        "connection_refused": "554 5.7.1 {hostname} Access denied for [{client}]",
        "user_unknown": "550 5.1.1 <{addr}>... User unknown",  # Sendmail's own
    },
)


register(
    Persona(
        name="sendmail",
        software="Sendmail 8.17 (Debian)",
        about="Sendmail 8.17's replies, recorded from a real Sendmail: ignores the HELO "
        "name, wants HELO before MAIL and VRFY, takes arguments on RSET and DATA.",
        replies=MappingProxyType(SENDMAIL),
        ehlo_keywords=(
            "ENHANCEDSTATUSCODES",
            "PIPELINING",
            "EXPN",
            "VERB",
            "8BITMIME",
            "SIZE {size}",
            "DSN",
            "ETRN",
            "DELIVERBY",
            "HELP",
        ),
        source="tests/recordings/sendmail-8.17.json",
        # sendmail.cf's option names for the lab's limits (Debian: none set), and the
        # access map's ClientConn (Debian: 10, but ClientConn:127 0 spares loopback).
        policy_names=MappingProxyType(
            {
                "MaxDaemonChildren": "max_connections",
                "ClientConn": "max_connections_per_client",
                "MaxRecipientsPerMessage": "max_recipients",
                "MaxMessageSize": "message_size_limit",
                "Timeout.command": "idle_timeout",
            }
        ),
        requires_brackets=False,
        helo_required_default=True,  # PrivacyOptions=needmailhelo
        sequence_variants=("vrfy_needs_helo",),
        unknown_command_limit=25,  # MAXBADCOMMANDS
        platform_policy=recorded_policy(SYNTAX),  # syntax only: "HELO client" is fine
        no_argument_verbs=(),
        date_format="{d:%a}, {d.day} {d:%b %Y %H:%M:%S} GMT",
        queue_id_format="##############",
        queue_id_alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    )
)
