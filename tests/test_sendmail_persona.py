"""The sendmail persona on dialogues nobody recorded, predicted from Sendmail's rules.

tests/test_persona_replay.py holds the persona to the 600 generated dialogues and
the setting variants recorded from a real Sendmail 8.17.  Here are dialogues the
corpus does not contain (clients whose reverse DNS is forged or missing,
settings the variants did not switch, limits, counters), each expected reply
worked out from srvrsmtp.c, parseaddr.c and Debian's rulesets, the way
tests/recordings/behaviour/sendmail.md describes them.  In memory, with the lab
zone as the recording machine's DNS; one dialogue over a real socket.
"""

from __future__ import annotations

import smtplib

import pytest

from labsmtp import LabServer
from labsmtp.lab.dnszone import LabZone, zone_hooks
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas import get_persona

ZONE = zone_hooks(LabZone())


def sendmail(client: str = "127.0.0.1", **settings) -> SessionPair:
    return SessionPair("sendmail", client_ip=client, **ZONE, **settings)


def said(p: SessionPair, line: str | bytes) -> str:
    """The reply lines to one line, joined with " | "."""
    data = line if isinstance(line, bytes) else line.encode("latin-1") + b"\r\n"
    return " | ".join(ln for r in p.send(data) for ln in r.lines)


def test_a_client_whose_reverse_name_is_forged_or_missing():
    forged = sendmail("127.0.0.3")  # PTR mail.mismatch.example, which has no A record
    assert forged.greeting.lines[0].endswith(
        "logging access from: [127.0.0.3](FORGED)-mail.mismatch.example [127.0.0.3] (may be forged)"
    )
    assert said(forged, "HELO x") == (
        "250 mx.lab.example.org Hello mail.mismatch.example [127.0.0.3] (may be forged), "
        "pleased to meet you"
    )
    said(forged, "MAIL FROM:<a@mail.good.example>")
    assert said(forged, "RCPT TO:<x@elsewhere.example>") == (
        "550 5.7.1 <x@elsewhere.example>... Relaying denied. IP name possibly forged [127.0.0.3]"
    )
    nameless = sendmail("127.0.0.4")
    assert nameless.greeting.lines[0].endswith("logging access from: [127.0.0.4](FAIL)-[127.0.0.4]")
    said(nameless, "EHLO x"), said(nameless, "MAIL FROM:<a@mail.good.example>")
    assert said(nameless, "RCPT TO:<x@elsewhere.example>").endswith(
        "Relaying denied. IP name lookup failed [127.0.0.4]"
    )
    # a local recipient needs no relaying: the sender's domain is checked instead
    assert said(nameless, "RCPT TO:<root@lab.example.org>").startswith("250 2.1.5")


def test_local_users_are_debians_accounts_and_the_postmaster_alias():
    p = sendmail()
    said(p, "EHLO x"), said(p, "MAIL FROM:<a@mail.good.example>")
    assert said(p, "RCPT TO:<www-data+tag@mx>") == "250 2.1.5 <www-data+tag@mx>... Recipient ok"
    assert said(p, "RCPT TO:<alice@lab.example.org>").startswith("550 5.1.1 <alice@")
    # the same user twice (any case, any local name): the reply names the first form (one
    # queue entry); +detail makes another address (generated/beyond, b035-rcpt-to)
    assert said(p, "RCPT TO:<WWW-DATA+TAG@localhost>") == (
        "250 2.1.5 <www-data+tag@mx>... Recipient ok"
    )
    assert (
        said(p, "RCPT TO:<www-data@localhost>") == "250 2.1.5 <www-data@localhost>... Recipient ok"
    )
    assert said(p, "RCPT TO:<|/bin/true@lab.example.org>") == (
        "550 5.7.1 <|/bin/true@lab.example.org>... Cannot mail directly to programs"
    )
    assert said(p, "VRFY list") == "250 2.1.5 Mailing List Manager <list@mx.lab.example.org>"
    assert said(p, "VRFY alice") == "550 5.1.1 alice... User unknown"
    assert said(p, "VRFY bob@example.com") == "252 2.1.5 <bob@example.com>"
    assert said(p, "EXPN postmaster") == "250 2.1.5 root <root@mx.lab.example.org>"


