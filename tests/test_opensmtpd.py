"""The opensmtpd persona on dialogues the recordings do not hold, predicted from its rules.

tests/test_persona_replay.py holds the persona to the real OpenSMTPD 6.8.0p2's
recorded answers.  Here: new dialogues whose answers follow from the rules in
tests/recordings/behaviour/opensmtpd.md and the program's source (smtp_session.c,
to.c, util.c, rfc5322.c, lka_filter.c, lka_session.c), and the persona's settings
(``filters``, ``aliases``, ``userbase``, ``virtual``) as a lesson would use them.
"""

from __future__ import annotations

import socket

import pytest

from labsmtp import LabServer
from labsmtp.errors import LabValueError
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas.opensmtpd_filters import Filters
from labsmtp.protocol.personas.opensmtpd_syntax import mailaddr, res_hnok, valid_domainpart

HOST = "mx.lab.example.org"
FQDN_FILTER = (
    'filter "helo_fqdn" phase helo match helo regex "^[^.]*$" '
    'reject "550 5.7.1 HELO name must be a fully-qualified domain name"'
)


def pair(client: str = "127.0.0.1", **settings: object) -> SessionPair:
    return SessionPair("opensmtpd", client_ip=client, **settings)


def greeted(client: str = "127.0.0.1", **settings: object) -> SessionPair:
    p = pair(client, **settings)
    assert p.ehlo("client.example.org").code == 250
    return p


# --- addresses (to.c text_to_mailaddr, util.c valid_localpart / valid_domainpart) -------


@pytest.mark.parametrize(
    "argument,address",
    [
        ("<a:b@example.org>", "b@example.org"),  # everything up to the first ":" goes
        ("<@x,@y:first.last@example.org>", "first.last@example.org"),
        ("<postmaster>", f"postmaster@{HOST}"),  # a bare local part gets the server's name
        ("<a@>", f"a@{HOST}"),
        ("<@>", ""),  # no user, no domain: the null sender, for MAIL only
        ("<a@b@example.org>", None),  # the last @ splits: "a@b" is no local part
        ("<a@[IPv6:1.2.3.4]>", "a@[IPv6:1.2.3.4]"),  # inet_pton(AF_INET) after AF_INET6
        ("<a@[::1]>", "a@[::1]"),  # no IPv6: tag needed
        ("<a@1.2.3.4>", "a@1.2.3.4"),  # digits are a host name to res_hnok
        ("<a@x-.example>", "a@x-.example"),  # glibc 2.36: only a leading '-' is refused
        ("<a@-x.example>", None),
        ("<a@x_y.example>", "a@x_y.example"),
        ("<~{}^@example.org>", "~{}^@example.org"),
        ("<a@b\\.c>", None),  # an escaped dot is a dot inside a label
        ("<a@" + "x" * 63 + ".example>", "a@" + "x" * 63 + ".example"),
        ("<a@" + "x" * 64 + ".example>", None),
        ("<a@" + "x." * 126 + "yy>", None),  # 254 octets: more than a DNS name holds
    ],
)
def test_mail_from_paths(argument, address):
    assert mailaddr(argument, True, HOST)[0] == address


def test_rcpt_refuses_the_null_path_in_any_form():
    assert mailaddr("<@>", False, HOST)[0] is None
    assert mailaddr("<>", False, HOST)[0] is None


def test_host_names_follow_res_hnok_and_literals_inet_pton():
    assert res_hnok("under_score.example") and res_hnok("123")
    assert not res_hnok("a..b") and not res_hnok("*.example") and not res_hnok("b\u00fccher")
    assert valid_domainpart("[192.0.2.1]") and not valid_domainpart("[192.0.2.01]")
    assert not valid_domainpart("[1.2.3.4] ") and not valid_domainpart("example.org.")


def test_the_session_keeps_the_address_it_parsed():
    p = greeted()
    assert str(p.command("MAIL FROM:<relay.example:Ada@example.org>")) == "250 2.0.0 Ok"
    assert p.session.mail_from == "Ada@example.org"
    r = p.command("RCPT TO:<nobody+x@LAB.EXAMPLE.ORG>")  # an account, the tag dropped
    assert str(r) == "250 2.1.5 Destination address valid: Recipient ok"


