"""The course's exercises: one self-check and one solution each, numbered by lesson.

A check returns None when the exercise is solved, or hints from gentle to
specific.  It looks only at what the learner's own answer produced: the step
client they used (its ``history`` holds every command it sent and every reply
it got), the function they wrote (the check runs it against servers of its
own), or the value they computed.  So no earlier cell of a lesson, and no
press of the stepper, can solve an exercise.  The task text is in the
lesson's exercise box, nowhere else.  tests/test_exercises.py runs every
solution, two or more other correct answers and a wrong one per exercise.
"""

from __future__ import annotations

import email
import email.policy
import itertools

from .course import exercise

RCPT_OK = "postmaster@lab.example.org"


# --- reading what a learner's step client did ----------------------------------


def _steps(client):
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


def _not_a_client(client) -> str | None:
    if not hasattr(client, "history"):
        return "keep the step client you used (what server.client() returned) in the answer name."
    if not _steps(client):
        return "your client has sent no command yet: call its methods, such as .helo(...)."
    return None


def _greeted(client) -> list[tuple[str, str, object]]:
    return [s for s in _steps(client) if s[0] in ("HELO", "EHLO")]


def _delivered(client) -> list[bytes]:
    """The message texts (as sent, dot-stuffed) that got 250 after the final dot."""
    return [sent for verb, sent, reply in _steps(client) if verb == "." and reply.code == 250]


def _message(sent: bytes) -> email.message.EmailMessage:
    text = sent[: -len(b".\r\n")] if sent.endswith(b"\r\n.\r\n") else sent
    return email.message_from_bytes(text, policy=email.policy.default)


def _source(client) -> str:
    return getattr(client, "source", None) or "127.0.0.1"


# --- lesson 0 -------------------------------------------------------------


@exercise(
    "0.1",
    needs=("second",),
    solution="""
        second = server.client()
        second.helo("client.example.org")
        second.mail("learner@example.org")
        second.rcpt("help@lab.example.org")
        second.data(make_message(to="help@lab.example.org", subject="Second"))
        second.quit()
    """,
)
def _check_0_1(second):
    if problem := _not_a_client(second):
        return problem
    rcpts = [r for verb, arg, r in _steps(second) if verb == "RCPT" and "help@" in arg.lower()]
    if not any(r.code == 250 for r in rcpts):
        return (
            "your dialogue has no RCPT TO for help@lab.example.org that got 250.",
            "after helo and mail, call second.rcpt('help@lab.example.org').",
        )
    sent = _delivered(second)
    if not sent:
        return (
            "the message itself never got its 250: did DATA and the text follow?",
            "second.data(make_message(to='help@lab.example.org', subject='Second')) sends "
            "DATA, the text and the final dot.",
        )
    if not any(str(_message(s).get("Subject", "")).strip().lower() == "second" for s in sent):
        return (
            "a message arrived, but its subject is not 'Second'.",
            "make_message(subject='Second') writes the Subject: header for you.",
        )
    return None


@exercise(
    "0.2",
    needs=("count",),
    given=("server",),
    solution="""
        count = len(server.mailbox)
    """,
)
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


@exercise(
    "1.1",
    needs=("wrong_order",),
    solution="""
        wrong_order = server.client()
        wrong_order.helo("client.example.org")
        wrong_order.rcpt("postmaster@lab.example.org")   # RCPT before MAIL: 503
        wrong_order.quit()
    """,
    solved="The state did not change: the session is still where it was before the refused command.",
)
def _check_1_1(wrong_order):
    if problem := _not_a_client(wrong_order):
        return problem
    if any(v in ("MAIL", "RCPT") and r.code == 503 for v, _, r in _steps(wrong_order)):
        return None
    if any(r.code == 503 for _, _, r in _steps(wrong_order)):
        return "you met a 503, but the task wants it for MAIL or RCPT."
    return (
        "every command of your client came in an allowed order.",
        "which command needs MAIL before it? Or: what if MAIL comes twice?",
    )


