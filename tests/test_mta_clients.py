"""Real MTAs deliver through every persona: Debian's Postfix 3.7 and Exim 4.96 as clients.

A persona advertises what its real program advertises (PIPELINING, SIZE,
8BITMIME, CHUNKING, ...), and real clients use what is advertised: Exim's
smtp transport sends BDAT (RFC 3030) to a server that offers CHUNKING, both
pipeline MAIL/RCPT/DATA (RFC 2920) and send SIZE= (RFC 1870).  Here each MTA,
in its stock Debian client configuration (tests/mta_clients.py), delivers one
message through each persona under the lab's default policy, and the message
must arrive byte for byte: the same text after the trace header the client
adds, the same envelope.  The message is built to trip a careless server or
client: lone dots and lines starting with a dot (RFC 5321 §4.5.2), a 998-octet
line (§4.5.3.1.6), 8-bit UTF-8 text, lines that look like SMTP commands, a few
hundred lines in all.

The same clients then use the other extensions a persona offers: STARTTLS
(RFC 3207, Debian's opportunistic client TLS), SMTPUTF8 (RFC 6531, a UTF-8
mailbox) and DSN (RFC 3461, Postfix's sendmail -N/-R/-V).  Which extensions a
persona offers is read from its EHLO reply, so these tests follow the personas.

Both MTAs start once per module (Postfix takes about two seconds) and serve
two lab servers per persona (without and with STARTTLS), all started first;
they need root, as in CI.
"""

from __future__ import annotations

import os
import re
import smtplib
import uuid

import pytest
from conftest import NO_SKIP
from mta_clients import CLIENT_DOMAIN, EximClient, PostfixClient, Unavailable

from labsmtp import LabServer, get_persona, persona_names
from labsmtp.lab.dsn import read_dsn

PERSONAS = persona_names()
RECIPIENT = "postmaster@lab.example.org"  # accepted from 127.0.0.1 by the default policy
UTF8_RECIPIENT = "pöstmaster@lab.example.org"  # needs SMTPUTF8 (RFC 6531 §3.2)
MTAS = ["postfix", "exim"]


def distinctive_message(tag: str, recipient: str = RECIPIENT) -> bytes:
    """A message as a local program submits it (LF line ends), unique per test."""
    long_line = "998 octets, as RFC 5321 §4.5.3.1.6 allows (ünïcödé counts in octets): "
    long_line += "x" * (998 - len(long_line.encode()))
    assert len(long_line.encode()) == 998
    lines = [
        "From: Ada Lovelace <ada@client.example.org>",
        f"To: {recipient}",
        f"Subject: {tag}: dots, a long line and 8-bit text",
        "Date: Mon, 30 Nov 2026 10:00:00 +0000",
        f"Message-ID: <{tag}.{uuid.uuid4().hex}@{CLIENT_DOMAIN}>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        ".",  # alone, this ends the data unless the client dot-stuffs it
        "..two dots",
        ". a dot and a space",
        "",
        "Grüße aus Zürich – 8-bit text: ñ ø € 日本語 🙂",
        long_line,
        "From the start of a line (mbox would quote this; SMTP must not)",
        "trailing spaces   ",
        "\ta tab first",
        "MAIL FROM:<smuggled@example.net>",
        "RSET",
        "QUIT",
    ]
    lines += [f"line {n:03d}: {'the quick brown fox ' * (n % 4)}ü{n}" for n in range(1, 301)]
    lines += [".", "the end"]
    return ("\n".join(lines) + "\n").encode()


def split_trace(content: bytes) -> tuple[list[bytes], bytes]:
    """The leading Received: fields (with their folded lines), and the rest of the content."""
    lines = content.split(b"\r\n")
    trace: list[bytes] = []
    while lines and (
        lines[0].lower().startswith(b"received:") or trace and lines[0][:1] in (b" ", b"\t")
    ):
        if lines[0][:1] in (b" ", b"\t"):
            trace[-1] += b"\r\n" + lines.pop(0)
        else:
            trace.append(lines.pop(0))
    return trace, b"\r\n".join(lines)


def _unavailable(exc: Exception):
    if NO_SKIP:
        pytest.fail(str(exc))
    pytest.skip(str(exc))


