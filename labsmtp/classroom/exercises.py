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
    return [
        ln.reply
        for ln in lines
        if ln.reply is not None and (command is None or ln.command == command)
    ]


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
        return (
            "the mailbox has no message for help@lab.example.org yet. Did the final dot get a 250?"
        )
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
    "Make the server answer 503 to MAIL or RCPT: send it in the wrong order.",
    needs=("server",),
    solution="""
        c = server.client()
        c.helo("client.example.org")
        c.rcpt("postmaster@lab.example.org")   # RCPT before MAIL: 503
        c.quit()
    """,
)
def _check_1_1(server):
    if not any(r.code == 503 for cmd in ("MAIL", "RCPT") for r in _replies(server, cmd)):
        return "no 503 to MAIL or RCPT in the transcript yet. Try RCPT before MAIL, or MAIL twice."
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
    return (
        "connect with server.client(source='127.0.0.2') and greet with the literal '[127.0.0.2]'."
    )


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


# --- lesson 4 -------------------------------------------------------------


@exercise(
    "4.1",
    "Set `nat_address` to the loopback address whose PTR name resolves elsewhere (NAT).",
    needs=("zone", "nat_address"),
    setup="""
        from labsmtp import LabZone
        zone = LabZone()
    """,
    solution="""
        candidates = [f"127.0.0.{n}" for n in range(1, 10)]
        nat_address = next(a for a in candidates
                           if zone.fcrdns(a).verdict == "mismatch" and "branch" in zone.ptr(a)[0])
    """,
)
def _check_4_1(zone, nat_address):
    if nat_address != "127.0.0.5":
        return (
            "try zone.fcrdns(a).detail for 127.0.0.2 to 127.0.0.5: which PTR name points elsewhere?"
        )
    return None


@exercise(
    "4.2",
    "Add an A record for newmx.example.org (127.0.0.6), load the zone, and greet from "
    "127.0.0.6 as newmx.example.org with reject_unknown_helo_hostname on.",
    needs=("server",),
    setup="""
        from labsmtp import DEFAULT_ZONE, use_zone
        server.configure(smtpd_helo_restrictions="reject_unknown_helo_hostname")
    """,
    solution="""
        zone_text = DEFAULT_ZONE + "newmx.example.org.  A  127.0.0.6\\n"
        use_zone(server, zone_text, identity="off")
        c = server.client(source="127.0.0.6")
        c.helo("newmx.example.org")
        c.quit()
    """,
)
def _check_4_2(server):
    if "reject_unknown_helo_hostname" not in server.policy.smtpd_helo_restrictions:
        return "keep reject_unknown_helo_hostname on: fix the DNS, not the policy."
    for info in server.sessions:
        if (
            info.client.startswith("127.0.0.6:")
            and (info.helo or "").lower() == "newmx.example.org"
        ):
            return None
    return (
        "no accepted HELO newmx.example.org from 127.0.0.6 yet: add the line "
        "'newmx.example.org. A 127.0.0.6' to the zone text and load it with use_zone()."
    )


# --- lesson 5 -------------------------------------------------------------


@exercise(
    "5.1",
    "Build `refusers`: the set of persona names that refuse 'HELO client'.",
    needs=("table", "refusers"),
    setup="""
        from labsmtp import compare_steps
        table = compare_steps()
    """,
    solution="""
        refusers = {name for name in table.personas
                    if table.cell(name, "HELO non-FQDN").code >= 400}
    """,
)
def _check_5_1(table, refusers):
    want = {n for n in table.personas if (table.cell(n, "HELO non-FQDN").code or 0) >= 400}
    if not isinstance(refusers, (set, frozenset, list, tuple)):
        return "refusers should be a set of names such as {'postfix'}."
    if set(refusers) != want:
        return "a refusal is a 4xx or 5xx code in the 'HELO non-FQDN' column."
    return None