@exercise(
    "1.2",
    needs=("dotted",),
    given=("server",),
    solution="""
        dotted = server.client()
        dotted.helo("client.example.org")
        dotted.mail("learner@example.org")
        dotted.rcpt("postmaster@lab.example.org")
        dotted.data("Subject: dots\\r\\n\\r\\n.hidden\\r\\n")
        dotted.quit()
        print(server.mailbox.last().content.decode())
    """,
    solved="The client doubled the dot on the wire; the server removed it (RFC 5321 §4.5.2).",
)
def _check_1_2(dotted, server):
    if problem := _not_a_client(dotted):
        return problem
    sent = [s for s in _delivered(dotted) if b"\r\n..hidden\r\n" in b"\r\n" + s]
    if not sent:
        return (
            "none of your client's accepted messages has a line '.hidden'.",
            "put the line '.hidden' in the body and send it with .data(...): the client "
            "doubles the dot on the wire for you.",
        )
    if not any(b"\r\n.hidden\r\n" in b"\r\n" + m.content for m in server.mailbox):
        return "the stored message lost its line '.hidden': look at server.mailbox.last()."
    return None


@exercise(
    "1.3",
    needs=("replies", "commands"),
    solution="""
        short = server.client()
        short.helo("client.example.org")
        short.noop()
        short.quit()
        lines = server.transcript.last()
        replies = sum(1 for ln in lines if ln.direction == "server")
        commands = sum(1 for ln in lines if ln.direction == "client")
    """,
    solved="The + 1 is the 220 greeting: the server speaks first, before any command.",
)
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


@exercise(
    "2.1",
    needs=("size_limit",),
    given=("server",),
    solution="""
        c = server.client()
        c.ehlo("client.example.org")
        size_limit = int(c.esmtp_keywords["SIZE"])
        c.quit()
    """,
)
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


@exercise(
    "2.2",
    needs=("greet",),
    solution="""
        def greet(client, name):
            reply = client.ehlo(name)
            if reply.code in (500, 502):
                reply = client.helo(name)
            return reply
    """,
)
def _check_2_2(greet):
    from ..lab.labserver import LabServer

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
            verbs = [v for v, _, _ in _steps(c)]
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


@exercise(
    "3.1",
    needs=("meaning",),
    solution="""
        meaning = {250: "done", 354: "go on", 451: "try again later", 550: "do not repeat"}
    """,
)
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


@exercise(
    "3.2",
    needs=("listed_251_after_helo",),
    solution="""
        listed_251_after_helo = is_legal("HELO", 251)
    """,
    solved="251 means 'user not local; will forward': a reply about a recipient (§4.2.3).",
)
def _check_3_2(listed_251_after_helo):
    if listed_251_after_helo is not False:
        return (
            "run is_legal('HELO', 251) and read the answer.",
            "what 251 means is in explain_code(251): is that an answer to a greeting?",
        )
    return None


@exercise(
    "3.3",
    needs=("crowded",),
    given=("server",),
    solution="""
        server.configure(max_recipients=2)
        crowded = server.client()
        crowded.helo("client.example.org")
        crowded.mail("learner@example.org")
        for n in range(3):
            crowded.rcpt(f"user{n}@lab.example.org")
        crowded.quit()
    """,
    solved="452 is transient: send the other recipients in another transaction (§4.5.3.1.10).",
)
def _check_3_3(crowded, server):
    if problem := _not_a_client(crowded):
        return problem
    codes = [r.code for v, _, r in _steps(crowded) if v == "RCPT"]
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


@exercise(
    "4.1",
    needs=("literal",),
    solution="""
        literal = server.client(source="127.0.0.2")
        literal.ehlo("[127.0.0.2]")
        literal.quit()
    """,
    solved="An address literal is accepted where a bare name is not (RFC 5321 §4.1.3).",
)
def _check_4_1(literal):
    if problem := _not_a_client(literal):
        return problem
    if _source(literal) != "127.0.0.2":
        return "connect from 127.0.0.2: server.client(source='127.0.0.2')."
    ok = [(v, a) for v, a, r in _greeted(literal) if r.code == 250 and a == "[127.0.0.2]"]
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