# --- parameters -----------------------------------------------------------------------------


def test_envid_longer_than_100_octets_is_too_large():
    p = greeted()
    r = p.command("MAIL FROM:<a@example.org> ENVID=" + "e" * 101)
    assert (
        str(r) == "503 5.5.4 Invalid command arguments: option too large, truncated: " + "e" * 101
    )
    assert p.command("MAIL FROM:<a@example.org> ENVID=" + "e" * 100).code == 250


def test_notify_flags_add_up_over_the_transactions_recipients():
    # smtp_tx_rcpt_to() ORs each RCPT's NOTIFY into one envelope: NEVER on one
    # recipient and DELAY on the next is the combination it refuses.
    p = greeted()
    p.command("MAIL FROM:<a@example.org>")
    assert p.command("RCPT TO:<x@elsewhere.example> NOTIFY=NEVER").code == 250
    r = p.command("RCPT TO:<y@elsewhere.example> NOTIFY=DELAY")
    assert str(r) == "553 NOTIFY option NEVER cannot be combined with other options"
    p.command("RSET")
    p.command("MAIL FROM:<a@example.org>")  # a new transaction starts clean
    assert p.command("RCPT TO:<y@elsewhere.example> NOTIFY=DELAY").code == 250


def test_rcpt_options_are_checked_before_the_recipient():
    p = greeted("127.0.0.2")
    p.command("MAIL FROM:<a@example.org>")
    assert str(p.command("RCPT TO:<x@elsewhere.example> BODY=7BIT")) == (
        "503 Unsupported option BODY=7BIT"
    )
    assert str(p.command("RCPT TO:<x@elsewhere.example> ORCPT=rfc822;")) == (
        "553 ORCPT address syntax error"
    )
    assert p.command("RCPT TO:<x@elsewhere.example>").code == 550


# --- recipients (Debian's smtpd.conf match rules) -------------------------------------------


@pytest.mark.parametrize(
    "client,recipient,code",
    [
        ("127.0.0.2", "Root+anything@lab.example.org", 250),  # an account, any case, a tag
        ("127.0.0.2", "www+x@lab.example.org", 250),  # an alias, the tag dropped
        ("127.0.0.2", "alice@lab.example.org", 550),
        ("127.0.0.2", "root@mx.lab.example.org", 550),  # "for local" is for local clients
        ("127.0.0.1", "alice@127.0.0.1", 550),  # an interface address is a local name
        ("127.0.0.1", "alice@[127.0.0.1]", 550),
        ("127.0.0.1", "daemon@localhost", 250),
        ("127.0.0.1", "alice@elsewhere.example", 250),  # relayed: no user check
    ],
)
def test_recipients(client, recipient, code):
    p = greeted(client)
    p.command("MAIL FROM:<a@example.org>")
    r = p.command(f"RCPT TO:<{recipient}>")
    assert r.code == code
    if code == 550:
        assert str(r) == f"550 Invalid recipient: <{recipient}>"


def test_aliases_userbase_and_virtual_are_settings():
    p = greeted("127.0.0.2", aliases="alice, bob", userbase=())
    p.command("MAIL FROM:<a@example.org>")
    assert p.command("RCPT TO:<alice@lab.example.org>").code == 250
    assert p.command("RCPT TO:<postmaster@lab.example.org>").code == 550  # not listed now
    v = greeted(virtual=("@lab.example.org",))
    v.command("MAIL FROM:<a@example.org>")
    assert v.command("RCPT TO:<anyone@lab.example.org>").code == 250
    r = v.command("RCPT TO:<anyone@mx.lab.example.org>")
    assert str(r) == f"524 5.2.4 Mailing list expansion problem: <anyone@{HOST}>"


def test_too_many_recipients_in_opensmtpds_words():
    p = greeted(max_recipients=1)
    p.command("MAIL FROM:<a@example.org>")
    assert p.command("RCPT TO:<postmaster@lab.example.org>").code == 250
    r = p.command("RCPT TO:<root@lab.example.org>")
    assert str(r) == "451 4.5.3 Too many recipients: Too many recipients"


# --- commands, lines, pipelining ---------------------------------------------------------------


