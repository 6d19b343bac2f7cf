"""clamsmtpd 1.10, a filtering proxy, in front of Postfix 3.7; recorded on loopback."""

from __future__ import annotations

from types import MappingProxyType

from .base import Persona, register
from .postfix import POSTFIX, RECORDED_POLICY

# --- clamsmtpd 1.10 in front of Postfix 3.7 ------------------------------------------
# Recorded: tests/recordings/clamsmtpd-1.10.json.  clamsmtpd is a filtering proxy:
# it says the greeting, a successful HELO/EHLO (with the server's EHLO keywords,
# minus PIPELINING and CHUNKING, plus XFILTERED), DATA's 354 and STARTTLS's refusal
# itself; every other reply is the Postfix behind it, word for word.  Without
# XCLIENT, Postfix sees every client as clamsmtpd's own 127.0.0.1.
CLAMSMTPD = dict(
    POSTFIX,
    **{
        "greeting": "220 smtp.passthru",
        "helo_ok": "250 smtp.passthru",
        "ehlo_ok": "250 smtp.passthru",
        "data_go": "354 Start mail input; end with <CRLF>.<CRLF>",
        "starttls_not_offered": "502 Command not implemented",
        # clamsmtpd's own, at MaxConnections (smtppass.c's busy response)
        "too_many_connections": "421 Server busy, too many connections",
    },
)


register(
    Persona(
        name="clamsmtpd",
        software="clamsmtpd 1.10 in front of Postfix 3.7",
        about="clamsmtpd 1.10, a virus-filtering proxy, in front of Postfix 3.7, recorded "
        "with XClient off: HELO passes through; the proxy answers DATA with 354 before "
        "Postfix is asked.",
        replies=MappingProxyType(CLAMSMTPD),
        ehlo_keywords=(
            "SIZE {size}",
            "VRFY",
            "ETRN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "XFILTERED",
        ),
        source="tests/recordings/clamsmtpd-1.10.json",
        # clamsmtpd.conf: MaxConnections (64) and TimeOut (180 s), as recorded; the rest
        # are the Postfix behind it.
        policy_names=MappingProxyType(
            {"MaxConnections": "max_connections", "TimeOut": "idle_timeout"}
        ),
        limit_defaults=MappingProxyType({"max_connections": 64, "idle_timeout": 180.0}),
        requires_brackets=False,
        helo_required_default=False,  # Postfix's default; the recording turned it on
        sequence_variants=("data_spooled_first",),
        no_argument_verbs=("RSET",),  # DATA is clamsmtpd's; RSET goes to Postfix
        backend_client_ip="127.0.0.1",  # XClient: off
        platform_policy=RECORDED_POLICY,  # the Postfix behind it, as recorded
    )
)
