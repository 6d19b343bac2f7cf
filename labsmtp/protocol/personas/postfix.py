"""Postfix 3.7 (Debian 12), as its package configures itself: wording, settings, registration.

The persona is the stock program (``tests/recordings/stock/postfix.conf``): the
Debian postinst's main.cf plus the lab's settings (myhostname
mx.lab.example.org, mail domain lab.example.org, mynetworks 127.0.0.1/32).  Its
behaviour lives in ``postfix_grammar.py`` (how smtpd reads lines and addresses)
and ``postfix_checks.py`` (where its restrictions apply); checked against
``tests/recordings/generated/postfix.json`` and ``generated/variants/postfix-*.json``
by ``tests/persona_replay.py``.

``SETTINGS`` are Postfix's own parameters, under Postfix's names, with their stock
values: ``LabServer(persona="postfix", smtpd_delay_reject=False)`` changes one.
Postfix's other names for the lab's shared switches (``smtpd_recipient_limit``,
``smtpd_hard_error_limit``) are aliases of ``Policy`` fields; ``message_size_limit``,
``smtpd_helo_required``, ``smtpd_helo_restrictions``, ``mydestination`` and
``mynetworks`` are ``Policy`` fields already.
"""

from __future__ import annotations

from types import MappingProxyType

from .base import FQDN, Persona, recorded_policy, register
from .generic import GENERIC
from .postfix_checks import PostfixChecks
from .postfix_grammar import NON_LETTER, PostfixGrammar

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
        "starttls_already": "554 5.5.1 Error: TLS already active",
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
        # smtpd_client_restrictions = reject (and the lab's admission checks, in its words);
        # {client_name} is the forward-confirmed reverse name, or "unknown".
        "connection_refused": "554 5.7.1 <{client_name}[{client}]>: Client host rejected: "
        "Access denied",
        # smtpd.c after a refused client (smtpd_delay_reject = no): all but QUIT get 503.
        "access_denied": "503 5.7.0 Error: access denied for {client_name}[{client}]",
        "user_unknown": "550 5.1.1 <{addr}>: Recipient address rejected: "
        "User unknown in local recipient table",
        # Postfix's own replies, beyond the keys every persona words (postfix_grammar.py,
        # postfix_checks.py).
        "helo_bad_literal": "501 5.5.2 <{arg}>: Helo command rejected: invalid ip address",
        "relay_deferred": "454 4.7.1 <{addr}>: Relay access denied",  # defer_unauth_destination
        "rcpt_access_denied": "554 5.7.1 <{addr}>: Recipient address rejected: Access denied",
        "mail_bad_address": "501 5.1.7 Bad sender address syntax",
        "rcpt_bad_address": "501 5.1.3 Bad recipient address syntax",
        "size_syntax": "501 5.5.4 Bad message size syntax",
        "size_overflow": "552 5.3.4 Message size exceeds file system imposed limit",
        "auth_param_twice": "503 5.5.4 Error: multiple AUTH= options",
        "ret_syntax": "501 5.5.4 Bad RET parameter syntax",
        "envid_syntax": "501 5.5.4 Bad ENVID parameter syntax",
        "notify_syntax": "501 5.5.4 Error: Bad NOTIFY parameter syntax",
        "orcpt_syntax": "501 5.5.4 Error: Bad ORCPT parameter syntax",
        "forbidden_command": "221 2.7.0 Error: I can break rules, too. Goodbye.",
        "etrn_need_helo": "503 Error: send HELO/EHLO first",
        "etrn_in_transaction": "503 Error: MAIL transaction in progress",
        "etrn_syntax": "500 Syntax: ETRN domain",
        "etrn_invalid": "501 Error: invalid parameter syntax",
        "etrn_unavailable": "459 <{arg}>: service unavailable",
        "xclient_syntax": "501 5.5.4 Syntax: {arg} attribute=value...",
        "xclient_denied": "550 5.7.0 Error: insufficient authorization",
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

# Debian's postinst: $myhostname, the mail name, and the local names.
MYDESTINATION = ("mx.lab.example.org", "lab.example.org", "localhost.lab.example.org", "localhost")