@exercise(
    "4.2",
    needs=("named",),
    given=("server",),
    setup="""
        pf = LabServer(name="lesson-04-postfix", persona="postfix", smtpd_delay_reject=False).start()
        use_zone(pf, identity="off")
        pf.configure(smtpd_helo_restrictions="reject_invalid_helo_hostname,"
                     "reject_non_fqdn_helo_hostname,reject_unknown_helo_hostname")
        server = pf
    """,
    solution="""
        named = pf.client(source="127.0.0.2")
        named.ehlo("mail.good.example")
        named.mail("learner@example.org")
        named.rcpt("postmaster@lab.example.org")
        named.data("Subject: a good name\\r\\n\\r\\nhello\\r\\n")
        named.quit()
    """,
)
def _check_4_2(named, server):
    if problem := _not_a_client(named):
        return problem
    if named.port != server.port:
        return "greet pf, the server with all three restrictions (pf.client(...))."
    if _source(named) != "127.0.0.2":
        return "connect from 127.0.0.2: pf.client(source='127.0.0.2')."
    refused = [(a, r) for _, a, r in _greeted(named) if r.code != 250]
    if not any(r.code == 250 for _, _, r in _greeted(named)):
        name, reply = refused[-1] if refused else ("", None)
        return (
            f"{name!r} was refused ({reply.code if reply else 'no greeting'}).",
            "a fully-qualified name with an A record in the lab zone, or an address literal.",
        )
    if not _delivered(named):
        return "greeted; now MAIL, RCPT TO:<postmaster@lab.example.org> and DATA."
    return None


# --- lesson 5 -------------------------------------------------------------


@exercise(
    "5.1",
    needs=("nat_address",),
    given=("zone",),
    setup="""
        zone = LabZone()
    """,
    solution="""
        candidates = [f"127.0.0.{n}" for n in range(1, 10)]
        nat_address = next(
            a for a in candidates
            if zone.fcrdns(a).verdict == "mismatch" and zone.addresses(zone.ptr(a)[0])
        )
    """,
    solved="Its PTR name points to another address: the A record publishes the inside address.",
)
def _check_5_1(nat_address, zone):
    if str(nat_address).strip() == "127.0.0.5":
        return None
    return (
        "print zone.fcrdns(a).detail for 127.0.0.1 to 127.0.0.5 and compare.",
        "which PTR name resolves to a *different address* (not to nothing)?",
    )


@exercise(
    "5.2",
    needs=("newmx",),
    given=("server",),
    setup="""
        server.configure(smtpd_helo_restrictions="reject_unknown_helo_hostname")
    """,
    solution="""
        zone_text = DEFAULT_ZONE + "newmx.example.org.  A  127.0.0.6\\n"
        use_zone(server, zone_text, identity="off")
        newmx = server.client(source="127.0.0.6")
        newmx.helo("newmx.example.org")
        newmx.quit()
    """,
)
def _check_5_2(newmx, server):
    if problem := _not_a_client(newmx):
        return problem
    if "reject_unknown_helo_hostname" not in server.policy.smtpd_helo_restrictions:
        return "keep reject_unknown_helo_hostname on: fix the DNS, not the policy."
    if _source(newmx) != "127.0.0.6":
        return "connect from 127.0.0.6: server.client(source='127.0.0.6')."
    if any(a.lower() == "newmx.example.org" and r.code == 250 for _, a, r in _greeted(newmx)):
        return None
    return (
        "newmx.example.org was not accepted: is it in the zone the server uses?",
        "add the line 'newmx.example.org. A 127.0.0.6' to the zone text and load it "
        "with use_zone(server, zone_text, identity='off') before connecting.",
    )


# --- lesson 6 -------------------------------------------------------------


