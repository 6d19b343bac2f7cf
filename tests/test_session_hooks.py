"""The session's hooks for a program's own ways (issue 11), each with a made-up program.

A persona's ``Grammar`` subclass says how its program reads lines and decides on
them; ``Persona.closes_after`` and ``Persona.extensions_before`` say when it hangs
up and where its EHLO reply lists STARTTLS and AUTH; a setting's default may read
its own values.  Each test gives a small grammar one different answer and checks
that the session acts on it, in memory; the defaults keep today's behaviour
(tests/test_session.py).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from labsmtp.errors import LabValueError
from labsmtp.protocol.events import Answer
from labsmtp.protocol.grammar import Grammar, Refusal
from labsmtp.protocol.lines import MessageText
from labsmtp.protocol.pair import SessionPair
from labsmtp.protocol.personas import Persona, get_persona
from labsmtp.protocol.personas.base import coerce_setting
from labsmtp.protocol.states import Command, State

EXTRA = {
    "pipelining": "500 5.5.1 No pipelining here",
    "no_arguments": "501 5.5.4 No arguments here",
    "overflow": "500 5.0.0 Far too long",
    "filter": "{arg}",
}


def persona(grammar: type[Grammar], **fields: object) -> Persona:
    base = get_persona("generic")
    return dataclasses.replace(
        base,
        name="generic",  # (the trace format it borrows)
        grammar=grammar,
        replies=MappingProxyType({**base.replies, **EXTRA}),
        **fields,  # type: ignore[arg-type]
    )


class NoPipelining(Grammar):
    refuses_pipelining = True


def test_a_grammar_that_refuses_pipelining_answers_the_first_line_and_hangs_up():
    p = SessionPair(persona(NoPipelining, closes_after=("pipelining",)))
    assert [r.code for r in p.send(b"EHLO a.example.org\r\n")] == [250]
    replies = p.send(b"NOOP\r\nNOOP\r\n")
    assert [str(r) for r in replies] == ["500 5.5.1 No pipelining here"] and p.closed
    assert p.server_state is State.CLOSED


def test_input_behind_the_final_dot_is_pipelining_and_nothing_is_stored():
    p = SessionPair(persona(NoPipelining, closes_after=("pipelining",)))
    p.ehlo(), p.mail("a@example.org"), p.rcpt("postmaster@lab.example.org")
    assert p.command("DATA").code == 354
    assert [r.code for r in p.send(b"Subject: x\r\n\r\nx\r\n.\r\nQUIT\r\n")] == [500]
    assert p.closed and p.messages == []


class Latin1(Grammar):
    def decode(self, line: bytes) -> str:
        return line.rstrip(b"\r\n").decode("latin-1")

    def split(self, text: str) -> tuple[str, str]:
        verb, _, arg = text.partition(" ")
        return verb.upper(), arg  # the argument as given, spaces and all

    def too_long(self, line, text, verb, policy) -> bool:  # type: ignore[no-untyped-def]
        return len(text) > 20


def test_decode_split_and_too_long_are_the_grammars():
    p = SessionPair(persona(Latin1, closes_after=("line_too_long",)))
    assert p.command(b"\xe9T\xe9").code == 500  # text, an unknown verb: not "not ASCII"
    assert "not ASCII" not in p.history[-1][1][0].text
    assert p.command("HELO  x.example.org").code == 501  # the argument kept its extra space
    assert p.command("NOOP " + "x" * 20).code == 500 and p.closed  # too long, and it hangs up


class Eager(Grammar):
    read_limit = 100
    eager_overflow = True
    overflow_key = "overflow"
    text_overflow_key = "overflow"


def test_an_eager_overflow_is_said_before_the_line_ends():
    p = SessionPair(persona(Eager, closes_after=("overflow",)))
    assert [str(r) for r in p.send(b"NOOP " + b"x" * 200)] == ["500 5.0.0 Far too long"]
    assert p.closed


def test_a_text_overflow_key_answers_an_overlong_text_line_at_once():
    p = SessionPair(persona(Eager, closes_after=("overflow",)))
    p.ehlo(), p.mail("a@example.org"), p.rcpt("postmaster@lab.example.org"), p.data()
    assert [r.code for r in p.send(b"Subject: x\r\n\r\n" + b"y" * 300 + b"\r\n")] == [500]
    assert p.closed and p.messages == []


class Strict(Grammar):
    def before(self, cmd, line, view):  # type: ignore[no-untyped-def]
        if cmd is Command.NOOP and line.arg:
            return Refusal("no_arguments")
        return None

    def helo(self, verb, argument, view):  # type: ignore[no-untyped-def]
        if argument.startswith("bad"):
            return Refusal("filter", f"550 5.7.1 {argument} is refused here")
        return argument.lower()

    def recipient(self, path, standard, view):  # type: ignore[no-untyped-def]
        if path.address.startswith("nobody@"):
            return Refusal("user_unknown", fields={"addr": path.address})
        return None


def test_a_grammars_refusal_comes_before_the_standard_checks():
    p = SessionPair(persona(Strict))
    assert str(p.command("NOOP now")) == "501 5.5.4 No arguments here"
    assert p.command("NOOP").code == 250


def test_the_grammar_reads_the_helo_name_and_may_refuse_it_in_its_own_words():
    p = SessionPair(persona(Strict))
    assert str(p.command("HELO bad.example.org")) == "550 5.7.1 bad.example.org is refused here"
    assert p.server_state is State.CONNECTED  # refused: still unidentified
    assert p.helo("CLIENT.Example.ORG").code == 250
    assert p.session.helo == "client.example.org"


def test_the_grammar_decides_who_may_receive():
    p = SessionPair(persona(Strict), client_ip="127.0.0.2")
    p.helo(), p.mail("a@example.org")
    assert p.rcpt("nobody@lab.example.org").code == 550
    assert p.rcpt("someone@elsewhere.example.net").code == 250  # no relay check any more


class LfText(Grammar):
    text_line_end = b"\n"

    def text_bytes(self, line: bytes) -> bytes:
        return line.rstrip(b"\r\n") + b"\r\n"

    def message_text(self, size_limit: int, line_limit: int) -> MessageText:
        return Counting(size_limit, line_limit)


class Counting(MessageText):
    @property
    def refusal(self) -> str | None:
        return "data_too_big" if len(self.kept) > 3 else super().refusal


def test_message_text_is_cut_and_collected_by_the_grammar():
    p = SessionPair(persona(LfText))
    p.ehlo(), p.mail("a@example.org"), p.rcpt("postmaster@lab.example.org")
    assert p.command("DATA").code == 354
    assert [r.code for r in p.send(b"Subject: x\n\nbody\n.\n")] == [250]
    assert p.messages[-1].sent == b"Subject: x\r\n\r\nbody\r\n"
    p.mail("a@example.org"), p.rcpt("postmaster@lab.example.org"), p.command("DATA")
    assert [r.code for r in p.send(b"a: 1\nb: 2\n\nc\nd\n.\n")] == [552]


@pytest.mark.parametrize("close", ["timed_out", "shutting_down"])
def test_a_persona_may_close_an_idle_or_stopping_session_without_a_421(close):
    p = SessionPair(persona(Grammar, closes_silently=("timeout", "shutdown")))
    events = getattr(p.session, close)()
    assert not [ev for ev in events if isinstance(ev, Answer)]
    assert p.session.state is State.CLOSED and p.session.closing
    loud = SessionPair(persona(Grammar))
    assert [ev.lines[0][:3] for ev in getattr(loud.session, close)() if isinstance(ev, Answer)] == [
        "421"
    ]


def test_extensions_before_says_where_starttls_and_auth_go():
    keywords = ("8BITMIME", "SIZE {size}", "HELP")
    p = SessionPair(persona(Grammar, ehlo_keywords=keywords, extensions_before="HELP"), tls=True)
    assert p.ehlo().texts[1:] == ("8BITMIME", "SIZE 10240000", "STARTTLS", "HELP")


class Words:
    """A setting value that reads itself (Persona.settings default)."""

    def __init__(self, words: tuple[str, ...] = ()) -> None:
        self.words = words

    @classmethod
    def coerce(cls, name: str, value: object) -> Words:
        if not isinstance(value, str):
            raise LabValueError(f"{name} is a string")
        return cls(tuple(value.split(";")))


def test_a_setting_default_may_read_its_own_values():
    got = coerce_setting("rules", "a b;c d", Words())
    assert isinstance(got, Words) and got.words == ("a b", "c d")  # not cut at spaces
    with pytest.raises(LabValueError, match="rules is a string"):
        coerce_setting("rules", 3, Words())
