"""Reply parsing, the code catalogue, and which replies are legal after which command."""

from __future__ import annotations

import pytest

from labsmtp.protocol.replies import (
    CODES,
    LEGAL_REPLIES,
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


def test_explain_is_one_short_line_about_this_code_after_this_command():
    cases = {
        (b"220 mx.lab.example.org ESMTP\r\n", "CONNECT"): "220 on connecting: the server is ready",
        (b"250 2.1.0 Sender OK\r\n", "MAIL"): "250 after MAIL: sender accepted",
        (b"354 go ahead\r\n", "DATA"): "354 after DATA: go ahead",
        (b"250 2.0.0 queued\r\n", "."): "250 after the final dot: message accepted",
        (b"503 5.5.1 Error\r\n", "RCPT"): "503 after RCPT: wrong moment",
    }
    for (raw, command), start in cases.items():
        text = parse_reply(raw, command=command).explain()
        assert text.startswith(start), text
        assert "\n" not in text and len(text) <= 110, text


def test_explanations_never_show_rfc_placeholders_or_stray_dots():
    for code in CODES:
        for command in (*LEGAL_REPLIES, None):
            r = parse_reply(f"{code} x\r\n".encode(), command=command)
            for text in (r.explain(), r.explain(detail=True)):
                assert "<domain>" not in text and "<forward-path>" not in text, text
                assert ".." not in text and "for ." not in text, text
        assert "<domain>" not in explain_code(code) and "<forward-path>" not in explain_code(code)


def test_a_shutdown_421_is_not_attributed_to_the_command_it_interrupted():
    r = parse_reply(b"421 4.3.2 mx.lab.example.org Service shutting down\r\n", command="HELO")
    assert "closing the connection" in r.explain()
    detail = r.explain(detail=True)
    assert "may answer any command" in detail
    assert "lists 421" not in detail and "for HELO" not in detail


def test_detail_says_usual_replies_and_names_the_right_rfc():
    unusual = parse_reply(b"251 2.1.5 forwarding\r\n", command="HELO").explain(detail=True)
    assert "RFC 5321 §4.3.2 does not list 251 among the usual replies to HELO" in unusual
    assert "legal" not in unusual.lower()
    relay = parse_reply(b"554 5.7.1 <a@b.net>: Relay access denied\r\n", command="RCPT")
    assert "servers may send others" in relay.explain(detail=True)
    auth = parse_reply(b"538 5.7.11 Encryption required\r\n", command="AUTH")
    assert "RFC 4954 §6 lists 538" in auth.explain(detail=True)
    tls = parse_reply(b"454 4.7.0 TLS not available\r\n", command="STARTTLS")
    assert "RFC 3207 §4 lists 454" in tls.explain(detail=True)
    assert "RFC 5321" not in auth.explain(detail=True).split("First digit")[-1]


def test_530_belongs_to_the_transaction_not_to_auth():
    # RFC 4954 §6: 530 answers commands other than AUTH when a login is required.
    for command in ("MAIL", "RCPT", "DATA"):
        assert is_legal(command, 530), command
        r = parse_reply(b"530 5.7.0 Authentication required\r\n", command=command)
        assert "RFC 4954 §6 lists 530" in r.explain(detail=True)
    assert not is_legal("AUTH", 530)


def test_reply_inside_a_tuple_prints_one_reply_line_per_line():
    from IPython.lib.pretty import pretty

    ehlo = parse_reply(b"250-mx.lab.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "EHLO")
    long = parse_reply(("554 5.7.1 " + "word " * 30 + "\r\n").encode(), "RCPT")
    text = pretty((ehlo, long))
    lines = text.splitlines()
    assert lines[0] == "(<Reply 250-mx.lab.example.org"
    assert lines[1].strip() == "250-PIPELINING" and lines[1].startswith(" " * 8)
    assert all(len(line) <= 90 for line in lines), text
    assert all(not line.rstrip(">),").endswith("wor") for line in lines)  # wrapped at spaces


def test_stock_postfix_relay_deferral_is_explained_as_policy_not_tls():
    # Postfix >= 2.10 defaults to defer_unauth_destination: 454 4.7.1 at RCPT.  After
    # RCPT, 454 is a temporary policy refusal, not RFC 3207/4954's TLS or login trouble.
    from labsmtp import LabServer

    with LabServer(persona="postfix", name="test-replies-454") as s:
        c = s.client(source="127.0.0.2")
        c.ehlo("client.example.org")
        c.mail("learner@example.org")
        r = c.rcpt("someone@elsewhere.example.net")
        c.quit()
    assert (r.code, r.enhanced) == (454, "4.7.1") and "Relay access denied" in r.text
    assert "relaying deferred" in r.explain() and "allowed to relay" in r.explain()
    assert "TLS" not in r.explain()
    tls = parse_reply(b"454 4.7.0 TLS not available due to local problem\r\n", "STARTTLS")
    assert "TLS or login unavailable" in tls.explain()
