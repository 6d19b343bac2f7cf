"""Reading what a learner's step client did, for the checks.

A check looks at the client the learner kept in their answer: its
``history`` holds every command it sent and every reply it got.  These
helpers turn that history into ``(verb, argument, reply)`` steps, find the
greetings and the messages that got 250 after the final dot, and say in a
learner's words when the answer is not a client or has sent nothing yet.
"""

from __future__ import annotations

import email
import email.policy


def sent_commands(client):
    """[(verb, argument, reply)] for every command the client sent (greeting excluded)."""
    out = []
    for ex in getattr(client, "history", None) or []:
        if not ex.sent or ex.reply is None:
            continue
        command = ex.reply.command or ""
        if command == ".":
            out.append((".", ex.sent, ex.reply))
            continue
        line = ex.sent.decode("utf-8", "replace").strip()
        verb, _, arg = line.partition(" ")
        out.append((verb.upper(), arg.strip(), ex.reply))
    return out


def not_a_client(client) -> str | None:
    """A hint when ``client`` is not a step client or has sent nothing; else None."""
    if not hasattr(client, "history"):
        return "keep the step client you used (what server.client() returned) in the answer name."
    if not sent_commands(client):
        return "your client has sent no command yet: call its methods, such as .helo(...)."
    return None


def greetings(client) -> list[tuple[str, str, object]]:
    """The HELO and EHLO steps of the client's dialogue."""
    return [s for s in sent_commands(client) if s[0] in ("HELO", "EHLO")]


def accepted_messages(client) -> list[bytes]:
    """The message texts (as sent, dot-stuffed) that got 250 after the final dot."""
    return [
        sent for verb, sent, reply in sent_commands(client) if verb == "." and reply.code == 250
    ]


def parse_message(sent: bytes) -> email.message.EmailMessage:
    """A sent message text (with or without its final dot) as an email message."""
    text = sent[: -len(b".\r\n")] if sent.endswith(b"\r\n.\r\n") else sent
    return email.message_from_bytes(text, policy=email.policy.default)


def source_of(client) -> str:
    """The address the client connected from (127.0.0.1 unless it chose another)."""
    return getattr(client, "source", None) or "127.0.0.1"
