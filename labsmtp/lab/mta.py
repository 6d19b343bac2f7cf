"""An MTA-like sender: it follows MX, retries in simulated time, and bounces.

Theory of operation.  ``LabMta.send`` takes a message and its envelope
(sender, recipients) the way an MTA takes mail from its queue.  It groups
the recipients by domain and, for each domain, asks ``mx.find_route`` for
the hosts to try.  Then, in *rounds*:

- It tries the hosts in order (RFC 5321 §5.1).  A refused connection, a
  greeting other than 220 (421 "try later", 554 "no service"), a failed
  EHLO/HELO, or a 421 before the end of the message: that host cannot take
  the mail now, so the next MX is tried in the same round.
- Otherwise the host's answers decide, per recipient: 250 after the final
  dot is *delivered* (the receiver took responsibility, §6.1); a 5xx (to
  MAIL, RCPT or the message) is *failed*, never retried (§4.2.1); a 4xx is
  *deferred*: tried again in the next round, from the best MX again.
- Between rounds it waits, by the retry policy, in *simulated* time (the
  ``SimClock``): nobody waits 30 minutes in a workshop (§4.5.4.1 asks for
  at least 30 minutes between retries and days before giving up).
- When it gives up on a recipient (a 5xx, a domain with no usable route, or
  the retries used up), it sends a delivery status notification (``dsn``)
  to the envelope sender with ``MAIL FROM:<>`` - unless the message itself
  had a null reverse-path: a bounce is never bounced (§4.5.5, §6.1).

Every connection is real (``StepClient`` on loopback) and every attempt is
recorded (``MxAttempt``: which host, which reply, when) in the ``Delivery``
result.  The HELO name goes into each dialogue and nowhere else: routing
reads only the recipient's domain.

What the lab leaves out: ports are not in DNS (on the Internet every MX
listens on port 25; here each lab server has its own port, from a map the
sender is given), and there is no persistent queue - ``send`` returns when
every recipient is delivered or given up.
"""

from __future__ import annotations

import random
import re
import time

from ..errors import ConnectFailed, LabConnectionError, LabValueError
from ..protocol.replies import Reply
from ..protocol.states import Command
from .client import StepClient, make_message
from .delivery import (
    Delivery,
    MxAttempt,
    RecipientResult,
    SimClock,
    check_address,
    check_notify,
    diagnostic,
    has_header,
    minutes,
    port_map,
    status_of,
    xtext,
)
from .dnszone import MAIL_ZONE, LabZone
from .dsn import RETURN_LIMIT, RecipientReport, build_dsn
from .mx import Route, find_route
from .trials import RetryPolicy, get_policy


