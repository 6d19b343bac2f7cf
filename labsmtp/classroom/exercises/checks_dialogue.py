"""Checks of lessons 0 to 4: one dialogue with one server.

Holding the conversation, greeting with HELO and EHLO, reading reply codes and
choosing a HELO name.  Each check returns None when solved, else hints from
gentle to specific; most read the step client the learner kept in their answer.
"""

from __future__ import annotations

from ..course import Checker
from .reading import (
    accepted_messages,
    greetings,
    not_a_client,
    parse_message,
    sent_commands,
    source_of,
)

# --- lesson 0 -------------------------------------------------------------


def _check_0_1(second):
    if problem := not_a_client(second):
        return problem
    rcpts = [
        r for verb, arg, r in sent_commands(second) if verb == "RCPT" and "help@" in arg.lower()
    ]
    if not any(r.code == 250 for r in rcpts):
        return (
            "your dialogue has no RCPT TO for help@lab.example.org that got 250.",
            "after helo and mail, call second.rcpt('help@lab.example.org').",
        )
    sent = accepted_messages(second)
    if not sent:
        return (
            "the message itself never got its 250: did DATA and the text follow?",
            "second.data(make_message(to='help@lab.example.org', subject='Second')) sends "
            "DATA, the text and the final dot.",
        )
    if not any(str(parse_message(s).get("Subject", "")).strip().lower() == "second" for s in sent):
        return (
            "a message arrived, but its subject is not 'Second'.",
            "make_message(subject='Second') writes the Subject: header for you.",
        )
    return None


def _check_0_2(count, server):
    if isinstance(count, bool) or not isinstance(count, int):
        return "count should be a whole number."
    if count != len(server.mailbox):
        return (
            "not the number of messages the mailbox holds now.",
            "len(server.mailbox) counts the messages the server accepted with 250.",
        )
    return None


# --- lesson 1 -------------------------------------------------------------


def _check_1_1(wrong_order):
    if problem := not_a_client(wrong_order):
        return problem
    if any(v in ("MAIL", "RCPT") and r.code == 503 for v, _, r in sent_commands(wrong_order)):
        return None
    if any(r.code == 503 for _, _, r in sent_commands(wrong_order)):
        return "you met a 503, but the task wants it for MAIL or RCPT."
    return (
        "every command of your client came in an allowed order.",
        "which command needs MAIL before it? Or: what if MAIL comes twice?",
    )


def _check_1_2(dotted, server):
    if problem := not_a_client(dotted):
        return problem
    sent = [s for s in accepted_messages(dotted) if b"\r\n..hidden\r\n" in b"\r\n" + s]
    if not sent:
        return (
            "none of your client's accepted messages has a line '.hidden'.",
            "put the line '.hidden' in the body and send it with .data(...): the client "
            "doubles the dot on the wire for you.",
        )
    if not any(b"\r\n.hidden\r\n" in b"\r\n" + m.content for m in server.mailbox):
        return "the stored message lost its line '.hidden': look at server.mailbox.last()."
    return None


def _check_1_3(replies, commands):
    if replies == 4 and commands == 3:
        return None
    if commands != 3:
        return (
            "count what the client sent in that session.",
            "HELO, NOOP, QUIT: connecting is not a command.",
        )
    return (
        "count what the server sent in that session.",
        "one reply per command, plus one more that answers no command at all.",
    )


# --- lesson 2 -------------------------------------------------------------


def _check_2_1(size_limit, server):
    if isinstance(size_limit, str) and size_limit.strip().isdigit():
        return "that is the text of the number: turn it into an int with int(...)."
    if isinstance(size_limit, bool) or not isinstance(size_limit, int):
        return "size_limit should be a whole number (an int)."
    if size_limit != server.policy.message_size_limit:
        return (
            "that is not this server's limit.",
            "look for the line 'SIZE <bytes>' in the EHLO reply (client.esmtp_keywords).",
        )
    return None