@exercise(
    "6.1",
    needs=("where",),
    solution="""
        where = {}
        for domain in ("shop.example", "plain.example", "nomail.example"):
            route = find_route(domain)
            where[domain] = route.hosts[0] if route.ok else None
    """,
    solved="An MX first (lowest preference), else the domain's own address; a null MX: nowhere.",
)
def _check_6_1(where):
    want = {
        "shop.example": "mx1.shop.example",
        "plain.example": "plain.example",
        "nomail.example": None,
    }
    if not isinstance(where, dict):
        return "where should be a dict such as {'shop.example': 'mx1.shop.example', ...}."
    got = {str(k).lower(): (str(v).lower().rstrip(".") if v else None) for k, v in where.items()}
    for domain, host in want.items():
        if got.get(domain, "missing") != host:
            hints = {
                "shop.example": (
                    "shop.example is not right yet.",
                    "two MX records: the lower preference wins.",
                ),
                "plain.example": (
                    "plain.example is not right yet.",
                    "no MX record: the domain's own address is the implicit MX (§5.1).",
                ),
                "nomail.example": (
                    "nomail.example is not right yet.",
                    "MX 0 . is a null MX (RFC 7505): no mail, not even to its address.",
                ),
            }
            return hints[domain]
    return None


@exercise(
    "6.2",
    needs=("delivery",),
    setup="""
        net = LabNet(seed=1).start()
    """,
    solution="""
        net.server("mx1.shop.example").faults.add("connect:421")
        delivery = net.send("ada@home.example", "bob@shop.example")
        net.server("mx1.shop.example").faults.clear()
    """,
    solved="The MTA tried mx1 first, met its refusal, and went on to mx2 at once.",
)
def _check_6_2(delivery):
    if not hasattr(delivery, "attempts") or not hasattr(delivery, "results"):
        return "keep what net.send(...) returns in delivery."
    result = delivery.results.get("bob@shop.example")
    if result is None:
        return "send to bob@shop.example."
    if result.action != "delivered":
        return "the message was not delivered: was mx2 refusing too?"
    if result.host != "mx2.shop.example":
        return (
            "mx1 took the message itself.",
            "make mx1 refuse first: net.server('mx1.shop.example').faults.add('connect:421'), "
            "or .stop() it.",
        )
    if not delivery.attempts or delivery.attempts[0].host != "mx1.shop.example":
        return "the MTA should have tried mx1 first."
    return None


# --- lesson 7 -------------------------------------------------------------


@exercise(
    "7.1",
    needs=("refusers",),
    given=("table",),
    setup="""
        table = compare_steps()
    """,
    solution="""
        refusers = {name for name in table.personas
                    if table.cell(name, "HELO non-FQDN").code >= 400}
    """,
)
def _check_7_1(refusers, table):
    want = {n for n in table.personas if (table.cell(n, "HELO non-FQDN").code or 0) >= 400}
    if not isinstance(refusers, (set, frozenset, list, tuple)):
        return "refusers should be a set of names such as {'postfix'}."
    got = {str(n).strip().lower() for n in refusers}
    if got != want:
        return (
            f"{len(got ^ want)} name(s) wrong.",
            "a refusal is a 4xx or 5xx code in the 'HELO non-FQDN' column (table.personas "
            "lists the names).",
        )
    return None


@exercise(
    "7.2",
    needs=("sendmail_reply",),
    solution="""
        with LabServer(name="exercise-7-2", persona="sendmail") as sm:
            c = sm.client()
            sendmail_reply = c.helo("client.example.org")
            c.quit()
    """,
    solved="Sendmail names you by your reverse DNS (localhost), not by your HELO argument: "
    "HELO is only a claim.",
)
def _check_7_2(sendmail_reply):
    if not hasattr(sendmail_reply, "code"):
        return "keep the reply object that client.helo(...) returns."
    if sendmail_reply.code != 250 or "pleased to meet you" not in sendmail_reply.text:
        return (
            "that does not look like Sendmail's 250 reply.",
            "start the server with LabServer(persona='sendmail').",
        )
    return None


# --- lesson 8 -------------------------------------------------------------


