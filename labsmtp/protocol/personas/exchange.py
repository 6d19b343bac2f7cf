"""Microsoft Exchange 2019 / Exchange Online: built from Microsoft's documentation, not recorded."""

from __future__ import annotations

from types import MappingProxyType

from .base import SYNTAX, Persona, register
from .generic import GENERIC

# --- Microsoft Exchange (2019 / Exchange Online) --------------------------------------
# NOT RECORDED: Exchange cannot run here.  Built from Microsoft's published reply
# formats: "Use Telnet to test SMTP communication on Exchange servers"
# (learn.microsoft.com, exchange/mail-flow/test-smtp-with-telnet: the 220 banner
# "... Microsoft ESMTP MAIL Service ready at <day-date-time>", "250 <host> Hello
# [<sourceIPaddress>]", "501 5.5.4 Invalid domain name", "250 2.1.0 Sender OK",
# "550 5.1.7 Invalid address", "250 2.1.5 Recipient OK", "354 Start mail input;
# end with <CRLF>.<CRLF>", "250 2.6.0 <id> ... Queued mail for delivery", "221 2.0.0
# Service closing transmission channel") and "Email non-delivery reports and SMTP
# errors in Exchange Online" (5.7.54 "Unable to relay recipient in non-accepted
# domain").  The sequence and unknown-command texts (5.5.2, 5.3.3) follow Exchange's
# SMTP protocol logs; the rest is the lab's wording in Exchange's style.
EXCHANGE = dict(
    GENERIC,
    **{
        "greeting": "220 {hostname} Microsoft ESMTP MAIL Service ready at {date}",
        "helo_ok": "250 {hostname} Hello [{client}]",
        "ehlo_ok": "250 {hostname} Hello [{client}]",
        "helo_syntax": "501 5.5.4 Invalid domain name",
        "ehlo_syntax": "501 5.5.4 Invalid domain name",
        "helo_invalid": "501 5.5.4 Invalid domain name",
        "helo_non_fqdn": "501 5.5.4 Invalid domain name",
        "helo_unknown": "501 5.5.4 Invalid domain name",
        "need_helo": "503 5.5.2 Send hello first",
        "need_mail": "503 5.5.2 Need mail command",
        "need_rcpt": "503 5.5.2 Need mail command",
        "no_valid_recipients": "503 5.5.2 Need rcpt command",
        "nested_mail": "503 5.5.2 Sender already specified",
        "bad_sequence": "503 5.5.1 Bad sequence of commands",
        "need_ehlo_for_auth": "503 5.5.2 Send hello first",
        "auth_in_transaction": "503 5.5.1 Bad sequence of commands",
        "starttls_in_transaction": "503 5.5.1 Bad sequence of commands",
        "unknown_command": "500 5.3.3 Unrecognized command '{verb}'",
        "empty_line": "500 5.3.3 Unrecognized command ''",
        "bad_bytes": "500 5.3.3 Unrecognized command",
        "line_too_long": "500 5.5.2 Line too long",
        "text_line_too_long": "500 5.5.2 Line too long",
        "mail_ok": "250 2.1.0 Sender OK",
        "mail_syntax": "550 5.1.7 Invalid address",
        "mail_param_unknown": "501 5.5.4 Unrecognized parameter {arg}",
        "rcpt_ok": "250 2.1.5 Recipient OK",
        "rcpt_syntax": "501 5.1.3 Invalid address",
        "relay_denied": "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
        "too_many_recipients": "452 4.5.3 Too many recipients",
        "size_param_exceeded": "552 5.3.4 Message size exceeds fixed maximum message size",
        "data_go": "354 Start mail input; end with <CRLF>.<CRLF>",
        "data_syntax": "501 5.5.4 Invalid arguments",
        "data_ok": "250 2.6.0 <{queue_id}@{hostname}> [Hostname={hostname}] Queued mail for delivery",
        "data_too_big": "552 5.3.4 Message size exceeds fixed maximum message size",
        "rset_ok": "250 2.0.0 Resetting",
        "rset_syntax": "501 5.5.4 Invalid arguments",
        "noop_ok": "250 2.0.0 OK",
        "vrfy_ok": "252 2.1.5 Cannot VRFY user",
        "vrfy_syntax": "501 5.5.4 Invalid arguments",
        "expn": "502 5.3.3 Command not implemented",
        "help": "214-This server supports the following commands:\n"
        "214 HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH BDAT",
        "quit": "221 2.0.0 Service closing transmission channel",
        "too_many_unknown": "421 4.7.0 {hostname} Too many errors on this connection, closing transmission channel",
        "too_many_errors": "421 4.7.0 {hostname} Too many errors on this connection, closing transmission channel",
        "timeout": "421 4.4.1 Connection timed out",
        "too_many_connections": "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing transmission channel",
        "shutdown": "421 4.3.2 Service not available, closing transmission channel",
        "starttls_not_offered": "500 5.3.3 Unrecognized command 'STARTTLS'",
        "auth_not_offered": "504 5.7.4 Unrecognized authentication type",
        "already_greeted": "503 5.5.1 Bad sequence of commands",
        "need_helo_for_vrfy": "503 5.5.2 Send hello first",
        # Exchange Online's own PTR refusal (as 4xx); the rest is the lab's wording in
        # Exchange's style: Exchange does not greylist.
        "greylisted": "451 4.7.1 <{addr}>: Temporarily rejected, try again in {wait} seconds",
        "client_unknown": "450 4.7.25 The IP address sending this message does not have a PTR record setup [{client}]",
        "helo_mismatch": "450 4.7.1 Host name {helo} does not match the sending IP [{client}] (the lab's check, against RFC 5321 §4.1.4)",
        "internal_error": "421 4.3.2 Service not available, closing transmission channel",
        "connection_refused": "554 5.7.1 Service unavailable; Client host [{client}] blocked",
        "access_denied": "503 5.5.1 Bad sequence of commands: Client host [{client}] blocked",
        "user_unknown": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        # BDAT: "CHUNK received OK" as Exchange's protocol logs show it; the rest is the
        # lab's wording in Exchange's style.
        "bdat_ok": "250 2.6.0 CHUNK received OK",
        "bdat_last_ok": "250 2.6.0 <{queue_id}@{hostname}> [Hostname={hostname}] Queued mail for delivery",
        "bdat_syntax": "501 5.5.4 Invalid arguments",
        "bdat_not_offered": "500 5.3.3 Unrecognized command 'BDAT'",
        "bdat_discarded": "503 5.5.1 Bad sequence of commands",
        "bdat_too_big": "552 5.3.4 Message size exceeds fixed maximum message size",
        "after_bdat": "503 5.5.1 Bad sequence of commands",
        "binarymime_needs_bdat": "503 5.5.1 Bad sequence of commands",
    },
)


