"""The course's exercises as data: answer names, setup and one solution each.

One ``Definition`` per exercise, in lesson order: the names the learner's
answer goes into (``needs``, placeholder ``None``), what the lesson passes in
(``given``), what the lesson runs before the exercise (``setup``; the tests run
it too), one solution that passes the check, and the note shown once solved.
The task text is in the lesson's exercise box, nowhere else; the checks are in
the ``checks_*`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Definition:
    """What ``course.exercise`` registers for one exercise, apart from its check."""

    id: str
    solution: str
    needs: tuple[str, ...] = ()
    given: tuple[str, ...] = ()
    setup: str = ""
    solved: str = ""


DEFINITIONS: tuple[Definition, ...] = (
    # lesson 0
    Definition(
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
    ),
    Definition(
        "0.2",
        needs=("count",),
        given=("server",),
        solution="""
            count = len(server.mailbox)
        """,
    ),
    # lesson 1
    Definition(
        "1.1",
        needs=("wrong_order",),
        solution="""
            wrong_order = server.client()
            wrong_order.helo("client.example.org")
            wrong_order.rcpt("postmaster@lab.example.org")   # RCPT before MAIL: 503
            wrong_order.quit()
        """,
        solved="The state did not change: the session is still where it was before the refused command.",
    ),
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 2
    Definition(
        "2.1",
        needs=("size_limit",),
        given=("server",),
        solution="""
            c = server.client()
            c.ehlo("client.example.org")
            size_limit = int(c.esmtp_keywords["SIZE"])
            c.quit()
        """,
    ),
    Definition(
        "2.2",
        needs=("greet",),
        solution="""
            def greet(client, name):
                reply = client.ehlo(name)
                if reply.code in (500, 502):
                    reply = client.helo(name)
                return reply
        """,
    ),
    # lesson 3
    Definition(
        "3.1",
        needs=("meaning",),
        solution="""
            meaning = {250: "done", 354: "go on", 451: "try again later", 550: "do not repeat"}
        """,
    ),
    Definition(
        "3.2",
        needs=("listed_251_after_helo",),
        solution="""
            listed_251_after_helo = is_legal("HELO", 251)
        """,
        solved="251 means 'user not local; will forward': a reply about a recipient (§4.2.3).",
    ),
    Definition(
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
    ),
    # lesson 4
    Definition(
        "4.1",
        needs=("literal",),
        solution="""
            literal = server.client(source="127.0.0.2")
            literal.ehlo("[127.0.0.2]")
            literal.quit()
        """,
        solved="An address literal is accepted where a bare name is not (RFC 5321 §4.1.3).",
    ),
    Definition(
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
    ),
    # lesson 5
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 6
    Definition(
        "6.1",
        needs=("where",),
        solution="""
            where = {}
            for domain in ("shop.example", "plain.example", "nomail.example"):
                route = find_route(domain)
                where[domain] = route.hosts[0] if route.ok else None
        """,
        solved="An MX first (lowest preference), else the domain's own address; a null MX: nowhere.",
    ),
    Definition(
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
    ),
    # lesson 7
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 8
    Definition(
        "8.1",
        needs=("result",),
        solution="""
            result = trials.run_trials(server, 100, retry="mta", faults=["rcpt:451:0.5"], seed=1)
        """,
        solved="Each retry is a new chance at the 50%: five attempts all failing is rare.",
    ),
    Definition(
        "8.2",
        needs=("first", "second"),
        solution="""
            first = trials.run_trials(server, 50, faults=["mail:450:0.4"], seed=42)
            second = trials.run_trials(server, 50, faults=["mail:450:0.4"], seed=42)
        """,
        solved="Same seed, same faults: the same replies at the same attempts, every time.",
    ),
    # lesson 9
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 10
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 11
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 12
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 13
    Definition(
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
    ),
    Definition(
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
    ),
    Definition(
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
    ),
    # lesson 14
    Definition(
        "14.1",
        needs=("bare",),
        solution="""
            bare = server.client()
            bare.raw("HELO")
            bare.quit()
        """,
        solved="§4.1.1.1: HELO takes a domain; without one it is a syntax error in the arguments.",
    ),
    Definition(
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
    ),
)
