"""The state table, driven directly: every legal move, every illegal move (RFC 5321 §4.1.4)."""

from __future__ import annotations

import pytest

from labsmtp.protocol import states
from labsmtp.protocol.states import FAILURE_TRANSITIONS, TRANSITIONS, Command, SequenceError, State

ALL_PAIRS = [(s, c) for s in State for c in Command]
LEGAL = [(s, c, t) for s, moves in TRANSITIONS.items() for c, t in moves.items()]
ILLEGAL = [(s, c) for s, c in ALL_PAIRS if c not in TRANSITIONS[s]]


@pytest.mark.parametrize("state,command,target", LEGAL, ids=lambda v: str(v))
def test_each_legal_move_reaches_its_target(state, command, target):
    assert states.next_state(state, command) is target


@pytest.mark.parametrize("state,command", ILLEGAL, ids=lambda v: str(v))
def test_each_illegal_move_raises_and_changes_nothing(state, command):
    before = state
    with pytest.raises(SequenceError) as err:
        states.next_state(state, command)
    assert err.value.state is before and err.value.command is command
    assert str(state) in str(err.value) and str(command) in str(err.value)


@pytest.mark.parametrize("state,command,target", LEGAL, ids=lambda v: str(v))
def test_a_failing_reply_leaves_the_state_unchanged(state, command, target):
    expected = FAILURE_TRANSITIONS.get((state, command), state)
    assert states.next_state(state, command, ok=False) is expected


def test_the_transaction_follows_rfc_5321_section_3_3():
    s = State.CONNECTED
    for cmd, want in [
        (Command.EHLO, State.GREETED),
        (Command.MAIL, State.MAIL),
        (Command.RCPT, State.RCPT),
        (Command.RCPT, State.RCPT),
        (Command.DATA, State.DATA),
        (Command.END_OF_DATA, State.GREETED),
        (Command.MAIL, State.MAIL),
        (Command.RSET, State.GREETED),
        (Command.QUIT, State.CLOSED),
    ]:
        s = states.next_state(s, cmd)
        assert s is want


def test_mail_before_helo_needs_the_lenient_policy():
    with pytest.raises(SequenceError) as err:
        states.next_state(State.CONNECTED, Command.MAIL)
    assert err.value.reply_key == "need_helo"
    assert states.next_state(State.CONNECTED, Command.MAIL, helo_required=False) is State.MAIL
    assert "MAIL" in [
        c.value for c in states.allowed_commands(State.CONNECTED, helo_required=False)
    ]
    assert "MAIL" not in [c.value for c in states.allowed_commands(State.CONNECTED)]


def test_noop_vrfy_rset_are_allowed_before_any_greeting():
    # §4.1.4: "NOOP, HELP, EXPN, VRFY, and RSET commands can be used at any time".
    for cmd in (Command.NOOP, Command.VRFY, Command.EXPN, Command.HELP, Command.RSET):
        assert states.is_allowed(State.CONNECTED, cmd)


def test_data_state_only_accepts_the_final_dot():
    assert states.allowed_commands(State.DATA) == [Command.END_OF_DATA]
    assert states.allowed_commands(State.CLOSED) == []


def test_sequence_errors_name_a_persona_wording_that_exists():
    from labsmtp.protocol.personas import REPLY_KEYS

    for (state, cmd), key in states.SEQUENCE_ERRORS.items():
        assert key in REPLY_KEYS
        assert cmd not in TRANSITIONS[state], "a sequence error for a legal move"


def test_edges_are_the_table():
    assert len(states.edges()) == len(LEGAL)
    assert (State.RCPT, Command.DATA, State.DATA) in states.edges()