@exercise(
    "5.2",
    "Greet a sendmail-persona server with HELO; put the reply in `sendmail_reply`.",
    needs=("sendmail_reply",),
    solution="""
        with LabServer(name="exercise-5-2", persona="sendmail") as sm:
            c = sm.client()
            sendmail_reply = c.helo("client.example.org")
            c.quit()
    """,
)
def _check_5_2(sendmail_reply):
    if sendmail_reply is None or not hasattr(sendmail_reply, "code"):
        return "keep the reply object that client.helo(...) returns."
    if sendmail_reply.code != 250 or "pleased to meet you" not in sendmail_reply.text:
        return "that does not look like Sendmail's 250 reply: use LabServer(persona='sendmail')."
    return None


# --- lesson 6 -------------------------------------------------------------


@exercise(
    "6.1",
    "100 MTA-like trials against rcpt:451:0.5; keep the result in `result`.",
    needs=("result",),
    solution="""
        from labsmtp import trials
        result = trials.run_trials(server, 100, retry="mta", faults=["rcpt:451:0.5"], seed=1)
    """,
)
def _check_6_1(result):
    if not hasattr(result, "by_outcome"):
        return "keep what trials.run_trials(...) returns in result."
    if result.policy.name != "mta" or len(result.trials) != 100:
        return "run 100 trials with retry='mta'."
    if "rcpt:451:0.5" not in [str(f) for f in result.faults]:
        return "use the fault 'rcpt:451:0.5'."
    if result.by_outcome()["delivered"] < 90:
        return "with retries, almost every message should get through a 50% 4xx."
    return None


@exercise(
    "6.2",
    "Run 50 trials twice with seed=42 and mail:450:0.4; keep them in `first` and `second`.",
    needs=("first", "second"),
    solution="""
        from labsmtp import trials
        first = trials.run_trials(server, 50, retry="none", faults=["mail:450:0.4"], seed=42)
        second = trials.run_trials(server, 50, retry="none", faults=["mail:450:0.4"], seed=42)
    """,
)
def _check_6_2(first, second):
    if not (hasattr(first, "trials") and hasattr(second, "trials")):
        return "keep both results of trials.run_trials(...)."
    if first.seed != 42 or second.seed != 42:
        return "pass seed=42 to both runs."
    if [t.outcome for t in first.trials] != [t.outcome for t in second.trials]:
        return "the outcomes differ: were the faults and the seed the same in both runs?"
    if first.by_outcome()["deferred"] == 0:
        return "no trial met the 450: use the fault 'mail:450:0.4'."
    return None


# --- lesson 7 -------------------------------------------------------------


@exercise(
    "7.1",
    "On a submission server, send to friend@elsewhere.example.net after STARTTLS and AUTH.",
    needs=("server",),
    setup="""
        server = LabServer(name="exercise-7-1", mode="submission", users={"alice": "wonderland"}).start()
    """,
    solution="""
        c = server.client()
        c.ehlo("laptop.example.org")
        c.starttls()
        c.ehlo("laptop.example.org")
        c.auth("alice", "wonderland")
        c.mail("alice@lab.example.org")
        c.rcpt("friend@elsewhere.example.net")
        c.data("Subject: submitted\\r\\n\\r\\nhello\\r\\n")
        c.quit()
    """,
)
def _check_7_1(server):
    if server.mailbox.find(rcpt="friend@elsewhere.example.net"):
        return None
    codes = [r.code for r in _replies(server)]
    if 530 in codes:
        return "MAIL got 530: log in with c.auth('alice', 'wonderland') first."
    if 538 in codes:
        return "AUTH got 538: it needs TLS, so c.starttls() and EHLO again before AUTH."
    return "no message for friend@elsewhere.example.net yet: EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA."