@exercise(
    "8.1",
    needs=("result",),
    solution="""
        result = trials.run_trials(server, 100, retry="mta", faults=["rcpt:451:0.5"], seed=1)
    """,
    solved="Each retry is a new chance at the 50%: five attempts all failing is rare.",
)
def _check_8_1(result):
    if not hasattr(result, "by_outcome"):
        return "keep what trials.run_trials(...) returns in result."
    if len(result.trials) != 100:
        return "run 100 trials."
    if "rcpt:451:0.5" not in [str(f) for f in result.faults]:
        return "use the fault 'rcpt:451:0.5'."
    if result.policy.name != "mta":
        return "retry as a mail server does: retry='mta'."
    if result.by_outcome()["delivered"] < 90:
        return "with retries, almost every message should get through a 50% 4xx."
    return None


@exercise(
    "8.2",
    needs=("first", "second"),
    solution="""
        first = trials.run_trials(server, 50, faults=["mail:450:0.4"], seed=42)
        second = trials.run_trials(server, 50, faults=["mail:450:0.4"], seed=42)
    """,
    solved="Same seed, same faults: the same replies at the same attempts, every time.",
)
def _check_8_2(first, second):
    if not (hasattr(first, "trials") and hasattr(second, "trials")):
        return "keep both results of trials.run_trials(...)."
    if first.seed != 42 or second.seed != 42:
        return "pass seed=42 to both runs."
    if any("mail:450:0.4" not in [str(f) for f in r.faults] for r in (first, second)):
        return "use the fault 'mail:450:0.4' in both runs."

    def replies(r):
        return [[sorted(a.codes.items(), key=str) for a in t.attempts] for t in r.trials]

    if replies(first) != replies(second) or first.policy.name != second.policy.name:
        return "the two runs differ: were the retry policy, the faults and the seed the same?"
    if not any(450 in a.codes.values() for t in first.trials for a in t.attempts):
        return "no trial met a 450: use the fault 'mail:450:0.4'."
    return None


# --- lesson 9 -------------------------------------------------------------


@exercise(
    "9.1",
    needs=("failed_status", "reporter"),
    setup="""
        net = LabNet(seed=9).start()
        net.send("ada@home.example", ["bob@shop.example", "nobody@shop.example"])
        bounce = net.mailbox("home.example")[-1]
    """,
    solution="""
        report = read_dsn(bounce)
        failed = [r for r in report.recipients if r["Action"] == "failed"][0]
        failed_status = failed["Status"]
        reporter = report.per_message["Reporting-MTA"].split(";")[-1].strip()
    """,
    solved="5.1.1 is 'bad destination mailbox address'; the report comes from Ada's own server.",
)
def _check_9_1(failed_status, reporter):
    if str(failed_status).strip() != "5.1.1":
        return (
            "failed_status is not right yet.",
            "the Status field of the recipient whose Action is 'failed' (an enhanced status code).",
        )
    name = str(reporter).split(";")[-1].strip().lower().rstrip(".")
    if name != "mta.home.example":
        return (
            "reporter is not right yet: who *sent* the bounce?",
            "the Reporting-MTA field, not Remote-MTA (the server that refused).",
        )
    return None


@exercise(
    "9.2",
    needs=("given_up",),
    setup="""
        net = LabNet(seed=9).start()
    """,
    solution="""
        for host in ("mx1.shop.example", "mx2.shop.example"):
            net.server(host).faults.add("rcpt:451")
        given_up = net.send("ada@home.example", "bob@shop.example")
        for host in ("mx1.shop.example", "mx2.shop.example"):
            net.server(host).faults.clear()
        print(given_up)
    """,
    solved="A 4xx is retried; only when the retries run out does the MTA give up and bounce.",
)
def _check_9_2(given_up):
    if not hasattr(given_up, "results") or not hasattr(given_up, "bounces"):
        return "keep what net.send(...) returns in given_up."
    result = given_up.results.get("bob@shop.example")
    if result is None:
        return "send to bob@shop.example."
    if result.action == "delivered":
        return (
            "Bob got the message: both mail hosts must answer RCPT with 451.",
            "net.server('mx1.shop.example').faults.add('rcpt:451'), and the same for mx2.",
        )
    if not result.status.startswith("4"):
        return "that failure was permanent (5xx) and bounced at once; the task wants a 4xx."
    if result.rounds < 2 or not given_up.bounces:
        return "the MTA should retry before it gives up: use the default retry policy."
    return None


