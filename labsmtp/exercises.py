"""The course's exercises: one self-check and one solution each, numbered by lesson.

A check returns None when the exercise is solved, or a hint.  It reads the
lab server's own records (mailbox, transcript) wherever it can, so the
learner is checked on what really crossed the wire.  Each solution is run by
tests/test_exercises.py and must pass its own check.
"""

from __future__ import annotations

from .course import exercise


def _replies(server, command=None):
    lines = server.transcript.lines()
    return [ln.reply for ln in lines if ln.reply is not None and (command is None or ln.command == command)]


# --- lesson 0 -------------------------------------------------------------


@exercise(
    "0.1",
    "Send a message to help@lab.example.org with the subject 'Second'.",
    needs=("server",),
    solution="""
        c = server.client()
        c.helo("client.example.org")
        c.mail("learner@example.org")
        c.rcpt("help@lab.example.org")
        c.data(make_message(to="help@lab.example.org", subject="Second"))
        c.quit()
    """,
)
def _check_0_1(server):
    found = server.mailbox.find(rcpt="help@lab.example.org")
    if not found:
        return "the mailbox has no message for help@lab.example.org yet. Did the final dot get a 250?"
    if not any(m.subject == "Second" for m in found):
        return "a message arrived, but its subject is not 'Second' (make_message(subject=...))."
    return None


@exercise(
    "0.2",
    "How many messages does the lab's mailbox hold now? Put the number in `count`.",
    needs=("server", "count"),
    solution="""
        count = len(server.mailbox)
    """,
)
def _check_0_2(server, count):
    if count != len(server.mailbox):
        return "len(server.mailbox) counts the messages the server accepted with 250."
    return None


# --- lesson 1 -------------------------------------------------------------


@exercise(
    "1.1",
    "Make the server answer 503: send a command in the wrong order.",
    needs=("server",),
    solution="""
        c = server.client()
        c.helo("client.example.org")
        c.rcpt("postmaster@lab.example.org")   # RCPT before MAIL: 503
        c.quit()
    """,
)
def _check_1_1(server):
    if not any(r.code == 503 for r in _replies(server)):
        return "no 503 in the transcript yet. Try RCPT before MAIL, or DATA before RCPT."
    return None


@exercise(
    "1.2",
    "Send a message whose body has a line that starts with a dot, '.hidden', and "
    "check it arrives intact.",
    needs=("server",),
    solution="""
        c = server.client()
        c.helo("client.example.org")
        c.mail("learner@example.org")
        c.rcpt("postmaster@lab.example.org")
        c.data("Subject: dots\\r\\n\\r\\n.hidden\\r\\n")
        c.quit()
    """,
)
def _check_1_2(server):
    for m in server.mailbox:
        if b"\r\n.hidden\r\n" in b"\r\n" + m.content:
            return None
    return (
        "no stored message has a line '.hidden'. Send it with client.data(...): the client "
        "doubles the dot on the wire and the server removes it again (RFC 5321 §4.5.2)."
    )


@exercise(
    "1.3",
    "Count the replies in the newest session of the transcript: put the number of "
    "server replies in `replies` and of client commands in `commands`.",
    needs=("server", "replies", "commands"),
    solution="""
        c = server.client()
        c.helo("client.example.org")
        c.noop()
        c.quit()
        lines = server.transcript.last()
        replies = sum(1 for ln in lines if ln.direction == "server")
        commands = sum(1 for ln in lines if ln.direction == "client" and ln.note != "message text")
    """,
)
def _check_1_3(server, replies, commands):
    lines = server.transcript.last()
    want_r = sum(1 for ln in lines if ln.direction == "server")
    want_c = sum(1 for ln in lines if ln.direction == "client" and ln.note != "message text")
    if replies != want_r:
        return "count the lines whose direction is 'server' in server.transcript.last()."
    if commands != want_c:
        return "count the client lines, leaving out the message text (ln.note == 'message text')."
    if want_r != want_c + 1:
        return "one reply per command plus the greeting: replies should be commands + 1."
    return None


# --- lesson 2 -------------------------------------------------------------


@exercise(
    "2.1",
    "Read the server's message size limit from its EHLO reply into `size_limit` (an int).",
    needs=("server", "size_limit"),
    solution="""
        c = server.client()
        c.ehlo("client.example.org")
        size_limit = int(c.esmtp_keywords["SIZE"])
        c.quit()
    """,
)
def _check_2_1(server, size_limit):
    if not isinstance(size_limit, int):
        return "turn the text after SIZE into a number with int(...)."
    if size_limit != server.policy.message_size_limit:
        return "look for the line 'SIZE <bytes>' in the EHLO reply (client.esmtp_keywords)."
    return None


@exercise(
    "2.2",
    "With reject_non_fqdn_helo_hostname on, greet the server from 127.0.0.2 with an "
    "address literal and get 250.",
    needs=("server",),
    solution="""
        c = server.client(source="127.0.0.2")
        c.helo("[127.0.0.2]")
        c.quit()
    """,
)
def _check_2_2(server):
    for info in server.sessions:
        if info.client.startswith("127.0.0.2:") and info.helo == "[127.0.0.2]":
            return None
    return "connect with server.client(source='127.0.0.2') and greet with the literal '[127.0.0.2]'."


