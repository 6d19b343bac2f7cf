"""BDAT (RFC 3030 CHUNKING) and the extensions a persona offers, driven in memory.

Real Exim sends BDAT to every persona that offers CHUNKING in
tests/test_mta_clients.py; here each rule of the session core on its own:
a chunk is exactly N octets whatever they contain, chunks make one message,
DATA and BDAT do not mix, a refused chunk is still read, the size limit spans
the chunks, RSET drops them, BODY=BINARYMIME needs BDAT, and an ESMTP
parameter is taken only where its extension is offered.
"""

from __future__ import annotations

import pytest

from labsmtp.protocol.events import ClientLine, MessageAccepted
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas import get_persona, persona_names
from labsmtp.protocol.states import State

CHUNKING = [p for p in persona_names() if "CHUNKING" in get_persona(p).ehlo_keywords]
# Exim reads the commands between chunks itself (smtp_in.c bdat_getc), its own way:
# tests/test_exim.py and the exim tests below; the generic rules are the others'.
GENERIC_CHUNKING = [p for p in CHUNKING if p != "exim"]
RCPT = "postmaster@lab.example.org"


def ready(persona: str, **switches) -> SessionPair:
    p = SessionPair(persona, **switches)
    assert p.ehlo("client.example.org").code == 250
    assert p.mail("ada@client.example.org").code == 250
    assert p.rcpt(RCPT).code == 250
    return p


def chunk(data: bytes, last: bool = False) -> bytes:
    """A BDAT line and its chunk, as a client writes them."""
    return f"BDAT {len(data)}{' LAST' if last else ''}\r\n".encode() + data


def lines_of(p: SessionPair, data: bytes) -> list[str]:
    return [ln for r in p.send(data) for ln in r.lines]


def test_the_personas_whose_program_offers_chunking():
    assert CHUNKING == ["exchange", "exim", "postfix"]


@pytest.mark.parametrize("persona", CHUNKING)
def test_chunks_make_one_message_stored_like_a_data_message(persona):
    p = ready(persona)
    # Lines that look like commands, a lone dot and a dot-stuffed-looking line: the
    # server counts octets and never reads them (RFC 3030 §2: no dot-unstuffing).
    first = b"Subject: chunks\r\n\r\nQUIT\r\n.\r\n..two\r\n"
    second = b"RSET\r\nMAIL FROM:<x@example.net>\r\nend\r\n"
    assert p.bdat(first).code == 250
    assert p.server_state is State.CHUNKING
    assert p.bdat(second, last=True).code == 250
    assert p.server_state is State.GREETED
    [stored] = p.messages
    assert stored.sent == first + second
    assert stored.content.endswith(first + second)
    assert b"\r\nReceived: " in b"\r\n" + stored.content.partition(b"\r\n\r\n")[0]
    assert stored.rcpt_tos == (RCPT,) and stored.mail_from == "ada@client.example.org"


def test_postfix_and_exim_say_what_they_said_in_the_recordings():
    p = ready("postfix")
    assert lines_of(p, b"BDAT 26\r\nSubject: bdat\r\n\r\nchunked\r\n") == ["250 2.0.0 Ok: 26 bytes"]
    [reply] = lines_of(p, b"BDAT 6 LAST\r\nmore\r\n")
    assert reply.startswith("250 2.0.0 Ok: 32 bytes queued as ")
    e = ready("exim")
    assert lines_of(e, b"BDAT 26\r\nSubject: bdat\r\n\r\nchunked\r\n") == [
        "250 26 byte chunk received"
    ]
    first, second = lines_of(e, b"BDAT 6 LAST\r\nmore\r\n")
    assert first == "250- 6 byte chunk, total 32" and second.startswith("250 OK id=")


@pytest.mark.parametrize("persona", CHUNKING)
def test_a_chunk_split_across_many_reads_is_still_one_chunk(persona):
    p = ready(persona)
    data = b"BDAT 40 LAST\r\n" + b"Subject: slow\r\n\r\n" + b"x" * 21 + b"\r\n"
    replies = []
    for i in range(len(data)):  # one byte at a time, as a very slow link delivers it
        replies += p.send(data[i : i + 1])
    assert [r.code for r in replies] == [250]
    assert p.messages[-1].sent.endswith(b"x" * 21 + b"\r\n")


@pytest.mark.parametrize("persona", GENERIC_CHUNKING)
def test_a_refused_transaction_still_consumes_the_chunk(persona):
    p = SessionPair(persona)
    p.ehlo("client.example.org")
    # No MAIL at all: the chunk is refused, and its "commands" are never answered.
    replies = p.send(chunk(b"MAIL FROM:<a@b.example>\r\nNOOP\r\n\r\n\r\n", last=True))
    assert len(replies) == 1 and replies[0].code == 503
    assert p.command("NOOP").code == 250
    assert not p.messages
    # The chunk's lines are in the transcript as message text, not as commands.
    text = [ln for ln in p.received if ln.note == "BDAT chunk"]
    assert [ln.raw for ln in text][:2] == [b"MAIL FROM:<a@b.example>\r\n", b"NOOP\r\n"]


