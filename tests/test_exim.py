"""The exim persona is a stock Debian Exim 4.96 on dialogues nobody recorded.

Each expectation here is predicted from Exim's rules (smtp_in.c, parse.c, Debian's
ACLs; tests/recordings/behaviour/exim.md), not copied from a recording: the
recordings themselves are replayed by tests/test_persona_replay.py.  In memory
(SessionPair), with the lab zone as DNS as the recordings had it.
"""

from __future__ import annotations

import pytest

from labsmtp import LabServer
from labsmtp.errors import LabValueError
from labsmtp.lab.dnszone import DEFAULT_ZONE, LabZone
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas import get_persona
from labsmtp.protocol.personas.exim_parse import extract_option, parse_extract_address
from labsmtp.protocol.states import State

ZONE = LabZone(DEFAULT_ZONE)
DNS = dict(reverse=ZONE.reverse, addresses=ZONE.addresses, resolves=ZONE.resolves)


def exim(client: str = "127.0.0.1", **settings) -> SessionPair:
    return SessionPair("exim", client_ip=client, **DNS, **settings)


def texts(replies) -> list[str]:
    return [" / ".join(r.lines) for r in replies]


# --- greeting, HELO ----------------------------------------------------------------


def test_hello_names_the_client_by_its_reverse_dns_name():
    assert exim().helo("anything.example.net").text == (
        "mx.lab.example.org Hello localhost [127.0.0.1]"
    )
    # 127.0.0.3's PTR name does not resolve back: Exim shows the HELO name instead.
    assert exim("127.0.0.3").helo("Mixed.Case.example").text == (
        "mx.lab.example.org Hello Mixed.Case.example [127.0.0.3]"
    )
    # host_lookup = (none), as in the lab-config recording: always the HELO name.
    assert "Hello x.example [127.0.0.1]" in exim(host_lookup="").helo("x.example").text


@pytest.mark.parametrize(
    "name, ok",
    [
        ("-a.example", True),  # only letters, digits, dots and hyphens are checked
        ("[IPv4:192.0.2.1]", True),
        ("[192.0.2.256]", False),
        ("a_b.example", False),
        ("[IPv6:1.2.3.4]", False),
    ],
)
def test_helo_syntax(name, ok):
    reply = exim().ehlo(name)
    assert (reply.code == 250) is ok
    if not ok:
        assert reply.text == "Syntactically invalid EHLO argument(s)"


def test_helo_allow_chars_lets_underscores_in():
    assert exim(helo_allow_chars="_").helo("a_b.example").code == 250


def test_the_fourth_bad_helo_hangs_up_without_a_second_line():
    p = exim()
    for _ in range(3):
        assert p.helo("bad!").code == 501
    replies = p.send("HELO bad!\r\n")
    assert texts(replies) == ["501 Syntactically invalid HELO argument(s)"]
    assert p.closed


def test_helo_verify_hosts_refuses_a_name_that_is_not_the_client():
    p = exim("127.0.0.2", helo_verify_hosts="*")
    assert texts(p.send("EHLO client.example.org\r\n")) == [
        "550 EHLO argument does not match calling host"
    ]
    assert texts(p.send("MAIL FROM:<a@example.org>\r\n")) == ["503 HELO or EHLO required"]
    assert p.helo("[127.0.0.2]").code == 250  # a literal naming the client's address
    # Only for the hosts listed:
    assert exim("127.0.0.2", helo_verify_hosts="127.0.0.1").helo("x.example").code == 250


def test_a_helo_acl_written_as_in_exim():
    acl = "deny hosts = 127.0.0.1\naccept"
    p = exim(acl_smtp_helo=acl)
    assert texts(p.send("HELO client.example.org\r\n")) == ["550 Administrative prohibition"]
    assert p.server_state is State.CONNECTED
    assert exim("127.0.0.2", acl_smtp_helo=acl).helo("client.example.org").code == 250
    # A message may carry its own code (same class), and $variables expand.
    own = "deny message = 554 go away, $sender_helo_name\n  !verify = helo\naccept"
    assert texts(exim(acl_smtp_helo=own).send("HELO mail.good.example\r\n")) == [
        "554 go away, mail.good.example"
    ]
    assert exim(acl_smtp_helo=own).helo("client.example.org").code == 250


