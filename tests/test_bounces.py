"""Bounces: who sends the delivery status notification, to whom, and what it says.

Each DSN is taken apart with Python's own ``email`` package and checked field
by field against RFC 3464; the lab's ``read_dsn`` is checked against it too.
"""

from __future__ import annotations

import email
import email.policy
import email.utils

import pytest

from labsmtp import LabNet, LabValueError, check_spf, read_dsn
from labsmtp.lab.dnszone import MAIL_ZONE, LabZone
from labsmtp.lab.dsn import RecipientReport, build_dsn
from labsmtp.lab.spf import check_spf_helo


@pytest.fixture
def net():
    n = LabNet(seed=5).start()
    yield n
    n.stop()


def _parse(stored):
    return email.message_from_bytes(stored.content, policy=email.policy.default)


def _date(value: str):
    parsed = email.utils.parsedate_to_datetime(value)
    assert parsed is not None and parsed.tzinfo is not None
    return parsed


def test_refused_at_rcpt_the_sending_mta_bounces_to_the_real_sender(net):
    d = net.send(
        "ada@home.example",
        ["nobody@shop.example", "bob@shop.example"],
        subject="Invoice 42",
        body="Please pay.",
    )
    assert d.delivered == ["bob@shop.example"] and d.failed == ["nobody@shop.example"]
    (stored,) = net.mailbox("home.example")
    # The envelope of a bounce: null reverse-path, to the original envelope sender.
    assert stored.mail_from == "" and stored.rcpt_tos == ("ada@home.example",)
    assert stored.helo == "mta.home.example"  # made by the *sending* MTA

    msg = _parse(stored)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"].addresses[0].addr_spec == "ada@home.example"
    assert "MAILER-DAEMON@mta.home.example" in str(msg["From"])
    assert str(msg["Auto-Submitted"]) == "auto-replied"
    human, status, returned = msg.get_payload()
    assert human.get_content_type() == "text/plain"
    assert "nobody@shop.example" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    assert returned.get_content_type() == "message/rfc822"

    per_message, *per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mta.home.example"
    _date(per_message["Arrival-Date"])
    (rcpt,) = per_rcpt  # only the failed recipient is reported
    assert rcpt["Final-Recipient"] == "rfc822; nobody@shop.example"
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "5.1.1"
    assert rcpt["Remote-MTA"] == "dns; mx1.shop.example"
    diagnostic = " ".join(rcpt["Diagnostic-Code"].split())
    assert diagnostic.startswith("smtp; 550 5.1.1 <nobody@shop.example>")
    assert _date(rcpt["Last-Attempt-Date"]) >= _date(per_message["Arrival-Date"])

    original = returned.get_payload()[0]
    assert original["Subject"] == "Invoice 42"
    assert original["Message-ID"] == d.message_id
    assert "Please pay." in original.get_content()


def test_read_dsn_agrees_with_the_email_package(net):
    d = net.send("ada@home.example", "nobody@shop.example")
    report = read_dsn(net.mailbox("home.example")[0])
    assert report.per_message["Reporting-MTA"] == "dns; mta.home.example"
    assert report.recipients[0]["Status"] == "5.1.1"
    assert report.returned == "message"
    assert report.original["Message-ID"] == d.message_id
    with pytest.raises(LabValueError, match="not a delivery status notification"):
        read_dsn(b"Subject: hello\r\n\r\njust a message\r\n")


def test_ret_hdrs_returns_only_the_header_and_envid_orcpt_come_back(net):
    net.send(
        "ada@home.example",
        "nobody@shop.example",
        body="secret body",
        ret="HDRS",
        envid="QQ314159",
        orcpt={"nobody@shop.example": "Nobody@Shop.Example"},
    )
    msg = _parse(net.mailbox("home.example")[0])
    _, status, returned = msg.get_payload()
    assert returned.get_content_type() == "text/rfc822-headers"
    text = returned.get_payload(decode=True).decode()
    assert "Subject:" in text and "secret body" not in text
    per_message, rcpt = status.get_payload()
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert rcpt["Original-Recipient"] == "rfc822;Nobody@Shop.Example"
    # The MX offered DSN (Postfix persona), so the parameters went along (RFC 3461 §4).
    wire = " ".join(ln.text for ln in net.server("mx1.shop.example").transcript.lines())
    assert "RET=HDRS" in wire and "ENVID=QQ314159" in wire and "ORCPT=rfc822;" in wire


def test_notify_never_means_no_bounce(net):
    d = net.send("ada@home.example", "nobody@shop.example", notify="NEVER")
    assert d.failed and d.bounce is None
    assert len(net.mailbox("home.example")) == 0


def test_a_bounce_is_never_bounced(net):
    d = net.send("", "nobody@shop.example")
    assert d.is_bounce and d.failed == ["nobody@shop.example"]
    assert d.bounces == []
    assert any("never bounce a bounce" in n for n in d.notes)
    assert all(len(s.mailbox) == 0 for s in net.servers.values())


def test_a_bounce_that_cannot_be_delivered_is_dropped(net):
    d = net.send("ghost@nothing.example", "nobody@shop.example")
    bounce = d.bounce
    assert bounce is not None and bounce.failed == ["ghost@nothing.example"]
    assert bounce.bounces == []  # a double bounce is not sent out again
    assert all(len(s.mailbox) == 0 for s in net.servers.values())


