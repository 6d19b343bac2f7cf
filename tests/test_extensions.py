"""Advertised extensions over real sockets, with smtplib as the client.

STARTTLS: a persona whose stock program offers it (Postfix, Exim, Exchange)
offers it too, with the lab CA's certificate, unless ``tls=False``.

DSN (RFC 3461): the parameters are taken only where DSN is offered, stored with
the message, and NOTIFY=SUCCESS brings the sender a "delivered" notification
(RFC 3464): into the lab server's own mailbox for a sender of its own domain,
into ``server.outbox`` for anyone else (the lab sends nothing off the machine).
"""

from __future__ import annotations

import json
import pathlib
import smtplib

import pytest

from labsmtp import LabServer, get_persona, persona_names
from labsmtp.lab.dsn import read_dsn

RCPT = "postmaster@lab.example.org"


@pytest.fixture
def postfix():
    with LabServer(persona="postfix", tls=False, name="test-extensions") as server:
        yield server


def send(server, sender, mail_options=(), rcpt_options=()):
    with smtplib.SMTP(server.host, server.port, local_hostname="client.example.org") as smtp:
        smtp.ehlo()
        return smtp.sendmail(
            sender,
            [RCPT],
            b"Subject: dsn\r\n\r\nhello\r\n",
            mail_options=list(mail_options),
            rcpt_options=list(rcpt_options),
        )


def test_notify_success_for_a_local_sender_lands_in_the_mailbox(postfix):
    send(
        postfix,
        "alice@lab.example.org",
        ["RET=FULL", "ENVID=lab+2Dtest"],
        ["NOTIFY=SUCCESS", f"ORCPT=rfc822;{RCPT}"],
    )
    original, notice = postfix.mailbox.messages
    assert original.dsn.ret == "FULL" and original.dsn.envid == "lab-test"  # xtext decoded
    assert original.dsn.notify == {RCPT: ("SUCCESS",)}
    assert notice.mail_from == "" and notice.rcpt_tos == ("alice@lab.example.org",)
    report = read_dsn(notice)
    assert report.per_message["Original-Envelope-Id"] == "lab-test"
    assert report.recipients[0]["Action"] == "delivered"
    assert report.returned == "message"  # RET=FULL
    assert not postfix.outbox.messages
    notes = [ln.note for ln in postfix.transcript.lines() if "delivered' notification" in ln.note]
    assert notes and "this server's mailbox" in notes[0]


def test_notify_success_for_another_domain_waits_in_the_outbox(postfix):
    send(postfix, "ada@client.example.org", rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
    assert len(postfix.mailbox) == 1
    [notice] = postfix.outbox.messages
    assert notice.rcpt_tos == ("ada@client.example.org",)
    assert read_dsn(notice).recipients[0]["Final-Recipient"] == f"rfc822; {RCPT}"


def test_no_notice_without_notify_success_or_for_the_null_sender(postfix):
    send(postfix, "ada@client.example.org", rcpt_options=["NOTIFY=FAILURE"])
    send(postfix, "", rcpt_options=["NOTIFY=SUCCESS"])
    assert len(postfix.mailbox) == 2 and not postfix.outbox.messages


def test_dsn_parameters_are_refused_where_dsn_is_not_offered():
    # The generic persona advertises no DSN (RFC 3461 §4: the parameters need it).
    with LabServer(name="test-extensions-generic") as server:
        with smtplib.SMTP(server.host, server.port, local_hostname="client.example.org") as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("dsn")
            code, _ = smtp.docmd("MAIL FROM:<ada@client.example.org> RET=HDRS")
            assert code == 555
            assert smtp.docmd("MAIL FROM:<ada@client.example.org> SIZE=10")[0] == 250


# --- STARTTLS where the stock program offers it ---------------------------------

STOCK_RECORDINGS = pathlib.Path(__file__).parent / "recordings" / "generated"


def _stock_ehlo_keywords(program: str) -> set[str]:
    """The EHLO keywords the stock program offered in its recordings (tests/recordings),
    in any of its EHLO replies (clamsmtpd passes on the list of the Postfix behind it,
    which differs from one dialogue to the next)."""
    data = json.loads((STOCK_RECORDINGS / f"{program}.json").read_text())
    words: set[str] = set()
    for dialogue in data["dialogues"]:
        for ex in dialogue["exchanges"]:
            reply = ex.get("reply") or []
            if (ex.get("sent") or "").startswith("EHLO") and reply[:1] and reply[0][:3] == "250":
                words |= {line[4:].split(" ")[0] for line in reply[1:]}
    assert words, f"no EHLO in the {program} recording"
    return words


@pytest.mark.parametrize("persona", persona_names())
def test_a_stock_persona_offers_starttls_as_its_program_does(persona):
    p = get_persona(persona)
    if (STOCK_RECORDINGS / f"{persona}.json").exists():
        assert p.stock_tls == ("STARTTLS" in _stock_ehlo_keywords(persona))
    with LabServer(persona=persona, name=f"test-stock-tls-{persona}") as server:
        with smtplib.SMTP(server.host, server.port, local_hostname="client.example.org") as smtp:
            smtp.ehlo()
            # clamsmtpd leaves STARTTLS out of an EHLO reply that is not pipelined
            # (its XFILTERED list): offered by the Postfix behind, never by the proxy.
            offered = p.stock_tls and p.relay is None
            assert smtp.has_extn("starttls") == offered
            if offered:  # with the lab CA's certificate, which a client can verify
                smtp.starttls(context=server.client_ssl_context())
                smtp.ehlo()
                assert not smtp.has_extn("starttls")
    assert LabServer(persona=persona, tls=False).tls is False  # tls=False turns it off


def test_switching_persona_follows_its_stock_tls_unless_tls_was_given():
    server = LabServer()
    assert not server.tls
    server.configure(persona="postfix")
    assert server.tls
    server.configure(persona="sendmail")
    assert not server.tls
    pinned = LabServer(tls=False)
    pinned.configure(persona="postfix")
    assert not pinned.tls
