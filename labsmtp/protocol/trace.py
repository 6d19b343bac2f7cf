"""Trace fields: the ``Received:`` line a server prepends and the ``Return-Path:`` of delivery.

RFC 5321 §4.4: a server that accepts a message MUST insert a time stamp line
(``Received:``) at the top of it, recording the client's EHLO/HELO name, the
address the connection came from (and its reverse name), itself, the protocol,
an id and the date; it MUST NOT change the ones already there.  The server that
makes final delivery adds ``Return-Path:`` with the envelope sender (§4.4,
RFC 5322 §3.6.7).  The protocol keyword after ``with`` is RFC 3848's: SMTP for
HELO, ESMTP for EHLO, plus S after STARTTLS and A after AUTH.

Each real program words the line its own way.  ``received()`` reproduces what
was recorded from the real programs on loopback (``tests/recordings/trace/``,
made by ``record_trace.sh``; ``tests/test_trace.py`` checks every recorded line):

- postfix    Postfix 3.7: ``from HELO (NAME [IP])``, NAME the forward-confirmed
             reverse name or ``unknown``; TLS and SASL details only with
             smtpd_tls_received_header / smtpd_sasl_authenticated_header;
             ``for <rcpt>`` only for a single recipient.
- exim       Exim 4.96's default received_header_text: ``from NAME ([IP] helo=HELO)``
             or ``from [IP] (helo=HELO)``; the HELO is left out when it equals the
             name or is the client's own address literal.
- sendmail   Sendmail 8.17's stock cf: ``from HELO (PTR [IP] (may be forged))``.
- opensmtpd  OpenSMTPD 6.8: ``from HELO (PTR [IP])``, PTR even when unconfirmed,
             ``<unknown>`` when there is none; ``for`` names the *last RCPT
             given*, accepted or not.  Its TLS clause is from its source
             (smtp_session.c): Debian 12's build cannot complete STARTTLS.
- clamsmtpd  what the real chain writes: clamsmtpd adds no Received of its own;
             the Postfix behind it records the client's HELO name but sees the
             proxy's address (localhost [127.0.0.1]), and no TLS on that hop.
- exchange   NOT RECORDED (cannot run here; Microsoft documents no grammar):
             the form Exchange 2013-2019 front ends write, checked against
             published Exchange headers (``from HELO (IP) by SERVER (IP) with
             Microsoft SMTP Server ... id 15.x via Frontend Transport``), folded
             at 78 columns; no RFC 3848 keyword, no reverse name, no ``for``.
- generic    RFC 5321 §4.4's grammar (Stamp, From-domain, By-domain, With, ID,
             For) plus the ``tls`` clause RFC 8314 registered (the IANA suite name).

Pure functions of the facts they are given (no clock, no DNS): the session
passes what it knows.  Folded lines are joined with CRLF (RFC 5322 §2.2.3).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

PERSONAS = ("generic", "postfix", "exim", "sendmail", "opensmtpd", "clamsmtpd", "exchange")
CRLF = "\r\n"

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# OpenSSL's names of common TLS 1.2 suites -> the IANA names (RFC 8314's "tls" clause and
# Exim's $tls_in_cipher_std use these).  TLS 1.3 suites have one name in both.
_IANA = {
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "DHE-RSA-AES256-GCM-SHA384": "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "DHE-RSA-AES128-GCM-SHA256": "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
}


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """The TLS session a message came over, as ``ssl.SSLObject`` reports it."""

    version: str  # SSLObject.version(): "TLSv1.3", "TLSv1.2"
    cipher: str  # SSLObject.cipher()[0], OpenSSL's name: "TLS_AES_256_GCM_SHA384"
    bits: int  # SSLObject.cipher()[2]
    # Postfix's TLS 1.3 extra (smtpd_tls_received_header), which Python's ssl
    # cannot tell: "X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256".
    key_exchange: str | None = None


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """What the server knows when it accepts a message: the input of ``received()``."""

    helo_verb: str | None  # "HELO", "EHLO", or None when the client sent neither
    helo_name: str | None  # the HELO/EHLO argument exactly as sent
    client_ip: str  # the address the TCP connection came from
    client_ptr: str | None  # the reverse (PTR) name of client_ip, None if it has none
    client_ptr_confirmed: bool  # that name resolves back to client_ip (FCrDNS)
    server_name: str  # the server's own host name
    queue_id: str  # the id given in the 250 reply to the final dot
    recipients: tuple[str, ...]  # the accepted RCPT TO addresses, in order
    sender: str  # the MAIL FROM reverse-path, "" for <>
    date: _dt.datetime  # when the message was accepted, timezone-aware
    tls: TlsInfo | None = None  # STARTTLS was completed
    auth_user: str | None = None  # AUTH succeeded as this user
    last_rcpt: str | None = None  # the last RCPT TO argument, accepted or not (OpenSMTPD)
    server_ip: str | None = None  # the address the server was reached at (Exchange)

    def __post_init__(self) -> None:
        if self.date.tzinfo is None or self.date.utcoffset() is None:
            raise ValueError("TraceFacts.date must be timezone-aware (e.g. datetime.now(UTC))")


@dataclass(frozen=True, slots=True)
class Trace:
    """The fields a persona adds to one message: above it on receipt, on delivery, at the end."""

    received: str  # prepended when the message is accepted (§4.4)
    delivery: tuple[str, ...] = ()  # prepended at final delivery, Return-Path first
    appended: tuple[str, ...] = ()  # added after the last header (clamsmtpd)


def protocol_keyword(helo_verb: str | None, tls: bool, auth: bool) -> str:
    """RFC 3848's ``with`` keyword: SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA."""
    if (helo_verb or "").upper() != "EHLO":
        return "SMTP"  # STARTTLS and AUTH are extensions: they need EHLO
    return "ESMTP" + ("S" if tls else "") + ("A" if auth else "")