# --- lesson 10 -------------------------------------------------------------


@exercise(
    "10.1",
    needs=("error",),
    setup="""
        server = LabServer(name="lesson-10", tls=True, users={"alice": "wonderland"}).start()
    """,
    solution="""
        t = server.client()
        t.ehlo("client.example.org")
        try:
            t.starttls(server_name="evil.example.net")
        except TLSFailed as exc:
            error = exc
    """,
    solved="The certificate names mx.lab.example.org, not evil.example.net: the client hangs up.",
)
def _check_10_1(error):
    from ..errors import LabConnectionError

    if not isinstance(error, LabConnectionError):
        return (
            "keep the exception itself: except TLSFailed as exc: error = exc.",
            "starttls(server_name='evil.example.net') raises TLSFailed; catch it.",
        )
    if "evil.example.net" not in str(error):
        return "the error should be about the name evil.example.net."
    return None


@exercise(
    "10.2",
    needs=("new_keywords",),
    setup="""
        server = LabServer(name="lesson-10", tls=True, users={"alice": "wonderland"}).start()
    """,
    solution="""
        c = server.client()
        before = set(c.ehlo("client.example.org").texts[1:])
        c.starttls()
        after = set(c.ehlo("client.example.org").texts[1:])
        new_keywords = {k.split()[0] for k in after - before}
        c.quit()
    """,
    solved="This server, like many (Postfix's smtpd_tls_auth_only = yes), offers AUTH only "
    "inside TLS.",
)
def _check_10_2(new_keywords):
    if isinstance(new_keywords, str):
        new_keywords = {new_keywords}
    if not isinstance(new_keywords, (set, frozenset, list, tuple)):
        return "new_keywords should be a set of keywords such as {'SIZE'}."
    names = {str(k).split()[0].upper() for k in new_keywords if str(k).strip()}
    if names != {"AUTH"}:
        return (
            "compare the two EHLO replies line by line.",
            "one keyword disappears inside TLS and one appears: you want the one that appears.",
        )
    return None


# --- lesson 11 -------------------------------------------------------------


@exercise(
    "11.1",
    needs=("submitter",),
    setup="""
        sub11 = LabServer(
            name="lesson-11-exercise", mode="submission", users={"alice": "wonderland"}
        ).start()
    """,
    solution="""
        submitter = sub11.client()
        submitter.ehlo("laptop.example.org")
        submitter.starttls()
        submitter.ehlo("laptop.example.org")
        submitter.auth("alice", "wonderland")
        submitter.mail("alice@lab.example.org")
        submitter.rcpt("friend@elsewhere.example.net")
        submitter.data("Subject: submitted\\r\\n\\r\\nhello\\r\\n")
        submitter.quit()
    """,
)
def _check_11_1(submitter):
    if problem := _not_a_client(submitter):
        return problem
    steps = _steps(submitter)
    ok_rcpt = any(
        v == "RCPT" and "friend@elsewhere.example.net" in a and r.code == 250 for v, a, r in steps
    )
    if ok_rcpt and _delivered(submitter):
        return None
    codes = [r.code for _, _, r in steps]
    if 530 in codes:
        return "MAIL got 530: log in with .auth('alice', 'wonderland') first."
    if 538 in codes or 503 in codes and "AUTH" in [v for v, _, _ in steps]:
        return "AUTH needs TLS here: .starttls(), then EHLO again, then AUTH."
    return (
        "no message for friend@elsewhere.example.net got its 250 yet.",
        "EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA.",
    )