def test_sender_checks_come_after_relaying_and_before_the_local_user():
    p = sendmail("127.0.0.2")
    said(p, "EHLO x")
    # user%host@here routes to host: that domain is the one that must exist
    said(p, "MAIL FROM:<u%nowhere.invalid@mx.lab.example.org>")
    assert said(p, "RCPT TO:<alice@lab.example.org>") == (
        "553 5.1.8 <alice@lab.example.org>... Domain of sender address "
        "u%nowhere.invalid@mx.lab.example.org does not exist"
    )
    assert said(p, "RCPT TO:<x@elsewhere.example>").endswith("... Relaying denied")
    assert said(p, "RCPT TO:<abuse@lab.example.org>").endswith("... User unknown")  # a friend
    said(p, "RSET"), said(p, "MAIL FROM:<reject@mail.good.example>")  # "reject@ REJECT"
    assert (
        said(p, "RCPT TO:<root@lab.example.org>")
        == "550 5.7.1 <root@lab.example.org>... Access denied"
    )
    said(p, "RSET"), said(p, "MAIL FROM:<joe@localhost>")  # only a local client may say so
    assert said(p, "RCPT TO:<root@lab.example.org>").endswith(
        "Real domain name required for sender address"
    )


def test_privacy_options_nobody_recorded():
    p = sendmail(PrivacyOptions="noexpn,noetrn,noreceipts")
    ehlo = said(p, "EHLO x").split(" | ")
    assert not {"250-EXPN", "250-VERB", "250-DSN", "250-ETRN"} & set(ehlo)
    assert "250-AUTH DIGEST-MD5 CRAM-MD5" in ehlo
    assert said(p, "VERB") == "502 5.7.0 Verbose unavailable"
    assert said(p, "ETRN lab.example.org") == "502 5.7.0 Sorry, we do not allow this operation"
    assert said(p, "VRFY root") == "250 2.1.5 root <root@mx.lab.example.org>"  # novrfy not set
    assert said(p, "MAIL FROM:<a@mail.good.example> RET=HDRS") == (
        "504 5.7.0 Sorry, RET not supported, we do not allow DSN"
    )
    public = sendmail(PrivacyOptions="public")  # nothing needs HELO
    assert said(public, "MAIL FROM:<a@mail.good.example>").startswith("250 2.1.0")
    with pytest.raises(ValueError, match="PrivacyOptions: nosuchflag unknown"):
        sendmail(PrivacyOptions="needmailhelo,nosuchflag")


def test_size_and_recipient_limits():
    p = sendmail(MaxMessageSize=1000, MaxRecipientsPerMessage=2)
    assert "250-SIZE 1000" in said(p, "EHLO x")
    assert said(p, "MAIL FROM:<a@mail.good.example> SIZE=1001") == (
        "552 5.2.3 Message size exceeds fixed maximum message size (1000)"
    )
    said(p, "MAIL FROM:<a@mail.good.example> SIZE=999")
    said(p, "RCPT TO:<root@lab.example.org>"), said(p, "RCPT TO:<postmaster@lab.example.org>")
    assert said(p, "RCPT TO:<postmaster@lab.example.org>") == "452 4.5.3 Too many recipients"
    said(p, "DATA")
    reply = str(p.send_message("Subject: big\r\n\r\n" + "x" * 1100 + "\r\n"))
    assert reply == "552 5.2.3 Message exceeds maximum fixed size (1000)" and not p.messages


def test_the_bad_command_counter_and_what_it_counts():
    p = sendmail()
    for _ in range(25):
        assert said(p, "XYZZY").startswith("500 5.5.1 Command unrecognized")
    assert said(p, "TURN").startswith("502 5.5.1")  # not counted
    assert (
        said(p, "XYZZY") == "421 4.7.0 mx.lab.example.org Too many bad commands; closing connection"
    )
    assert p.closed
    rejected = sendmail()
    assert said(rejected, b"EHLO x\r\nNOOP\r\n") == "554 5.5.0 SMTP protocol error | 250 2.0.0 OK"
    assert said(rejected, "EHLO x").endswith("| 250 ENHANCEDSTATUSCODES")  # nothing else offered
    for _ in range(25):
        assert said(rejected, "VRFY root") == "550 5.0.0 Command rejected"
    assert said(rejected, "MAIL FROM:<a@b.example>").startswith("421 4.7.0") and rejected.closed