def test_the_command_line_limit_is_2048_octets_and_closes():
    p = greeted()
    just = "NOOP " + "x" * (2047 - 5)
    assert p.command(just).code == 500 and not p.closed  # "does not accept arguments"
    assert [str(r) for r in p.send(just.encode() + b"x\r\n")] == ["500 5.0.0 Command line too long"]
    assert p.closed


def test_64k_without_a_line_end_is_refused_at_once():
    p = greeted()
    assert [str(r) for r in p.send(b"NOOP " + b"x" * 70_000)] == ["500 5.0.0 Line too long"]
    assert p.closed


def test_pipelined_commands_close_the_connection():
    p = greeted()
    replies = p.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@lab.example.org>\r\n")
    assert [str(r) for r in replies] == ["500 5.5.1 Invalid command: Pipelining not supported"]
    assert p.closed


def test_a_message_sent_with_data_in_one_write_is_pipelining():
    p = greeted()
    p.command("MAIL FROM:<a@example.org>"), p.command("RCPT TO:<postmaster@lab.example.org>")
    replies = p.send(b"DATA\r\nSubject: x\r\n\r\nx\r\n.\r\n")
    assert [r.code for r in replies] == [500] and p.messages == []


@pytest.mark.parametrize(
    "line,reply",
    [
        ("HELP me", "500 5.5.4 Invalid command arguments: command does not accept arguments."),
        ("QUIT ", "500 5.5.4 Invalid command arguments: command does not accept arguments."),
        ("WIZ", "500 5.5.1 Invalid command: this feature is not supported yet ;-)"),
        ("ETRN lab.example.org", "500 5.5.1 Invalid command: Command unrecognized"),
        ("MAIL FROM:<a@example.org>\x00 junk", "250 2.0.0 Ok"),  # the NUL ends the line
        ("STARTTLS", "503 5.5.1 Invalid command: Command not supported"),
        ("AUTH PLAIN AGFkYQBzZWNyZXQ=", "503 5.5.1 Invalid command: Command not supported"),
    ],
)
def test_command_replies(line, reply):
    assert str(greeted().command(line)) == reply


def test_starttls_and_auth_need_helo_first_and_no_transaction():
    assert str(pair().command("STARTTLS")).endswith("Command not allowed at this point.")
    p = greeted()
    p.command("MAIL FROM:<a@example.org>")
    assert str(p.command("AUTH LOGIN")).endswith("Command not allowed at this point.")


def test_starttls_when_offered_comes_before_help_in_the_ehlo_reply():
    p = pair(tls=True)
    assert p.ehlo("client.example.org").texts[-2:] == ("STARTTLS", "HELP")
    assert str(p.starttls()) == "220 2.0.0 Ready to start TLS"


def test_there_is_no_error_limit():
    p = greeted()
    assert {p.command("XYZZY").code for _ in range(50)} == {500}
    assert p.noop().code == 250 and not p.closed


# --- message text (rfc5322.c) -------------------------------------------------------------------


def _data(p: SessionPair, payload: bytes) -> list[str]:
    p.command("MAIL FROM:<a@example.org>"), p.command("RCPT TO:<postmaster@lab.example.org>")
    assert p.command("DATA").code == 354
    return [str(r) for r in p.send(payload)]


def test_a_message_must_start_with_a_header_or_an_empty_line():
    p = greeted()
    assert _data(p, b"hello\r\n.\r\n") == [
        "550 5.7.1 Delivery not authorized, message refused: Message is not RFC 2822 compliant"
    ]
    assert _data(p, b"Subject: x\r\nnot a header\r\n\r\nbody\r\n.\r\n")[0].startswith("550 5.7.1")
    assert _data(p, b"Subject: x\r\n folded\r\n\r\nno colon here\r\n.\r\n")[0].startswith("250")
    assert _data(p, b"\r\nbody only\r\n.\r\n")[0].startswith("250")
    assert len(p.messages) == 2 and not p.closed


def test_bare_lf_ends_lines_and_the_message_and_nul_ends_a_line():
    p = greeted()
    assert _data(p, b"Subject: lf\n\nbody\x00hidden\n.\n")[0].startswith("250 2.0.0 ")
    assert p.messages[-1].sent == b"Subject: lf\r\n\r\nbody\r\n"