register(
    Persona(
        name="exchange",
        software="Microsoft Exchange 2019 / Exchange Online (not recorded)",
        about="Microsoft Exchange, built from Microsoft's published reply formats, not "
        "recorded: Exchange cannot run here.",
        replies=MappingProxyType(EXCHANGE),
        # Exchange 2019's default receive connector offers STARTTLS (a self-signed
        # certificate made at setup), after ENHANCEDSTATUSCODES.
        ehlo_keywords=(
            "SIZE {size}",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "8BITMIME",
            "BINARYMIME",
            "CHUNKING",
            "SMTPUTF8",
        ),
        # Receive connector parameters (Set-ReceiveConnector) and their defaults.
        policy_names=MappingProxyType(
            {
                "MaxInboundConnection": "max_connections",
                "MaxInboundConnectionPerSource": "max_connections_per_client",
                "MaxRecipientsPerMessage": "max_recipients",
                "MaxMessageSize": "message_size_limit",
                "ConnectionInactivityTimeout": "idle_timeout",
            }
        ),
        limit_defaults=MappingProxyType(
            {"max_connections": 5000, "max_connections_per_client": 20, "max_recipients": 200}
        ),
        per_client_limit_spares_trusted=False,
        source="Microsoft Learn: 'Use Telnet to test SMTP communication on Exchange servers'; "
        "'Email non-delivery reports and SMTP errors in Exchange Online' (not recorded)",
        recorded=False,
        stock_tls=True,
        requires_brackets=False,
        helo_required_default=True,
        date_format="{d:%a}, {d.day} {d:%b %Y %H:%M:%S} +0000",
        # Exchange's defaults: any syntactically valid HELO name, accepted domains only,
        # no anonymous relay for anyone, MaxMessageSize 36 MB (Exchange 2019 connectors).
        platform_policy=MappingProxyType(
            dict(
                smtpd_helo_required=True,
                smtpd_helo_restrictions=SYNTAX,
                mydestination=("lab.example.org",),
                mynetworks=(),
                message_size_limit=37748736,
            )
        ),
        queue_id_format="########-####-####-####-############",
        queue_id_alphabet="0123456789abcdef",
    )
)