def test_a_helo_acl_the_lab_cannot_read_is_refused_with_what_it_knows():
    with pytest.raises(LabValueError, match="knows"):
        exim(acl_smtp_helo="deny dnslists = zen.spamhaus.org").helo("x.example")


# --- reading commands --------------------------------------------------------------


def test_a_command_line_up_to_16384_octets_is_one_command():
    p = exim()
    assert texts(p.send(b"NOOP " + b"x" * 16377 + b"\r\n")) == ["250 OK"]  # 16,384 octets and LF
    # 16,385 octets and more: that much is one unrecognised command, the rest another.
    replies = p.send(b"NOOP " + b"x" * 16390 + b"\r\n")
    assert texts(replies) == ["500 unrecognized command", "500 unrecognized command"]


def test_tab_is_not_a_separator_and_trailing_white_space_is_ignored():
    p = exim()
    assert texts(p.send("NOOP \t \r\n")) == ["250 OK"]
    assert texts(p.send("HELO\tx.example\r\n")) == ["500 unrecognized command"]
    assert texts(p.send("QUIT \t\r\n")) == ["221 mx.lab.example.org closing connection"]


def test_syntax_errors_and_unknown_commands_share_one_limit():
    p = exim()
    p.send("FOO\r\n")
    p.send("RSET now\r\n")  # 501 unexpected argument data
    p.send(b"NOOP\x00\r\n")  # NUL: counted too
    replies = p.send("MAIL FROM:<a@example.org>\r\n")  # no HELO: not a protocol error
    assert texts(replies) == ["503 HELO or EHLO required"]
    replies = p.send("RCPT TO:<postmaster@lab.example.org>\r\n")
    assert texts(replies) == ["503-sender not yet given / 503 Too many syntax or protocol errors"]
    assert p.closed


def test_eleven_non_mail_commands_are_too_many():
    p = exim()
    assert p.helo("client.example.org").code == 250  # the first HELO is free
    for _ in range(10):
        assert p.noop().code == 250
    assert texts(p.send("VRFY postmaster\r\n")) == ["554 Too many nonmail commands"]
    assert p.closed


# --- pipelining and synchronisation ------------------------------------------------


def test_commands_sent_early_after_helo_get_a_synchronization_error():
    p = exim()
    p.helo("client.example.org")
    replies = p.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@lab.example.org>\r\n")
    assert texts(replies) == ["554 SMTP synchronization error"]
    assert p.closed


def test_after_ehlo_a_pipelined_transaction_is_answered_in_full():
    p = exim()
    p.ehlo("client.example.org")
    replies = p.send(
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@lab.example.org>\r\nDATA\r\n"
    )
    assert [r.code for r in replies] == [250, 250, 354]


def test_noops_sent_together_are_fine_until_the_first_message():
    p = exim()
    p.ehlo("client.example.org")
    assert [r.code for r in p.send("NOOP\r\nNOOP\r\n")] == [250, 250]  # PIPECONNECT
    p.mail("a@example.org")
    p.rcpt("postmaster@lab.example.org")
    assert p.data("Subject: x\r\n\r\nhi\r\n").code == 250
    assert texts(p.send("NOOP\r\nNOOP\r\n")) == ["554 SMTP synchronization error"]


def test_smtp_enforce_sync_false_answers_everything():
    p = exim(smtp_enforce_sync=False)
    p.helo("client.example.org")
    replies = p.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@lab.example.org>\r\n")
    assert [r.code for r in replies] == [250, 250]


# --- addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arg, want",
    [
        ("<(comment) a@example.org>", "250 OK"),
        ('<"a b"@example.org>', "250 OK"),
        ("Ada Lovelace <ada@example.org>", "250 OK"),
        ("<@relay.example,@other.example:ada@example.org>", "250 OK"),
        ("<ada@example.org", "501 <ada@example.org: '>' missing at end of address"),
        (
            "<ada@ex ample.org>",
            "501 <ada@ex ample.org>: malformed address: ample.org> may not follow <ada@ex ",
        ),
        ("<ada>", "501 <ada>: sender address must contain a domain"),
        ("<ada@>", "501 <ada@>: domain missing or malformed"),
        ('<"ada@example.org>', '501 <"ada@example.org>: unmatched doublequote in local part'),
    ],
)
def test_mail_from_after_helo(arg, want):
    p = exim()
    p.helo("client.example.org")
    assert texts(p.send(f"MAIL FROM:{arg}\r\n")) == [want]