@pytest.fixture(scope="module")
def lab_servers():
    """Per persona, a lab server without and one with STARTTLS: default policy, free ports.

    The one with STARTTLS is the stock persona where the stock program offers it
    (Persona.stock_tls), else the persona with tls=True."""
    servers = {}
    try:
        for persona in PERSONAS:
            for tls in (False, True):
                stock = tls and get_persona(persona).stock_tls
                settings = get_persona(persona).settings
                users = {}  # a mailbox for the UTF-8 recipient where the program checks users
                if "local_recipient_maps" in settings:
                    local = UTF8_RECIPIENT.split("@")[0]
                    users["local_recipient_maps"] = (*settings["local_recipient_maps"], local)
                servers[persona, tls] = LabServer(
                    persona=persona,
                    **({} if stock else {"tls": tls}),
                    **users,
                    name=f"mta-clients-{persona}-{'tls' if tls else 'plain'}-{os.getpid()}",
                ).start()
                assert servers[persona, tls].tls is tls
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def offered(lab_servers) -> dict[str, set[str]]:
    """The EHLO keywords each persona's plain server offers, as smtplib reads them."""
    keywords = {}
    for persona in PERSONAS:
        server = lab_servers[persona, False]
        with smtplib.SMTP(server.host, server.port, local_hostname="probe.example.org") as smtp:
            smtp.ehlo()
            keywords[persona] = set(smtp.esmtp_features)
    return keywords


@pytest.fixture(scope="module")
def postfix(lab_servers):
    try:
        client = PostfixClient(ports=[s.port for s in lab_servers.values()]).start()
    except Unavailable as exc:
        _unavailable(exc)
    yield client
    client.close()


@pytest.fixture(scope="module")
def exim():
    try:
        client = EximClient().start()
    except Unavailable as exc:
        _unavailable(exc)
    yield client
    client.close()


def deliver(client, server: LabServer, tag: str, recipient: str = RECIPIENT, **kw):
    """Empty the server's mailbox and transcript, then have ``client`` deliver one message."""
    server.mailbox.clear()
    server.outbox.clear()
    server.transcript.clear()
    message = distinctive_message(tag, recipient)
    return message, client.deliver(server.port, message, recipients=[recipient], **kw)


def sent(server: LabServer, prefix: str) -> list:
    """The lines the client sent that start with ``prefix`` (message text included)."""
    return [
        ln
        for ln in server.transcript.lines()
        if ln.direction == "client" and ln.text.startswith(prefix)
    ]


def assert_arrived_intact(server: LabServer, result, message: bytes, recipient: str) -> None:
    """Delivered, stored once, right envelope, and the text byte for byte after the trace."""
    dialogue = server.transcript.to_text()
    assert result.delivered, f"{result}\n--- the lab server's side ---\n{dialogue}"
    assert len(server.mailbox) == 1, dialogue
    stored = server.mailbox.last()
    assert (stored.helo, stored.mail_from, stored.rcpt_tos) == (
        CLIENT_DOMAIN,
        result.sender,
        (recipient,),
    )
    # The 250 the MTA logged is the reply that stored this message.
    assert stored.queue_id in result.detail
    # What the client sent: its own Received: field on top of the message, byte for byte.
    trace, text = split_trace(stored.sent)
    assert len(trace) == 1 and re.match(rb"Received: .*by client\.example\.org", trace[0], re.S), (
        trace
    )
    assert text == message.replace(b"\n", b"\r\n")
    # As stored: the lab server's own Received: field (RFC 5321 §4.4) above the client's,
    # and the body untouched.
    head, _, body = stored.content.partition(b"\r\n\r\n")
    assert body == stored.sent.partition(b"\r\n\r\n")[2]
    ours = head.find(b"by " + server.hostname.encode())
    assert 0 <= ours < head.find(b"by " + CLIENT_DOMAIN.encode()), head.decode(errors="replace")


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("mta", MTAS)
def test_real_mta_delivers_the_message_intact(mta, persona, lab_servers, offered, request):
    server = lab_servers[persona, False]
    message, result = deliver(request.getfixturevalue(mta), server, f"{mta}-to-{persona}")
    assert_arrived_intact(server, result, message, RECIPIENT)
    # Exim sends BDAT (RFC 3030) wherever CHUNKING is offered, DATA elsewhere; Postfix's
    # client always sends DATA.
    chunked = mta == "exim" and "chunking" in offered[persona]
    assert bool(sent(server, "BDAT ")) == chunked
    assert bool(sent(server, "DATA")) == (not chunked)


