"""Sendmail 8.17 (Debian 12's sendmail-bin 8.17.1.9-2+deb12u2) in its stock configuration.

What the Debian package configures (tests/recordings/stock/sendmail.conf: Debian's
sendmail.mc, its access file, local-host-names) is what ``persona="sendmail"``
plays; tests/recordings/behaviour/sendmail.md lists the rules, and
``sendmail_grammar`` / ``sendmail_envelope`` / ``sendmail_address`` model them
from the program's public source.  Sendmail's own options are settings under
Sendmail's names (``PrivacyOptions``, ``MaxMessageSize``, ...); the old lab
recording (tests/recordings/sendmail-8.17.json, a hand-made sendmail.cf) is
``platform_policy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...errors import LabValueError
from .base import SYNTAX, Persona, recorded_policy, register
from .generic import GENERIC
from .sendmail_grammar import SendmailGrammar

SENDMAIL = dict(
    GENERIC,
    **{
        # Debian's SmtpGreetingMessage, expanded (setting SmtpGreetingMessage)
        "greeting": "220 {banner}",
        # Sendmail greets the client by its reverse-DNS name ($_), not by the HELO name.
        "helo_ok": "250 {hostname} Hello {authinfo}, pleased to meet you",
        "ehlo_ok": "250 {hostname} Hello {authinfo}, pleased to meet you",
        "helo_syntax": "501 5.0.0 {typed_verb} requires domain address",
        "ehlo_syntax": "501 5.0.0 {typed_verb} requires domain address",
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
        "starttls_in_transaction": "503 5.5.0 TLS not permitted during a mail transaction",
        "unknown_command": '500 5.5.1 Command unrecognized: "{cmdline}"',
        "empty_line": '500 5.5.1 Command unrecognized: "{cmdline}"',
        "bad_bytes": '500 5.5.1 Command unrecognized: "{cmdline}"',  # Sendmail reads any byte
        # Over 2048 octets (MAXLINE): an attack, says Sendmail, and hangs up.
        "line_too_long": "421 4.7.0 {hostname} Command too long, possible attack {authinfo}",
        "text_line_too_long": "500 5.5.0 Line too long",  # never: Sendmail takes long text lines
        "mail_ok": "250 2.1.0 {addr}... Sender ok",
        "mail_syntax": '501 5.5.2 Syntax error in parameters scanning "{keyword}"',
        "mail_param_unknown": "555 5.5.4 {arg} parameter unrecognized",
        "rcpt_ok": "250 2.1.5 {addr}... Recipient ok",
        "rcpt_syntax": '501 5.5.2 Syntax error in parameters scanning "{keyword}"',
        "relay_denied": "550 5.7.1 {addr}... Relaying denied{why}",
        "too_many_recipients": "452 4.5.3 Too many recipients",
        "size_param_exceeded": "552 5.2.3 Message size exceeds fixed maximum message size ({limit})",
        "data_go": "354 End data with <CR><LF>.<CR><LF>",
        "data_syntax": "501 5.5.4 Syntax: DATA",  # never said: Sendmail ignores DATA's argument
        "data_ok": "250 2.0.0 {queue_id} Message accepted for delivery",
        "data_too_big": "552 5.2.3 Message exceeds maximum fixed size ({limit})",
        "rset_ok": "250 2.0.0 Reset state",
        "rset_syntax": "501 5.5.4 Syntax: RSET",  # never said: Sendmail ignores RSET's argument
        "noop_ok": "250 2.0.0 OK",
        "vrfy_ok": "250 2.1.5 <{arg}@{hostname}>",
        "vrfy_syntax": "501 5.5.2 Argument required",
        "expn": "502 5.7.0 Sorry, we do not allow this operation",
        # HELP with a topic is answered from sendmail_help; this is HELP alone.
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
        # MAXBADCOMMANDS (25) in srvrsmtp.c: the 26th bad command gets this and the close.
        "too_many_unknown": "421 4.7.0 {hostname} Too many bad commands; closing connection",
        "too_many_errors": "421 4.7.0 {hostname} Too many bad commands; closing connection",
        "timeout": "421 4.4.1 {hostname} Lost input channel from {authinfo}",
        # At MaxDaemonChildren (unset in Debian: no limit) Sendmail closes its listening
        # socket for a while, so the client's connect() fails: there is no reply.  The
        # lab answers in FEATURE(conncontrol)'s words instead.
        "too_many_connections": "421 4.3.2 {hostname} Too many open connections",
        # FEATURE(conncontrol, nodelay, terminate), the access map's ClientConn: limit
        # (cf/m4/proto.m4), said instead of the greeting.
        "too_many_from_client": "421 4.3.2 Too many open connections.",
        "shutdown": "421 4.3.2 {hostname} Shutting down",
        "starttls_not_offered": "454 4.3.3 TLS not available after start",
        "starttls_go": "220 2.0.0 Ready to start TLS",
        "starttls_syntax": "501 5.5.2 Syntax error (no parameters allowed)",
        "starttls_already": "454 4.3.3 TLS not available after start",
        "auth_not_offered": "503 5.3.3 AUTH not available",
        "auth_challenge": "334 {arg}",
        "auth_ok": "235 2.0.0 OK Authenticated",
        "auth_failed": "535 5.7.0 authentication failed",
        "auth_required": "530 5.7.0 Authentication required",
        "auth_already": "503 5.5.0 Already Authenticated",
        "auth_mechanism_unknown": "504 5.3.3 AUTH mechanism {word} not available",
        "auth_cancelled": "501 5.0.0 AUTH aborted",
        "auth_undecodable": "501 5.5.4 cannot decode AUTH parameter {arg}",
        "auth_syntax": "501 5.5.2 AUTH mechanism must be specified",
        "already_greeted": "503 5.0.0 Bad sequence of commands",  # never: HELO may repeat
        "need_helo_for_vrfy": "503 5.0.0 I demand that you introduce yourself first",
        "noop_syntax": "501 5.5.4 Syntax: NOOP",  # never said: NOOP's argument is ignored
        # Not Sendmail's own: the lab's words in its style ("<address>... text");
        # the greylisting text is milter-greylist's, which Sendmail sites use.
        "greylisted": "451 4.7.1 {addr}... Greylisting in action, please come back in {wait} seconds",
        "client_unknown": "450 4.7.1 [{client}]... Client host name lookup failed",
        "helo_mismatch": "450 4.7.1 <{helo}>... Host name does not match your address [{client}] (the lab's check, against RFC 5321 §4.1.4)",
        "internal_error": "421 4.3.0 {hostname} Internal software error, closing connection",
        "connection_refused": "554 5.7.1 {hostname} Access denied for [{client}]",
        "user_unknown": "550 5.1.1 {addr}... User unknown",
        # Sendmail's own situations (sendmail_grammar decides them)
        "sm_reply": "{reply}",  # a reply worded by Sendmail's rules (addresses, parameters)
        "sm_lines": "{lines}",  # several lines (VRFY, EXPN, HELP)
        "sm_protocol_error": "554 5.5.0 SMTP protocol error",  # pipelined too early
        "sm_command_rejected": "550 5.0.0 Command rejected",  # ... and every command after
        "sm_open_proxy": "421 4.7.0 {hostname} Rejecting open proxy {authinfo}",
        "sm_not_implemented": '502 5.5.1 Command not implemented: "{cmdline}"',
        "sm_not_allowed": "502 5.7.0 Sorry, we do not allow this operation",
        "sm_vrfy_refused": "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)",
        "sm_verbose": "250 2.0.0 Verbose mode",
        "sm_verbose_unavailable": "502 5.7.0 Verbose unavailable",
        "sm_etrn_node": "250 2.0.0 Queuing for node {arg} started",
        "sm_etrn_group": "250 2.0.0 Queuing for queue group {arg} started",
        "sm_etrn_unknown": "459 4.5.4 Queue {arg} unknown",
        "sm_etrn_required": "500 5.5.2 Parameter required",
        "sm_auth_initial": "501 5.5.4 cannot BASE64 decode '{arg}'",
        "sm_bare_lf": "421 4.5.0 Bare linefeed (LF) not allowed",
        "sm_bare_cr": "421 4.5.0 Bare carriage return (CR) not allowed",
        "sm_nul": "554 5.6.1 NUL byte not allowed",
        "access_denied": "503 5.7.0 {hostname} Access denied for [{client}]: only QUIT is served",
    },
)

# Debian's greeting (confSMTP_LOGIN_MSG in debian/cf); $Z is Debian's cf version.
DEBIAN_GREETING = (
    "$j Sendmail $v/$Z; $b; (No UCE/UBE) $?{client_addr}logging access from: "
    "${client_name}(${client_resolve})-$_$|$."
)
# Sendmail's options as the Debian package sets them (stock/sendmail.conf).
STOCK_SETTINGS: Mapping[str, Any] = MappingProxyType(
    {
        # confPRIVACY_FLAGS in Debian's sendmail.mc
        "PrivacyOptions": (
            "needmailhelo",
            "needexpnhelo",
            "needvrfyhelo",
            "restrictqrun",
            "restrictexpand",
            "nobodyreturn",
            "authwarnings",
        ),
        "MaxMessageSize": 0,  # 0: no limit ("250-SIZE" without a number)
        "MaxRecipientsPerMessage": 0,  # 0: no limit
        # The SASL mechanisms libsasl2-modules provides that Sendmail's default
        # AuthMechanisms lists; none of them has a user to log in as.
        "AuthMechanisms": ("DIGEST-MD5", "CRAM-MD5"),
        "SmtpGreetingMessage": DEBIAN_GREETING,
        # Where host names come from (/etc/mail/service.switch's "hosts" line, as
        # nsswitch.conf says on Debian): DNS (the lab zone, as on the recording
        # machine) then /etc/hosts.  ("files",): no DNS at all.
        "hosts": ("dns", "files"),
        # FEATURE(accept_unresolvable_domains): take senders whose domain is not in
        # DNS (Debian's sendmail.mc does not: "Domain of sender address ... does not exist").
        "accept_unresolvable_domains": False,
    }
)
PRIVACY_OPTIONS = (
    "public",
    "needmailhelo",
    "needexpnhelo",
    "needvrfyhelo",
    "noexpn",
    "novrfy",
    "restrictexpand",
    "restrictmailq",
    "restrictqrun",
    "noetrn",
    "noverb",
    "authwarnings",
    "noreceipts",
    "nobodyreturn",
    "goaway",
    "noactualrecipient",
)
# A message size the lab keeps at most when Sendmail has no limit (MaxMessageSize=0).
LAB_SIZE_CAP = 100 * 1024 * 1024
NO_LIMIT = 10**9  # Sendmail has no hard error limit and, stock, no recipient limit


def derive(
    settings: Mapping[str, Any], switches: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sendmail's options as the lab's shared switches: needmailhelo is
    smtpd_helo_required, MaxMessageSize is message_size_limit (and the other way round
    when only the lab's name was given), MaxRecipientsPerMessage is max_recipients."""
    unknown = [v for v in settings["PrivacyOptions"] if v.lower() not in PRIVACY_OPTIONS]
    if unknown:
        raise LabValueError(
            f"PrivacyOptions: {', '.join(unknown)} unknown; Sendmail knows {', '.join(PRIVACY_OPTIONS)}"
        )
    changes: dict[str, Any] = {}
    size = int(settings["MaxMessageSize"])
    if "message_size_limit" in switches and "MaxMessageSize" not in switches:
        size = changes["MaxMessageSize"] = int(switches["message_size_limit"])
    flags = {v.lower() for v in settings["PrivacyOptions"]}
    rcpts = int(settings["MaxRecipientsPerMessage"])
    policy = {
        "smtpd_helo_required": bool(flags & {"needmailhelo", "goaway"}),
        "message_size_limit": size or LAB_SIZE_CAP,
        "max_recipients": rcpts or NO_LIMIT,
    }
    return changes, policy