def iana_cipher(cipher: str) -> str:
    """The IANA name of a TLS cipher suite given by its OpenSSL name (unknown names unchanged)."""
    return _IANA.get(cipher, cipher)


# ---------------------------------------------------------------- dates


def _offset(date: _dt.datetime) -> str:
    minutes = int((date.utcoffset() or _dt.timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _date(date: _dt.datetime, *, pad_day: str, zone: str) -> str:
    """RFC 5322 date-time in one program's spelling.

    pad_day: "0" (Exim: 03), " " (Postfix's %e: " 3") or "" (Sendmail, OpenSMTPD,
    Exchange: 3).  zone: "offset" (+0000), "offset+name" (+0000 (UTC)) or
    "sendmail" (GMT for a zero offset, else +0100 (CET)).
    """
    # The text changes once a second; a busy server stamps many messages in one.
    key = (date.replace(microsecond=0), date.tzname(), date.utcoffset(), pad_day, zone)
    text = _last_date.get(key)
    if text is None:
        if len(_last_date) >= 64:
            _last_date.clear()
        text = _last_date[key] = _format_date(date, pad_day, zone)
    return text


_last_date: dict[tuple[object, ...], str] = {}


def _format_date(date: _dt.datetime, pad_day: str, zone: str) -> str:
    day = {"0": f"{date.day:02d}", " ": f"{date.day:>2}"}.get(pad_day, str(date.day))
    text = f"{_DAYS[date.weekday()]}, {day} {_MONTHS[date.month - 1]} {date.year} {date:%H:%M:%S}"
    name = date.tzname() or ""
    if zone == "sendmail" and not date.utcoffset():
        return f"{text} GMT"
    if zone in ("offset+name", "sendmail") and name:
        return f"{text} {_offset(date)} ({name})"
    return f"{text} {_offset(date)}"


# ------------------------------------------------------- the personas


def _postfix(f: TraceFacts, o: _Options) -> list[str]:
    # smtpd.c: "from %s (%s [%s])" with helo_name or client name, then the name.
    name = f.client_ptr if (f.client_ptr and f.client_ptr_confirmed) else "unknown"
    lines = [f"Received: from {f.helo_name or name} ({name} [{f.client_ip}])"]
    if f.tls and o.tls_details:
        t = f.tls
        head = f"\t(using {t.version} with cipher {t.cipher} ({t.bits}/{t.bits} bits)"
        if t.key_exchange:
            lines += [head, f"\t key-exchange {t.key_exchange})"]
        else:
            lines.append(head + ")")
        lines.append("\t(No client certificate requested)")
    if f.auth_user and o.auth_details:
        lines.append(f"\t(Authenticated sender: {f.auth_user})")
    proto = protocol_keyword(f.helo_verb, f.tls is not None, f.auth_user is not None)
    by = f"\tby {f.server_name} (Postfix) with {proto} id {f.queue_id}"
    when = _date(f.date, pad_day=" ", zone="offset+name")
    if len(f.recipients) == 1:  # more would reveal Bcc recipients (RFC 5321 §7.2)
        lines += [by, f"\tfor <{f.recipients[0]}>; {when}"]
    else:
        lines += [by + ";", f"\t{when}"]
    return lines


def _exim(f: TraceFacts, o: _Options) -> list[str]:
    literal = f"[{f.client_ip}]"
    name = f.client_ptr if (f.client_ptr and f.client_ptr_confirmed) else None
    helo = f.helo_name
    # host.c: the HELO name is not repeated when it is the verified host name or
    # the client's own address literal.
    if helo and (helo.lower() == literal.lower() or (name and helo.lower() == name.lower())):
        helo = None
    if name:
        host = f"{name} ({literal}{' helo=' + helo if helo else ''})"
    else:
        host = f"{literal}{' (helo=' + helo + ')' if helo else ''}"
    proto = protocol_keyword(f.helo_verb, f.tls is not None, f.auth_user is not None).lower()
    version = o.version or "4.96"
    lines = [f"Received: from {host}"]
    if f.tls:
        # default received_header_text: "with $received_protocol " then
        # " ($tls_in_ver)" -- hence two spaces -- and " tls $tls_in_cipher_std\n\t".
        lines += [
            f"\tby {f.server_name} with {proto}  ({f.tls.version.replace('v', '')})"
            f" tls {_exim_cipher(f.tls)}",
            f"\t(Exim {version})",
        ]
    else:
        lines.append(f"\tby {f.server_name} with {proto} (Exim {version})")
    if f.sender:
        lines.append(f"\t(envelope-from <{f.sender}>)")
    when = _date(f.date, pad_day="0", zone="offset")
    if len(f.recipients) == 1:
        lines += [f"\tid {f.queue_id}", f"\tfor {f.recipients[0]};", f"\t{when}"]
    else:
        lines += [f"\tid {f.queue_id};", f"\t{when}"]
    return lines


def _exim_cipher(t: TlsInfo) -> str:
    # Exim 4.96 with GnuTLS names a TLS 1.3 session by key exchange, cipher and
    # MAC as if it were TLS 1.2 (recorded: TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    # for TLS_AES_256_GCM_SHA384, with an RSA certificate).
    if t.cipher.startswith("TLS_") and "_WITH_" not in t.cipher:
        return "TLS_ECDHE_RSA_WITH_" + t.cipher[len("TLS_") :]
    return iana_cipher(t.cipher)


def _sendmail(f: TraceFacts, o: _Options) -> list[str]:
    # cf/m4/proto.m4 confRECEIVED_HEADER:
    #   $?sfrom $s $.$?_($?s$|from $.$_)
    #   $.$?{auth_type}(authenticated$?{auth_ssf} bits=${auth_ssf}$.)
    #   $.by $j ($v/$Z)$?r with $r$. id $i$?{tls_version}
    #   (version=${tls_version} cipher=${cipher} bits=${cipher_bits} verify=${verify})$.$?u
    #   for $u; $|;
    #   $.$b
    peer = f"[{f.client_ip}]"
    if f.client_ptr:
        peer = f"{f.client_ptr} {peer}" + ("" if f.client_ptr_confirmed else " (may be forged)")
    first = f"Received: from {f.helo_name} ({peer})" if f.helo_name else f"Received: (from {peer})"
    lines = [first]
    if f.auth_user:
        lines.append("\t(authenticated bits=0)")  # PLAIN and LOGIN: no security layer
    proto = protocol_keyword(f.helo_verb, f.tls is not None, f.auth_user is not None)
    version = o.version or "8.17.1.9/8.17.1.9"
    lines.append(f"\tby {f.server_name} ({version}) with {proto} id {f.queue_id}")
    if f.tls:
        t = f.tls
        lines.append(f"\t(version={t.version} cipher={t.cipher} bits={t.bits} verify=NO)")
    when = _date(f.date, pad_day="", zone="sendmail")
    if len(f.recipients) == 1:
        lines.append(f"\tfor <{f.recipients[0]}>; {when}")
    else:
        lines[-1] += ";"
        lines.append(f"\t{when}")
    return lines


def _opensmtpd(f: TraceFacts, o: _Options) -> list[str]:
    # smtp_session.c smtp_message_begin()
    rdns = f.client_ptr or "<unknown>"
    proto = protocol_keyword(f.helo_verb, f.tls is not None, f.auth_user is not None)
    by = f"\tby {f.server_name} (OpenSMTPD) with {proto} id {f.queue_id}"
    if f.tls:
        by += f" ({f.tls.version}:{f.tls.cipher}:{f.tls.bits}:NO)"
        if o.auth_details:  # the listener's "received-auth" option
            by += " auth=yes user=" + f.auth_user if f.auth_user else " auth=no"
    lines = [f"Received: from {f.helo_name} ({rdns} [{f.client_ip}])", by]
    if len(f.recipients) == 1:
        # tx->evp.rcpt is the envelope of the last RCPT command, even a refused one
        lines.append(f"\tfor <{f.last_rcpt or f.recipients[0]}>;")
    else:
        lines[-1] += ";"
    lines.append("\t" + _date(f.date, pad_day="", zone="offset+name"))
    return lines


def _clamsmtpd(f: TraceFacts, o: _Options) -> list[str]:
    # The proxy passes the client's HELO on; the Postfix behind it sees the
    # proxy's own connection (XClient off, the default) and no TLS on that hop.
    backend = TraceFacts(
        helo_verb=f.helo_verb,
        helo_name=f.helo_name,
        client_ip="127.0.0.1",
        client_ptr="localhost",
        client_ptr_confirmed=True,
        server_name=f.server_name,
        queue_id=f.queue_id,
        recipients=f.recipients,
        sender=f.sender,
        date=f.date,
        tls=None,
        auth_user=f.auth_user,
    )
    return _postfix(backend, o)


def _exchange(f: TraceFacts, o: _Options) -> list[str]:
    # Not recorded: the form of Exchange 2013-2019 front-end Received fields.
    words = ["Received:", "from", f.helo_name or f"[{f.client_ip}]", f"({f.client_ip})"]
    words += ["by", f.server_name] + ([f"({f.server_ip})"] if f.server_ip else [])
    words += ["with", "Microsoft", "SMTP", "Server"]
    if f.tls:
        version = f.tls.version.replace("v", "").replace(".", "_")
        words += [f"(version={version},", f"cipher={iana_cipher(f.tls.cipher)})"]
    words += ["id", o.version or "15.2.1544.4", "via", "Frontend", "Transport;"]
    words += _date(f.date, pad_day="", zone="offset").split(" ")
    return _fold_words(words, 78)


def _generic(f: TraceFacts, o: _Options) -> list[str]:
    # RFC 5321 §4.4: From-domain = "FROM" FWS Extended-Domain, where
    # Extended-Domain = Domain FWS "(" TCP-info ")" and TCP-info = [Domain FWS]
    # address-literal; only a forward-confirmed reverse name is given as Domain.
    literal = f"[{f.client_ip}]"
    name = f.client_ptr if (f.client_ptr and f.client_ptr_confirmed) else None
    tcp_info = f"{name} {literal}" if name else literal
    proto = protocol_keyword(f.helo_verb, f.tls is not None, f.auth_user is not None)
    lines = [
        f"Received: from {f.helo_name or literal} ({tcp_info})",
        f"\tby {f.server_name} with {proto} id {f.queue_id}",
    ]
    if len(f.recipients) == 1:
        lines.append(f"\tfor <{f.recipients[0]}>")
    if f.tls:  # RFC 8314: the "tls" Additional-Registered-Clause, with the IANA name
        lines.append(f"\ttls {iana_cipher(f.tls.cipher)}")
    lines[-1] += ";"
    lines.append("\t" + _date(f.date, pad_day="", zone="offset"))
    return lines


def _fold_words(words: Sequence[str], width: int) -> list[str]:
    """Greedy folding: a line grows word by word up to ``width`` characters."""
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > width:
            lines.append(" " + word)
        else:
            lines[-1] += " " + word
    return lines


@dataclass(frozen=True, slots=True)
class _Options:
    version: str | None = None
    tls_details: bool = False
    auth_details: bool = False


_RECEIVED: dict[str, Callable[[TraceFacts, _Options], list[str]]] = {
    "generic": _generic,
    "postfix": _postfix,
    "exim": _exim,
    "sendmail": _sendmail,
    "opensmtpd": _opensmtpd,
    "clamsmtpd": _clamsmtpd,
    "exchange": _exchange,
}


def _persona(persona: str) -> str:
    if persona not in _RECEIVED:
        raise ValueError(f"no trace format for persona {persona!r}; one of {', '.join(PERSONAS)}")
    return persona


def received(
    facts: TraceFacts,
    persona: str = "generic",
    *,
    version: str | None = None,
    tls_details: bool = False,
    auth_details: bool = False,
) -> str:
    """The ``Received:`` field ``persona`` writes for ``facts``, folded with CRLF, no final CRLF.

    version: the software version written by Exim ("4.96"), Sendmail
    ("8.17.1.9/8.17.1.9") and Exchange ("15.2.1544.4"); the recorded one by default.
    tls_details / auth_details: Postfix's smtpd_tls_received_header and
    smtpd_sasl_authenticated_header (both "no" by default), OpenSMTPD's
    ``received-auth``; the other programs always write what they write.
    """
    options = _Options(version=version, tls_details=tls_details, auth_details=auth_details)
    return CRLF.join(_RECEIVED[_persona(persona)](facts, options))


def return_path(sender: str, persona: str = "generic") -> str | None:
    """The ``Return-Path:`` field written at final delivery (None: the persona writes none)."""
    persona = _persona(persona)
    if persona == "exim":
        return f"Return-path: <{sender}>"  # Exim's own spelling
    if persona == "sendmail" and not sender:
        return "Return-Path: <MAILER-DAEMON>"
    if persona == "opensmtpd" and not sender:
        return None  # mda.c writes Return-Path only for a non-empty sender
    if persona == "exchange":
        return f"Return-Path: {sender}" if sender else "Return-Path: <>"  # not recorded
    return f"Return-Path: <{sender}>"


def delivery_fields(
    sender: str, recipient: str, persona: str = "generic", *, date: _dt.datetime | None = None
) -> tuple[str, ...]:
    """Every field ``persona`` prepends when it delivers one copy to ``recipient``, in order.

    Postfix's local/virtual delivery adds X-Original-To and Delivered-To, Exim's
    Debian transports Envelope-to and Delivery-date (needs ``date``), OpenSMTPD
    Delivered-To; Sendmail, Exchange and generic only Return-Path.
    """
    persona = _persona(persona)
    rp = return_path(sender, persona)
    fields = [rp] if rp else []
    if persona in ("postfix", "clamsmtpd"):
        fields += [f"X-Original-To: {recipient}", f"Delivered-To: {recipient}"]
    elif persona == "exim":
        if date is None:
            raise ValueError("Exim's Delivery-date needs the delivery date")
        fields += [
            f"Envelope-to: {recipient}",
            f"Delivery-date: {_date(date, pad_day='0', zone='offset')}",
        ]
    elif persona == "opensmtpd":
        fields.append(f"Delivered-To: {recipient}")
    return tuple(fields)


def appended_fields(persona: str) -> tuple[str, ...]:
    """Fields a persona adds after the message's last header (clamsmtpd's Header: setting)."""
    if _persona(persona) == "clamsmtpd":
        return ("X-Virus-Scanned: ClamAV using ClamSMTP",)
    return ()


def trace(
    facts: TraceFacts,
    persona: str = "generic",
    *,
    recipient: str | None = None,
    delivered: _dt.datetime | None = None,
    version: str | None = None,
    tls_details: bool = False,
    auth_details: bool = False,
) -> Trace:
    """All trace fields of one message: received(), delivery_fields(), appended_fields().

    recipient: whose copy is delivered (default: the first accepted one);
    delivered: when (default: facts.date).  The options are ``received()``'s.
    """
    rcpt = recipient or (facts.recipients[0] if facts.recipients else "")
    return Trace(
        received=received(
            facts, persona, version=version, tls_details=tls_details, auth_details=auth_details
        ),
        delivery=delivery_fields(facts.sender, rcpt, persona, date=delivered or facts.date),
        appended=appended_fields(persona),
    )


def prepend(content: bytes, fields: Iterable[str]) -> bytes:
    """``content`` (a message, CRLF line ends) with ``fields`` added on top, first field first."""
    head = "".join(f + CRLF for f in fields)
    return head.encode("utf-8") + content


def append_to_header(content: bytes, fields: Iterable[str]) -> bytes:
    """``content`` with ``fields`` added after its last header field (before the blank line)."""
    block = "".join(f + CRLF for f in fields).encode("utf-8")
    if not block or content.startswith(b"\r\n"):  # no header section: the fields start it
        return block + content
    end = content.find(b"\r\n\r\n")
    if end < 0:  # only a header section, no body
        return content + (b"" if content.endswith(b"\r\n") else b"\r\n") + block
    return content[: end + 2] + block + content[end + 2 :]


def stamp(content: bytes, fields: Trace) -> bytes:
    """The message as the persona stores it: delivery fields and Received: on top,
    appended fields after the last header; the fields already there stay as they are."""
    return prepend(append_to_header(content, fields.appended), (*fields.delivery, fields.received))
