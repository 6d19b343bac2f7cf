"""The refused state, the Grammar line hooks and Checks, driven in memory: each default is the lab's old behaviour,
and a persona that supplies its own gets its program's behaviour (issue 11).

- the refused state: a 554 greeting waits for QUIT and answers the rest 503 (RFC 5321 §3.1);
  a 421 closes at once (§3.8);
- ``Grammar``: how much of a line is read, its text, verb and argument, lines that name no
  command (and may end the session), the HELO name, a path's own refusal;
- ``Checks``: where the restrictions are applied (HELO, RCPT, VRFY, the greeting);
- ``Persona.policy_names``: a program's own names for the shared Policy switches.
"""

from __future__ import annotations

import dataclasses

from labsmtp.protocol import states
from labsmtp.protocol.checks import Checks
from labsmtp.protocol.events import Answer, HangUp
from labsmtp.protocol.grammar import Grammar, Refusal
from labsmtp.protocol.lines import LineBuffer, TooLong
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas import get_persona
from labsmtp.protocol.session import Session, Setup
from labsmtp.protocol.states import State


def _lines(events):
    return [ln for ev in events if isinstance(ev, Answer) for ln in ev.lines]


def _drive(session, data):
    """Feed ``data``; every reply line the session answers with (normal behaviour)."""
    session.receive(data)
    out = []
    while (turn := session.next_turn()) is not None:
        out += _lines(turn.events)
        if turn.pending is not None:
            out += _lines(session.respond(turn.pending))
    return out


# --- the refused state ----------------------------------------------------------------------


def test_a_554_greeting_waits_for_quit_and_answers_everything_else_503():
    session = Session(Setup(get_persona("postfix")), "127.0.0.1")
    events = session.refuse("connection_refused", reason="not you")
    assert _lines(events) == [
        "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied: not you"
    ]
    assert session.state is State.REFUSED and not session.closing
    denied = "503 5.7.0 Error: access denied for localhost[127.0.0.1]"
    for line in (b"EHLO client.example.org\r\n", b"NOOP\r\n", b"FOO\r\n", b"STARTTLS\r\n"):
        assert _drive(session, line) == [denied]
        assert session.state is State.REFUSED
    assert _drive(session, b"QUIT\r\n") == ["221 2.0.0 Bye"]
    assert session.state is State.CLOSED and session.closing


def test_a_421_refusal_closes_at_once():
    session = Session(Setup(get_persona("postfix")), "127.0.0.1")
    events = session.refuse("too_many_connections")
    assert _lines(events)[0].startswith("421 4.7.0 ")
    assert any(isinstance(ev, HangUp) for ev in events) and session.state is State.CLOSED


def test_a_fault_that_greets_with_554_refuses_the_session_too():
    session = Session(Setup(get_persona("generic")), "127.0.0.1")
    session.answered(session.connect(), 554)
    assert session.state is State.REFUSED
    assert _drive(session, b"HELO x.example.org\r\n")[0].startswith("503 ")


def test_the_table_knows_the_refused_state():
    assert states.after_greeting(220) is State.CONNECTED
    assert states.after_greeting(421) is State.CLOSED
    assert states.after_greeting(554) is State.REFUSED
    assert states.allowed_commands(State.REFUSED) == [states.Command.QUIT]
    assert states.refusal(State.REFUSED, states.Command.EHLO) == "access_denied"


# --- Grammar ------------------------------------------------------------------------------


class _Cutting(Grammar):
    """A grammar with every hook changed: it cuts lines at 20 octets, reads TAB as a
    separator, hangs up on 'GET', answers its own 'PING', greets only single names
    and has its own refusal for a path without '@'."""

    def keep(self, line):
        head = line.head if isinstance(line, TooLong) else line
        return head[:20] + (b"\r\n" if not head[:20].endswith(b"\n") else b"")

    def split(self, text):
        verb, _, arg = text.replace("\t", " ").strip().partition(" ")
        return verb.upper(), arg.strip()

    def unknown_verb(self, verb, text, session):
        if verb == "GET":
            return Refusal("quit", close=True)
        if verb == "PING":
            return Refusal("noop_ok")
        return Refusal("unknown_command")

    def helo_name_in(self, argument):
        return argument.split()[0] if argument else None

    def path(self, argument, keyword):
        if "@" not in argument:
            return Refusal("mail_param_unknown", argument)
        return super().path(argument, keyword)

    def line_limit(self, verb, policy):
        return 10**9


def _cutting_pair(**kw):
    persona = dataclasses.replace(get_persona("postfix"), grammar=_Cutting)
    return SessionPair(persona, **kw)


