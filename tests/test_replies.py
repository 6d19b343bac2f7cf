"""Reply parsing, the code catalogue, and which replies are legal after which command."""

from __future__ import annotations

import pytest

from labsmtp.protocol.replies import (
    explain_code,
    explain_enhanced,
    is_legal,
    legal_codes,
    parse_reply,
    reply_class,
    reply_is_complete,
)


def test_parse_multiline_ehlo_reply():
    raw = b"250-mx.lab.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
    r = parse_reply(raw, command="EHLO")
    assert r.code == 250 and r.multiline and len(r.lines) == 3
    assert r.texts == ("mx.lab.example.org", "PIPELINING", "SIZE 1000")
    assert r.legal and r.ok and r.klass == "2xx"


def test_parse_enhanced_code():
    r = parse_reply(b"554 5.7.1 <x@y.net>: Relay access denied\r\n", command="RCPT")
    assert (r.code, r.enhanced) == (554, "5.7.1")
    assert r.texts == ("<x@y.net>: Relay access denied",)


def test_enhanced_class_must_match_the_code():
    assert parse_reply(b"250 5.1.1 odd\r\n").enhanced is None
    assert parse_reply(b"501 Syntax: HELO hostname\r\n").enhanced is None


@pytest.mark.parametrize("raw", [b"hello\r\n", b"99 x\r\n", b"650 x\r\n", b"250-a\r\n251 b\r\n"])
def test_malformed_replies_have_no_code(raw):
    r = parse_reply(raw)
    assert r.code is None and r.klass == "none" and not r.ok


def test_251_is_never_a_reply_to_helo():
    assert not is_legal("HELO", 251)
    assert not is_legal("EHLO", 251)
    assert is_legal("RCPT", 251) and is_legal("VRFY", 251)
    assert not parse_reply(b"251 forwarding\r\n", command="HELO").legal


@pytest.mark.parametrize(
    "command,code,legal",
    [
        ("CONNECT", 220, True),
        ("CONNECT", 554, True),
        ("CONNECT", 250, False),
        ("DATA", 354, True),
        ("DATA", 250, False),
        (".", 250, True),
        (".", 354, False),
        ("RSET", 250, True),
        ("QUIT", 221, True),
        ("QUIT", 250, False),
        ("MAIL", 421, True),  # §4.3.2: any command may get 421, 500, 501
        ("NOOP", 500, True),
        ("RCPT", 503, True),
        ("HELO", 503, False),
    ],
)
def test_legal_replies_follow_section_4_3_2(command, code, legal):
    assert is_legal(command, code) is legal
    assert (code in legal_codes(command)) is legal


def test_reply_classes_and_explanations():
    assert [reply_class(c) for c in (220, 354, 451, 550, None, 999)] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "none",
        "none",
    ]
    assert "Transient" in explain_code(451) and "Permanent" in explain_code(550)
    assert "Bad sequence" in explain_code(503)
    assert "not a valid SMTP reply code" in explain_code(650)
    assert "Delivery not authorized" in explain_enhanced("5.7.1")
    assert "Persistent transient" in explain_enhanced("4.7.1")
    assert "not an enhanced status code" in explain_enhanced("x.y")


def test_reply_is_complete_waits_for_the_last_line():
    assert reply_is_complete(b"250-a\r\n250-b\r\n") == 0
    assert reply_is_complete(b"250-a\r\n250 b\r\nextra") == len(b"250-a\r\n250 b\r\n")
    assert reply_is_complete(b"220 hi") == 0
    assert reply_is_complete(b"x\r\n") == 3  # malformed lines end a reply, never hang


def test_explain_mentions_legality():
    r = parse_reply(b"251 2.1.5 forwarding\r\n", command="HELO")
    assert "is NOT among the replies RFC 5321 §4.3.2 lists for HELO" in r.explain()