@exercise(
    "11.2",
    needs=("stranger",),
    setup="""
        mx = LabServer(name="lesson-11-mx").start()
    """,
    solution="""
        stranger = mx.client(source="127.0.0.2")
        stranger.ehlo("stranger.example.net")
        stranger.mail("someone@example.net")
        stranger.rcpt("postmaster@lab.example.org")
        stranger.rcpt("friend@elsewhere.example.net")
        stranger.quit()
    """,
    solved="An MX takes mail for its own domains from anyone, and relays only for clients it trusts.",
)
def _check_11_2(stranger):
    if problem := _not_a_client(stranger):
        return problem
    if _source(stranger) != "127.0.0.2":
        return "connect from 127.0.0.2, which the server does not trust: mx.client(source='127.0.0.2')."
    rcpts = [(a.lower(), r.code) for v, a, r in _steps(stranger) if v == "RCPT"]
    own = any("@lab.example.org" in a and c == 250 for a, c in rcpts)
    foreign = any("@lab.example.org" not in a and c and c >= 500 for a, c in rcpts)
    if own and foreign:
        return None
    return (
        "one RCPT for the server's own domain and one for another domain, in one transaction.",
        "RCPT TO:<postmaster@lab.example.org> and RCPT TO:<friend@elsewhere.example.net>.",
    )


# --- lesson 12 -------------------------------------------------------------


@exercise(
    "12.1",
    needs=("outcome",),
    setup="""
        import smtplib
        HOST, PORT = server.host, server.port
    """,
    solution="""
        try:
            with smtplib.SMTP(HOST, PORT, source_address=("127.0.0.2", 0)) as s:
                s.sendmail("a@example.org", ["x@elsewhere.example.net"], "Subject: x\\r\\n\\r\\nx")
            outcome = "no exception"
        except smtplib.SMTPException as exc:
            outcome = type(exc).__name__
    """,
)
def _check_12_1(outcome):
    if str(outcome).strip() != "SMTPRecipientsRefused":
        return (
            "provoke it: send from 127.0.0.2 to a foreign recipient only.",
            "catch smtplib.SMTPException and look at type(exc).__name__.",
        )
    return None


@exercise(
    "12.2",
    needs=("send_with_retry",),
    setup="""
        import smtplib
        import time
    """,
    solution="""
        def send_with_retry(host, port, sender, rcpt, text, attempts=4, wait=0.1):
            for attempt in range(1, attempts + 1):
                try:
                    with smtplib.SMTP(host, port) as s:
                        s.sendmail(sender, [rcpt], text)
                    return attempt
                except smtplib.SMTPRecipientsRefused as exc:
                    code = exc.recipients[rcpt][0]
                    if code >= 500:
                        raise                      # permanent: do not repeat
                time.sleep(wait * 2 ** (attempt - 1))    # transient: back off, try again
            raise RuntimeError(f"gave up after {attempts} attempts")
    """,
)
def _check_12_2(send_with_retry):
    from ..lab.labserver import LabServer

    if not callable(send_with_retry):
        return "send_with_retry should be a function: def send_with_retry(host, port, sender, rcpt, text): ..."
    text = "Subject: retried\r\n\r\nhello\r\n"
    with LabServer(name="check-12-2-busy") as busy, LabServer(name="check-12-2-hard") as hard:
        busy.faults.add("rcpt:451:sessions=1-2")
        hard.faults.add("rcpt:550")
        try:
            send_with_retry(busy.host, busy.port, "a@example.org", "retry@lab.example.org", text)
        except Exception as exc:  # noqa: BLE001  (any failure is the learner's to fix)
            return (
                f"against a server whose first two sessions answer 451, your function raised "
                f"{type(exc).__name__}.",
                "catch smtplib.SMTPRecipientsRefused, read exc.recipients[rcpt][0], and try "
                "again when it is a 4xx.",
            )
        if not busy.mailbox.find(rcpt="retry@lab.example.org"):
            return "the message never arrived at the busy server: retry after a 4xx until it is accepted."
        starts = [s.started for s in busy.sessions]
        waits = [b - a for a, b in itertools.pairwise(starts)]
        if len(waits) >= 2 and waits[1] < waits[0] * 1.2:
            return "the waits between attempts should grow (for example double each time)."
        try:
            send_with_retry(hard.host, hard.port, "a@example.org", "nobody@lab.example.org", text)
        except Exception:  # noqa: BLE001  (raising is right here; how is the learner's choice)
            pass
        if len(hard.sessions) > 1:
            return (
                f"against a server that answers 550, your function tried {len(hard.sessions)} "
                f"times.",
                "a 5xx means do not repeat: re-raise it at once.",
            )
    return None