class LabMta:
    """An MTA-like sender for the lab: MX lookup, fallback, simulated retries, bounces (DSN)."""

    def __init__(
        self,
        hostname: str = "mta.home.example",
        *,
        zone: LabZone | str | None = None,
        ports: dict | None = None,
        helo: str | None = None,
        source: str | None = None,
        retry: str | RetryPolicy = "mta",
        seed: int | None = None,
        clock: SimClock | None = None,
        timeout: float = 5.0,
        bounces: bool = True,
        return_limit: int = RETURN_LIMIT,
    ):
        if not isinstance(hostname, str) or not hostname or " " in hostname:
            raise LabValueError(
                f"hostname must be a name such as 'mta.home.example', not {hostname!r}"
            )
        if helo is not None and (
            not isinstance(helo, str) or not helo.strip() or " " in helo.strip()
        ):
            raise LabValueError(
                f"helo must be one word, a host name or an address literal such as [127.0.0.20], "
                f"not {helo!r}"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise LabValueError(f"timeout must be a number of seconds above 0, not {timeout!r}")
        self.hostname = hostname
        self.helo = helo.strip() if helo else hostname  # an MTA says its own name (§4.1.1.1)
        self.zone = zone if isinstance(zone, LabZone) else LabZone(zone or MAIL_ZONE)
        self.policy = get_policy(retry)
        if self.policy.retry_5xx:
            raise LabValueError(
                f"the retry policy {self.policy.name!r} retries 5xx replies; an MTA never repeats a "
                f"request that got 5xx (RFC 5321 §4.2.1). Use 'mta', 'none' or your own RetryPolicy."
            )
        self.ports = port_map(ports or {})
        if source is None:
            found = self.zone.addresses(hostname)
            source = found[0] if found else None
        self.source = source
        self.clock = clock if clock is not None else SimClock()
        self.rng = random.Random(seed)
        self.seed = seed
        self.timeout = float(timeout)
        self.bounces = bool(bounces)
        self.return_limit = return_limit
        # The names this MTA is known by: as an MX of a domain it skips itself (§5.1).
        self.local_names: tuple[str, ...] = (hostname,)

    def __repr__(self) -> str:
        return (
            f"<LabMta {self.hostname} EHLO {self.helo} from {self.source or 'any address'}, "
            f"retry {self.policy.name}, {len(self.ports)} lab ports>"
        )

    # --- routing ------------------------------------------------------------

    def route(self, domain: str) -> Route:
        """Where mail for ``domain`` goes, as this MTA sees it (draws from its seeded generator)."""
        return find_route(domain, self.zone, rng=self.rng, local_names=self.local_names)

    # --- sending ------------------------------------------------------------

    # Over the complexity gate (ruff C90, 12) as it came from issue 12; split when next changed.
    def _prepare(  # noqa: C901
        self, sender, recipients, message, subject, body
    ) -> tuple[str, list[str], bytes, str]:
        if not isinstance(sender, str):
            raise LabValueError(
                f"the sender must be an address such as 'ada@home.example' ('' for <>), not {sender!r}"
            )
        sender = "" if sender.strip() in ("", "<>") else check_address(sender, "sender")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, (list, tuple)) or not recipients:
            raise LabValueError("give at least one recipient, e.g. 'bob@shop.example' or a list")
        rcpts: list[str] = []
        for r in recipients:
            a = check_address(r, "recipient")
            if a not in rcpts:  # the same recipient twice gets one copy
                rcpts.append(a)
        if message is None:
            message = make_message(
                sender or f"MAILER-DAEMON@{self.hostname}",
                ", ".join(rcpts),
                subject or "Hello from the lab",
                body or "This message never left this computer.",
            )
        if isinstance(message, str):
            message = message.encode("utf-8")
        elif hasattr(message, "as_bytes"):
            message = message.as_bytes()
        if not isinstance(message, (bytes, bytearray)):
            raise LabValueError(
                f"the message must be text, bytes or an email.message.Message, not {type(message).__name__}"
            )
        data = bytes(message).replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        if b"\r\n\r\n" not in data and not data.startswith(b"\r\n"):
            data += b"\r\n" if data.endswith(b"\r\n") else b"\r\n\r\n"
        # Like Postfix's cleanup: add Message-ID and Date if the message lacks them.
        extra = b""
        msgid_match = re.search(
            rb"(?im)^message-id:\s*(<[^>\r\n]*>)", data.split(b"\r\n\r\n", 1)[0]
        )
        if msgid_match:
            message_id = msgid_match.group(1).decode("ascii", "replace")
        else:
            message_id = f"<{self.rng.getrandbits(48):012x}.lab@{self.hostname}>"
            extra += f"Message-ID: {message_id}\r\n".encode()
        if not has_header(data, b"Date"):
            extra += f"Date: {self.clock.date()}\r\n".encode()
        return sender, rcpts, extra + data, message_id

    def send(
        self,
        sender: str,
        recipients,
        message=None,
        *,
        subject: str | None = None,
        body: str | None = None,
        notify=None,
        ret: str | None = None,
        envid: str | None = None,
        orcpt: dict | None = None,
    ) -> Delivery:
        """Deliver ``message`` from ``sender`` to ``recipients`` as an MTA does; returns a Delivery.

        ``sender`` '' is the null reverse-path (a bounce).  ``message``: text,
        bytes or an email Message (default: a small one with ``subject`` and
        ``body``).  RFC 3461 options: ``notify`` ("NEVER" or some of SUCCESS,
        FAILURE, DELAY; this MTA itself only sends FAILURE notices), ``ret``
        ("FULL" or "HDRS"), ``envid``, ``orcpt`` ({recipient: original address}).
        """
        sender, rcpts, data, message_id = self._prepare(sender, recipients, message, subject, body)
        notify_set = check_notify(notify)
        if ret is not None and str(ret).upper() not in ("FULL", "HDRS"):
            raise LabValueError(f"ret must be 'FULL' or 'HDRS' (RFC 3461 §4.3), not {ret!r}")
        if envid is not None and (not isinstance(envid, str) or not envid or len(envid) > 100):
            raise LabValueError(
                "envid must be a short string (RFC 3461 §4.4: at most 100 characters)"
            )
        orcpt = {check_address(k): v for k, v in (orcpt or {}).items()}
        t0 = self.clock.now
        d = Delivery(sender, tuple(rcpts), self.helo, self.hostname, message_id, t0, content=data)
        arrival = self.clock.date()
        by_domain: dict[str, list[str]] = {}
        for r in rcpts:
            by_domain.setdefault(r.rpartition("@")[2], []).append(r)
            d.results[r] = RecipientResult(r, "deferred", "4.0.0", orcpt=orcpt.get(r, ""))
        reported: set[str] = set()
        for round_no in range(1, self.policy.max_attempts + 1):
            for domain, members in by_domain.items():
                pending = [r for r in members if d.results[r].action == "deferred"]
                if not pending:
                    continue
                route = self.route(domain)
                d.routes[domain] = route
                if not route.ok:
                    self._no_route(d, route, pending, round_no, t0)
                    continue
                self._try_hosts(d, route, pending, data, round_no, t0, notify, ret, envid, orcpt)
            for result in d.results.values():
                if result.action == "deferred":
                    result.rounds = round_no
            # A bounce for what failed in this round, while the rest waits (as Postfix does).
            self._maybe_bounce(d, data, reported, arrival, notify_set, ret, envid)
            waiting = [r for r in d.results.values() if r.action == "deferred"]
            if not waiting:
                break
            if round_no == self.policy.max_attempts or not self._retries(waiting):
                self._give_up(d, waiting, round_no, t0)
                self._maybe_bounce(d, data, reported, arrival, notify_set, ret, envid)
                break
            self.clock.advance(self.policy.wait(round_no))
        d.finished = self.clock.now - t0
        return d

    def _retries(self, waiting: list[RecipientResult]) -> bool:
        lost = any(r.status.startswith("4.4.") for r in waiting)
        return self.policy.retry_4xx or (lost and self.policy.retry_lost)

    def _no_route(self, d: Delivery, route: Route, pending, round_no: int, t0: float) -> None:
        # No connection is attempted at all (RFC 7505 §4.1 for a null MX; §5.1 errors).
        d.attempts.append(
            MxAttempt(
                round_no,
                self.clock.now - t0,
                route.domain,
                route.domain,
                "",
                None,
                None,
                "route",
                None,
                "not tried",
                f"{route.status} {route.diagnostic}",
                self.helo,
            )
        )
        for r in pending:
            res = d.results[r]
            res.action, res.status, res.host = "failed", route.status, ""
            res.diagnostic = f"X-labsmtp; {route.diagnostic}"
            res.at, res.rounds = self.clock.now - t0, round_no
        d.notes.append(f"{route.domain}: {route.diagnostic}; no connection was attempted")

    def _give_up(self, d: Delivery, waiting, round_no: int, t0: float) -> None:
        for r in waiting:
            # The status stays the last temporary one: RFC 3463 X.4.7 asks for the real problem.
            r.action = "failed"
            r.at, r.rounds = self.clock.now - t0, round_no
        n = self.policy.max_attempts
        d.notes.append(
            f"gave up on {', '.join(r.recipient for r in waiting)} after {round_no} of {n} "
            f"round(s) ({minutes(self.clock.now - t0)} simulated; a real MTA keeps trying "
            f"for days, RFC 5321 §4.5.4.1)"
        )

    def _maybe_bounce(self, d, data, reported, arrival, notify, ret, envid) -> None:
        fresh = [
            r for r in d.results.values() if r.action == "failed" and r.recipient not in reported
        ]
        if not fresh:
            return
        reported.update(r.recipient for r in fresh)
        if not d.sender:
            d.notes.append(
                "the message had a null reverse-path (<>): no notification is sent about it "
                "(RFC 5321 §4.5.5, §6.1: never bounce a bounce)"
            )
            return
        if "FAILURE" not in notify:
            d.notes.append(
                f"NOTIFY={','.join(sorted(notify))}: the sender asked for no failure notice"
            )
            return
        if not self.bounces:
            d.notes.append(
                f"{self.hostname} sends no bounces (like spam software): failures are dropped"
            )
            return
        bounce = self.bounce(
            d.sender,
            [
                RecipientReport(
                    r.recipient,
                    "failed",
                    r.status,
                    r.host,
                    r.diagnostic,
                    self.clock.date(d.started + r.at) if r.host else "",
                    f"rfc822;{r.orcpt}" if r.orcpt else "",
                )
                for r in fresh
            ],
            data,
            arrival=arrival,
            ret=ret,
            envid=envid,
        )
        d.bounces.append(bounce)

    def bounce(
        self,
        to: str,
        reports: list[RecipientReport],
        original: bytes,
        *,
        arrival: str | None = None,
        ret: str | None = None,
        envid: str | None = None,
        received_from: str | None = None,
    ) -> Delivery:
        """Build a DSN about ``reports`` and send it to ``to`` with MAIL FROM:<> (RFC 3464)."""
        msgid = f"<{self.rng.getrandbits(48):012x}.dsn@{self.hostname}>"
        dsn = build_dsn(
            reporting_mta=self.hostname,
            sender=to,
            recipients=reports,
            original=original,
            arrival_date=arrival or self.clock.date(),
            date=self.clock.date(),
            message_id=msgid,
            boundary=f"{self.rng.getrandbits(64):016X}.{self.hostname}",
            ret=ret,
            envid=envid,
            received_from_mta=received_from,
            return_limit=self.return_limit,
        )
        return self.send("", [to], dsn)

    # --- one round for one domain: the MX hosts in order -------------------------

    def _try_hosts(self, d, route, pending, data, round_no, t0, notify, ret, envid, orcpt) -> None:
        last: MxAttempt | None = None
        for target in route.usable:
            for address in target.addresses:
                # A 5xx to RCPT at an earlier host stays final; only the rest go on.
                pending = [r for r in pending if d.results[r].action == "deferred"]
                if not pending:
                    return
                a = self._attempt(
                    d, target, address, pending, data, round_no, t0, notify, ret, envid, orcpt
                )
                d.attempts.append(a)
                last = a
                if a.outcome not in ("next MX", "no connection"):
                    return
        # Every host failed before a transaction: all stay deferred, with the last reason.
        for r in pending:
            res = d.results[r]
            res.at = self.clock.now - t0
            res.host = last.host if last else ""
            if last is not None and last.reply is not None:
                res.reply = last.reply
                code = last.reply.code or 400
                # A 5xx greeting counts as temporary here, as Postfix's smtp_skip_5xx_greeting.
                res.status = status_of(last.reply) if code < 500 else "4.0.0"
                res.diagnostic = diagnostic(last.reply)
            else:
                res.reply = None
                res.status = "4.4.1"  # RFC 3463: no answer from host
                res.diagnostic = f"X-labsmtp; {last.note if last else 'no host answered'}"

    def _attempt(
        self, d, target, address, pending, data, round_no, t0, notify, ret, envid, orcpt
    ) -> MxAttempt:
        connect_ip, port = self.ports.get(address, (address, None))
        a = MxAttempt(
            round_no,
            self.clock.now - t0,
            pending[0].rpartition("@")[2],
            target.host,
            address,
            port,
            None if target.implicit else target.preference,
            "connect",
            None,
            "no connection",
            "",
            self.helo,
        )
        if port is None:
            a.note = (
                f"connection refused: no lab server listens at {address} (on the Internet this "
                f"would be {address}:25)"
            )
            return a
        started = time.perf_counter()
        client = StepClient(
            connect_ip, port, source=self.source, timeout=self.timeout, server_name=target.host
        )
        try:
            self._dialogue(client, a, d, pending, data, notify, ret, envid, orcpt)
        except ConnectFailed as exc:
            a.outcome, a.note = "no connection", str(exc)
        except LabConnectionError as exc:
            a.note = f"connection lost ({exc.phase}): {exc}"
            if a.stage == "dot" and a.reply is None:
                # Lost while waiting for the reply to the final dot: the server may have
                # stored the message.  Retry later, knowing it may arrive twice (RFC 1047).
                a.outcome = "deferred"
                a.note += "; the message may have been stored, so a retry may deliver it twice"
                for rcpt, x in a.rcpt_replies.items():
                    if x.ok:
                        res = d.results[rcpt]
                        res.action, res.status, res.host, res.reply = (
                            "deferred",
                            "4.4.2",
                            a.host,
                            None,
                        )
                        res.diagnostic = f"X-labsmtp; {a.note}"
            elif a.outcome not in ("delivered", "refused", "deferred"):
                a.outcome = "next MX"  # nothing was accepted: the next MX may take it
        finally:
            client.close()
            a.wire = client.wire()
            a.latency = time.perf_counter() - started
        return a

    # Over the complexity gate (ruff C90, 12) as it came from issue 12; split when next changed.
    def _dialogue(  # noqa: C901
        self, c: StepClient, a: MxAttempt, d, pending, data, notify, ret, envid, orcpt
    ) -> None:
        at = self.clock.now - d.started

        def finish(outcome: str, stage: str, reply: Reply | None, note: str) -> None:
            a.outcome, a.stage, a.reply, a.note = outcome, stage, reply, note

        def quit_politely() -> None:
            try:
                if c.sock is not None:
                    c.quit()
            except LabConnectionError:
                pass

        greeting = c.connect()
        a.stage, a.reply = "greeting", greeting
        if greeting.code != 220:
            finish(
                "next MX", "greeting", greeting, "the greeting was not 220: try the next MX (§3.1)"
            )
            quit_politely()
            return
        a.stage = "ehlo"
        r = c.ehlo(self.helo)
        if r.code in (500, 502):
            r = c.helo(self.helo)  # §3.2: a server that does not know EHLO gets HELO
        if r.code != 250:
            finish("next MX", "ehlo", r, "EHLO/HELO was not accepted: try the next MX")
            quit_politely()
            return
        dsn_ok = "DSN" in c.esmtp_keywords
        params = {}
        if "SIZE" in c.esmtp_keywords:
            params["SIZE"] = str(len(data))
        if "8BITMIME" in c.esmtp_keywords and any(ch > 127 for ch in data):
            params["BODY"] = "8BITMIME"  # RFC 6152: say so when the text has 8-bit bytes
        if dsn_ok and ret:
            params["RET"] = ret.upper()
        if dsn_ok and envid:
            params["ENVID"] = xtext(envid)
        a.stage = "mail"
        r = c.mail(d.sender, **params)
        if r.code == 421:
            finish("next MX", "mail", r, "421 at MAIL: the host is closing; try the next MX")
            return
        if not r.ok:
            self._settle(d, pending, r, a.host, at, a.round)
            refused = (r.code or 0) >= 500
            finish("refused" if refused else "deferred", "mail", r, f"MAIL refused: {r.code}")
            quit_politely()
            return
        accepted = []
        a.stage = "rcpt"
        for rcpt in pending:
            line = f"RCPT TO:<{rcpt}>"
            if dsn_ok and notify is not None:
                line += (
                    " NOTIFY=" + (notify if isinstance(notify, str) else ",".join(notify)).upper()
                )
            if dsn_ok and orcpt.get(rcpt):
                line += " ORCPT=rfc822;" + xtext(orcpt[rcpt])
            r = c.command(line, Command.RCPT)
            a.rcpt_replies[rcpt] = r
            if r.code == 421:
                finish("next MX", "rcpt", r, "421 at RCPT: the host is closing; try the next MX")
                return
            if r.ok:
                accepted.append(rcpt)
            else:
                self._settle(
                    d, [rcpt], r, a.host, at, a.round
                )  # §3.3: one refusal ends nothing else
        if not accepted:
            replies = list(a.rcpt_replies.values())
            temporary = [x for x in replies if (x.code or 400) < 500]
            # Deferred if any recipient may succeed later; the reply shown is one that says so.
            finish(
                "deferred" if temporary else "refused",
                "rcpt",
                temporary[0] if temporary else replies[0],
                "no recipient accepted",
            )
            try:
                c.rset()
            except LabConnectionError:
                pass
            quit_politely()
            return
        a.stage = "data"
        r = c.data()
        if r.code == 354:
            a.stage, a.reply = "dot", None
            r = c.send_message(data)
            stage = "dot"
        else:
            stage = "data"
        if r.code == 421:
            finish("next MX", stage, r, f"421 at {stage.upper()}: try the next MX")
            return
        self._settle(d, accepted, r, a.host, at, a.round)
        if r.code is not None and 200 <= r.code < 300:
            finish(
                "delivered",
                stage,
                r,
                f"{a.host} accepted the message for {len(accepted)} recipient(s)",
            )
        else:
            finish(
                "refused" if (r.code or 0) >= 500 else "deferred",
                stage,
                r,
                f"the message got {r.code}",
            )
        quit_politely()

    @staticmethod
    def _settle(d: Delivery, rcpts, reply: Reply, host: str, at: float, round_no: int) -> None:
        """Record the reply that decides these recipients (2xx delivered, 4xx deferred, 5xx failed)."""
        code = reply.code or 400
        for rcpt in rcpts:
            res = d.results[rcpt]
            res.action = "delivered" if code < 400 else ("deferred" if code < 500 else "failed")
            res.status = status_of(reply) if code >= 400 else (reply.enhanced or "2.0.0")
            res.host, res.reply, res.diagnostic, res.at = host, reply, diagnostic(reply), at
            res.rounds = round_no