def test_a_hundred_received_fields_is_a_loop():
    p = greeted()
    loop = b"Received: from x\r\n" * 100 + b"\r\nx\r\n.\r\n"
    assert _data(p, loop) == ["500 5.4.6 Routing loop detected: Loop detected"]
    assert _data(p, loop[len(b"Received: from x\r\n") :])[0].startswith("250")


def test_the_size_limit_is_checked_after_the_final_dot():
    p = greeted(message_size_limit=100)
    assert p.command("MAIL FROM:<a@example.org> SIZE=100000").code == 250  # never compared
    p.command("RSET")
    assert _data(p, b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n.\r\n") == [
        "554 5.3.4 Message too big for system: Transaction failed, message too big"
    ]


# --- built-in filters -------------------------------------------------------------------------------


def test_a_helo_filter_refuses_in_its_own_words_and_leaves_the_session_unidentified():
    p = pair(filters=FQDN_FILTER)
    assert str(p.helo("client")) == "550 5.7.1 HELO name must be a fully-qualified domain name"
    assert p.command("MAIL FROM:<a@example.org>").code == 503
    assert p.ehlo("client").code == 250  # the filter is for phase helo only
    assert p.helo("client.example.org").code == 503  # identified now: once is all


def test_filter_conditions_negation_tables_and_actions():
    rules = [
        "table trusted { 127.0.0.0/30 }",
        'filter "a" phase ehlo match !src <trusted> disconnect "421 4.7.0 go away"',
        'filter "b" phase ehlo match helo { "*.bad.example", "evil" } reject "554 no"',
        'filter "c" phase ehlo match rdns regex "(?i)^LOCALHOST$" rewrite "renamed.example"',
    ]
    outside = pair("127.0.0.9", filters=rules)
    assert str(outside.ehlo("client.example.org")) == "421 4.7.0 go away" and outside.closed
    assert str(pair(filters=rules).ehlo("Mail.BAD.example")) == "554 no"
    renamed = pair(filters=rules)
    assert (
        renamed.ehlo("client.example.org")
        .lines[0]
        .endswith("Hello renamed.example [127.0.0.1], pleased to meet you")
    )


def test_a_reject_that_is_not_an_smtp_reply_becomes_421_and_disconnects():
    p = pair(filters='filter "x" phase helo match fcrdns reject "go away"')
    assert str(p.helo("client.example.org")) == "421 Internal server error" and p.closed


def test_filters_read_smtpd_conf_and_say_what_they_cannot_read():
    assert Filters.coerce("filters", FQDN_FILTER).lines == (FQDN_FILTER,)
    with pytest.raises(LabValueError, match="phase helo and ehlo, not mail-from"):
        pair(filters='filter "m" phase mail-from match rdns reject "550 x"')
    with pytest.raises(LabValueError, match="no such table: nope"):
        pair(filters='filter "m" phase helo match helo <nope> reject "550 x"')
    with pytest.raises(LabValueError, match="reject"):
        pair(filters='filter "m" phase helo match rdns refuse "550 x"')


# --- over real sockets ------------------------------------------------------------------------------


def test_a_lab_server_refuses_pipelining_over_a_socket_and_smtplib_still_delivers():
    import smtplib

    with LabServer(persona="opensmtpd", name="test-opensmtpd-pipelining") as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.ehlo()[0] == 250 and not client.has_extn("pipelining")
            client.sendmail(
                "a@example.org", ["postmaster@lab.example.org"], "Subject: x\r\n\r\nx\r\n"
            )
        assert len(server.mailbox) == 1
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            sock.sendall(b"EHLO client.example.org\r\n")
            while not reader.readline().startswith(b"250 "):
                pass
            sock.sendall(b"NOOP\r\nNOOP\r\n")
            assert reader.readline() == b"500 5.5.1 Invalid command: Pipelining not supported\r\n"
            assert reader.readline() == b""  # and the server closed


def test_an_idle_session_is_closed_without_a_reply():
    with LabServer(persona="opensmtpd", name="test-opensmtpd-idle", idle_timeout=0.3) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            assert reader.readline() == b""  # closed, no 421 (smtp_session.c IO_TIMEOUT)
        notes = [ln.text for ln in server.transcript.lines() if "idle too long" in ln.text]
        assert notes, "the transcript says why the connection ended"
