"""What an MTA-like delivery reports: each attempt, each recipient's result, the whole.

``LabMta.send`` (mta.py) returns a ``Delivery``: every ``MxAttempt`` (which
host, which reply, when, in simulated time on a ``SimClock``) and one
``RecipientResult`` per recipient (delivered, failed or still deferred, with
the status and diagnostic a DSN reports).  Kept apart from the sender so a
lesson's plots and tables read results without the machinery that made them.
"""

from __future__ import annotations

import datetime
import email.utils
import re
import time
from dataclasses import dataclass, field

from ..errors import LabValueError
from ..protocol.replies import Reply
from ..render import TextReport
from .mx import Route, check_domain

OUTCOMES = {
    "delivered": "250 after the message: the receiving host took responsibility (RFC 5321 §6.1)",
    "refused": "a 5xx: permanent, never retried (§4.2.1); the sender's MTA bounces",
    "deferred": "a 4xx: temporary; tried again later, from the best MX (§4.5.4.1)",
    "next MX": "this host cannot take mail now (421 or other greeting, EHLO failed): next MX",
    "no connection": "nothing answered at that address and port: next MX (§5.1)",
    "not tried": "no host to try: null MX, no such domain, or no usable MX",
}


class SimClock:
    """Simulated time in seconds: advances only when someone waits (``advance``)."""

    def __init__(self, start: float | None = None):
        self.epoch = time.time() if start is None else float(start)  # real time of t = 0
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move simulated time forward (a retry wait); returns the new time."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise LabValueError(f"time moves forward only: seconds must be >= 0, not {seconds!r}")
        self.now += float(seconds)
        return self.now

    def date(self, t: float | None = None) -> str:
        """The RFC 5322 date of simulated time ``t`` (default: now)."""
        when = self.epoch + (self.now if t is None else t)
        return email.utils.format_datetime(
            datetime.datetime.fromtimestamp(int(when), tz=datetime.timezone.utc)
        )

    def __repr__(self) -> str:
        return f"<SimClock t={self.now:g} s>"


@dataclass(repr=False)
class MxAttempt:
    """One try at one MX host: when, where, how far the dialogue got, what it answered."""

    round: int  # 1: first try; 2: first retry; ...
    at: float  # simulated seconds since the message was handed to the MTA
    domain: str
    host: str
    address: str
    port: int | None
    preference: int | None
    stage: str  # where it ended: connect, greeting, ehlo, mail, rcpt, data, dot, route
    reply: Reply | None  # the reply that decided it (None: no reply)
    outcome: str  # a key of OUTCOMES
    note: str
    helo: str = ""
    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    wire: str = ""  # the whole dialogue, C: and S: lines
    latency: float = 0.0  # real seconds the dialogue took

    @property
    def code(self) -> int | None:
        """The code of the deciding reply (None: no reply at all)."""
        return self.reply.code if self.reply is not None else None

    def __str__(self) -> str:
        reply = " | ".join(self.reply.lines) if self.reply is not None else self.note
        where = f"{self.host} [{self.address}]" if self.address else self.host
        head = f"round {self.round} at {minutes(self.at)}: {where} -> {self.outcome}"
        if len(self.rcpt_replies) > 1 and self.stage in ("rcpt", "data", "dot"):
            each = [f"\n      RCPT <{r}>: {x}" for r, x in self.rcpt_replies.items()]
            end = f"\n      {self.stage}: {reply}" if self.stage != "rcpt" else ""
            return head + "".join(each) + end
        return f"{head} at {self.stage}: {reply}"

    __repr__ = __str__


@dataclass
class RecipientResult:
    """What became of one recipient: delivered, failed or (still) deferred, and why."""

    recipient: str
    action: str  # "delivered", "failed", "deferred"
    status: str  # RFC 3463 code: 2.0.0, 5.1.1, 4.4.1, ...
    host: str = ""  # the MX that gave the deciding reply ("" if none)
    reply: Reply | None = None
    diagnostic: str = ""  # for the DSN: "smtp; <reply>" or "X-labsmtp; <text>"
    at: float = 0.0  # simulated seconds since the message was handed over
    rounds: int = 0
    orcpt: str = ""