def test_options_come_off_the_end_after_ehlo_only():
    p = exim()
    p.ehlo("client.example.org")
    assert texts(p.send("MAIL FROM:<a@example.org> BODY=7BIT SIZE=99\r\n")) == ["250 OK"]
    p.rset()
    assert texts(p.send("MAIL FROM:<a@example.org> SIZE=52428801\r\n")) == [
        "552 Message size exceeds maximum permitted"
    ]
    assert texts(p.send("MAIL FROM:<a@example.org> PRDR\r\n")) == ["250 OK, PRDR Requested"]
    # An unknown last word goes back with an '=' before it, in RCPT (not in MAIL).
    assert texts(p.send("RCPT TO:<postmaster@lab.example.org> XYZ\r\n")) == [
        "501 <postmaster@lab.example.org>=XYZ: malformed address: =XYZ may not follow "
        "<postmaster@lab.example.org>"
    ]


def test_parser_pieces():
    assert parse_extract_address("<a@b.example>", False).address == "a@b.example"
    assert parse_extract_address("a@[192.0.2.1]", False).address == "a@[192.0.2.1]"
    long = "<" + "x" * 250 + "@example.org>"
    assert parse_extract_address(long, False).error.startswith("address is ridiculously long: xxx")
    opt = extract_option("<a@b> SIZE=10")
    assert opt is not None and (opt.rest, opt.name, opt.value) == ("<a@b>", "SIZE", "10")
    assert extract_option("<a@b> X-Y=1") is None  # a name is letters only


def test_a_reply_too_long_for_exims_buffer_is_421_and_only_quit_works_then():
    p = exim()
    p.helo("client.example.org")
    replies = p.send("MAIL FROM:<" + "a" * 16370 + ">\r\n")
    assert texts(replies) == ["421 Unexpected error"]
    assert texts(p.send("NOOP\r\n")) == ["421 Unexpected error"]
    assert texts(p.send("RSET\r\n")) == ["250 Reset OK"]
    assert texts(p.send("QUIT\r\n")) == ["221 mx.lab.example.org closing connection"]
    assert p.closed


# --- recipients: Debian's acl_check_rcpt ------------------------------------------------


@pytest.mark.parametrize(
    "client, rcpt, want",
    [
        ("127.0.0.2", "<www-data@lab.example.org>", "250 Accepted"),  # a passwd account
        ("127.0.0.2", "<Hostmaster@LOCALHOST>", "250 Accepted"),  # an alias, any case
        ("127.0.0.2", "<carol@mx.lab.example.org>", "550 Unrouteable address"),
        ("127.0.0.1", "<carol@lab.example.org>", "250 Accepted"),  # relay_from_hosts
        ("127.0.0.1", "<a#b@example.net>", "550 restricted characters in address"),
        ("127.0.0.1", "<a/b@example.net>", "250 Accepted"),  # '/' is fine for remote domains
        ("127.0.0.1", "<a/b@lab.example.org>", "550 restricted characters in address"),
        ("127.0.0.2", '<"post\\master"@lab.example.org>', "250 Accepted"),  # unquoted: postmaster
        ("127.0.0.2", "<postmaster>", "250 Accepted"),  # postmaster needs no domain
        ("127.0.0.2", "<root>", "501 <root>: recipient address must contain a domain"),
    ],
)
def test_recipients(client, rcpt, want):
    p = exim(client)
    p.ehlo("client.example.org")
    p.mail("a@example.org")
    assert texts(p.send(f"RCPT TO:{rcpt}\r\n")) == [want]


def test_data_quotes_the_common_rcpt_error():
    p = exim("127.0.0.2")
    p.helo("client.example.org")
    p.mail("a@example.org")
    p.rcpt("x@elsewhere.example")
    p.rcpt("y@elsewhere.example")
    assert texts(p.send("DATA\r\n")) == [
        "503-All RCPT commands were rejected with this error: / 503-relay not permitted / "
        "503 valid RCPT command must precede DATA"
    ]