# The old lab recording (tests/recordings/sendmail-8.17.json): upstream's cf files,
# FEATURE(accept_unresolvable_domains) and no DNS at all, confAUTH_MECHANISMS empty,
# the plain greeting, a 1 MB limit.  The lab's other switches as recorded_policy says.
PLATFORM_POLICY: Mapping[str, Any] = MappingProxyType(
    {
        **recorded_policy(SYNTAX),
        "SmtpGreetingMessage": "$j Sendmail $v/$v; $b",
        "AuthMechanisms": (),
        "hosts": ("files",),
        "accept_unresolvable_domains": True,
    }
)


register(
    Persona(
        name="sendmail",
        software="Sendmail 8.17 (Debian)",
        about="A stock Debian Sendmail 8.17: greets the client by its reverse-DNS name, "
        "wants HELO before MAIL and VRFY, checks that the sender's domain exists, "
        "refuses clients that pipeline before its replies.",
        replies=MappingProxyType(SENDMAIL),
        ehlo_keywords=(
            "ENHANCEDSTATUSCODES",
            "PIPELINING",
            "EXPN",
            "VERB",
            "8BITMIME",
            "SIZE",
            "DSN",
            "ETRN",
            "AUTH",  # DIGEST-MD5 CRAM-MD5 (AuthMechanisms), or the lab's with users
            "STARTTLS",  # where Sendmail lists it, when it is offered (the lab's tls=True)
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
        helo_required_default=True,  # PrivacyOptions=needmailhelo (derive keeps it in step)
        unknown_command_limit=25,  # MAXBADCOMMANDS
        platform_policy=PLATFORM_POLICY,
        no_argument_verbs=(),
        date_format="{d:%a}, {d.day} {d:%b %Y %H:%M:%S} GMT",
        queue_id_format="##############",
        queue_id_alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        settings=STOCK_SETTINGS,
        policy_defaults=MappingProxyType(
            {
                # local-host-names (class w beside the host's own names)
                "mydestination": ("localhost", "mx.lab.example.org", "lab.example.org"),
                "mynetworks": ("127.0.0.1/32",),  # Connect:127.0.0.1 RELAY
                "hard_error_limit": NO_LIMIT,  # only unknown commands are counted (25)
                "text_line_limit": NO_LIMIT,  # body lines of any length are taken
                "command_line_limit": 2048,  # MAXLINE; past it, the 421 above
            }
        ),
        grammar=SendmailGrammar,
        derive=derive,
        lab_dns=True,
    )
)
