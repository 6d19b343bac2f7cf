"""Fault actions: what a fault rule does, and the context it does it in.

Each ``Action`` reads and writes its own part of the spec grammar
(``parse``, ``spec``, ``grammar``) and acts through a ``FaultContext``: the
stage, the command's argument, the session's id, client and envelope, the
persona, and a ``Link`` (the connection, as ``lab/server.py`` offers it) to
reply, close, wait or slow down with.  An action never touches the server's
insides, and every reply it makes is worded by the persona.  The rules that
decide *when* an action runs are in ``faults.py``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from ..errors import LabValueError
from ..protocol.personas import Persona
from ..protocol.replies import CODES, Reply, parse_reply
from ..protocol.states import Stage

if TYPE_CHECKING:
    from .faults import Fault, FaultEngine

# Where a fault can act, after Postfix smtp-sink's command lists.
FAULT_STAGES: tuple[Stage, ...] = (
    Stage.CONNECT,
    Stage.HELO,
    Stage.MAIL,
    Stage.RCPT,
    Stage.DATA,
    Stage.DOT,
    Stage.RSET,
    Stage.NOOP,
    Stage.VRFY,
    Stage.QUIT,
)

# Sensible enhanced code and text per reply code (RFC 3463; smtp-sink uses 4.3.0 / 5.3.0).
# The persona decides how they are said (fault_reply, fault_reply_host).
DEFAULT_REPLIES: dict[int, tuple[str, str]] = {
    250: ("2.0.0", "OK"),
    421: ("4.3.2", "Service not available, closing transmission channel"),
    450: ("4.2.0", "Mailbox unavailable, try again later"),
    451: ("4.3.0", "Requested action aborted: local error in processing"),
    452: ("4.5.3", "Insufficient system storage or too many recipients"),
    454: ("4.7.0", "Temporary authentication or TLS failure"),
    455: ("4.5.4", "Server unable to accommodate parameters"),
    500: ("5.5.2", "Syntax error, command unrecognized"),
    501: ("5.5.4", "Syntax error in parameters or arguments"),
    502: ("5.5.1", "Command not implemented"),
    503: ("5.5.1", "Bad sequence of commands"),
    504: ("5.5.4", "Command parameter not implemented"),
    521: ("5.3.2", "Host does not accept mail"),
    550: ("5.1.1", "Requested action not taken: mailbox unavailable"),
    551: ("5.1.6", "User not local"),
    552: ("5.3.4", "Message size exceeds fixed limit"),
    553: ("5.1.3", "Requested action not taken: mailbox name not allowed"),
    554: ("5.7.1", "Transaction failed: rejected by policy"),
    556: ("5.1.10", "Domain does not accept mail"),
}

# Where the default above names the recipient (RFC 3463 X.1.1 "bad destination mailbox",
# X.1.3 "bad destination mailbox address syntax"), a fault at another point says what
# that point refuses: the client's greeting at HELO/EHLO (X.7.1, policy), the sender at
# MAIL (X.1.8, X.1.7), the message itself later (X.7.1).
STAGE_REPLIES: dict[tuple[int, Stage], tuple[str, str]] = {
    (550, Stage.HELO): ("5.7.1", "Requested action not taken: greeting refused by policy"),
    (550, Stage.MAIL): ("5.1.8", "Requested action not taken: sender address rejected"),
    (553, Stage.MAIL): ("5.1.7", "Requested action not taken: sender address not allowed"),
    (550, Stage.DATA): ("5.7.1", "Requested action not taken: message refused"),
    (550, Stage.DOT): ("5.7.1", "Requested action not taken: message refused"),
    (550, Stage.BDAT): ("5.7.1", "Requested action not taken: message refused"),
}


# --- what a connection offers the rules ----------------------------------------


class Link(Protocol):
    """One connection, as fault actions may touch it (``lab/server.py`` implements it)."""

    def render(self, key: str, **fields: object) -> list[str]:
        """Reply ``key`` in the persona's words, with the session's fields."""

    def send(self, lines: Sequence[str], command: str, injected: str | None) -> Reply:
        """Send a reply instead of the normal one; the session moves as its code says."""

    def send_raw(self, raw: bytes, reply: Reply, injected: str | None, answers: bool) -> None:
        """Send bytes that are not a well-formed reply (``answers``: they end the command)."""

    def hang_up(self) -> None:
        """Close the connection (no reply)."""

    def slow_down(self, bytes_per_second: int) -> None:
        """From now on, the server's bytes leave at this rate."""

    def hide_keywords(self, keywords: frozenset[str]) -> None:
        """Leave these keywords out of EHLO replies."""

    async def sleep(self, seconds: float) -> None:
        """Wait (the connection's other work goes on)."""

    async def read_a_little(self, timeout: float) -> None:
        """Wait until the client has sent something more, or ``timeout`` seconds."""

    def note(self, text: str) -> None:
        """An event line in the transcript."""


