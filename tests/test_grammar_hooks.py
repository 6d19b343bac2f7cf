"""The session's generic hooks for a program's own grammar (grammar.py), each tested
with a small grammar of its own on the plain generic persona, in memory.

Every hook's default is the lab's standard behaviour (the other test files keep
that); here each hook is switched on once and the session must follow it: its
answer in the persona's words, its state change through the table, its close.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from labsmtp import LabServer
from labsmtp.lab.dnszone import DEFAULT_ZONE, LabZone, use_zone
from labsmtp.protocol.auth import Unverifiable, b64
from labsmtp.protocol.events import HangUp
from labsmtp.protocol.grammar import CommandLine, Grammar, Path, Refusal, View
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas import get_persona
from labsmtp.protocol.states import Command, State

WORDS = {
    "own_answer": "250 2.0.0 mine: {arg}",
    "own_counted": "550 5.0.0 counted",
    "own_closing": "554 5.5.0 goodbye",
    "own_field": "250 2.0.0 field {custom}",
    "line_too_long": "421 4.7.0 {hostname} too long",
    "bare_lf": "421 4.5.0 bare LF",
    "nul": "554 5.6.1 NUL",
}


class Hooks(Grammar):
    """A grammar that uses every hook, each in one visible way."""

    text_line_end = b"\n"

    def read(self, raw: bytes) -> CommandLine | None:
        text = raw.split(b"\0", 1)[0].decode("latin-1").rstrip("\r\n")
        verb, _, arg = text.partition(" ")
        return CommandLine(text, verb.upper(), arg.strip())

    def too_long(self, raw, text, verb, policy) -> bool:
        return len(raw) > 40

    def before(self, cmd, line, view: View) -> Refusal | None:
        if line.verb == "MINE":
            return Refusal("own_answer", line.arg)
        if line.verb == "COUNTED":
            return Refusal("own_counted", count=True)
        if line.verb == "BYE":
            return Refusal("own_closing", close=True)
        if line.verb == "FIELD":
            return Refusal("own_field")
        if cmd is Command.AUTH and not view.setup.users:
            return Refusal("auth_challenge", exchange=Unverifiable("CRAM-MD5", "Y2hhbGxlbmdl"))
        if line.verb == "PIPE":
            return Refusal("own_answer", "waiting" if view.input_waiting else "alone")
        return None

    def helo(self, verb, arg, view) -> Refusal | str:
        return Refusal("helo_invalid") if "_" in arg else super().helo(verb, arg, view)

    def keywords(self, words, view) -> list[str]:
        return [w for w in words if w != "SMTPUTF8"]

    def parse_path(self, command, argument, view) -> Path | Refusal:
        path = super().parse_path(command, argument, view)
        if isinstance(path, Path):
            return dataclasses.replace(path, echo=f"[{argument}]")
        return path

    def recipient(self, path, standard, view) -> Refusal | None:
        if path.address.startswith("reject"):
            return Refusal("own_closing", fields={"addr": path.address})
        return super().recipient(path, standard, view)

    def vrfy(self, argument, view) -> Refusal | None:
        return Refusal("own_answer", f"vrfy {argument}")

    def argument_refusal(self, command, argument, view) -> Refusal | None:
        if command is Command.DATA and argument == "now":
            return Refusal("own_closing", close=True)
        return super().argument_refusal(command, argument, view)

    def text_line(self, line: bytes) -> Refusal | None:
        if not line.endswith(b"\r\n"):
            return Refusal("bare_lf", close=True)
        return Refusal("nul") if b"\0" in line else None

    def field(self, key, fields) -> object:
        if key == "custom":
            return f"of {fields.client_ip}"
        return super().field(key, fields)


HOOKED = dataclasses.replace(
    get_persona("generic"),
    name="hooked",
    replies=MappingProxyType({**get_persona("generic").replies, **WORDS}),
    grammar=Hooks,
    unknown_command_limit=2,
)


def pair(client: str = "127.0.0.1") -> SessionPair:
    p = SessionPair(HOOKED, client_ip=client)
    p.command("EHLO client.example.org")
    return p


def test_read_and_too_long_decide_how_a_line_is_taken():
    p = pair()
    assert str(p.command(b"NOOP\x00 ignored after the NUL")) == "250 2.0.0 OK"
    assert str(p.command("NOOP " + "x" * 40)) == "421 4.7.0 mx.lab.example.org too long"
    assert p.closed and p.server_state is State.CLOSED


def test_before_answers_its_own_verbs_counts_and_closes():
    p = pair()
    assert str(p.command("MINE hello")) == "250 2.0.0 mine: hello"
    assert str(p.command("FIELD")) == "250 2.0.0 field of 127.0.0.1"
    assert str(p.command("COUNTED")) == "550 5.0.0 counted"
    assert str(p.command("COUNTED")) == "550 5.0.0 counted"
    replies = p.send(b"COUNTED\r\n")  # the third goes past unknown_command_limit=2
    assert [r.code for r in replies] == [421] and p.closed
    q = pair()
    assert str(q.command("BYE")) == "554 5.5.0 goodbye" and q.closed
    assert any(isinstance(ev, HangUp) for ev in q.events)


def test_the_view_tells_whether_the_client_pipelined():
    p = pair()
    assert str(p.command("PIPE")) == "250 2.0.0 mine: alone"
    replies = p.send(b"PIPE\r\nNOOP\r\n")
    assert [str(r) for r in replies] == ["250 2.0.0 mine: waiting", "250 2.0.0 OK"]


def test_helo_and_keywords_hooks():
    p = SessionPair(HOOKED)
    assert p.command("EHLO bad_name").code == 501 and p.server_state is State.CONNECTED
    assert p.command("HELO").code == 501  # the default check still there
    ehlo = p.command("EHLO client.example.org")
    assert "SMTPUTF8" not in ehlo.text and "PIPELINING" in ehlo.text


def test_paths_echo_recipients_vrfy_and_data_hooks():
    p = pair("127.0.0.2")  # outside mynetworks: may not relay
    assert (
        str(p.command("MAIL FROM:<a@example.org>"))
        == "250 2.1.0 Sender <[FROM:<a@example.org>]> OK"
    )
    assert p.session.sender == "a@example.org"
    assert str(p.command("RCPT TO:<reject@lab.example.org>")) == "554 5.5.0 goodbye"
    assert p.server_state is State.MAIL and not p.closed  # a refusal, not a close
    relay = p.command("RCPT TO:<x@elsewhere.example>", Command.RCPT)
    assert relay.code == 554 and "Relay access denied" in relay.text  # the standard verdict
    assert p.command("RCPT TO:<postmaster@lab.example.org>").code == 250
    assert str(p.command("VRFY root")) == "250 2.0.0 mine: vrfy root"
    assert str(p.command("DATA now")) == "554 5.5.0 goodbye" and p.closed


def test_text_line_refuses_after_the_dot_or_at_once():
    p = pair()
    p.command("MAIL FROM:<a@example.org>"), p.command("RCPT TO:<postmaster@lab.example.org>")
    assert p.command("DATA").code == 354
    assert str(p.send_message("Subject: x\r\n\r\na\0b\r\n")) == "554 5.6.1 NUL"
    assert p.messages == [] and p.server_state is State.GREETED
    p.command("MAIL FROM:<a@example.org>"), p.command("RCPT TO:<postmaster@lab.example.org>")
    p.command("DATA")
    assert [str(r) for r in p.send(b"Subject: x\r\n\r\nbare\n")] == ["421 4.5.0 bare LF"]
    assert p.closed


def test_a_grammar_can_start_an_auth_exchange_that_fails():
    p = pair()
    assert str(p.command("AUTH CRAM-MD5")) == "334 Y2hhbGxlbmdl"
    assert p.command(b64("alice digest"), Command.AUTH).code == 535


def _derive(settings, switches):
    """A made-up program option: "polite" is the lab's smtpd_helo_required."""
    size = {"message_size_limit": 1234} if settings["small"] else {}
    return {}, {"smtpd_helo_required": settings["polite"], **size}