# --- lesson 13 -------------------------------------------------------------


def _diagnosis_hint(case, diagnosis):
    from .mystery import DIAGNOSES

    name = str(diagnosis).strip().lower()
    if name not in DIAGNOSES:
        return f"{diagnosis!r} is not a diagnosis name; choose one of: {', '.join(DIAGNOSES)}."
    if not case.is_right(name):
        return (
            "not this one. Which command gets the first error?",
            "does the reply change with the HELO name, the client address (source=...) or a "
            "second attempt a little later?",
        )
    return None


@exercise(
    "13.1",
    needs=("diagnosis_1",),
    given=("case",),
    setup="""
        m1 = mystery(1)
        case = m1
    """,
    solution="""
        # HELO gets 550 for every name from 127.0.0.1, and 250 from 127.0.0.3.
        diagnosis_1 = "client-address"
    """,
)
def _check_13_1(diagnosis_1, case):
    return _diagnosis_hint(case, diagnosis_1)


@exercise(
    "13.2",
    needs=("diagnosis_2",),
    given=("case",),
    setup="""
        m2 = mystery(2)
        case = m2
    """,
    solution="""
        # RCPT gets 450 4.7.25 "cannot find your hostname"; 127.0.0.5's PTR name
        # resolves to another address (the zone publishes the inside address).
        diagnosis_2 = "client-fcrdns"
    """,
)
def _check_13_2(diagnosis_2, case):
    return _diagnosis_hint(case, diagnosis_2)


@exercise(
    "13.3",
    needs=("diagnoses",),
    given=("mysteries",),
    setup="""
        mysteries = {n: mystery(n) for n in range(3, 8)}
    """,
    solution="""
        diagnoses = {3: "helo-not-in-dns", 4: "server-hangs-up", 5: "greylisting",
                     6: "relay-denied", 7: "size-limit"}
    """,
)
def _check_13_3(diagnoses, mysteries):
    if not isinstance(diagnoses, dict):
        return "diagnoses should be a dict such as {3: 'greylisting', ...}."
    wrong = [
        n for n, m in sorted(mysteries.items()) if _diagnosis_hint(m, diagnoses.get(n)) is not None
    ]
    if wrong:
        first = _diagnosis_hint(mysteries[wrong[0]], diagnoses.get(wrong[0]))
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        return (
            f"look again at mystery {wrong[0]}{more}.",
            f"mystery {wrong[0]}: " + (first if isinstance(first, str) else first[-1]),
        )
    return None


# --- lesson 14 -----------------------------------------------------------------


@exercise(
    "14.1",
    needs=("bare",),
    solution="""
        bare = server.client()
        bare.raw("HELO")
        bare.quit()
    """,
    solved="§4.1.1.1: HELO takes a domain; without one it is a syntax error in the arguments.",
)
def _check_14_1(bare):
    if problem := _not_a_client(bare):
        return problem
    if any(v == "HELO" and not a and r.code == 501 for v, a, r in _steps(bare)):
        return None
    return (
        "your client sent no HELO without an argument.",
        "client.helo() always sends a name; client.raw('HELO') sends the bare line.",
    )


@exercise(
    "14.2",
    needs=("nameless",),
    solution="""
        nameless = server.client()
        nameless.ehlo("[127.0.0.1]")
        nameless.mail("a@example.org")
        nameless.rcpt("postmaster@lab.example.org")
        nameless.data("Subject: no name\\r\\n\\r\\nhi\\r\\n")
        nameless.quit()
    """,
)
def _check_14_2(nameless):
    from ..protocol.policy import address_literal

    if problem := _not_a_client(nameless):
        return problem
    if not any(address_literal(a) and r.code == 250 for _, a, r in _greeted(nameless)):
        return (
            "greet with an address literal instead of a name.",
            "EHLO with your address in square brackets: '[127.0.0.1]'.",
        )
    if not _delivered(nameless):
        return "greeted; now deliver a message: MAIL, RCPT, DATA."
    return None