Normal = Callable[[], Awaitable["Reply | None"]]


@dataclass
class SessionFaults:
    """What the engine keeps per connection: its ordinal, its generator, its stage counts."""

    ordinal: int
    rng: random.Random
    counts: dict[Stage, int] = field(default_factory=dict)


@dataclass
class FaultContext:
    """One stage point of one session, as the rules see it."""

    engine: FaultEngine
    link: Link
    faults: SessionFaults
    stage: Stage
    count: int  # this stage's occurrence in the session (1 = the first)
    argument: str
    session_id: int
    client_ip: str
    persona: Persona
    sender: str  # MAIL FROM of the open transaction ("" if none)
    recipients: tuple[str, ...]  # recipients accepted so far
    rule: Fault | None = None

    @property
    def command(self) -> str:
        """The command this stage's reply answers ("CONNECT", "HELO", ".")."""
        return self.stage.answers

    @property
    def addresses(self) -> list[str]:
        """The addresses this stage is about (address matchers test these)."""
        arg = self.argument
        if self.stage in (Stage.MAIL, Stage.RCPT):
            m = re.search(r"<([^>]*)>", arg) or re.search(r":\s*(\S+)", arg)
            return [m.group(1)] if m else []
        if self.stage is Stage.VRFY:
            return [arg.strip("<> ")]
        if self.stage is Stage.HELO:
            return [arg.strip()]
        return [a for a in [self.sender, *self.recipients] if a]

    @property
    def rule_name(self) -> str:
        return self.rule.name if self.rule is not None else "fault"

    def render(self, key: str, **fields: object) -> list[str]:
        return self.link.render(key, **fields)

    async def reply(self, lines: Sequence[str], *, injected: bool = True) -> Reply:
        """Answer with ``lines`` instead of the normal reply (marked as injected)."""
        return self.link.send(lines, self.command, self.rule_name if injected else None)

    def send_raw(self, raw: bytes, *, answers: bool = True) -> Reply:
        reply = parse_reply(raw, command=self.command)
        self.link.send_raw(raw, reply, self.rule_name, answers)
        return reply

    def note(self, text: str) -> None:
        self.link.note(f"fault {self.rule_name}: {text}")

    def hang_up(self) -> None:
        self.link.hang_up()

    def slow_down(self, bytes_per_second: int) -> None:
        self.link.slow_down(bytes_per_second)

    def hide_keywords(self, keywords: frozenset[str]) -> None:
        self.link.hide_keywords(keywords)

    async def delay(self, seconds: float) -> None:
        # A trial run with simulated delays counts the wait instead of waiting (as it
        # already does for retry waits): its client adds the delay to its clock.
        if not self.engine.simulate_delay(self.client_ip, seconds):
            await self.link.sleep(seconds)

    async def read_a_little(self, timeout: float) -> None:
        await self.link.read_a_little(timeout)


# --- actions: what a fault does ----------------------------------------------------


class Action:
    """What a fault does: reads and writes its own spec text, acts on a context."""

    stages: ClassVar[tuple[Stage, ...]] = FAULT_STAGES  # where the action makes sense
    grammar: ClassVar[str] = ""  # its lines in SPEC_GRAMMAR
    example: ClassVar[str] = ""  # a spec that uses it

    @classmethod
    def parse(cls, what: str) -> Action | None:
        """This action from its spec text, None if the text is another action's."""
        raise NotImplementedError

    def spec(self) -> str:
        """The spec text that parses back into this action."""
        raise NotImplementedError

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        raise NotImplementedError


_DURATION = re.compile(r"^(\d+(?:\.\d+)?(?:e[-+]?\d+)?)(ms|s)?$")


def _duration(text: str, default_unit: str) -> float:
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise LabValueError(f"{text!r} is not a duration such as 200ms or 2s")
    unit = m.group(2) or default_unit
    return float(m.group(1)) / (1000 if unit == "ms" else 1)


def _write_duration(seconds: float, unit: str) -> str:
    """The shortest text that ``_duration`` reads back as exactly ``seconds``."""
    ms = round(seconds * 1000)
    if unit == "ms" and ms / 1000 == seconds:
        return f"{ms}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds!r}s"