def test_grammar_hooks_steer_how_lines_are_read():
    p = _cutting_pair()
    assert p.command("\tNOOP").code == 250  # split: the TAB is a separator here
    assert p.command("NOOP " + "x" * 70000).code == 250  # read: the head only
    assert p.command("PING").lines == ("250 2.0.0 Ok",)  # a command of the program's own
    assert p.command("HELO a.example.org b.example.org").code == 250  # helo_name_in
    assert p.session.helo == "a.example.org"
    # path: the grammar's own refusal
    assert p.command("MAIL FROM:<nobody>").lines == ("555 5.5.4 Unsupported option: FROM:<nobody>",)
    replies = p.send(b"GET / HTTP/1.0\r\nNOOP\r\n")
    assert [r.code for r in replies] == [221] and p.closed  # unknown: hang up, read no more


def test_the_line_buffer_keeps_the_head_of_an_over_long_line():
    buf = LineBuffer(limit=8)
    buf.feed(b"0123456789abcdef")
    assert buf.line() is None
    buf.feed(b"ghij\r\nNOOP\r\n")
    assert buf.line() == TooLong(22, b"01234567")
    assert buf.line() == b"NOOP\r\n"


# --- Checks -------------------------------------------------------------------------------


class _Strict(Checks):
    """Refuses HELO 'bad', every recipient at 'nowhere', and VRFY of anyone."""

    def at_helo(self, session, name):
        return Refusal("helo_invalid", name) if name == "bad" else None

    def at_rcpt(self, session, address):
        return Refusal("relay_denied") if address.endswith("@nowhere") else None

    def vrfy(self, session, argument):
        return Refusal("user_unknown", argument)


def test_checks_hooks_decide_where_restrictions_apply():
    persona = dataclasses.replace(get_persona("postfix"), checks=_Strict)
    p = SessionPair(persona)
    assert p.command("HELO bad").lines == ("501 5.5.2 <bad>: Helo command rejected: Invalid name",)
    assert p.command("HELO good.example.org").code == 250
    assert p.command("MAIL FROM:<a@example.org>").code == 250
    assert p.command("RCPT TO:<a@nowhere>").lines[0].startswith("554 5.7.1 <a@nowhere>")
    assert p.command("RCPT TO:<a@example.org>").code == 250
    assert p.command("VRFY bob").code == 550


def test_default_checks_are_the_labs_old_order():
    p = SessionPair("generic", smtpd_helo_restrictions="reject_non_fqdn_helo_hostname")
    assert p.command("HELO client").code == 504  # at HELO
    assert p.command("VRFY <bob@example.org>").lines[0].endswith("<bob@example.org>")


def test_greeting_check_can_refuse_and_leaves_the_session_refused():
    class _NoOne(Checks):
        def at_connect(self, session):
            return Refusal("connection_refused")

    p = SessionPair(dataclasses.replace(get_persona("generic"), checks=_NoOne))
    assert p.greeting.code == 554 and p.session.state is State.REFUSED
    assert p.command("EHLO x.example.org").code == 503
    assert p.command("QUIT").code == 221 and p.closed


# --- policy aliases -------------------------------------------------------------------------


def test_a_program_may_name_a_shared_switch_its_own_way():
    persona = dataclasses.replace(
        get_persona("generic"), policy_names={"smtpd_recipient_limit": "max_recipients"}
    )
    policy, _ = persona.configure(smtpd_recipient_limit=2)
    assert policy.max_recipients == 2


def test_a_persona_may_ask_for_helo_before_saying_auth_is_not_offered():
    # Default: AUTH without lab users is "not offered", whatever the greeting state.
    generic = get_persona("generic")
    p = SessionPair(generic, smtpd_helo_required=True)
    assert "AUTH not available" in p.command("AUTH PLAIN").text
    # auth_asks_helo_first: where HELO is required, its absence is said first ...
    asks = dataclasses.replace(generic, auth_asks_helo_first=True)
    p = SessionPair(asks, smtpd_helo_required=True)
    assert p.command("AUTH PLAIN").code == 503
    assert "send EHLO first" in p.command("AUTH PLAIN").text
    p.command("EHLO client.example.org")
    assert "AUTH not available" in p.command("AUTH PLAIN").text
    # ... and where it is not required, AUTH is simply not offered.
    p = SessionPair(asks, smtpd_helo_required=False)
    assert "AUTH not available" in p.command("AUTH PLAIN").text


class _NoMessages(Checks):
    def at_dot(self, session, message):
        return Refusal("data_too_big")


def test_a_checks_hook_may_refuse_a_message_at_the_dot():
    def deliver(p):
        p.command("EHLO client.example.org")
        p.command("MAIL FROM:<a@example.org>")
        p.command("RCPT TO:<postmaster@lab.example.org>")
        p.command("DATA")
        return p.send_message("Subject: small\r\n\r\nhi\r\n")

    # Default: the message's own verdict (size and line limits), so a small one is taken.
    assert deliver(SessionPair("generic")).code == 250
    persona = dataclasses.replace(get_persona("generic"), checks=_NoMessages)
    p = SessionPair(persona)
    assert deliver(p).code == 552 and not p.messages
    assert p.command("MAIL FROM:<a@example.org>").code == 250  # the transaction is over
