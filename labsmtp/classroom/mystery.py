"""Mystery servers for the troubleshooting lesson: a hidden fault or policy to diagnose.

``mystery(n)`` starts a lab server with something wrong (a fault rule, a
policy, a DNS zone) and a task that fails against it.  The learner runs
dialogues, reads the replies and names the cause from ``DIAGNOSES``;
``m.solve(name)`` says whether that is right and why.  Each scenario is a
situation from the article the course grew from (a 550 after HELO, NAT, a
server moved without updating its name, a firewall on port 25) or a common
cause of the same symptoms (greylisting, relaying, a size limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import LabValueError
from ..lab.dnszone import DEFAULT_ZONE, use_zone
from ..lab.labserver import LabServer

# What can be wrong; each mystery has exactly one of these as its cause.
DIAGNOSES = {
    "client-address": "the server refuses this client's IP address by local policy, whatever the HELO name",
    "client-fcrdns": "the client's address has no forward-confirmed reverse DNS, and local policy refuses that",
    "helo-syntax": "the HELO name is not a valid or fully-qualified name",
    "helo-not-in-dns": "the HELO name has no address record in DNS (reject_unknown_helo_hostname)",
    "nothing-listening": "the connection is refused or times out: no server, or a firewall in the way",
    "server-hangs-up": "the connection opens, then the server side closes it before any greeting",
    "greylisting": "a first attempt is deferred with 4xx on purpose; a retry later succeeds",
    "user-unknown": "the recipient's mailbox does not exist (550 5.1.1)",
    "relay-denied": "the client is not allowed to relay to a foreign domain",
    "size-limit": "the message is larger than the server accepts",
}


@dataclass
class Mystery:
    """A lab server with a hidden problem, the task that fails against it, and its answer."""

    number: int
    title: str
    task: str
    server: LabServer
    _answer: str = field(repr=False)
    _why: str = field(repr=False)
    source: str = "127.0.0.1"  # the address the task is run from
    helo: str = "client.example.org"
    recipient: str = "postmaster@lab.example.org"
    size: int = 200  # bytes of message text the task sends

    def client(self, source: str | None = None):
        """A step client for the mystery server (from the task's address unless told)."""
        return self.server.client(source=source or self.source)

    def attempt(self, *, source: str | None = None, helo: str | None = None, timeout: float = 3.0):
        """Run the task once, as a mail program would; returns the client (it shows the dialogue)."""
        from ..errors import LabConnectionError
        from ..lab.client import StepClient, make_message

        # A mystery server stopped by stop_all() starts again and says so: a refused
        # connection would look exactly like mystery 4 (nothing answering).
        self.server.ensure_running()
        c = StepClient(
            self.server.host, self.server.port, source=source or self.source, timeout=timeout
        )
        c._lab = self.server
        try:
            c.connect()
            steps = [
                lambda: c.ehlo(helo or self.helo),
                lambda: c.mail("sender@example.org", size=self.size),
                lambda: c.rcpt(self.recipient),
                lambda: c.data(
                    make_message(
                        "sender@example.org",
                        self.recipient,
                        "the task",
                        "x" * max(0, self.size - 150),
                    )
                ),
            ]
            for step in steps:
                if not step().ok:
                    break
            c.quit()
        except LabConnectionError as exc:
            print(f"{type(exc).__name__}: {exc}")
        return c

    def solve(self, diagnosis: str) -> bool:
        """Say what you think is wrong (one of DIAGNOSES); prints whether it is right."""
        if diagnosis not in DIAGNOSES:
            print(f"'{diagnosis}' is not one of the diagnoses: {', '.join(DIAGNOSES)}")
            return False
        if diagnosis == self._answer:
            print(f"✓ Right: {DIAGNOSES[diagnosis]}. {self._why}")
            return True
        print(
            f"✗ Not this time: the evidence does not point to '{diagnosis}'. Look at which "
            f"command gets the first 4xx/5xx, and whether it changes with the HELO name, "
            f"the client address or a second attempt."
        )
        return False

    def is_right(self, diagnosis: str) -> bool:
        """True if ``diagnosis`` is this mystery's cause (without printing)."""
        return diagnosis == self._answer

    def stop(self) -> None:
        self.server.stop()

    def __repr__(self) -> str:
        return f"<Mystery {self.number}: {self.title} - task: {self.task}>"


def _server(number: int, persona: str = "postfix", **kw) -> LabServer:
    """The persona's real program as it was recorded, with this mystery's fault on top."""
    return LabServer.as_recorded(
        persona, name=f"mystery-{number}", hostname="mx.lab.example.org", **kw
    ).start()


def _m1() -> Mystery:
    # Exim with a host blocklist in its HELO ACL (Exim's own acl_smtp_helo): a plain
    # "deny" says "550 Administrative prohibition" (Exim's default message), with no
    # enhanced code, and leaves the client without a HELO, as Exim does.
    s = _server(1, persona="exim", acl_smtp_helo="deny hosts = 127.0.0.1\naccept")
    return Mystery(
        1,
        "the 550 after HELO",
        "From 127.0.0.1, deliver a message to postmaster@lab.example.org.",
        s,
        "client-address",
        "The 550 comes at HELO for every name you try from 127.0.0.1, and not at "
        "all from another address: it is about the client, not the name's spelling.",
    )


def _m2() -> Mystery:
    s = _server(2)
    use_zone(s, identity="strict")
    return Mystery(
        2,
        "the branch office",
        "From 127.0.0.5, greet as mail.branch.example and deliver to postmaster@lab.example.org.",
        s,
        "client-fcrdns",
        "450 4.7.25 at RCPT, whatever the HELO name: Postfix's reject_unknown_client_hostname, "
        "a local policy (RFC 5321 §7.9). 127.0.0.5's PTR name, mail.branch.example, resolves "
        "to 127.0.0.50, the office's inside address behind its NAT: the branch published the "
        "wrong A record. The fix is in the branch's DNS (A 127.0.0.5), not in its HELO.",
        source="127.0.0.5",
        helo="mail.branch.example",
    )


def _m3() -> Mystery:
    s = _server(3, smtpd_helo_restrictions="reject_unknown_helo_hostname")
    use_zone(s, DEFAULT_ZONE, identity="off")
    return Mystery(
        3,
        "the server that moved",
        "From 127.0.0.6, greet as newmx.example.org (the new name after a move) "
        "and deliver to postmaster@lab.example.org.",
        s,
        "helo-not-in-dns",
        "450 4.7.1 Helo command rejected: Host not found: the new name was never added to "
        "DNS. Add its A record; do not switch the check off.",
        source="127.0.0.6",
        helo="newmx.example.org",
    )


def _m4() -> Mystery:
    s = _server(4)
    s.faults.add("connect:drop")
    return Mystery(
        4,
        "the silent port",
        "From 127.0.0.1, deliver a message to postmaster@lab.example.org.",
        s,
        "server-hangs-up",
        "The TCP connection opens, then closes without a single byte, not even the 220 "
        "greeting. A firewall would have refused it or let it time out; an accepted "
        "connection that is closed comes from the server side: a host-based access rule "
        "(tcp wrappers), an overloaded or crashed daemon, or a proxy with no server behind it.",
    )


def _m5() -> Mystery:
    s = _server(5)
    s.faults.add("rcpt:greylist=1s")
    return Mystery(
        5,
        "try again later",
        "From 127.0.0.1, deliver a message to postmaster@lab.example.org.",
        s,
        "greylisting",
        "A 4xx at RCPT on the first attempt, with 'Greylisted' in its text, and 250 on a "
        "retry after a short wait: greylisting. The code varies between servers (postgrey "
        "says 450 4.2.0, others 451 4.7.1). A real MTA retries by itself; only a script "
        "that gives up after a 4xx loses the message.",
    )


def _m6() -> Mystery:
    s = _server(6, mynetworks=())
    return Mystery(
        6,
        "the forwarding that stopped",
        "From 127.0.0.1, deliver a message to ada@elsewhere.example.net.",
        s,
        "relay-denied",
        "554 5.7.1 Relay access denied at RCPT: this server accepts mail only for "
        "its own domains, and 127.0.0.1 is no longer in its mynetworks (this Postfix has "
        "reject_unauth_destination; Debian's stock defer_unauth_destination would say "
        "454, and a sender would retry for days before the message bounces).",
        recipient="ada@elsewhere.example.net",
    )


def _m7() -> Mystery:
    s = _server(7, message_size_limit=2000)
    return Mystery(
        7,
        "the report that never arrives",
        "From 127.0.0.1, send the weekly report (a message of 5000 bytes) to "
        "postmaster@lab.example.org.",
        s,
        "size-limit",
        "552 5.3.4 Message size exceeds fixed limit: the EHLO reply says SIZE 2000.",
        size=5000,
    )


_SCENARIOS = {1: _m1, 2: _m2, 3: _m3, 4: _m4, 5: _m5, 6: _m6, 7: _m7}


def mystery(number: int) -> Mystery:
    """Start mystery server ``number`` (1-7); re-running it starts it afresh."""
    if isinstance(number, bool) or number not in _SCENARIOS:
        raise LabValueError(f"there are mysteries 1 to {len(_SCENARIOS)}, not {number!r}")
    return _SCENARIOS[number]()