@exercise(
    "7.2",
    "Try STARTTLS with server_name='evil.example.net'; keep the exception in `error`.",
    needs=("error",),
    setup="""
        sub7 = LabServer(name="exercise-7-2", tls=True).start()
    """,
    solution="""
        t = sub7.client()
        t.ehlo("client.example.org")
        try:
            t.starttls(server_name="evil.example.net")
        except TLSFailed as exc:
            error = exc
        sub7.stop()
    """,
)
def _check_7_2(error):
    from ..errors import LabConnectionError

    if not isinstance(error, LabConnectionError):
        return "catch the TLSFailed that starttls(server_name='evil.example.net') raises."
    if "evil.example.net" not in str(error):
        return "the error should be about the name evil.example.net."
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
        return (
            "no message for retry@lab.example.org arrived; retry after a 4xx until it is accepted."
        )
    if not any(r.code == 451 for r in _replies(server, "RCPT")):
        return "the message arrived without meeting a 451: run the setup cell above first."
    return None


# --- lesson 9 -------------------------------------------------------------


def _diagnosis_hint(mystery, diagnosis) -> str | None:
    from .mystery import DIAGNOSES

    if diagnosis not in DIAGNOSES:
        return f"the diagnosis must be one of: {', '.join(DIAGNOSES)}."
    if not mystery.is_right(diagnosis):
        return (
            "not this one. Which command gets the first error, and does the reply change "
            "with the HELO name, the client address (source=...) or a second attempt?"
        )
    return None


@exercise(
    "9.1",
    "Name the cause of mystery 1.",
    needs=("mystery", "diagnosis"),
    setup="""
        from labsmtp import mystery as start_mystery
        m1 = start_mystery(1)
        mystery = m1
    """,
    solution="""
        # HELO gets 550 for every name from 127.0.0.1, and 250 from 127.0.0.3.
        diagnosis = "client-address"
    """,
)
def _check_9_1(mystery, diagnosis):
    return _diagnosis_hint(mystery, diagnosis)


@exercise(
    "9.2",
    "Name the cause of mystery 2.",
    needs=("mystery", "diagnosis"),
    setup="""
        from labsmtp import mystery as start_mystery
        mystery = start_mystery(2)
    """,
    solution="""
        # RCPT gets 450 "cannot find your hostname"; 127.0.0.5's PTR name points elsewhere.
        diagnosis = "nat-identity"
    """,
)
def _check_9_2(mystery, diagnosis):
    return _diagnosis_hint(mystery, diagnosis)


@exercise(
    "9.3",
    "Diagnose mysteries 3 to 7: a dict {number: diagnosis}.",
    needs=("mysteries", "diagnoses"),
    setup="""
        from labsmtp import mystery as start_mystery
        mysteries = {n: start_mystery(n) for n in range(3, 8)}
    """,
    solution="""
        diagnoses = {3: "helo-not-in-dns", 4: "firewall", 5: "greylisting",
                     6: "relay-denied", 7: "size-limit"}
    """,
)
def _check_9_3(mysteries, diagnoses):
    if not isinstance(diagnoses, dict):
        return "diagnoses should be a dict such as {3: 'greylisting', ...}."
    wrong = [n for n, m in sorted(mysteries.items()) if _diagnosis_hint(m, diagnoses.get(n))]
    if wrong:
        return f"look again at mystery {wrong[0]}" + (
            f" (and {len(wrong) - 1} more)." if len(wrong) > 1 else "."
        )
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
    "Greet with an address literal instead of any name, and deliver a message.",
    needs=("server",),
    solution="""
        c = server.client()
        c.helo("[127.0.0.1]")
        c.mail("a@example.org")
        c.rcpt("postmaster@lab.example.org")
        c.data("Subject: no name\\r\\n\\r\\nhi\\r\\n")
        c.quit()
    """,
)
def _check_10_2(server):
    from ..protocol.policy import address_literal

    for m in server.mailbox:
        if m.helo and address_literal(m.helo):
            return None
    return "greet with an address literal such as '[127.0.0.1]' (brackets included), then send a message."