# clamsmtpd 1.10 cannot relay TLS: it answers STARTTLS 502, so a client delivers in
# clear text (test_real_mta_delivers_the_message_intact covers it).
@pytest.mark.parametrize("persona", [p for p in PERSONAS if get_persona(p).relay is None])
@pytest.mark.parametrize("mta", MTAS)
def test_real_mta_delivers_inside_starttls(mta, persona, lab_servers, request):
    # Debian's clients try STARTTLS whenever it is offered and do not verify the
    # certificate (opportunistic TLS, RFC 7435), so the lab's own certificate does.
    server = lab_servers[persona, True]
    message, result = deliver(request.getfixturevalue(mta), server, f"{mta}-to-{persona}-tls")
    assert_arrived_intact(server, result, message, RECIPIENT)
    mail = sent(server, f"MAIL FROM:<{result.sender}>")
    assert sent(server, "STARTTLS") and mail and all(ln.tls for ln in mail)


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("mta", MTAS)
def test_utf8_mailbox_arrives_only_where_smtputf8_is_offered(
    mta, persona, lab_servers, offered, request
):
    server = lab_servers[persona, False]
    message, result = deliver(
        request.getfixturevalue(mta), server, f"{mta}-to-{persona}-utf8", recipient=UTF8_RECIPIENT
    )
    if "smtputf8" in offered[persona]:
        assert_arrived_intact(server, result, message, UTF8_RECIPIENT)
        [mail] = sent(server, f"MAIL FROM:<{result.sender}>")
        assert " SMTPUTF8" in mail.text.upper(), mail.text
    else:
        # Without SMTPUTF8 no client may send a UTF-8 mailbox (RFC 6531 §3.2): Postfix
        # bounces the message, Exim converts the local part to ASCII (xn--...).
        assert not sent(server, f"RCPT TO:<{UTF8_RECIPIENT}")
        assert all(r.isascii() for m in server.mailbox for r in m.rcpt_tos)


@pytest.mark.parametrize("persona", PERSONAS)
def test_postfix_passes_dsn_requests_where_dsn_is_offered(persona, lab_servers, offered, postfix):
    server = lab_servers[persona, False]
    envid = f"lab-dsn-{uuid.uuid4().hex[:8]}"
    message, result = deliver(
        postfix,
        server,
        f"postfix-to-{persona}-dsn",
        options=["-N", "success,delay,failure", "-R", "hdrs", "-V", envid],
    )
    assert_arrived_intact(server, result, message, RECIPIENT)
    [mail], [rcpt] = sent(server, f"MAIL FROM:<{result.sender}>"), sent(server, "RCPT TO:")
    dsn = "dsn" in offered[persona]  # RFC 3461 §4: the parameters only where DSN is offered
    assert (f" ENVID={envid}" in mail.text and " RET=HDRS" in mail.text) == dsn, mail.text
    assert (
        " NOTIFY=SUCCESS,FAILURE,DELAY" in rcpt.text and f" ORCPT=rfc822;{RECIPIENT}" in rcpt.text
    ) == dsn, rcpt.text
    # The lab made final delivery: it owes the sender a "delivered" DSN (RFC 3461 §6.2).
    # The sender's domain is not the lab's, so the notice waits in the outbox.
    stored = server.mailbox.last()
    assert stored.dsn.envid == (envid if dsn else None)
    notices = [m for m in server.outbox if m.rcpt_tos == (result.sender,)]
    if not dsn:
        assert not notices
        return
    [notice] = notices
    report = read_dsn(notice)
    assert notice.mail_from == "" and report.per_message["Original-Envelope-Id"] == envid
    [rcpt_block] = report.recipients
    assert rcpt_block["Action"] == "delivered" and rcpt_block["Status"] == "2.0.0"
    assert rcpt_block["Original-Recipient"] == f"rfc822;{RECIPIENT}"
    assert report.returned == "headers"  # RET=HDRS