DERIVING = dataclasses.replace(
    get_persona("generic"),
    name="deriving",
    settings=MappingProxyType({"polite": True, "small": False}),
    derive=_derive,
    lab_dns=True,
)


def test_derive_turns_a_programs_settings_into_policy_explicit_switches_win():
    policy, settings = DERIVING.configure(polite="no")
    assert policy.smtpd_helo_required is False and settings["polite"] is False
    policy, _ = DERIVING.configure(polite="no", smtpd_helo_required=True)
    assert policy.smtpd_helo_required is True
    assert DERIVING.configure(small=True)[0].message_size_limit == 1234
    assert DERIVING.configure(small=True, message_size_limit=99)[0].message_size_limit == 99


def test_dns_hooks_reach_the_session_and_labserver_plugs_the_lab_zone_for_dns_personas():
    zone = LabZone(DEFAULT_ZONE)
    p = SessionPair("generic", reverse=zone.reverse, domain_resolves=zone.mail_domain_exists)
    assert p.session.setup.reverse_of("127.0.0.2") == ("mail.good.example", True)
    assert p.session.setup.domain_resolves("client.example.org")
    assert not zone.mail_domain_exists("nowhere.invalid")
    server = LabServer(persona=DERIVING)  # lab_dns: the zone the recordings saw
    assert server.zone is not None and server.setup().reverse_of("127.0.0.3")[1] is False
    server.configure(persona="postfix")  # the default zone goes with the persona
    assert server.zone is None and server.setup().domain_resolves is None
    mine = LabZone(DEFAULT_ZONE + "mail.bad.example. A 127.0.0.9\n")
    use_zone(server, mine, identity="off")
    server.configure(persona=DERIVING)  # a lesson's own zone stays
    assert server.zone is mine