@dataclass(repr=False)
class Delivery(TextReport):
    """The fate of one message: every attempt, every recipient's result, and any bounce."""

    sender: str
    recipients: tuple[str, ...]
    helo: str
    mta: str  # the sending MTA's host name (Reporting-MTA of its bounces)
    message_id: str
    started: float  # simulated time when the MTA got the message
    routes: dict[str, Route] = field(default_factory=dict)
    attempts: list[MxAttempt] = field(default_factory=list)
    results: dict[str, RecipientResult] = field(default_factory=dict)
    bounces: list[Delivery] = field(default_factory=list)  # the DSNs this MTA sent about it
    notes: list[str] = field(default_factory=list)
    finished: float = 0.0
    content: bytes = b""  # the message as sent (Message-ID and Date added if missing)

    @property
    def delivered(self) -> list[str]:
        """Recipients whose MX said 250 after the message."""
        return [r for r, v in self.results.items() if v.action == "delivered"]

    @property
    def failed(self) -> list[str]:
        """Recipients given up on (5xx, no route, or retries used up)."""
        return [r for r, v in self.results.items() if v.action == "failed"]

    @property
    def bounce(self) -> Delivery | None:
        """The (first) bounce this MTA sent about the message, or None."""
        return self.bounces[0] if self.bounces else None

    @property
    def hosts_tried(self) -> list[str]:
        """The MX hosts contacted, in order (one entry per attempt)."""
        return [a.host for a in self.attempts if a.outcome != "not tried"]

    @property
    def is_bounce(self) -> bool:
        """True if this message was itself a notification (null reverse-path)."""
        return self.sender == ""

    def summary(self) -> str:
        """A few lines a learner can read: each attempt, then each recipient's fate."""
        env = f"<{self.sender}>" if self.sender else "<> (a bounce)"
        lines = [f"{self.message_id} from {env} via {self.mta} (EHLO {self.helo})"]
        for a in self.attempts:
            lines.append("  " + str(a))
        lines.append("recipients:")
        for r in self.results.values():
            where = f" by {r.host}" if r.host else ""
            lines.append(
                f"  {r.recipient:<28} {r.action:<9} {r.status:<7}{where} after {r.rounds} "
                f"round(s), at {minutes(r.at)}"
            )
        for n in self.notes:
            lines.append(f"note: {n}")
        for b in self.bounces:
            verdict = "delivered" if b.delivered else "NOT delivered"
            lines.append(f"bounce {b.message_id} to <{b.recipients[0]}>: {verdict}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        sender = f"<{self.sender}>" if self.sender else "<>"
        return (
            f"<Delivery {self.message_id} from {sender}: {len(self.delivered)} delivered, "
            f"{len(self.failed)} failed, {len(self.attempts)} attempts, {len(self.bounces)} bounces>"
        )


def minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:.4g} min"
    return f"{seconds / 3600:.4g} h"


def status_of(reply: Reply) -> str:
    """The RFC 3463 status a reply stands for: its enhanced code, else class.0.0."""
    if reply.enhanced:
        return reply.enhanced
    return f"{reply.code // 100}.0.0" if reply.code else "4.0.0"


def diagnostic(reply: Reply) -> str:
    return "smtp; " + " ".join(ln.strip() for ln in reply.lines)


_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>]+$")


def check_address(addr, what: str = "recipient") -> str:
    """``addr`` if it is local@domain with a fully-qualified domain; else a LabValueError."""
    if not isinstance(addr, str):
        raise LabValueError(
            f"the {what} must be an address such as 'bob@shop.example', not {addr!r}"
        )
    a = addr.strip()
    if a.startswith("<") and a.endswith(">"):
        a = a[1:-1]
    if not a:
        raise LabValueError(
            f"the {what} is empty; give an address such as 'bob@shop.example'"
            + (
                " (only a sender may be empty: '' is the null reverse-path <>)"
                if what == "recipient"
                else ""
            )
        )
    if "@" not in a:
        raise LabValueError(
            f"the {what} {addr!r} has no @: an address is local-part@domain, "
            f"e.g. 'bob@shop.example'"
        )
    if not _ADDRESS.match(a):
        raise LabValueError(
            f"the {what} {addr!r} is not a plain address local-part@domain (one @, no spaces, "
            f"no angle brackets inside), e.g. 'bob@shop.example'"
        )
    local, _, domain = a.rpartition("@")
    check_domain(domain, what=f"domain of the {what} {addr!r}")
    if len(local) > 64:
        raise LabValueError(
            f"the local part of {addr!r} is longer than 64 octets (RFC 5321 §4.5.3.1.1)"
        )
    return f"{local}@{domain.rstrip('.').lower()}"


def xtext(value: str) -> str:
    """RFC 3461 §4: xtext, '+' and '=' and anything outside ! to ~ as +HH."""
    return "".join(
        c if 33 <= ord(c) <= 126 and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in value
    )


def has_header(message: bytes, name: bytes) -> bool:
    head = message.split(b"\r\n\r\n", 1)[0]
    return any(line.lower().startswith(name.lower() + b":") for line in head.split(b"\r\n"))


def port_map(ports: dict) -> dict[str, tuple[str, int]]:
    """Normalise {address: port} or {host: (address, port)} to {address: (connect to, port)}."""
    out: dict[str, tuple[str, int]] = {}
    for key, value in ports.items():
        if isinstance(value, int) and not isinstance(value, bool):
            out[str(key)] = (str(key), value)
        elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
            # (address, port) or (address in DNS, address really bound, port)
            dns_addr, real, port = (value[0], value[0], value[1]) if len(value) == 2 else value
            out[str(dns_addr)] = (str(real), int(port))
        else:
            raise LabValueError(
                f"ports maps a host's address to its port, e.g. {{'127.0.0.11': 2525}}; "
                f"got {key!r}: {value!r}"
            )
    return out


def check_notify(notify) -> set[str]:
    """The NOTIFY words a learner asked for (RFC 3461 §4.1), checked."""
    if notify is None:
        return {"FAILURE"}  # RFC 3461 §4.1: no NOTIFY means failures are reported
    words = {notify.upper()} if isinstance(notify, str) else {str(n).upper() for n in notify}
    words = {w.strip() for part in words for w in part.split(",")}
    if not words <= {"NEVER", "SUCCESS", "FAILURE", "DELAY"} or (
        "NEVER" in words and len(words) > 1
    ):
        raise LabValueError(
            f"notify must be 'NEVER' or some of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1), "
            f"not {notify!r}"
        )
    return words