def test_eleven_recipients_most_of_them_bad_are_refused_as_such():
    p = exim("127.0.0.2")
    p.ehlo("client.example.org")
    p.mail("a@example.org")
    for i in range(10):
        p.rcpt(f"nobody{i}@elsewhere.example")
    assert texts(p.send("RCPT TO:<postmaster@lab.example.org>\r\n")) == ["250 Accepted"]
    assert texts(p.send("RCPT TO:<root@lab.example.org>\r\n")) == [
        "550 Rejected for too many bad recipients"
    ]


# --- the message ---------------------------------------------------------------------


def _to_data(p: SessionPair) -> None:
    p.ehlo("client.example.org")
    p.mail("a@example.org")
    p.rcpt("postmaster@lab.example.org")
    assert p.command("DATA").code == 354


def test_a_message_whose_first_line_ends_in_lf_may_end_with_a_bare_lf_dot():
    p = _to_data_pair = exim()
    _to_data(_to_data_pair)
    assert texts(p.send(b"Subject: x\n\nbody\n.\n"))[0].startswith("250 OK id=")


def test_a_crlf_message_is_not_ended_by_a_bare_lf_dot():
    p = exim()
    _to_data(p)
    assert p.send(b"Subject: x\r\n\r\nbody\n.\n") == []  # Exim waits for more


def test_debians_data_acl():
    p = exim()
    _to_data(p)
    assert texts(p.send(b"To: a b c\r\n\r\nx\r\n.\r\n")) == ["550 header syntax"]
    _to_data(p)
    assert texts(p.send(b"Subject: x\r\n\r\n" + b"y" * 999 + b"\r\n.\r\n")) == [
        "550 maximum allowed line length is 998 octets, got 999"
    ]
    _to_data(p)
    ok = b"From: Ada <ada@example.org>\r\nTo: undisclosed-recipients:;\r\n\r\nx\r\n.\r\n"
    assert texts(p.send(ok))[0].startswith("250 OK id=")
    assert len(p.messages) == 1


# --- settings and the lab server -----------------------------------------------------


def test_settings_have_exims_names_and_debians_values():
    s = get_persona("exim").settings
    assert s["hosts_require_helo"] == "*" and s["helo_verify_hosts"] == ""
    assert s["smtp_max_unknown_commands"] == 3 and s["acl_smtp_helo"] == ""
    assert get_persona("exim").policy_defaults["message_size_limit"] == 52428800


def test_hosts_require_helo_empty_lets_mail_in_before_helo():
    p = exim(hosts_require_helo="")
    assert p.mail("a@example.org").code == 250


def test_a_stock_exim_lab_server_offers_starttls_and_says_hello_by_name():
    with LabServer(persona="exim", name="test-exim-stock") as server:
        client = server.client()
        reply = client.ehlo("client.example.org")
        assert "STARTTLS" in reply.lines[-3]
        assert reply.lines[0] == "250-mx.lab.example.org Hello localhost [127.0.0.1]"
        assert client.help().lines[-1] == (
            "214 AUTH STARTTLS HELO EHLO MAIL RCPT DATA BDAT NOOP QUIT RSET HELP"
        )
        client.quit()


def test_input_before_the_greeting():
    from labsmtp.protocol.events import Answer, HangUp
    from labsmtp.protocol.session import Session, Setup

    def greet(**settings):
        persona = get_persona("exim")
        policy, merged = persona.configure(**settings)
        s = Session(Setup(persona, policy, settings=merged), "127.0.0.1")
        s.receive(b"EHLO client.example.org\r\n")  # sent without waiting for the banner
        return s.respond(s.connect())

    # PIPECONNECT offered to every host (4.96's default): early input is welcome.
    assert greet()[0].lines[0].startswith("220 mx.lab.example.org ESMTP Exim 4.96")
    events = greet(pipelining_connect_advertise_hosts="")
    assert [e.lines for e in events if isinstance(e, Answer)] == [
        ("554 SMTP synchronization error",)
    ]
    assert any(isinstance(e, HangUp) for e in events)
