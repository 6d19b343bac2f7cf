"""The trace formatter writes every recorded Received:/Return-Path: line exactly.

tests/recordings/trace/*.json were recorded from the real Postfix, Exim,
Sendmail, OpenSMTPD and clamsmtpd (in front of Postfix) delivering on loopback
(tests/recordings/trace/record_trace.sh).  For each delivered copy, the facts a
session knows are rebuilt from the recording's inputs and replies (client
address, HELO, the lab zone's PTR answers, the queue id from the 250 reply, the
TLS version and cipher the client saw, AUTH, accepted recipients), and the
formatter must give the very lines the real program added above the message.
Taken from the recorded header itself, because they cannot be known in
advance: the date (and Exim's Delivery-date) and Postfix's TLS 1.3
key-exchange text, which Python's ssl module does not report.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import pathlib
import re
import sys

import pytest

from labsmtp.lab.dnszone import LabZone
from labsmtp.protocol import trace as tr

HERE = pathlib.Path(__file__).parent / "recordings" / "trace"
sys.path.insert(0, str(HERE))
import trace_record  # noqa: E402  (the code that sent the recorded messages)

SESSIONS = json.loads((HERE / "sessions.json").read_text())
ZONE = LabZone()  # the zone record_trace.sh's resolver served (DEFAULT_ZONE)

# recording -> (persona, received() options, sessions the real program did not deliver)
RECORDINGS = {
    "postfix-3.7.json": ("postfix", {}, set()),
    "postfix-3.7-headers.json": ("postfix", {"tls_details": True, "auth_details": True}, set()),
    # Exim 4.96 (hosts_require_helo = *) and Sendmail (needmailhelo) refuse MAIL before HELO
    "exim-4.96.json": ("exim", {}, {"no-helo"}),
    "sendmail-8.17.json": ("sendmail", {}, {"no-helo"}),
    # OpenSMTPD refuses MAIL before HELO, and Debian 12's 6.8.0p2 fails every
    # STARTTLS handshake under OpenSSL 3 (OpenSMTPD issues #1171, #1239)
    "opensmtpd-6.8.json": (
        "opensmtpd",
        {},
        {"no-helo", "starttls", "starttls-tls12", "starttls-auth", "starttls-auth-two-rcpts"},
    ),
    # clamsmtpd 1.10 does not offer STARTTLS (it removes it from the EHLO reply)
    "clamsmtpd-1.10.json": (
        "clamsmtpd",
        {},
        {"starttls", "starttls-tls12", "starttls-auth", "starttls-auth-two-rcpts"},
    ),
}
QUEUE_ID = re.compile(r"queued as (\S+)|id=(\S+)|^250 2\.0\.0 (\S+) Message accepted")
KEX = re.compile(r"\n\t key-exchange (.*)\)\n")


def load(name):
    return json.loads((HERE / name).read_text())


def cases():
    for name, (persona, options, _undelivered) in RECORDINGS.items():
        for session in load(name)["sessions"]:
            for copy in session["deliveries"]:
                yield pytest.param(
                    persona,
                    options,
                    session,
                    copy,
                    id=f"{name[:-5]}:{session['name']}:{copy['mailbox']}",
                )


def facts_of(session, copy) -> tr.TraceFacts:
    given = session["input"]
    fields = copy["added_fields"]
    received = next(f for f in fields if f.startswith("Received:"))
    sent = [e for e in session["exchanges"] if e["sent"]]
    rcpts = [e for e in sent if e["sent"].startswith("RCPT")]
    tls = next((e["tls"] for e in sent if e["sent"] == "STARTTLS" and e.get("tls")), None)
    kex = KEX.search(received + "\n")
    fc = ZONE.fcrdns(given["client"])
    return tr.TraceFacts(
        helo_verb=given["verb"],
        helo_name=given["helo"],
        client_ip=given["client"],
        client_ptr=fc.names[0] if fc.names else None,
        client_ptr_confirmed=fc.verdict == "pass",
        server_name="mx.lab.example.org",
        queue_id=next(g for g in QUEUE_ID.search(session["accepted_reply"]).groups() if g),
        recipients=tuple(
            e["sent"][len("RCPT TO:<") : -1] for e in rcpts if e["reply"][:3] in ("250", "251")
        ),
        sender=given.get("sender", SESSIONS["sender"]),
        date=email.utils.parsedate_to_datetime(received.rsplit(";", 1)[1].strip()),
        tls=tr.TlsInfo(tls[0], tls[1][0], tls[1][2], kex.group(1) if kex else None)
        if tls
        else None,
        auth_user="ada"
        if any(e["sent"].startswith("AUTH") and (e["reply"] or "")[:3] == "235" for e in sent)
        else None,
        last_rcpt=rcpts[-1]["sent"][len("RCPT TO:<") : -1] if rcpts else None,
    )


@pytest.mark.parametrize("persona, options, session, copy", list(cases()))
def test_formatter_writes_what_the_real_program_wrote(persona, options, session, copy):
    facts = facts_of(session, copy)
    recorded = tuple(f.replace("\n", "\r\n") for f in copy["added_fields"])
    delivered = next(
        (
            email.utils.parsedate_to_datetime(f.split(":", 1)[1])
            for f in recorded
            if f.startswith("Delivery-date:")
        ),
        None,
    )
    rcpt = copy["mailbox"] + "@lab.example.org"
    got = tr.trace(facts, persona, recipient=rcpt, delivered=delivered, **options)
    assert got.delivery + (got.received,) == recorded
    # The whole header as delivered: the fields on top of the message exactly as
    # sent (earlier Received: fields included, untouched), plus clamsmtpd's
    # field after the last header.
    sent = trace_record.build_message(session["input"], facts.sender).encode()
    stored = tr.stamp(sent, got).decode().split("\r\n\r\n")[0]
    assert stored.split("\r\n") == copy["header_as_delivered"]


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_every_recording_delivered_what_it_accepted(name):
    """The recordings are complete: each accepted message reached every recipient."""
    data = load(name)
    assert "missing_deliveries" not in data
    undelivered = {s["name"] for s in data["sessions"] if not s["deliveries"]}
    assert undelivered == RECORDINGS[name][2]
    assert {s["name"] for s in data["sessions"]} == {s["name"] for s in SESSIONS["sessions"]}


def test_the_recordings_show_each_programs_rules():
    """The facts the course quotes, read straight from the recordings."""

    def first_received(name, session):
        s = next(s for s in load(name)["sessions"] if s["name"] == session)
        return next(f for f in s["deliveries"][0]["added_fields"] if f.startswith("Received:"))

    # Postfix: "unknown" when the PTR name does not resolve back (FCrDNS)
    assert first_received("postfix-3.7.json", "ehlo-unconfirmed-ptr").startswith(
        "Received: from mail.mismatch.example (unknown [127.0.0.3])"
    )
    # Sendmail: the PTR name, flagged
    assert "(mail.mismatch.example [127.0.0.3] (may be forged))" in first_received(
        "sendmail-8.17.json", "ehlo-unconfirmed-ptr"
    )
    # Exim: the address first, the HELO name as helo=
    assert first_received("exim-4.96.json", "ehlo-no-ptr").startswith(
        "Received: from [127.0.0.4] (helo=client.example.org)"
    )
    # for <rcpt> only when there is one recipient
    assert "for <" not in first_received("postfix-3.7.json", "two-rcpts")
    # OpenSMTPD names the last RCPT given, though it was refused
    assert "for <dave@elsewhere.example>" in first_received(
        "opensmtpd-6.8.json", "two-rcpts-one-refused"
    )
    # clamsmtpd: only the Postfix behind it writes one, and sees the proxy
    assert first_received("clamsmtpd-1.10.json", "ehlo-no-ptr").startswith(
        "Received: from client.example.org (localhost [127.0.0.1])"
    )


# --------------------------------------------------------------- unit checks

UTC = dt.timezone.utc
CET = dt.timezone(dt.timedelta(hours=1), "CET")


def facts(**changes):
    base = dict(
        helo_verb="EHLO",
        helo_name="mail.good.example",
        client_ip="127.0.0.2",
        client_ptr="mail.good.example",
        client_ptr_confirmed=True,
        server_name="mx.lab.example.org",
        queue_id="4AB12C",
        recipients=("bob@lab.example.org",),
        sender="ada@client.example.org",
        date=dt.datetime(2026, 12, 3, 9, 5, 7, tzinfo=UTC),
    )
    return tr.TraceFacts(**{**base, **changes})


@pytest.mark.parametrize(
    "verb, tls, auth, keyword",
    [
        ("HELO", False, False, "SMTP"),
        (None, False, False, "SMTP"),
        ("EHLO", False, False, "ESMTP"),
        ("EHLO", True, False, "ESMTPS"),
        ("EHLO", False, True, "ESMTPA"),
        ("EHLO", True, True, "ESMTPSA"),
    ],
)
def test_protocol_keywords_are_rfc_3848s(verb, tls, auth, keyword):
    assert tr.protocol_keyword(verb, tls, auth) == keyword


@pytest.mark.parametrize(
    "persona, date",
    [
        ("postfix", "Thu,  3 Dec 2026 09:05:07 +0000 (UTC)"),  # strftime %e
        ("exim", "Thu, 03 Dec 2026 09:05:07 +0000"),  # tod.c "%02u"
        ("sendmail", "Thu, 3 Dec 2026 09:05:07 GMT"),  # arpadate.c: GMT for offset 0
        ("opensmtpd", "Thu, 3 Dec 2026 09:05:07 +0000 (UTC)"),  # to.c "%d"
        ("generic", "Thu, 3 Dec 2026 09:05:07 +0000"),
    ],
)
def test_single_digit_days_are_written_as_each_program_writes_them(persona, date):
    # The recordings were made on the 30th; the sources decide the padding.
    assert tr.received(facts(), persona).endswith(date)


def test_a_zone_other_than_utc():
    cet = facts(date=dt.datetime(2026, 12, 3, 10, 5, 7, tzinfo=CET))
    assert tr.received(cet, "sendmail").endswith("Thu, 3 Dec 2026 10:05:07 +0100 (CET)")
    assert tr.received(cet, "postfix").endswith("Thu,  3 Dec 2026 10:05:07 +0100 (CET)")
    assert tr.received(cet, "exim").endswith("Thu, 03 Dec 2026 10:05:07 +0100")
    with pytest.raises(ValueError, match="timezone-aware"):
        facts(date=dt.datetime(2026, 12, 3))


def test_generic_follows_rfc_5321_grammar():
    stamp = re.compile(
        r"Received: from (?P<helo>\S+) \((?:(?P<name>\S+) )?\[(?P<ip>[^\]]+)\]\)"
        r" by (?P<by>\S+) with (?P<with>E?SMTPS?A?) id (?P<id>\S+)"
        r"(?: for <(?P<for>[^>]*)>)?(?: tls (?P<tls>TLS_\w+))?; (?P<date>.+)"
    )
    cases = [
        (facts(), {"name": "mail.good.example", "for": "bob@lab.example.org", "tls": None}),
        (
            facts(client_ip="127.0.0.4", client_ptr=None, helo_verb="HELO"),
            {"name": None, "with": "SMTP"},
        ),
        (facts(client_ptr="mail.mismatch.example", client_ptr_confirmed=False), {"name": None}),
        (facts(recipients=("a@x.example", "b@x.example")), {"for": None}),
        (
            facts(tls=tr.TlsInfo("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 128), auth_user="ada"),
            {"with": "ESMTPSA", "tls": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
        ),
        (facts(helo_verb=None, helo_name=None), {"helo": "[127.0.0.2]"}),
    ]
    for f, expected in cases:
        text = tr.received(f)
        # folding is CRLF + WSP only (RFC 5322 §2.2.3), no line over 78 characters
        assert all(len(line) <= 78 for line in text.split("\r\n"))
        assert re.fullmatch(r"[^\r\n]*(\r\n\t[^\r\n]*)*", text)
        m = stamp.fullmatch(re.sub(r"\r\n\t", " ", text))
        assert m, text
        assert {k: m.group(k) for k in expected} == expected
        assert email.utils.parsedate_to_datetime(m.group("date")) == f.date
    assert tr.return_path("") == "Return-Path: <>"  # RFC 5322 §3.6.7: path = "<" ">"


# Exchange cannot run here: its form is checked against Received fields that
# Exchange 2016 wrote, as published with full headers (pastebin.com/wHgzUr2k,
# pastebin.com/P62Li7KR).
EXCHANGE_SEEN = [
    (
        dict(
            helo_name="12.mxout.protecmail.com",
            client_ip="51.15.195.238",
            server_name="EX2016.afs.local",
            server_ip="192.168.81.216",
            tls=tr.TlsInfo("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 128),
            date=dt.datetime(2019, 3, 27, 23, 42, 34, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ),
        "15.1.1034.26",
        "Received: from 12.mxout.protecmail.com (51.15.195.238) by EX2016.afs.local\r\n"
        " (192.168.81.216) with Microsoft SMTP Server (version=TLS1_2,\r\n"
        " cipher=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) id 15.1.1034.26 via Frontend\r\n"
        " Transport; Wed, 27 Mar 2019 23:42:34 +0100",
    ),
    (
        dict(
            helo_name="91.mxout.protecmail.co",
            client_ip="163.172.203.97",
            server_name="EX2016.afs.local",
            server_ip="192.168.81.216",
            date=dt.datetime(2018, 2, 26, 16, 10, 34, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ),
        "15.1.1034.26",
        "Received: from 91.mxout.protecmail.co (163.172.203.97) by EX2016.afs.local\r\n"
        " (192.168.81.216) with Microsoft SMTP Server id 15.1.1034.26 via Frontend\r\n"
        " Transport; Mon, 26 Feb 2018 16:10:34 +0100",
    ),
]


@pytest.mark.parametrize("changes, version, seen", EXCHANGE_SEEN)
def test_exchange_form_matches_published_exchange_headers(changes, version, seen):
    assert tr.received(facts(**changes), "exchange", version=version) == seen


def test_prepend_puts_the_newest_field_on_top():
    older = b"Received: from older.example by relay.example; Mon, 30 Nov 2026 11:00:00 +0000"
    content = older + b"\r\n\r\nhi\r\n"
    out = tr.prepend(content, ["Return-Path: <a@b.example>", "Received: from x by y; now"])
    assert out.split(b"\r\n")[:3] == [
        b"Return-Path: <a@b.example>",
        b"Received: from x by y; now",
        older,
    ]


def test_unknown_persona_is_a_clear_error():
    with pytest.raises(ValueError, match="no trace format for persona 'qmail'"):
        tr.received(facts(), "qmail")


def test_every_persona_has_a_trace_format():
    from labsmtp.protocol.personas import persona_names

    assert set(persona_names()) == set(tr.PERSONAS)


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n", b"A: 1\r\nB: 2\r\nX: y\r\n\r\nbody\r\n"),
        (b"A: 1\r\n", b"A: 1\r\nX: y\r\n"),  # a header section and no body
        (b"A: 1", b"A: 1\r\nX: y\r\n"),
        (b"\r\nbody\r\n", b"X: y\r\n\r\nbody\r\n"),  # no header fields at all
    ],
)
def test_appended_fields_go_after_the_last_header(content, expected):
    assert tr.append_to_header(content, ["X: y"]) == expected
    assert tr.append_to_header(content, []) == content