def test_backscatter_accept_then_bounce_hits_the_forged_sender(net):
    # A spammer forges Carol's address; its software never sends bounces.
    spammer = net.mta("spam.bot.example", bounces=False)
    d = spammer.send("carol@innocent.example", ["nobody@shop.example", "nobody@acceptall.example"])
    assert d.results["nobody@shop.example"].reply.code == 550  # refused at RCPT
    assert d.results["nobody@acceptall.example"].action == "delivered"  # 250: accepted
    assert len(net.mailbox("innocent.example")) == 0  # nothing for Carol yet

    (report,) = net.deliver_local("acceptall.example")
    assert report.failed == [(report.failed[0][0], "nobody@acceptall.example")]
    (bounce,) = report.bounces
    assert bounce.delivered == ["carol@innocent.example"]
    (stored,) = net.mailbox("innocent.example")
    assert stored.mail_from == "" and stored.helo == "mx.acceptall.example"
    _, status, _ = _parse(stored).get_payload()
    per_message, rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.acceptall.example"
    assert "spam.bot.example" in per_message["Received-From-MTA"]
    assert rcpt["Final-Recipient"] == "rfc822; nobody@acceptall.example"
    assert (rcpt["Action"], rcpt["Status"]) == ("failed", "5.1.1")
    # Running local delivery again bounces nothing twice.
    assert net.deliver_local("acceptall.example")[0].bounces == []


def test_accept_then_bounce_known_users_are_delivered_locally(net):
    net.send("ada@home.example", ["erin@acceptall.example", "postmaster@acceptall.example"])
    (report,) = net.deliver_local("acceptall.example")
    assert {r for _, r in report.delivered} == {
        "erin@acceptall.example",
        "postmaster@acceptall.example",
    }
    assert report.failed == [] and report.bounces == []


def test_spf_checks_postmaster_at_the_helo_name_for_a_bounce(net):
    net.send("ada@home.example", "nobody@shop.example")
    bounce = net.mailbox("home.example")[0]
    result = net.spf(bounce)
    assert (result.identity, result.domain, result.result) == (
        "postmaster@mta.home.example",
        "mta.home.example",
        "pass",
    )


def test_spf_identity_rules():
    zone = LabZone(MAIL_ZONE)
    # A normal message: the MAIL FROM domain is checked.
    forged = check_spf("127.0.0.66", "carol@innocent.example", "spam.bot.example", zone)
    assert (forged.domain, forged.result) == ("innocent.example", "fail")
    # A bounce with a HELO name that belongs to someone else: fail.
    lying = check_spf("127.0.0.20", "", "mx.innocent.example", zone)
    assert (lying.identity, lying.result) == ("postmaster@mx.innocent.example", "fail")
    # A bounce whose HELO name has no SPF record: none; an address literal: none.
    assert check_spf("127.0.0.20", "", "plain.example", zone).result == "none"
    assert check_spf("127.0.0.20", "", "[127.0.0.20]", zone).result == "none"
    assert check_spf_helo("127.0.0.23", "mx.acceptall.example", zone).result == "pass"


@pytest.mark.parametrize(
    "record, ip, result",
    [
        ("v=spf1 ip4:10.0.0.0/8 -all", "10.1.2.3", "pass"),
        ("v=spf1 ip4:10.0.0.0/8 -all", "11.1.2.3", "fail"),
        ("v=spf1 ip4:10.0.0.0/8 ~all", "11.1.2.3", "softfail"),
        ("v=spf1 ip4:10.0.0.0/8", "11.1.2.3", "neutral"),
        ("v=spf1 mx -all", "127.0.0.11", "pass"),  # t.example's MX is mx1.shop.example
        ("v=spf1 a/24 -all", "127.0.0.200", "pass"),
        ("v=spf1 include:home.example -all", "127.0.0.20", "pass"),
        ("v=spf1 redirect=home.example", "127.0.0.21", "fail"),
        ("v=spf1 include:plain.example -all", "127.0.0.20", "permerror"),
        ("v=spf1 exists:%{i}.x.example -all", "127.0.0.20", "permerror"),
    ],
)
def test_spf_mechanisms(record, ip, result):
    zone = LabZone(
        MAIL_ZONE
        + f't.example. TXT "{record}"\nt.example. MX 10 mx1.shop.example.\n'
        + "t.example. A 127.0.0.1\n"
    )
    assert check_spf(ip, "someone@t.example", "x.example", zone).result == result


def test_two_spf_records_are_a_permerror():
    zone = LabZone(MAIL_ZONE + 'two.example. TXT "v=spf1 -all"\ntwo.example. TXT "v=spf1 +all"\n')
    assert check_spf("127.0.0.1", "a@two.example", "x.example", zone).result == "permerror"


def test_build_dsn_refuses_what_rfc_3464_forbids():
    args = dict(
        reporting_mta="mta.example",
        original=b"Subject: x\r\n\r\nbody\r\n",
        arrival_date="Mon, 30 Nov 2026 10:00:00 +0000",
        date="Mon, 30 Nov 2026 10:00:00 +0000",
        message_id="<1@mta.example>",
        boundary="B",
    )
    report = RecipientReport("bob@shop.example", "failed", "5.1.1")
    with pytest.raises(LabValueError, match="null|<>"):
        build_dsn(sender="", recipients=[report], **args)
    with pytest.raises(LabValueError, match="Action"):
        build_dsn(
            sender="ada@home.example",
            recipients=[RecipientReport("bob@shop.example", "lost", "5.1.1")],
            **args,
        )
    big = dict(args, original=b"Subject: big\r\n\r\n" + b"x" * 100 + b"\r\n", return_limit=50)
    dsn = build_dsn(sender="ada@home.example", recipients=[report], **big)
    assert read_dsn(dsn).returned == "headers"  # too big to return whole, as Postfix does