def _check_seconds(name: str, seconds: object) -> None:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds < 86400
    ):
        raise LabValueError(f"{name} must be a number of seconds from 0 to a day, not {seconds!r}")


@dataclass(frozen=True)
class ReplyWith(Action):
    """Answer with this code (and text) instead of the normal reply; 421 also hangs up."""

    code: int
    text: str | None = None
    grammar = (
        "CODE [TEXT]      reply CODE (200-599); TEXT verbatim, else a default text and\n"
        "                 enhanced code per code, e.g. 451, or 550 5.1.1 No such user\n"
        "421              reply 421 and hang up"
    )
    example = "rcpt:451:0.3"

    def __post_init__(self) -> None:
        if isinstance(self.code, bool) or not isinstance(self.code, int):
            raise LabValueError(f"a reply code is a whole number, not {self.code!r}")
        if not 200 <= self.code <= 599:
            raise LabValueError(f"reply code {self.code} is outside 200-599")
        if self.text is not None and (not isinstance(self.text, str) or not self.text.strip()):
            raise LabValueError(f"a reply's text must be words, not {self.text!r}")

    @classmethod
    def parse(cls, what: str) -> ReplyWith | None:
        m = re.match(r"^(\d{3})(?:[ =](.+))?$", what)
        if not m:
            return None
        return cls(int(m.group(1)), m.group(2).strip() if m.group(2) else None)

    def spec(self) -> str:
        return f"{self.code}" + (f" {self.text}" if self.text else "")

    def lines(self, ctx: FaultContext) -> list[str]:
        if self.text:  # the learner's own words, verbatim (with or without an enhanced code)
            return [f"{self.code} {self.text}"]
        enhanced, text = STAGE_REPLIES.get(
            (self.code, ctx.stage),
            DEFAULT_REPLIES.get(
                self.code,
                (f"{self.code // 100}.0.0", CODES.get(self.code, "Fault injected by the lab")),
            ),
        )
        greeting = ctx.stage is Stage.CONNECT
        # No enhanced codes before EHLO (RFC 2034); §4.2: these replies name the host.
        status = f"{self.code}" if greeting else f"{self.code} {enhanced}"
        host = self.code == 421 or (greeting and self.code in (220, 554))
        key = "fault_reply_host" if host else "fault_reply"
        return ctx.render(key, status=status, code=self.code, enhanced=enhanced, text=text)

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        return await ctx.reply(self.lines(ctx))  # a 421 closes: the state table says so


@dataclass(frozen=True)
class HangUp(Action):
    """Close the connection without a reply (smtp-sink -q)."""

    grammar = "drop             hang up without a reply"
    example = "data:drop"

    @classmethod
    def parse(cls, what: str) -> HangUp | None:
        return cls() if what.lower() in ("drop", "hangup", "close") else None

    def spec(self) -> str:
        return "drop"

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        ctx.note("hung up without a reply")
        ctx.hang_up()
        return None


@dataclass(frozen=True)
class Delay(Action):
    """Wait, then behave normally: a tarpit (smtp-sink -w/-W)."""

    seconds: float
    grammar = "delay=200ms      wait before the normal reply (ms or s), a tarpit"
    example = "helo:delay=200ms"

    def __post_init__(self) -> None:
        _check_seconds("a delay", self.seconds)

    @classmethod
    def parse(cls, what: str) -> Delay | None:
        if not what.lower().startswith("delay="):
            return None
        return cls(_duration(what[6:], "ms"))

    def spec(self) -> str:
        return f"delay={_write_duration(self.seconds, 'ms')}"

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        await ctx.delay(self.seconds)
        return await normal()


@dataclass(frozen=True)
class SlowLink(Action):
    """From this stage on, the server's bytes trickle out at this rate (MailHog Jim)."""

    bytes_per_second: int
    grammar = "slow=300         send replies at 300 bytes/s from here on"
    example = "helo:slow=300"

    def __post_init__(self) -> None:
        rate = self.bytes_per_second
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise LabValueError(f"slow= needs bytes per second (a whole number), not {rate!r}")

    @classmethod
    def parse(cls, what: str) -> SlowLink | None:
        if not what.lower().startswith("slow="):
            return None
        rate = what[5:].lower().removesuffix("bps").removesuffix("b/s")
        if not rate.isdigit():
            raise LabValueError(f"slow= needs bytes per second (a whole number), not {what[5:]!r}")
        return cls(int(rate))

    def spec(self) -> str:
        return f"slow={self.bytes_per_second}"

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        ctx.slow_down(self.bytes_per_second)
        return await normal()


