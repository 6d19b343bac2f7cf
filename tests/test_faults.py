"""Fault rules: every action and matcher, against the real server over real sockets."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labsmtp import LabServer, LabValueError
from labsmtp.errors import LabConnectionError, ReplyTimeout, ServerClosed
from labsmtp.lab.faults import (
    ACTIONS,
    SPEC_GRAMMAR,
    STAGES,
    CutOff,
    Delay,
    Fault,
    FaultEngine,
    Greylist,
    HangUp,
    Malformed,
    NoExtensions,
    ReplyWith,
    SlowLink,
    parse_fault,
)

RCPT = "postmaster@lab.example.org"
MSG = "Subject: fault lab\r\n\r\nhello\r\n"


def reach(server, stage: str, timeout: float = 5.0):
    """Run a dialogue up to ``stage`` and return the reply the server gave there."""
    c = server.client(connect=False, timeout=timeout)
    greeting = c.connect()
    if stage == "connect":
        return c, greeting
    hello = c.ehlo()
    if stage == "helo":
        return c, hello
    if stage in ("rset", "noop", "vrfy", "quit"):
        return c, {
            "rset": c.rset,
            "noop": c.noop,
            "quit": c.quit,
            "vrfy": lambda: c.vrfy("postmaster"),
        }[stage]()
    mail = c.mail("ada@example.org")
    if stage == "mail":
        return c, mail
    rcpt = c.rcpt(RCPT)
    if stage == "rcpt":
        return c, rcpt
    go = c.data()
    if stage == "data":
        return c, go
    assert go.code == 354
    return c, c.send_message(MSG)


def injected_lines(server):
    return [ln for ln in server.transcript.lines() if ln.injected]


# --- the spec grammar -------------------------------------------------------


@pytest.mark.parametrize(
    "spec, stage, action, prob, nth",
    [
        ("rcpt:451:0.3", "rcpt", ReplyWith(451), 0.3, None),
        ("data:drop", "data", HangUp(), 1.0, None),
        ("helo:delay=200ms", "helo", Delay(0.2), 1.0, None),
        ("ehlo:delay=2s", "helo", Delay(2.0), 1.0, None),
        ("mail:421", "mail", ReplyWith(421), 1.0, None),
        ("rcpt#2:452", "rcpt", ReplyWith(452), 1.0, 2),
        ("greeting:554", "connect", ReplyWith(554), 1.0, None),
        ("rcpt:greylist=60s", "rcpt", Greylist(60.0), 1.0, None),
        ("mail:550 5.7.1 Go away", "mail", ReplyWith(550, "5.7.1 Go away"), 1.0, None),
    ],
)
def test_spec_parses_into_a_rule(spec, stage, action, prob, nth):
    f = parse_fault(spec)
    assert (f.stage, f.action, f.probability, f.nth) == (stage, action, prob, nth)
    assert f.name == spec


def test_spec_with_address_and_session_matchers():
    f = parse_fault("rcpt:550:addr=*@spam.example:sessions=1-3")
    assert f.address == "*@spam.example" and f.sessions == (1, 3)
    assert parse_fault("rcpt:451:sessions=4-").sessions == (4, None)


@pytest.mark.parametrize(
    "spec",
    [
        "rcpt",
        "rcpt:",
        "lunch:451",
        "rcpt:999",
        "rcpt:451:1.5",
        "rcpt:451:often",
        "rcpt#0:452",
        "helo:delay=soon",
        "mail:cut",
        "rcpt:noext=SIZE",
        "data:malformed=weird",
        "rcpt:slow=fast",
        "rcpt:451:sessions=3-1",
        "rcpt:bounce",
    ],
)
def test_malformed_spec_is_refused_with_the_grammar(spec):
    with pytest.raises(LabValueError) as exc:
        parse_fault(spec)
    assert "STAGE[#N]:ACTION" in str(exc.value)  # the message teaches the grammar
    assert spec in str(exc.value)


def test_rule_object_checks_its_values():
    with pytest.raises(LabValueError):
        Fault("rcpt", ReplyWith(451), probability=0)
    with pytest.raises(LabValueError):
        Fault("nowhere", HangUp())


# --- the smtp-sink grid: every stage x soft, hard, 421, hang-up, delay -------


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("code", [451, 554])
def test_every_stage_can_answer_with_a_chosen_code(server, stage, code):
    server.faults.add(f"{stage}:{code}")
    c, reply = reach(server, stage)
    assert reply.code == code
    lines = injected_lines(server)
    assert [ln.reply.code for ln in lines] == [code]
    assert lines[0].injected == f"{stage}:{code}"
    assert "[injected by" in server.transcript.to_text()
    c.close()


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_can_send_421_and_hang_up(server, stage):
    server.faults.add(f"{stage}:421")
    c, reply = reach(server, stage)
    assert reply.code == 421
    assert reply.enhanced == (None if stage == "connect" else "4.3.2")  # none before EHLO
    if stage != "quit":
        with pytest.raises(ServerClosed):
            c.noop()


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_can_hang_up_without_a_reply(server, stage):
    server.faults.add(f"{stage}:drop")
    with pytest.raises(ServerClosed):
        reach(server, stage)
    assert not injected_lines(server)
    assert any("hung up" in ln.note for ln in server.transcript.lines())
    assert len(server.mailbox) == 0


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_can_be_delayed(server, stage):
    server.faults.add(f"{stage}:delay=120ms")
    c, reply = reach(server, stage)
    assert reply.ok
    assert reply.elapsed >= 0.12
    c.close()


# --- the other actions ------------------------------------------------------


def test_default_text_and_enhanced_code_per_code(server):
    expected = {
        451: "4.3.0",
        452: "4.5.3",
        450: "4.2.0",
        550: "5.1.1",
        552: "5.3.4",
        553: "5.1.3",
        554: "5.7.1",
    }
    for code, enhanced in expected.items():
        server.faults.set(f"rcpt:{code}")
        c, reply = reach(server, "rcpt")
        assert (reply.code, reply.enhanced) == (code, enhanced)
        # §4.3.2 lists every one of these after RCPT but 554, which Postfix still uses
        # for "Relay access denied": the lab shows it as not legal.
        assert reply.legal == (code != 554)
        c.close()


def test_a_default_550_at_mail_names_the_sender_not_a_mailbox(server):
    # RFC 3463: X.1.1 is a bad *destination* mailbox; at MAIL the sender is refused.
    # At HELO/EHLO no mailbox is involved yet either: the greeting is refused by policy.
    stages = (("helo", "5.7.1"), ("mail", "5.1.8"), ("rcpt", "5.1.1"), ("dot", "5.7.1"))
    for stage, enhanced in stages:
        server.faults.set(f"{stage}:550")
        c, reply = reach(server, stage)
        assert (reply.code, reply.enhanced) == (550, enhanced), stage
        c.close()


def test_custom_reply_text(server):
    server.faults.add("mail:550 5.7.1 Go away, spammer")
    c, reply = reach(server, "mail")
    assert str(reply) == "550 5.7.1 Go away, spammer"


def test_slow_link_trickles_the_reply(server):
    server.faults.add("helo:slow=400")
    started = time.perf_counter()
    c, reply = reach(server, "helo")
    took = time.perf_counter() - started
    assert reply.code == 250
    assert took >= len(reply.raw) / 400 * 0.8  # about 150 bytes at 400 B/s


def test_cut_off_in_the_middle_of_data(server):
    server.faults.add("data:cut")
    c, go = reach(server, "data")
    assert go.code == 354
    with pytest.raises(LabConnectionError):
        c.send_message(MSG * 50)
    assert len(server.mailbox) == 0
    assert any("cut the client off" in ln.note for ln in server.transcript.lines())


def test_malformed_reply_with_a_bad_code(server):
    server.faults.add("rcpt:malformed")
    c, reply = reach(server, "rcpt")
    assert reply.code is None and reply.klass == "none"
    assert injected_lines(server)[0].injected == "rcpt:malformed"


def test_malformed_reply_with_a_bare_lf(server):
    server.faults.add("noop:malformed=lf")
    c, reply = reach(server, "noop")
    assert reply.raw.endswith(b"\n") and not reply.raw.endswith(b"\r\n")


def test_malformed_reply_with_no_line_end_leaves_the_client_waiting(server):
    server.faults.add("mail:malformed=noeol")
    with pytest.raises(ReplyTimeout):
        reach(server, "mail", timeout=0.5)


def test_switching_off_ehlo_extensions(server):
    server.faults.add("ehlo:noext=PIPELINING+SIZE+ENHANCEDSTATUSCODES")
    c, reply = reach(server, "helo")
    assert reply.code == 250
    assert not {"PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"} & set(c.esmtp_keywords)
    assert "8BITMIME" in c.esmtp_keywords


def test_greylisting_refuses_first_then_accepts_after_the_delay(server):
    now = [1000.0]
    server.faults.clock = lambda: now[0]
    server.faults.add("rcpt:greylist=300s")
    c, first = reach(server, "rcpt")
    assert (first.code, first.enhanced) == (451, "4.7.1") and "Greylisted" in first.text
    c.close()
    now[0] += 100
    c, early = reach(server, "rcpt")
    assert early.code == 451  # too soon: still greylisted
    c.close()
    now[0] += 250
    c, later = reach(server, "rcpt")
    assert later.code == 250
    # Another recipient is a new triplet: greylisted again.
    later2 = c.rcpt("other@lab.example.org")
    assert later2.code == 451


# --- the matchers -----------------------------------------------------------


def test_nth_occurrence(server):
    server.faults.add("rcpt#2:452")
    c, _ = reach(server, "mail")
    codes = [c.rcpt(f"u{i}@lab.example.org").code for i in range(3)]
    assert codes == [250, 452, 250]


def test_address_pattern_and_exact_address(server):
    server.faults.add("rcpt:550:addr=*@spam.example", "rcpt:553:addr=Bob@lab.example.org")
    c, _ = reach(server, "mail")
    server.policy = server.policy.with_(open_relay=True)
    assert c.rcpt("ok@lab.example.org").code == 250
    assert c.rcpt("x@spam.example").code == 550
    assert c.rcpt("bob@lab.example.org").code == 553  # case-insensitive


def test_schedule_across_sessions(server):
    server.faults.add("rcpt:451:sessions=1-3")
    codes = []
    for _ in range(5):
        c, reply = reach(server, "rcpt")
        codes.append(reply.code)
        c.close()
    assert codes == [451, 451, 451, 250, 250]


def test_probability_is_roughly_respected(server):
    server.faults.reseed(11)
    # A 2xx fault, so 200 NOOPs do not reach the hard error limit.
    server.faults.add("noop:250 2.0.0 fired:0.3")
    c, _ = reach(server, "helo")
    texts = [c.noop().text for _ in range(200)]
    assert 40 <= texts.count("fired") <= 80


def _dialogues(seed: int, n: int = 15) -> list[tuple[str, str]]:
    with LabServer(seed=seed, name=f"seeded-{seed}-{id(object())}") as s:
        s.faults.add("rcpt:451:0.4", "mail:delay=1ms:0.5", "noop:550:0.5")
        for _ in range(n):
            c, reply = reach(s, "rcpt")
            c.noop()
            c.close()
        time.sleep(0.05)
        return [(ln.direction, ln.text) for ln in s.transcript.lines() if ln.direction != "event"]


def test_same_seed_same_faults_same_transcripts():
    first, second = _dialogues(7), _dialogues(7)
    assert first == second
    assert any("[" not in t and t.startswith("451") for _, t in first)
    assert _dialogues(8) != first  # another seed, another sequence


def test_rules_change_while_the_server_runs(server):
    c, _ = reach(server, "helo")
    assert c.noop().code == 250
    server.faults.add("noop:450")
    assert c.noop().code == 450
    assert [r.name for r in server.faults.rules] == ["noop:450"]
    server.faults.clear()
    assert c.noop().code == 250 and server.faults.rules == []


def test_first_matching_rule_wins_and_delays_wrap_the_rest(server):
    server.faults.add("rcpt:delay=100ms", "rcpt:452", "rcpt:550")
    c, reply = reach(server, "rcpt")
    assert reply.code == 452 and reply.elapsed >= 0.1


def test_engine_without_rules_costs_nothing_visible(server):
    assert isinstance(server.faults, FaultEngine)
    c, reply = reach(server, "dot")
    assert reply.code == 250 and not injected_lines(server)
    assert len(server.mailbox) == 1


def test_remove_one_rule_by_object_or_spec(server):
    a, b = server.faults.add("noop:450", "rset:451")
    server.faults.remove("noop:450")
    assert server.faults.rules == [b]
    server.faults.remove(b)
    c, reply = reach(server, "noop")
    assert reply.code == 250 and server.faults.rules == []


def test_client_matcher_fires_only_for_matching_client_addresses():
    from labsmtp import LabServer, parse_fault

    rule = parse_fault("helo:550:client=127.0.0.2")
    assert rule.client == "127.0.0.2" and rule.name == "helo:550:client=127.0.0.2"
    with LabServer(name="client-matcher") as s:
        s.faults.add(rule)
        assert s.client(source="127.0.0.2").helo("a.example.org").code == 550
        assert s.client(source="127.0.0.3").helo("a.example.org").code == 250
        s.faults.set("helo:550:client=127.0.0.*")
        assert s.client(source="127.0.0.9").helo("a.example.org").code == 550


# --- the grammar: every action writes what it reads ---------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "Zs"), exclude_characters=":"),
    min_size=1,
    max_size=30,
).map(str.strip)
_SECONDS = st.one_of(
    st.integers(0, 600_000).map(lambda ms: ms / 1000),
    st.floats(0, 86_399, allow_nan=False, allow_infinity=False),
)
_PATTERN = st.text(alphabet="abcdefxyz0123456789.@*?-_", min_size=1, max_size=20)
ACTION_STRATEGIES = {
    ReplyWith: st.builds(ReplyWith, st.integers(200, 599), st.none() | _TEXT.filter(bool)),
    HangUp: st.just(HangUp()),
    Delay: st.builds(Delay, _SECONDS),
    SlowLink: st.builds(SlowLink, st.integers(1, 10**7)),
    CutOff: st.just(CutOff()),
    Malformed: st.sampled_from([Malformed("code"), Malformed("lf"), Malformed("noeol")]),
    NoExtensions: st.frozensets(
        st.sampled_from(["PIPELINING", "SIZE", "8BITMIME", "CHUNKING", "SMTPUTF8", "DSN"]),
        min_size=1,
    ).map(NoExtensions),
    Greylist: st.builds(Greylist, _SECONDS),
}


def test_the_property_test_covers_every_action():
    assert set(ACTION_STRATEGIES) == set(ACTIONS)


@st.composite
def faults(draw):
    action = draw(st.one_of(*ACTION_STRATEGIES.values()))
    lo = draw(st.integers(1, 50))
    return Fault(
        draw(st.sampled_from(action.stages)),
        action,
        probability=draw(st.just(1.0) | st.floats(0, 1, exclude_min=True, allow_nan=False)),
        address=draw(st.none() | _PATTERN),
        nth=draw(st.none() | st.integers(1, 9)),
        sessions=draw(st.none() | st.tuples(st.just(lo), st.none() | st.integers(lo, 99))),
        client=draw(st.none() | st.sampled_from(["127.0.0.2", "127.0.0.*", "127.?.0.1"])),
    )


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(fault=faults())
def test_every_rule_parses_back_from_its_spec(fault):
    again = parse_fault(fault.spec())
    assert again == fault
    assert again.spec() == fault.spec()


def test_the_grammar_text_is_made_from_the_actions():
    for action in ACTIONS:
        assert action.grammar.split("\n")[0] in SPEC_GRAMMAR
        assert parse_fault(action.example).action.__class__ is action


@pytest.mark.parametrize("persona", ["generic", "exim", "sendmail"])
def test_fault_replies_are_worded_by_the_persona(persona):
    # An Exim lab speaks Exim even when it misbehaves: no enhanced status codes.
    with LabServer(persona=persona, name=f"fault-words-{persona}") as s:
        s.faults.set("mail:451")
        _, mail = reach(s, "mail")
        s.faults.set("rcpt:greylist")
        _, rcpt = reach(s, "rcpt")
        if persona == "exim":
            assert str(mail) == "451 Requested action aborted: local error in processing"
            assert rcpt.enhanced is None and "greylisted" in rcpt.text
        else:
            assert mail.enhanced == "4.3.0" and rcpt.enhanced == "4.7.1"
        assert rcpt.code == 451 and "300 seconds" in rcpt.text
