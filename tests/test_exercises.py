"""Every exercise judges fairly.

For each exercise: its own solution passes; at least two other correct
answers pass, the first being the most literal reading of the task text in
the lesson's box; a wrong answer fails with a hint and no "not attempted";
the untouched placeholder says "not attempted yet" and reveals nothing; hints
grow with wrong attempts.  The task text lives in the lesson only: every
registered exercise has exactly one box in its lesson, and every box an
exercise.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap

import pytest

import labsmtp
from labsmtp import LabServer, stop_all
from labsmtp.classroom import course
from labsmtp.classroom.course import check, exercises, passes, solution

EXERCISES = exercises()
BY_ID = {e.id: e for e in EXERCISES}

_SEND = """
c.mail("learner@example.org")
c.rcpt("postmaster@lab.example.org")
c.data("Subject: x\\r\\n\\r\\nhi\\r\\n")
c.quit()
"""

# id -> (correct answers, the first being the most literal reading of the task; a wrong one)
TABLE: dict[str, tuple[list[str], str]] = {
    "0.1": (
        [
            """
            second = server.client()
            second.helo("client.example.org")
            second.mail("learner@example.org")
            second.rcpt("help@lab.example.org")
            second.data(make_message(to="help@lab.example.org", subject="Second"))
            second.quit()
            """,
            """
            second = server.client()
            second.ehlo("laptop.example.org")
            second.mail("me@example.org")
            second.rcpt("help@lab.example.org")
            second.data("From: me@example.org\\r\\nSubject: Second\\r\\n\\r\\nhello again\\r\\n")
            """,
        ],
        """
        second = server.client()
        second.helo("client.example.org")
        second.mail("learner@example.org")
        second.rcpt("help@lab.example.org")
        second.data(make_message(to="help@lab.example.org", subject="First"))
        """,
    ),
    "0.2": (
        ["count = len(server.mailbox)", "count = len(list(server.mailbox))"],
        "count = len(server.mailbox) + 5",
    ),
    "1.1": (
        [
            """
            wrong_order = server.client()
            wrong_order.helo("client.example.org")
            wrong_order.rcpt("postmaster@lab.example.org")
            """,
            """
            wrong_order = server.client()
            wrong_order.helo("client.example.org")
            wrong_order.mail("a@example.org")
            wrong_order.mail("a@example.org")
            """,
            """
            wrong_order = server.client()
            wrong_order.mail("a@example.org")
            """,
        ],
        """
        wrong_order = server.client()
        wrong_order.helo("client.example.org")
        wrong_order.mail("a@example.org")
        wrong_order.rcpt("postmaster@lab.example.org")
        """,
    ),
    "1.2": (
        [
            """
            dotted = server.client()
            dotted.helo("client.example.org")
            dotted.mail("learner@example.org")
            dotted.rcpt("postmaster@lab.example.org")
            dotted.data(make_message(subject="dots", body=".hidden"))
            """,
            """
            dotted = server.client()
            dotted.ehlo("client.example.org")
            dotted.mail("learner@example.org")
            dotted.rcpt("postmaster@lab.example.org")
            dotted.data("Subject: d\\r\\n\\r\\nfirst\\r\\n.hidden\\r\\nlast\\r\\n")
            """,
        ],
        """
        dotted = server.client()
        dotted.helo("client.example.org")
        dotted.mail("learner@example.org")
        dotted.rcpt("postmaster@lab.example.org")
        dotted.data("Subject: d\\r\\n\\r\\nhidden\\r\\n")
        """,
    ),
    "1.3": (
        [
            "replies, commands = 4, 3",
            """
            s = server.client(); s.helo("client.example.org"); s.noop(); s.quit()
            replies = len([ln for ln in server.transcript.last() if ln.direction == "server"])
            commands = len([ln for ln in server.transcript.last() if ln.direction == "client"])
            """,
        ],
        "replies, commands = 3, 3",
    ),
    "2.1": (
        [
            """
            c = server.client()
            c.ehlo("client.example.org")
            size_limit = int(c.esmtp_keywords["SIZE"])
            """,
            """
            c = server.client()
            reply = c.ehlo("client.example.org")
            size_limit = int([t for t in reply.texts if t.startswith("SIZE")][0].split()[1])
            """,
            "size_limit = 10240000",
        ],
        """
        c = server.client()
        c.ehlo("client.example.org")
        size_limit = c.esmtp_keywords["SIZE"]
        """,
    ),
    "2.2": (
        [
            """
            def greet(client, name):
                reply = client.ehlo(name)
                if reply.code in (500, 502):
                    reply = client.helo(name)
                return reply
            """,
            """
            def greet(client, name):
                r = client.ehlo(name)
                return r if r.ok else client.helo(name)
            """,
        ],
        """
        def greet(client, name):
            return client.helo(name)
        """,
    ),
    "3.1": (
        [
            'meaning = {250: "done", 354: "go on", 451: "try again later", 550: "do not repeat"}',
            """
            words = {"2": "Done", "3": "go on ", "4": "try again later", "5": "do not repeat"}
            meaning = {code: words[str(code)[0]] for code in (250, 354, 451, 550)}
            """,
        ],
        'meaning = {250: "done", 354: "try again later", 451: "go on", 550: "do not repeat"}',
    ),
    "3.2": (
        ['listed_251_after_helo = is_legal("HELO", 251)', "listed_251_after_helo = False"],
        "listed_251_after_helo = True",
    ),
    "3.3": (
        [
            """
            server.configure(max_recipients=2)
            crowded = server.client()
            crowded.helo("client.example.org")
            crowded.mail("learner@example.org")
            for n in range(3):
                crowded.rcpt(f"user{n}@lab.example.org")
            """,
            """
            server.configure(max_recipients=1)
            crowded = server.client()
            crowded.ehlo("client.example.org")
            crowded.mail("learner@example.org")
            crowded.rcpt("a@lab.example.org")
            crowded.rcpt("b@lab.example.org")
            """,
        ],
        """
        server.faults.add("rcpt:451")
        crowded = server.client()
        crowded.helo("client.example.org")
        crowded.mail("learner@example.org")
        crowded.rcpt("a@lab.example.org")
        server.faults.clear()
        """,
    ),
    "4.1": (
        [
            """
            literal = server.client(source="127.0.0.2")
            literal.ehlo("[127.0.0.2]")
            """,
            """
            literal = server.client(source="127.0.0.2")
            literal.raw("EHLO [127.0.0.2]")
            """,
        ],
        """
        literal = server.client(source="127.0.0.2")
        literal.ehlo("127.0.0.2")
        """,
    ),
    "4.2": (
        [
            'c = named = pf.client(source="127.0.0.2")\nc.ehlo("mail.good.example")' + _SEND,
            'c = named = pf.client(source="127.0.0.2")\nc.ehlo("[127.0.0.2]")' + _SEND,
            'c = named = pf.client(source="127.0.0.2")\nc.helo("client.example.org")' + _SEND,
        ],
        'c = named = pf.client(source="127.0.0.2")\nc.ehlo("laptop")' + _SEND,
    ),
    "5.1": (
        [
            'nat_address = "127.0.0.5"',
            """
            nat_address = [a for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
                           if zone.fcrdns(a).verdict == "mismatch"
                           and zone.addresses(zone.ptr(a)[0])][0]
            """,
        ],
        'nat_address = "127.0.0.3"',
    ),
    "5.2": (
        [
            """
            zone_text = DEFAULT_ZONE + "newmx.example.org. A 127.0.0.6\\n"
            use_zone(server, zone_text, identity="off")
            newmx = server.client(source="127.0.0.6")
            newmx.helo("newmx.example.org")
            """,
            """
            use_zone(server, LabZone(DEFAULT_ZONE + "newmx.example.org. 300 IN A 127.0.0.6\\n"),
                     identity="off")
            newmx = server.client(source="127.0.0.6")
            newmx.ehlo("newmx.example.org")
            """,
        ],
        """
        server.configure(smtpd_helo_restrictions="")
        newmx = server.client(source="127.0.0.6")
        newmx.helo("newmx.example.org")
        """,
    ),
    "6.1": (
        [
            'where = {"shop.example": "mx1.shop.example", "plain.example": "plain.example", "nomail.example": None}',
            """
            where = {}
            for d in ("shop.example", "plain.example", "nomail.example"):
                r = find_route(d)
                where[d] = r.hosts[0] if r.ok else None
            """,
        ],
        'where = {"shop.example": "mx1.shop.example", "plain.example": "plain.example", "nomail.example": "nomail.example"}',
    ),
    "6.2": (
        [
            """
            net.server("mx1.shop.example").faults.add("connect:421")
            delivery = net.send("ada@home.example", "bob@shop.example")
            net.server("mx1.shop.example").faults.clear()
            """,
            """
            net.server("mx1.shop.example").stop()
            delivery = net.send("ada@home.example", "bob@shop.example", subject="via mx2")
            net.server("mx1.shop.example").start()
            """,
        ],
        'delivery = net.send("ada@home.example", "bob@shop.example")',
    ),
    "7.1": (
        [
            """
            refusers = {name for name in table.personas
                        if table.cell(name, "HELO non-FQDN").code >= 400}
            """,
            """
            refusers = []
            for name in table.personas:
                if table.cell(name, "HELO non-FQDN").code // 100 in (4, 5):
                    refusers.append(name)
            """,
        ],
        'refusers = {"sendmail"}',
    ),
    "7.2": (
        [
            """
            sm = LabServer(name="exercise-7-2", persona="sendmail").start()
            sendmail_reply = sm.client().helo("client.example.org")
            """,
            """
            with LabServer(name="exercise-7-2b", persona="sendmail") as sm:
                sendmail_reply = sm.client().helo("laptop")
            """,
        ],
        """
        pf2 = LabServer(name="exercise-7-2c", persona="postfix").start()
        sendmail_reply = pf2.client().helo("client.example.org")
        """,
    ),
    "8.1": (
        [
            'result = trials.run_trials(server, 100, retry="mta", faults=["rcpt:451:0.5"])',
            'result = trials.run_trials(server, 100, retry="mta", faults=["rcpt:451:0.5"], seed=7)',
        ],
        'result = trials.run_trials(server, 100, retry="none", faults=["rcpt:451:0.5"])',
    ),
    "8.2": (
        [
            """
            first = trials.run_trials(server, 50, seed=42, faults=["mail:450:0.4"])
            second = trials.run_trials(server, 50, seed=42, faults=["mail:450:0.4"])
            """,
            """
            first, second = (trials.run_trials(server, 50, retry="none", seed=42,
                                               faults=["mail:450:0.4"]) for _ in range(2))
            """,
        ],
        """
        first = trials.run_trials(server, 50, seed=42, faults=["mail:450:0.4"])
        second = trials.run_trials(server, 50, seed=43, faults=["mail:450:0.4"])
        """,
    ),
    "9.1": (
        [
            'failed_status, reporter = "5.1.1", "mta.home.example"',
            """
            report = read_dsn(bounce)
            failed_status = report.recipients[0]["Status"]
            reporter = report.per_message["Reporting-MTA"]
            """,
        ],
        'failed_status, reporter = "5.1.1", "mx1.shop.example"',
    ),
    "9.2": (
        [
            """
            net.server("mx1.shop.example").faults.add("rcpt:451")
            net.server("mx2.shop.example").faults.add("rcpt:451")
            given_up = net.send("ada@home.example", "bob@shop.example")
            """,
            """
            for h in ("mx1.shop.example", "mx2.shop.example"):
                net.server(h).faults.add("rcpt:450")
            given_up = net.send("ada@home.example", ["bob@shop.example"], subject="later")
            """,
        ],
        """
        for h in ("mx1.shop.example", "mx2.shop.example"):
            net.server(h).faults.add("rcpt:550")
        given_up = net.send("ada@home.example", "bob@shop.example")
        """,
    ),
    "10.1": (
        [
            """
            t = server.client()
            t.ehlo("client.example.org")
            try:
                t.starttls(server_name="evil.example.net")
            except TLSFailed as exc:
                error = exc
            """,
            """
            t = server.client()
            t.ehlo("client.example.org")
            try:
                t.starttls(server_name="evil.example.net")
            except Exception as e:
                error = e
            """,
        ],
        """
        t = server.client()
        t.ehlo("client.example.org")
        error = t.starttls()
        """,
    ),
    "10.2": (
        [
            'new_keywords = {"AUTH"}',
            """
            c = server.client()
            first = c.ehlo("client.example.org").texts
            c.starttls()
            again = c.ehlo("client.example.org").texts
            new_keywords = [k for k in again[1:] if k not in first]
            """,
        ],
        'new_keywords = {"STARTTLS"}',
    ),
    "11.1": (
        [
            """
            submitter = sub11.client()
            submitter.ehlo("laptop.example.org")
            submitter.starttls()
            submitter.ehlo("laptop.example.org")
            submitter.auth("alice", "wonderland")
            submitter.mail("alice@lab.example.org")
            submitter.rcpt("friend@elsewhere.example.net")
            submitter.data("Subject: hi\\r\\n\\r\\nhello\\r\\n")
            """,
            """
            submitter = sub11.client()
            submitter.ehlo("laptop.example.org")
            submitter.starttls()
            submitter.ehlo("laptop.example.org")
            submitter.auth("alice", "wonderland", mechanism="LOGIN")
            submitter.mail("alice@lab.example.org")
            submitter.rcpt("friend@elsewhere.example.net")
            submitter.data(make_message(to="friend@elsewhere.example.net", subject="hi"))
            """,
        ],
        """
        submitter = sub11.client()
        submitter.ehlo("laptop.example.org")
        submitter.mail("alice@lab.example.org")
        """,
    ),
    "11.2": (
        [
            """
            stranger = mx.client(source="127.0.0.2")
            stranger.ehlo("stranger.example.net")
            stranger.mail("someone@example.net")
            stranger.rcpt("postmaster@lab.example.org")
            stranger.rcpt("friend@elsewhere.example.net")
            """,
            """
            stranger = mx.client(source="127.0.0.2")
            stranger.helo("stranger.example.net")
            stranger.mail("x@example.net")
            stranger.rcpt("friend@elsewhere.example.net")
            stranger.rcpt("abuse@lab.example.org")
            """,
        ],
        """
        stranger = mx.client()
        stranger.ehlo("stranger.example.net")
        stranger.mail("x@example.net")
        stranger.rcpt("postmaster@lab.example.org")
        stranger.rcpt("friend@elsewhere.example.net")
        """,
    ),
    "12.1": (
        [
            """
            try:
                with smtplib.SMTP(HOST, PORT, source_address=("127.0.0.2", 0)) as s:
                    s.sendmail("a@example.org", ["x@elsewhere.example.net"], "Subject: x\\r\\n\\r\\nx")
            except smtplib.SMTPException as exc:
                outcome = type(exc).__name__
            """,
            'outcome = "SMTPRecipientsRefused"',
        ],
        'outcome = "SMTPSenderRefused"',
    ),
    "12.2": (
        [
            """
            def send_with_retry(host, port, sender, rcpt, text):
                wait = 0.1
                while True:
                    try:
                        with smtplib.SMTP(host, port) as s:
                            s.sendmail(sender, [rcpt], text)
                        return
                    except smtplib.SMTPRecipientsRefused as exc:
                        if exc.recipients[rcpt][0] >= 500:
                            raise
                    time.sleep(wait)
                    wait *= 2
            """,
            """
            def send_with_retry(host, port, sender, rcpt, text, tries=5):
                for n in range(tries):
                    with smtplib.SMTP(host, port) as s:
                        refused = {}
                        try:
                            s.sendmail(sender, [rcpt], text)
                            return n + 1
                        except smtplib.SMTPRecipientsRefused as exc:
                            refused = exc.recipients
                    code = refused[rcpt][0]
                    if 500 <= code:
                        raise RuntimeError(f"permanent: {code}")
                    time.sleep(0.1 * (n + 1) ** 2)
            """,
        ],
        """
        def send_with_retry(host, port, sender, rcpt, text):
            for n in range(5):
                try:
                    with smtplib.SMTP(host, port) as s:
                        s.sendmail(sender, [rcpt], text)
                    return
                except smtplib.SMTPException:
                    time.sleep(0.05)
        """,
    ),
    "13.1": (
        ['diagnosis_1 = "client-address"', 'diagnosis_1 = " Client-Address"'],
        'diagnosis_1 = "helo-syntax"',
    ),
    "13.2": (
        ['diagnosis_2 = "client-fcrdns"', 'diagnosis_2 = "CLIENT-FCRDNS "'],
        'diagnosis_2 = "helo-syntax"',
    ),
    "13.3": (
        [
            'diagnoses = {3: "helo-not-in-dns", 4: "server-hangs-up", 5: "greylisting", 6: "relay-denied", 7: "size-limit"}',
            """
            diagnoses = dict(zip(range(3, 8), ["helo-not-in-dns", "server-hangs-up",
                                               "greylisting", "relay-denied", "size-limit"]))
            """,
        ],
        'diagnoses = {3: "helo-not-in-dns", 4: "nothing-listening", 5: "greylisting", 6: "relay-denied", 7: "size-limit"}',
    ),
    "14.1": (
        [
            """
            bare = server.client()
            bare.raw("HELO")
            """,
            """
            bare = server.client()
            bare.command("HELO")
            """,
        ],
        """
        bare = server.client()
        bare.helo("x.example.org")
        """,
    ),
    "14.2": (
        [
            'c = nameless = server.client()\nc.ehlo("[127.0.0.1]")' + _SEND,
            'c = nameless = server.client()\nc.helo("[127.0.0.1]")' + _SEND,
        ],
        'c = nameless = server.client()\nc.ehlo("client.example.org")' + _SEND,
    ),
}


@pytest.fixture
def ns():
    """A lesson's namespace: the public names, and a lesson server like most lessons'."""
    course.reset_attempts()
    server = LabServer(
        name="lesson-server", smtpd_helo_restrictions="reject_non_fqdn_helo_hostname"
    ).start()
    space = {name: getattr(labsmtp, name) for name in labsmtp.__all__}
    space["server"] = server
    yield space
    stop_all()


def _run(ns, ex, code):
    exec(ex.setup, ns)
    exec(textwrap.dedent(code), ns)
    things = {n: ns.get(n) for n in ex.needs + ex.given}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(ex.id, **things)
    return out.getvalue(), things


def test_every_exercise_has_a_table_row():
    assert set(TABLE) == set(BY_ID)
    for correct, wrong in TABLE.values():
        assert len(correct) >= 2 and wrong


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_solution_passes_its_check(ns, ex):
    out, things = _run(ns, ex, ex.solution_code)
    assert "✓" in out, out
    assert passes(ex.id, **things)


CASES = [(i, n) for i, (correct, _) in TABLE.items() for n in range(len(correct))]


@pytest.mark.parametrize("id, n", CASES, ids=[f"{i}-{n}" for i, n in CASES])
def test_other_correct_answers_pass(ns, id, n):
    out, _ = _run(ns, BY_ID[id], TABLE[id][0][n])
    assert "✓" in out, out


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_a_wrong_answer_gets_a_hint_that_grows(ns, ex):
    out, things = _run(ns, ex, TABLE[ex.id][1])
    assert "✗" in out and "Hint:" in out and "not attempted" not in out, out
    assert passes(ex.id, **things) is False
    hints = [out]
    for _ in range(3):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            check(ex.id, **things)
        hints.append(buf.getvalue())
    assert "solution(" not in hints[0], "the first hint must not point to the solution"
    assert f"solution('{ex.id}')" in hints[-1], "after repeated wrong attempts, point to it"


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_the_placeholder_is_not_attempted_and_reveals_nothing(ns, ex):
    exec(ex.setup, ns)
    things = {n: ns.get(n) for n in ex.given}
    things.update({n: None for n in ex.needs})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(ex.id, **things)
    text = out.getvalue()
    assert "not attempted yet" in text and "Hint" not in text, text
    assert passes(ex.id, **things) is False


def test_check_of_unknown_or_incomplete_exercise_explains(capsys):
    check("99.9")
    assert "no exercise" in capsys.readouterr().out
    check(EXERCISES[0].id)
    assert "pass" in capsys.readouterr().out
    assert passes("99.9") is False


def test_every_lesson_has_at_least_two_exercises():
    from make_index import lessons

    per_lesson: dict[int, list] = {}
    for ex in EXERCISES:
        per_lesson.setdefault(int(ex.id.split(".")[0]), []).append(ex)
    for name, _title, _ in lessons():
        assert len(per_lesson.get(int(name[:2]), [])) >= 2, f"{name} needs two exercises"


def test_task_text_lives_in_the_lesson_once_and_its_check_cell_passes_the_answers():
    from make_index import NOTEBOOKS, lessons

    boxes: dict[str, str] = {}
    checks: dict[str, str] = {}
    for name, _, _ in lessons():
        nb = json.loads((NOTEBOOKS / name).read_text())
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            for m in re.finditer(r"^> \*\*Exercise (\d+\.\d+):", src, re.M):
                assert m.group(1) not in boxes, f"exercise {m.group(1)} has two boxes"
                assert m.group(1).split(".")[0] == str(int(name[:2])), f"{m.group(1)} in {name}"
                boxes[m.group(1)] = src
            for m in re.finditer(r'^check\("(\d+\.\d+)"(.*)\)\s*$', src, re.M):
                checks[m.group(1)] = m.group(2)
    assert set(boxes) == set(BY_ID), "an exercise without a box, or a box without an exercise"
    for id, ex in BY_ID.items():
        assert f'solution("{id}")' in boxes[id]
        assert not hasattr(ex, "task"), "task text lives in the lesson only"
        passed = set(re.findall(r"(\w+)=", checks[id]))
        assert passed == set(ex.needs + ex.given), f"the check cell of {id} passes {passed}"
        for n in ex.needs:
            assert f"{n}={n}" in checks[id], f"{id}: the answer name is the check's name"


def test_solution_shows_code():
    shown = solution(EXERCISES[0].id)
    assert shown == EXERCISES[0].solution_code
    assert shown._repr_markdown_().startswith("```python")