# The accounts of a fresh Debian 12 (base-passwd, and the postfix user its postinst
# adds) and the alias its postinst writes (/etc/aliases: postmaster: root): the
# users local_recipient_maps (proxy:unix:passwd.byname $alias_maps) finds.
DEBIAN_USERS = (
    *("root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news"),
    *("uucp", "proxy", "www-data", "backup", "list", "irc", "_apt", "nobody", "postfix"),
    "postmaster",
)

# Postfix's own parameters with their stock Debian 12 values (postconf -d, and the
# postinst's main.cf: smtpd_relay_restrictions).  postfix_checks.py and
# postfix_grammar.py read them.
SETTINGS = MappingProxyType(
    {
        # HELO and client restrictions are applied at RCPT (and VRFY, ETRN).
        "smtpd_delay_reject": True,
        # MAIL FROM:a@b without <>, or with a phrase or comment: refused when yes.
        "strict_rfc821_envelopes": False,
        # Longer command lines are cut here and the rest dropped, not refused.
        "line_length_limit": 2048,
        # First words that end the session ("I can break rules, too"); the regexp
        # entry stands for any word that does not start with a letter.
        "smtpd_forbidden_commands": ("CONNECT", "GET", "POST", NON_LETTER),
        # permit_mynetworks, permit, reject (reject: 554 at connect, or at RCPT when delayed).
        "smtpd_client_restrictions": (),
        "smtpd_relay_restrictions": (
            "permit_mynetworks",
            "permit_sasl_authenticated",
            "defer_unauth_destination",
        ),
        # The users of the local domains; empty: every user is accepted (no check).
        "local_recipient_maps": DEBIAN_USERS,
        "recipient_delimiter": "+",
    }
)
RESTRICTION_NAMES = MappingProxyType(
    {
        "smtpd_client_restrictions": ("permit_mynetworks", "permit", "reject"),
        "smtpd_relay_restrictions": (
            "permit_mynetworks",
            "permit_sasl_authenticated",
            "permit_auth_destination",
            "reject_unauth_destination",
            "defer_unauth_destination",
            "permit",
            "reject",
        ),
    }
)

# The lab-configuration recording (record_postfix.sh, tests/recordings/postfix-lab.cf):
# smtpd_helo_required = yes, reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname,
# mydestination = $myhostname, lab.example.org, localhost, smtpd_delay_reject = no,
# smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination,
# local_recipient_maps = (empty), no TLS.
RECORDED_POLICY = MappingProxyType(
    {
        **recorded_policy(FQDN, ("mx.lab.example.org", "lab.example.org", "localhost")),
        "smtpd_delay_reject": False,
        "smtpd_relay_restrictions": ("permit_mynetworks", "reject_unauth_destination"),
        "local_recipient_maps": (),
        "tls": False,
    }
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


register(
    Persona(
        name="postfix",
        software="Postfix 3.7 (Debian)",
        about="Postfix 3.7 as Debian 12 installs it (smtpd_delay_reject = yes: HELO checks "
        "answered at RCPT; Debian's defer_unauth_destination: 454 for relaying; the stock "
        "accounts as local users; STARTTLS), checked against recordings of the real program.",
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
        source="tests/recordings/postfix-3.7.json",  # and generated/postfix.json
        requires_brackets=False,
        helo_required_default=False,
        # STARTTLS inside a transaction is fine (it resets it); EXPN and HELP do not exist.
        sequence_variants=("starttls_anytime", "chunks_discarded_after_refusal"),
        unsupported_verbs=("EXPN", "HELP"),
        stock_tls=True,  # smtpd_tls_security_level = may, with the snakeoil certificate
        tls_needs_new_helo=False,  # smtpd_helo_required = no holds after STARTTLS too
        policy_names=LIMITS,
        limit_defaults=MappingProxyType({"max_connections_per_client": 50}),
        waits_when_full=True,  # master(8): "service smtp has reached its process limit"
        refuses_empty_chunk=True,
        auth_asks_helo_first=True,  # smtpd_sasl_proto.c: smtpd_helo_required before SASL
        platform_policy=RECORDED_POLICY,
        settings=SETTINGS,
        setting_choices=RESTRICTION_NAMES,
        policy_defaults=MappingProxyType(
            {
                "mydestination": MYDESTINATION,
                # Long message lines are taken (cleanup splits them), not refused.
                "text_line_limit": 10_240_000,
            }
        ),
        grammar=PostfixGrammar,
        checks=PostfixChecks,
    )
)