def test_postfix_discards_later_chunks_after_a_refused_one():
    p = SessionPair("postfix")
    p.ehlo("client.example.org")
    assert lines_of(p, b"BDAT 26\r\nSubject: bdat\r\n\r\nchunked\r\n") == [
        "503 5.5.1 Error: need RCPT command"
    ]
    assert lines_of(p, b"MAIL FROM:<a@client.example.org>\r\n") == [
        "503 5.5.1 Error: MAIL after BDAT"
    ]
    assert lines_of(p, b"BDAT 6 LAST\r\nmore\r\n") == [
        "551 5.0.0 Discarded 6 bytes after earlier error"
    ]
    assert p.server_state is State.GREETED and not p.messages
    assert p.mail("a@client.example.org").code == 250  # the transaction is over


@pytest.mark.parametrize("persona", GENERIC_CHUNKING)
def test_data_after_bdat_is_refused_and_the_chunks_go_on(persona):
    p = ready(persona)
    assert p.bdat(b"Subject: x\r\n\r\n").code == 250
    refused = p.command("DATA")
    assert refused.code == 503  # RFC 3030 §3
    assert p.server_state is State.CHUNKING
    if persona == "postfix":
        assert list(refused.lines) == ["503 5.5.1 Error: DATA after BDAT"]
    assert p.bdat(b"body\r\n", last=True).code == 250
    assert p.messages[-1].sent == b"Subject: x\r\n\r\nbody\r\n"


@pytest.mark.parametrize("persona", CHUNKING)
def test_rset_discards_the_chunks(persona):
    p = ready(persona)
    assert p.bdat(b"Subject: dropped\r\n\r\n").code == 250
    assert p.rset().code == 250
    assert p.server_state is State.GREETED
    p.mail("ada@client.example.org")
    p.rcpt(RCPT)
    assert p.bdat(b"Subject: kept\r\n\r\nhi\r\n", last=True).code == 250
    [stored] = p.messages
    assert stored.sent == b"Subject: kept\r\n\r\nhi\r\n"


@pytest.mark.parametrize("persona", CHUNKING)
def test_the_size_limit_spans_the_chunks(persona):
    # RFC 1870 with RFC 3030 §4: each chunk fits, together they do not.
    p = ready(persona, message_size_limit=100)
    assert p.bdat(b"x" * 58 + b"\r\n").code == 250
    assert p.bdat(b"y" * 58 + b"\r\n").code == 552
    # The transaction failed: the last chunk is read and discarded, nothing stored.
    last = p.bdat(b"end\r\n", last=True)
    assert last.code >= 500 and not p.messages
    assert p.server_state is State.GREETED
    assert p.command("NOOP").code == 250


@pytest.mark.parametrize("persona", CHUNKING)
def test_a_refused_mail_then_bdat_does_not_parse_the_chunk(persona):
    p = SessionPair(persona)
    p.ehlo("client.example.org")
    assert p.command("MAIL FROM:<not an address>").code >= 500
    replies = p.send(chunk(b"QUIT\r\nRSET\r\n", last=True))
    assert len(replies) == 1 and replies[0].code == 503 and not p.closed


def test_bdat_where_chunking_is_not_offered_is_an_unknown_command():
    # Sendmail, OpenSMTPD and the generic persona do not offer CHUNKING: to them BDAT
    # is unknown and the chunk arrives as command lines, as the recordings show.
    p = SessionPair("sendmail")
    p.ehlo("client.example.org")
    replies = p.send(b"BDAT 6\r\nNOOP\r\n")
    assert [r.code for r in replies] == [500, 250]


def test_a_bdat_without_a_size_closes_postfix_and_not_exim():
    p = SessionPair("postfix")
    p.ehlo("client.example.org")
    assert lines_of(p, b"BDAT x\r\n") == ["521 5.5.4 Syntax: BDAT count [LAST]"]
    assert p.closed  # RFC 7504 §3: 521, then the connection closes
    e = SessionPair("exim")
    e.ehlo("client.example.org")
    assert lines_of(e, b"BDAT\r\n") == ["501 missing size for BDAT command"]
    assert not e.closed


def test_exim_offers_chunking_only_after_ehlo():
    e = SessionPair("exim")
    e.helo("client.example.org")
    e.mail("ada@client.example.org")
    assert lines_of(e, b"BDAT 6 LAST\r\nNOOP\r\n") == [
        "503 BDAT command used when CHUNKING not advertised",
        "250 OK",  # the "chunk" is read as commands
    ]


def test_exim_takes_only_bdat_noop_rset_quit_between_chunks():
    # As recorded (generated/exim.json g0312-bdat, g0399-bdat): anything else between
    # chunks is refused, and from then on only RSET (or QUIT) is served.
    e = ready("exim")
    assert e.bdat(b"Subject: x\r\n\r\n").code == 250
    assert e.command("NOOP").code == 250
    assert e.bdat(b"more\r\n").code == 250
    assert lines_of(e, b"MAIL FROM:<b@client.example.org>\r\n") == [
        "503 only BDAT permissible after non-LAST BDAT"
    ]
    assert lines_of(e, b"NOOP\r\n") == ["503 only RSET accepted now"]
    assert e.command("RSET").code == 250 and not e.messages
    assert e.mail("ada@client.example.org").code == 250  # a fresh transaction works