@dataclass(frozen=True)
class CutOff(Action):
    """After 354, read a little of the message, then close (smtp-sink -A, roughly)."""

    stages = (Stage.DATA,)
    grammar = "cut              data only: send 354, then cut the client off mid-message"
    example = "data:cut"

    @classmethod
    def parse(cls, what: str) -> CutOff | None:
        return cls() if what.lower() == "cut" else None

    def spec(self) -> str:
        return "cut"

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        await ctx.reply(ctx.render("data_go"), injected=False)  # the table moves to DATA
        await ctx.read_a_little(5.0)
        ctx.note("cut the client off in the middle of DATA")
        ctx.hang_up()
        return None


_MALFORMED = {
    "code": b"2.5 that is not a reply code\r\n",
    "lf": b"250 OK with a bare LF line end\n",
    "noeol": b"250 OK with no line end",
}


@dataclass(frozen=True)
class Malformed(Action):
    """A reply that breaks RFC 5321 §4.2: a bad code, a bare LF, or no line end."""

    kind: str = "code"
    grammar = "malformed[=code|lf|noeol]   a broken reply (bad code, bare LF, no line end)"
    example = "rcpt:malformed"

    def __post_init__(self) -> None:
        if self.kind not in _MALFORMED:
            raise LabValueError(f"malformed= is code, lf or noeol, not {self.kind!r}")

    @classmethod
    def parse(cls, what: str) -> Malformed | None:
        low = what.lower()
        if low != "malformed" and not low.startswith("malformed="):
            return None
        return cls(low.partition("=")[2] or "code")

    def spec(self) -> str:
        return f"malformed={self.kind}"

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        reply = ctx.send_raw(_MALFORMED[self.kind], answers=self.kind != "noeol")
        return None if self.kind == "noeol" else reply


@dataclass(frozen=True)
class NoExtensions(Action):
    """Leave these keywords out of the EHLO reply (smtp-sink's -P, -8, -E switches)."""

    keywords: frozenset[str]
    stages = (Stage.HELO,)
    grammar = "noext=PIPELINING+SIZE       helo only: leave these EHLO keywords out"
    example = "ehlo:noext=PIPELINING+SIZE"

    def __post_init__(self) -> None:
        words = self.keywords
        if not isinstance(words, frozenset) or not words:
            raise LabValueError("noext= needs keywords such as PIPELINING+SIZE")
        if not all(isinstance(w, str) and re.fullmatch(r"[A-Z0-9-]+", w) for w in words):
            raise LabValueError(f"EHLO keywords are upper-case words, not {sorted(words)!r}")

    @classmethod
    def parse(cls, what: str) -> NoExtensions | None:
        if not what.lower().startswith("noext="):
            return None
        return cls(frozenset(w.upper() for w in re.split(r"[+,/]", what[6:]) if w))

    def spec(self) -> str:
        return "noext=" + "+".join(sorted(self.keywords))

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        ctx.hide_keywords(self.keywords)
        return await normal()


@dataclass(frozen=True)
class Greylist(Action):
    """451 for a new client+sender+recipient; accept a retry after ``seconds``."""

    seconds: float = 300.0
    stages = (Stage.RCPT,)
    grammar = (
        "greylist[=300s]  rcpt only: 451 4.7.1 until the same client+sender+recipient\n"
        "                 retries after the delay (default 300 s)"
    )
    example = "rcpt:greylist=60s"

    def __post_init__(self) -> None:
        _check_seconds("a greylisting delay", self.seconds)

    @classmethod
    def parse(cls, what: str) -> Greylist | None:
        low = what.lower()
        if low != "greylist" and not low.startswith("greylist="):
            return None
        return cls(_duration(what[9:], "s") if "=" in low else 300.0)

    def spec(self) -> str:
        return f"greylist={_write_duration(self.seconds, 's')}"

    async def apply(self, ctx: FaultContext, normal: Normal) -> Reply | None:
        recipient = ctx.addresses[0] if ctx.addresses else ""
        now = ctx.engine.now(ctx.sender)
        first = ctx.engine.first_seen((ctx.client_ip, ctx.sender, recipient.lower()), now)
        if now - first >= self.seconds:
            return await normal()
        wait = int(self.seconds - (now - first) + 0.999)
        return await ctx.reply(ctx.render("greylisted", addr=recipient, wait=wait))


ACTIONS: tuple[type[Action], ...] = (
    ReplyWith,
    HangUp,
    Delay,
    SlowLink,
    CutOff,
    Malformed,
    NoExtensions,
    Greylist,
)