def _check_2_2(greet):
    from ...lab.labserver import LabServer

    if not callable(greet):
        return "greet should be a function: def greet(client, name): ..."
    with LabServer(name="check-2-2-modern") as modern, LabServer(name="check-2-2-old") as old:
        old.faults.add("helo#1:500 Syntax error, command unrecognized")
        for srv, kind in ((modern, "knows EHLO"), (old, "does not know EHLO")):
            c = srv.client()
            try:
                reply = greet(c, "client.example.org")
            finally:
                c.close()
            verbs = [v for v, _, _ in sent_commands(c)]
            if getattr(reply, "code", None) != 250:
                return (
                    f"against a server that {kind}, greet() did not return a 250 reply.",
                    "return the reply of the last greeting you sent.",
                )
            if verbs[:1] != ["EHLO"]:
                return "a client tries EHLO first (RFC 5321 §3.2): it is the only way to learn extensions."
            if kind == "knows EHLO" and "HELO" in verbs:
                return "after EHLO got 250, there is no need for HELO."
    return None


# --- lesson 3 -------------------------------------------------------------


def _check_3_1(meaning):
    want = {250: "done", 354: "go on", 451: "try again later", 550: "do not repeat"}
    if not isinstance(meaning, dict):
        return "meaning should be a dict such as {250: 'done', ...}."
    got = {int(k): str(v).strip().lower() for k, v in meaning.items() if str(k).isdigit()}
    wrong = [code for code, word in want.items() if got.get(code) != word]
    if wrong:
        return (
            f"{len(wrong)} of the four are not right yet.",
            f"look at the first digit of {wrong[0]} (RFC 5321 §4.2.1).",
        )
    return None


def _check_3_2(listed_251_after_helo):
    if listed_251_after_helo is not False:
        return (
            "run is_legal('HELO', 251) and read the answer.",
            "what 251 means is in explain_code(251): is that an answer to a greeting?",
        )
    return None


def _check_3_3(crowded, server):
    if problem := not_a_client(crowded):
        return problem
    codes = [r.code for v, _, r in sent_commands(crowded) if v == "RCPT"]
    if 452 in codes:
        return None
    if any(c and 400 <= c < 500 for c in codes):
        return "that 4xx came from somewhere else: use the recipient limit, not a fault rule."
    return (
        "your client got no 4xx to RCPT.",
        f"the limit is {server.policy.max_recipients} now: lower it with "
        "server.configure(max_recipients=...), then send one RCPT more than that.",
    )


# --- lesson 4 -------------------------------------------------------------


def _check_4_1(literal):
    if problem := not_a_client(literal):
        return problem
    if source_of(literal) != "127.0.0.2":
        return "connect from 127.0.0.2: server.client(source='127.0.0.2')."
    ok = [(v, a) for v, a, r in greetings(literal) if r.code == 250 and a == "[127.0.0.2]"]
    if ok:
        if all(v == "HELO" for v, _ in ok):
            return (
                "accepted, but RFC 5321 gives address literals to EHLO (§4.1.1.1): greet with EHLO."
            )
        return None
    return (
        "no greeting with the literal of 127.0.0.2 got 250.",
        "an address literal is the address in square brackets: '[127.0.0.2]'.",
    )


def _check_4_2(named, server):
    if problem := not_a_client(named):
        return problem
    if named.port != server.port:
        return "greet pf, the server with all three restrictions (pf.client(...))."
    if source_of(named) != "127.0.0.2":
        return "connect from 127.0.0.2: pf.client(source='127.0.0.2')."
    refused = [(a, r) for _, a, r in greetings(named) if r.code != 250]
    if not any(r.code == 250 for _, _, r in greetings(named)):
        name, reply = refused[-1] if refused else ("", None)
        return (
            f"{name!r} was refused ({reply.code if reply else 'no greeting'}).",
            "a fully-qualified name with an A record in the lab zone, or an address literal.",
        )
    if not accepted_messages(named):
        return "greeted; now MAIL, RCPT TO:<postmaster@lab.example.org> and DATA."
    return None


CHECKS: dict[str, Checker] = {
    "0.1": _check_0_1,
    "0.2": _check_0_2,
    "1.1": _check_1_1,
    "1.2": _check_1_2,
    "1.3": _check_1_3,
    "2.1": _check_2_1,
    "2.2": _check_2_2,
    "3.1": _check_3_1,
    "3.2": _check_3_2,
    "3.3": _check_3_3,
    "4.1": _check_4_1,
    "4.2": _check_4_2,
}