def test_postfix_refuses_an_empty_chunk_that_is_not_the_last():
    p = ready("postfix")
    assert lines_of(p, b"BDAT 0\r\n") == ["551 5.7.1 Null BDAT request"]
    assert p.bdat(b"", last=True).code == 551  # the transaction failed
    q = ready("postfix")
    assert q.bdat(b"Subject: empty end\r\n\r\n").code == 250
    assert q.bdat(b"", last=True).code == 250  # BDAT 0 LAST ends a message


def test_a_fault_point_comes_after_the_chunk_is_read():
    p = ready("postfix")
    chunk = b"Subject: x\r\n\r\n"
    p.session.receive(b"BDAT %d LAST\r\n" % len(chunk))
    assert p.session.next_turn() is not None  # the BDAT line
    assert p.session.next_turn() is None  # waiting for the chunk: no reply yet
    p.session.receive(chunk)
    turn = p.session.next_turn()
    assert turn is not None and turn.pending is not None
    assert turn.pending.stage.value == "bdat"
    events = p.session.respond(turn.pending)
    assert any(isinstance(ev, MessageAccepted) for ev in events)


# --- BINARYMIME (RFC 3030 §3) ---------------------------------------------------


def test_binarymime_needs_bdat_and_lifts_the_line_limit():
    p = SessionPair("exchange")
    p.ehlo("client.example.org")
    assert p.command("MAIL FROM:<ada@client.example.org> BODY=BINARYMIME").code == 250
    p.rcpt(RCPT)
    assert p.command("DATA").code == 503  # RFC 3030 §3: BINARYMIME needs BDAT
    body = b"Subject: binary\r\n\r\n" + bytes(range(256)) * 8 + b"\r\n"  # no line ends
    assert p.bdat(body, last=True).code == 250
    assert p.messages[-1].sent == body


def test_binarymime_only_where_it_is_offered():
    p = SessionPair("postfix")
    p.ehlo("client.example.org")
    assert p.command("MAIL FROM:<ada@client.example.org> BODY=BINARYMIME").code == 555
    assert p.command("MAIL FROM:<ada@client.example.org> BODY=8BITMIME").code == 250


def test_a_long_line_in_chunks_is_refused_as_in_data():
    p = ready("exchange")
    assert p.bdat(b"x" * 1200 + b"\r\n", last=True).code == 500  # §4.5.3.1.6
    assert not p.messages


# --- ESMTP parameters only where their extension is offered ---------------------


# Exim takes RET= and ENVID= without offering DSN (recorded: g0006-params, 250 OK).
@pytest.mark.parametrize("persona", [p for p in persona_names() if p != "exim"])
def test_dsn_parameters_only_where_dsn_is_offered(persona):
    p = SessionPair(persona)
    keywords = {k[4:].split()[0] for k in p.ehlo("client.example.org").lines[1:]}
    mail = p.command("MAIL FROM:<ada@client.example.org> RET=HDRS ENVID=abc")
    assert (mail.code == 250) == ("DSN" in keywords), (persona, mail)


def test_parameters_after_helo_depend_on_the_program():
    # Exim sets its *_advertised flags at EHLO only: after HELO, SIZE= is unknown.
    e = SessionPair("exim")
    e.helo("client.example.org")
    assert e.command("MAIL FROM:<ada@client.example.org> SIZE=100").code >= 500
    p = SessionPair("postfix")
    p.helo("client.example.org")
    assert p.command("MAIL FROM:<ada@client.example.org> SIZE=100").code == 250


def test_dsn_parameters_are_stored_with_the_message():
    p = SessionPair("postfix")
    p.ehlo("client.example.org")
    p.command("MAIL FROM:<ada@client.example.org> RET=HDRS ENVID=lab-1")
    p.command(f"RCPT TO:<{RCPT}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{RCPT}")
    p.command("RCPT TO:<root@lab.example.org> NOTIFY=NEVER")
    p.data("Subject: dsn\r\n\r\nhi\r\n")
    [stored] = p.messages
    assert stored.mail_parameters == ("RET=HDRS", "ENVID=lab-1")
    assert stored.rcpt_parameters == (
        ("NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{RCPT}"),
        ("NOTIFY=NEVER",),
    )


def test_the_transcript_shows_a_chunk_as_message_text():
    p = ready("postfix")
    p.bdat(b"Subject: t\r\n\r\nline\r\n", last=True)
    text = [ln for ln in p.received if isinstance(ln, ClientLine) and ln.note == "BDAT chunk"]
    assert [ln.raw for ln in text] == [b"Subject: t\r\n", b"\r\n", b"line\r\n"]
    assert all(ln.command is None for ln in text)