# --- lesson 3 -------------------------------------------------------------


@exercise(
    "3.1",
    "Fill `meaning` with the first-digit meaning of 250, 354, 451 and 550: one of "
    "'done', 'go on', 'try again later', 'do not repeat'.",
    needs=("meaning",),
    solution="""
        meaning = {250: "done", 354: "go on", 451: "try again later", 550: "do not repeat"}
    """,
)
def _check_3_1(meaning):
    want = {250: "done", 354: "go on", 451: "try again later", 550: "do not repeat"}
    if not isinstance(meaning, dict):
        return "meaning should be a dict such as {250: 'done', ...}."
    for code, word in want.items():
        if meaning.get(code) != word:
            return f"look at the first digit of {code} (RFC 5321 §4.2.1)."
    return None


@exercise(
    "3.2",
    "Is 251 a legal reply to HELO? Set `legal_251_after_helo` to True or False, using "
    "labsmtp's is_legal().",
    needs=("legal_251_after_helo",),
    solution="""
        legal_251_after_helo = is_legal("HELO", 251)
    """,
)
def _check_3_2(legal_251_after_helo):
    if legal_251_after_helo is not False:
        return "RFC 5321 §4.3.2 lists only 250 (and 504, 550, 502) after HELO; 251 belongs to RCPT and VRFY."
    return None


@exercise(
    "3.3",
    "Make the server answer a 4xx: send more recipients than it allows in one message.",
    needs=("server",),
    solution="""
        server.configure(max_recipients=2)
        c = server.client()
        c.helo("client.example.org")
        c.mail("learner@example.org")
        for n in range(3):
            c.rcpt(f"user{n}@lab.example.org")
        c.quit()
    """,
)
def _check_3_3(server):
    if not any(r.code is not None and 400 <= r.code < 500 for r in _replies(server, "RCPT")):
        return "lower the limit with server.configure(max_recipients=2), then send three RCPT."
    return None


# --- lesson 8 -------------------------------------------------------------


@exercise(
    "8.1",
    "Write `outcome`: the name of the smtplib exception raised when every recipient "
    "is refused (as a string).",
    needs=("outcome",),
    solution="""
        import smtplib
        try:
            with smtplib.SMTP(server.host, server.port, source_address=("127.0.0.2", 0)) as s:
                s.sendmail("a@example.org", ["x@elsewhere.example.net"], "Subject: x\\r\\n\\r\\nx")
            outcome = "no exception"
        except smtplib.SMTPException as exc:
            outcome = type(exc).__name__
    """,
)
def _check_8_1(outcome):
    if outcome != "SMTPRecipientsRefused":
        return "catch smtplib.SMTPException and look at type(exc).__name__."
    return None


@exercise(
    "8.2",
    "Write send_with_retry(...) so that a 4xx is retried with a growing wait and a 5xx "
    "is not; deliver one message to retry@lab.example.org through a server whose first "
    "two sessions answer RCPT with 451.",
    needs=("server",),
    setup="""
        server.faults.clear()
        server.faults.add("rcpt:451:sessions=1-2")
    """,
    solution="""
        import smtplib, time

        def send_with_retry(host, port, sender, rcpt, text, attempts=4, wait=0.05):
            for attempt in range(1, attempts + 1):
                try:
                    with smtplib.SMTP(host, port) as s:
                        s.sendmail(sender, [rcpt], text)
                    return attempt
                except smtplib.SMTPRecipientsRefused as exc:
                    if exc.recipients[rcpt][0] >= 500:
                        raise                      # permanent: do not repeat
                time.sleep(wait * 2 ** attempt)    # transient: back off, try again
            raise RuntimeError(f"gave up after {attempts} attempts")

        send_with_retry(server.host, server.port, "a@example.org", "retry@lab.example.org",
                        "Subject: retried\\r\\n\\r\\nhello\\r\\n")
    """,
)
def _check_8_2(server):
    if not server.mailbox.find(rcpt="retry@lab.example.org"):
        return "no message for retry@lab.example.org arrived; retry after a 4xx until it is accepted."
    if not any(r.code == 451 for r in _replies(server, "RCPT")):
        return "the message arrived without meeting a 451: run the setup cell above first."
    return None


# --- lesson 10 -----------------------------------------------------------------


@exercise(
    "10.1",
    "Show live that HELO with no argument is a syntax error: get a 501 from the server.",
    needs=("server",),
    solution="""
        c = server.client()
        c.raw("HELO")
        c.quit()
    """,
)
def _check_10_1(server):
    if not any(r.code == 501 for r in _replies(server, "HELO")):
        return "send the bare line 'HELO' with client.raw('HELO')."
    return None


@exercise(
    "10.2",
    "Disprove 'HELO must carry the server's FQDN': greet the lab server with a name "
    "that is not its own and still deliver a message.",
    needs=("server",),
    solution="""
        c = server.client()
        c.helo("some-client.example.net")
        c.mail("a@example.org")
        c.rcpt("postmaster@lab.example.org")
        c.data("Subject: not your name\\r\\n\\r\\nhi\\r\\n")
        c.quit()
    """,
)
def _check_10_2(server):
    for m in server.mailbox:
        if m.helo and m.helo.lower() != server.hostname.lower():
            return None
    return "greet with your own (client) name, not server.hostname, then send a message."