def test_lines_the_way_sendmail_reads_them():
    assert said(sendmail(), "GET / HTTP/1.1") == (
        "421 4.7.0 mx.lab.example.org Rejecting open proxy localhost [127.0.0.1]"
    )
    p = sendmail()
    assert said(p, "NOOP") == "250 2.0.0 OK"
    assert said(p, "GET / HTTP/1.1") == '500 5.5.1 Command unrecognized: "GET / HTTP/1.1"'
    assert said(p, b"HELO host.exam\x00ple\r\n").startswith("250 mx.lab.example.org Hello")
    assert said(p, "NOOP " + "x" * 2041) == "250 2.0.0 OK"  # 2048 octets with CRLF
    assert said(p, "NOOP " + "x" * 2042).startswith("421 4.7.0 mx.lab.example.org Command too long")
    assert p.closed


def test_auth_without_users_offers_sendmails_mechanisms_and_fails():
    p = sendmail()
    said(p, "EHLO x")
    assert said(p, "AUTH cram-md5").startswith("334 ")
    assert said(p, "*") == "501 5.0.0 AUTH aborted"
    assert said(p, "AUTH CRAM-MD5 dGVzdA==") == "535 5.7.0 authentication failed"
    assert said(p, "AUTH DIGEST-MD5 !!") == "501 5.5.4 cannot BASE64 decode '!!'"
    assert said(p, "AUTH LOGIN") == "504 5.3.3 AUTH mechanism LOGIN not available"
    assert said(p, "STARTTLS now") == "501 5.5.2 Syntax error (no parameters allowed)"
    assert said(p, "STARTTLS") == "454 4.3.3 TLS not available after start"


def test_message_text_bare_cr_and_nul():
    p = sendmail()
    for line in ("EHLO x", "MAIL FROM:<a@mail.good.example>", "RCPT TO:<root@lab.example.org>"):
        said(p, line)
    assert said(p, "DATA").startswith("354")
    assert said(p, b"Subject: x\r\n\r\na\x00b\r\n.\r\n") == "554 5.6.1 NUL byte not allowed"
    assert not p.messages and not p.closed
    said(p, "MAIL FROM:<a@mail.good.example>"), said(p, "RCPT TO:<root@lab.example.org>")
    said(p, "DATA")
    assert (
        said(p, b"Subject: x\r\n\r\nhalf\rline\r\n")
        == "421 4.5.0 Bare carriage return (CR) not allowed"
    )
    assert p.closed


def test_the_old_lab_configuration_has_no_dns():
    p = SessionPair(
        "sendmail", client_ip="127.0.0.2", **ZONE, **get_persona("sendmail").platform_policy
    )
    assert p.greeting.lines[0].startswith(
        "220 mx.lab.example.org ESMTP Sendmail 8.17.1.9/8.17.1.9; "
    )
    assert said(p, "HELO x") == "250 mx.lab.example.org Hello [127.0.0.2], pleased to meet you"
    said(p, "MAIL FROM:<a@nowhere.invalid>")  # accept_unresolvable_domains
    assert said(p, "RCPT TO:<root@lab.example.org>").startswith("250 2.1.5")


def test_over_a_socket_the_stock_persona_names_the_client_and_takes_mail():
    with LabServer(persona="sendmail", name="test-sendmail-socket") as server:
        with smtplib.SMTP(timeout=10) as smtp:
            code, banner = smtp.connect("127.0.0.1", server.port)
            assert code == 220
            assert b"logging access from: localhost(OK)-localhost [127.0.0.1]" in banner
            code, text = smtp.ehlo("client.example.org")
            assert code == 250 and b"Hello localhost [127.0.0.1]" in text
            assert "auth" in smtp.esmtp_features and "starttls" not in smtp.esmtp_features
            smtp.sendmail(
                "alice@mail.good.example", ["root@lab.example.org"], "Subject: hi\r\n\r\nhi\r\n"
            )
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.sendmail(
                    "bob@nowhere.invalid", ["root@lab.example.org"], "Subject: x\r\n\r\nx\r\n"
                )
            code, text = refused.value.recipients["root@lab.example.org"]
            assert code == 553 and b"Domain of sender address bob@nowhere.invalid" in text
        assert [m.mail_from for m in server.mailbox] == ["alice@mail.good.example"]
