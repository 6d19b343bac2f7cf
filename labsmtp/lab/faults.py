"""Faults: small rules that make the lab server misbehave on purpose.

Theory of operation.  A ``Fault`` is a rule with three parts: *where* (a
stage of the dialogue), *what* (an action) and *when* (matchers: a
probability, an address pattern, the Nth occurrence, a range of sessions).
The server asks its ``FaultEngine`` once at each stage point, handing over
the normal behaviour as a coroutine function; the engine either runs it
unchanged, wraps it (a delay, a slow link, fewer EHLO keywords) or replaces
it (an injected reply, a hang-up).  So a fault wraps the normal behaviour
as aiosmtpd's own tests do with swapped-in handlers; nothing else in the
server knows about faults.

Reproducibility: every random choice comes from a per-session generator
seeded with ``(engine seed, client address, that client's session number)``,
so the same seed, the same rules and the same dialogues give the same
transcripts, run after run, even when clients on different addresses
overlap in time.

The short spec grammar (``parse_fault``) is shared by Python, ``serve
--fault`` and ``experiment --fault``; ``SPEC_GRAMMAR`` documents it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import re
import threading
import time
from dataclasses import dataclass, field

from ..errors import LabValueError
from ..protocol.replies import CODES, Reply
from ..protocol.states import Command, State
from .transcript import SERVER, Line

# Where a fault can act, after Postfix smtp-sink's command lists.
STAGES = ("connect", "helo", "mail", "rcpt", "data", "dot", "rset", "noop", "vrfy", "quit")
_STAGE_ALIASES = {
    "greeting": "connect",  # the connection is accepted and the 220 banner is due
    "banner": "connect",
    "ehlo": "helo",  # HELO and EHLO are one stage, as the state table treats them
    ".": "dot",
    "eod": "dot",
    "end": "dot",  # the end of message text, answered after the final dot
}
_STAGE_OF_COMMAND = {
    Command.HELO: "helo",
    Command.EHLO: "helo",
    Command.MAIL: "mail",
    Command.RCPT: "rcpt",
    Command.DATA: "data",
    Command.END_OF_DATA: "dot",
    Command.RSET: "rset",
    Command.NOOP: "noop",
    Command.VRFY: "vrfy",
    Command.QUIT: "quit",
}
# The command each stage's reply answers (for the transcript and legality).
_COMMAND_OF_STAGE = {
    "connect": "CONNECT",
    "helo": "HELO",
    "mail": "MAIL",
    "rcpt": "RCPT",
    "data": "DATA",
    "dot": ".",
    "rset": "RSET",
    "noop": "NOOP",
    "vrfy": "VRFY",
    "quit": "QUIT",
}

# Sensible enhanced code and text per reply code (RFC 3463; smtp-sink uses 4.3.0 / 5.3.0).
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

SPEC_GRAMMAR = """\
fault spec:  STAGE[#N]:ACTION[:WHEN]...
  STAGE   connect (or greeting), helo (or ehlo), mail, rcpt, data, dot (end of data),
          rset, noop, vrfy, quit;  #N = only the Nth such command of a session
  ACTION  CODE [TEXT]      reply CODE (200-599); TEXT verbatim, else a default text and
                           enhanced code per code, e.g. 451, or 550 5.1.1 No such user
          421              reply 421 and hang up
          drop             hang up without a reply
          delay=200ms      wait before the normal reply (ms or s), a tarpit
          slow=300         send replies at 300 bytes/s from here on
          cut              data only: send 354, then cut the client off mid-message
          malformed[=code|lf|noeol]   a broken reply (bad code, bare LF, no line end)
          noext=PIPELINING+SIZE       helo only: leave these EHLO keywords out
          greylist[=300s]  rcpt only: 451 4.7.1 until the same client+sender+recipient
                           retries after the delay (default 300 s)
  WHEN    0.3              with probability 0.3 (from the seed)
          addr=PATTERN     only for matching addresses (exact or *?[] pattern)
          sessions=1-3     only in sessions 1 to 3 after the rule was added (4- : from 4 on)
          client=PATTERN   only for clients whose IP matches (127.0.0.2, 127.0.0.*)
examples: rcpt:451:0.3  data:drop  helo:delay=200ms  mail:421  rcpt#2:452
          rcpt:550:addr=*@spam.example  rcpt:451:sessions=1-3  rcpt:greylist=60s"""


def _grammar_error(spec: str, why: str) -> LabValueError:
    return LabValueError(f"bad fault spec {spec!r}: {why}\n{SPEC_GRAMMAR}")


# --- actions: what a fault does -------------------------------------------


class Action:
    """What a fault does; ``apply`` gets the stage context and the normal behaviour."""

    stages: tuple[str, ...] = STAGES  # where the action makes sense

    async def apply(self, ctx: _Context, normal):  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class ReplyWith(Action):
    """Answer with this code (and text) instead of the normal reply; 421 also hangs up."""

    code: int
    text: str | None = None

    def lines(self, ctx: _Context) -> list[str]:
        if self.text:  # the learner's own words, verbatim (with or without an enhanced code)
            return [f"{self.code} {self.text}"]
        enhanced, text = DEFAULT_REPLIES.get(
            self.code,
            (f"{self.code // 100}.0.0", CODES.get(self.code, "Fault injected by the lab")),
        )
        if self.code == 421 or (ctx.stage == "connect" and self.code in (220, 554)):
            text = f"{ctx.proto.hostname} {text}"  # §4.2: these replies name the host
        if ctx.stage == "connect":
            return [f"{self.code} {text}"]  # no enhanced codes before EHLO (RFC 2034)
        return [f"{self.code} {enhanced} {text}"]

    async def apply(self, ctx, normal):
        reply = await ctx.write(self.lines(ctx))
        if self.code == 421:
            ctx.proto._close()  # §3.8: 421 closes the transmission channel
        return reply


@dataclass(frozen=True)
class HangUp(Action):
    """Close the connection without a reply (smtp-sink -q)."""

    async def apply(self, ctx, normal):
        ctx.event("hung up without a reply")
        ctx.proto._close()
        return None


@dataclass(frozen=True)
class Delay(Action):
    """Wait, then behave normally: a tarpit (smtp-sink -w/-W)."""

    seconds: float

    async def apply(self, ctx, normal):
        await asyncio.sleep(self.seconds)
        return await normal()


@dataclass(frozen=True)
class SlowLink(Action):
    """From this stage on, the server's bytes trickle out at this rate (MailHog Jim)."""

    bytes_per_second: int

    async def apply(self, ctx, normal):
        ctx.state.slow = self.bytes_per_second
        return await normal()


@dataclass(frozen=True)
class CutOff(Action):
    """After 354, read a little of the message, then close (smtp-sink -A, roughly)."""

    stages = ("data",)

    async def apply(self, ctx, normal):
        p = ctx.proto
        await ctx.write(p.persona.render("data_go", p._fields()), injected=False)
        p._set_state(State.DATA)
        try:
            await asyncio.wait_for(p._reader.readuntil(b"\n"), 5.0)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        ctx.event("cut the client off in the middle of DATA")
        p._close()
        return None


@dataclass(frozen=True)
class Malformed(Action):
    """A reply that breaks RFC 5321 §4.2: a bad code, a bare LF, or no line end."""

    kind: str = "code"

    async def apply(self, ctx, normal):
        raw = {
            "code": b"2.5 that is not a reply code\r\n",
            "lf": b"250 OK with a bare LF line end\n",
            "noeol": b"250 OK with no line end",
        }[self.kind]
        ctx.write_raw(raw)
        return None if self.kind == "noeol" else _parse_loose(raw, ctx.command)


@dataclass(frozen=True)
class NoExtensions(Action):
    """Leave these keywords out of the EHLO reply (smtp-sink's -P, -8, -E switches)."""

    keywords: frozenset[str]
    stages = ("helo",)

    async def apply(self, ctx, normal):
        ctx.state.hidden_keywords |= self.keywords
        return await normal()


@dataclass(frozen=True)
class Greylist(Action):
    """451 4.7.1 for a new client+sender+recipient; accept a retry after ``seconds``."""

    seconds: float = 300.0
    stages = ("rcpt",)

    async def apply(self, ctx, normal):
        recipient = ctx.addresses[0] if ctx.addresses else ""
        key = (ctx.client_ip, ctx.proto.envelope.mail_from or "", recipient.lower())
        now = ctx.engine.now(key[1])
        first = ctx.engine._greylist.setdefault(key, now)
        if now - first >= self.seconds:
            return await normal()
        wait = int(self.seconds - (now - first) + 0.999)
        return await ctx.write(
            [
                f"451 4.7.1 <{recipient}>: Recipient address rejected: Greylisted, "
                f"try again in {wait} seconds"
            ]
        )


def _parse_loose(raw: bytes, command: str | None) -> Reply:
    from ..protocol.replies import parse_reply

    return parse_reply(raw, command=command)


# --- the rule -------------------------------------------------------------


@dataclass
class Fault:
    """One fault rule: where (stage), what (action), when (matchers)."""

    stage: str
    action: Action
    probability: float = 1.0
    address: str | None = None  # exact address or fnmatch pattern, case-insensitive
    nth: int | None = None  # only the Nth time this stage comes up in a session
    sessions: tuple[int, int | None] | None = None  # (first, last) counted from when added
    client: str | None = None  # only for client IPs matching this (exact or fnmatch pattern)
    name: str = ""
    _first_session: int = field(default=0, repr=False, compare=False)

    def __post_init__(self):
        stage = _STAGE_ALIASES.get(str(self.stage).lower(), str(self.stage).lower())
        if stage not in STAGES:
            raise LabValueError(f"unknown fault stage {self.stage!r}; stages: {', '.join(STAGES)}")
        self.stage = stage
        if not isinstance(self.action, Action):
            raise LabValueError(f"a fault's action must be an Action, not {self.action!r}")
        if stage not in self.action.stages:
            raise LabValueError(
                f"{type(self.action).__name__} works only at {', '.join(self.action.stages)}, "
                f"not at {stage}"
            )
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise LabValueError(f"probability must be a number above 0 and at most 1, not {p!r}")
        if self.nth is not None and (not isinstance(self.nth, int) or self.nth < 1):
            raise LabValueError(f"nth must be a whole number of at least 1, not {self.nth!r}")
        if self.sessions is not None:
            lo, hi = self.sessions
            if lo < 1 or (hi is not None and hi < lo):
                raise LabValueError(
                    f"sessions must be a range such as 1-3 or 4-, not {self.sessions!r}"
                )
        if not self.name:
            self.name = format_fault(self)

    def matches(self, ctx: _Context) -> bool:
        """True if this rule fires here (draws from the session's generator if random)."""
        if ctx.stage != self.stage:
            return False
        if self.nth is not None and ctx.count != self.nth:
            return False
        if self.sessions is not None:
            n = ctx.state.ordinal - self._first_session
            lo, hi = self.sessions
            if n < lo or (hi is not None and n > hi):
                return False
        if self.address is not None:
            pat = self.address.lower()
            if not any(fnmatch.fnmatchcase(a.lower(), pat) for a in ctx.addresses):
                return False
        if self.client is not None and not fnmatch.fnmatchcase(ctx.client_ip, self.client):
            return False
        # Draw last, and only for random rules, so adding a fixed rule does not
        # shift the random sequence of the others.
        return self.probability >= 1 or ctx.state.rng.random() < self.probability


def format_fault(f: Fault) -> str:
    """The spec text of a rule (what the transcript shows as the injecting rule)."""
    a = f.action
    if isinstance(a, ReplyWith):
        what = f"{a.code}" + (f" {a.text}" if a.text else "")
    elif isinstance(a, HangUp):
        what = "drop"
    elif isinstance(a, Delay):
        what = f"delay={a.seconds * 1000:g}ms"
    elif isinstance(a, SlowLink):
        what = f"slow={a.bytes_per_second}"
    elif isinstance(a, CutOff):
        what = "cut"
    elif isinstance(a, Malformed):
        what = f"malformed={a.kind}"
    elif isinstance(a, NoExtensions):
        what = "noext=" + "+".join(sorted(a.keywords))
    elif isinstance(a, Greylist):
        what = f"greylist={a.seconds:g}s"
    else:
        what = type(a).__name__
    parts = [f"{f.stage}" + (f"#{f.nth}" if f.nth else ""), what]
    if f.probability < 1:
        parts.append(f"{f.probability:g}")
    if f.address:
        parts.append(f"addr={f.address}")
    if f.sessions:
        lo, hi = f.sessions
        parts.append(f"sessions={lo}-{hi if hi is not None else ''}")
    if f.client:
        parts.append(f"client={f.client}")
    return ":".join(parts)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


def _duration(text: str, spec: str, default_unit: str) -> float:
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise _grammar_error(spec, f"{text!r} is not a duration such as 200ms or 2s")
    unit = m.group(2) or default_unit
    return float(m.group(1)) / (1000 if unit == "ms" else 1)


def parse_fault(spec: str) -> Fault:
    """Parse a short fault spec such as ``rcpt:451:0.3`` (see ``SPEC_GRAMMAR``)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise _grammar_error(str(spec), "expected at least STAGE:ACTION")
    where, what, *whens = [p.strip() for p in spec.split(":")]
    m = re.match(r"^([A-Za-z.]+)(?:#(\d+))?$", where)
    if not m:
        raise _grammar_error(spec, f"{where!r} is not a stage (with an optional #N)")
    stage = _STAGE_ALIASES.get(m.group(1).lower(), m.group(1).lower())
    if stage not in STAGES:
        raise _grammar_error(spec, f"unknown stage {m.group(1)!r}")
    nth = int(m.group(2)) if m.group(2) else None
    if nth == 0:
        raise _grammar_error(spec, "#N counts from 1")
    action = _parse_action(what, spec)
    prob, address, sessions, client = 1.0, None, None, None
    for w in whens:
        if w.startswith("client="):
            client = w[7:]
            if not client:
                raise _grammar_error(spec, "client= needs an IP address or pattern, e.g. 127.0.0.2")
        elif w.startswith("addr="):
            address = w[5:]
            if not address:
                raise _grammar_error(spec, "addr= needs an address or pattern")
        elif w.startswith("sessions="):
            sm = re.match(r"^(\d+)(?:-(\d*))?$", w[9:])
            if not sm or int(sm.group(1)) < 1:
                raise _grammar_error(spec, f"{w!r}: sessions are counted from 1, e.g. sessions=1-3")
            lo = int(sm.group(1))
            hi = lo if sm.group(2) is None else (int(sm.group(2)) if sm.group(2) else None)
            if hi is not None and hi < lo:
                raise _grammar_error(spec, f"{w!r}: the range ends before it starts")
            sessions = (lo, hi)
        else:
            try:
                prob = float(w)
            except ValueError:
                raise _grammar_error(
                    spec, f"{w!r} is not a probability, addr= or sessions="
                ) from None
            if not 0 < prob <= 1:
                raise _grammar_error(spec, f"probability {w} must be above 0 and at most 1")
    try:
        return Fault(stage, action, prob, address, nth, sessions, client, name=spec)
    except LabValueError as exc:
        raise _grammar_error(spec, str(exc)) from None


def _parse_action(what: str, spec: str) -> Action:
    low = what.lower()
    m = re.match(r"^(\d{3})(?:[ =](.+))?$", what)
    if m:
        code = int(m.group(1))
        if not 200 <= code <= 599:
            raise _grammar_error(spec, f"reply code {code} is outside 200-599")
        return ReplyWith(code, m.group(2).strip() if m.group(2) else None)
    if low in ("drop", "hangup", "close"):
        return HangUp()
    if low.startswith("delay="):
        return Delay(_duration(what[6:], spec, "ms"))
    if low.startswith("slow="):
        rate = what[5:].lower().removesuffix("bps").removesuffix("b/s")
        if not rate.isdigit() or int(rate) < 1:
            raise _grammar_error(
                spec, f"slow= needs bytes per second (a whole number), not {what[5:]!r}"
            )
        return SlowLink(int(rate))
    if low == "cut":
        return CutOff()
    if low == "malformed" or low.startswith("malformed="):
        kind = low.partition("=")[2] or "code"
        if kind not in ("code", "lf", "noeol"):
            raise _grammar_error(spec, f"malformed= is code, lf or noeol, not {kind!r}")
        return Malformed(kind)
    if low.startswith("noext="):
        words = frozenset(w.upper() for w in re.split(r"[+,/]", what[6:]) if w)
        if not words:
            raise _grammar_error(spec, "noext= needs keywords such as PIPELINING+SIZE")
        return NoExtensions(words)
    if low == "greylist" or low.startswith("greylist="):
        return Greylist(_duration(what[9:], spec, "s") if "=" in low else 300.0)
    raise _grammar_error(spec, f"unknown action {what!r}")


# --- per-session state and the engine ----------------------------------------


@dataclass
class _SessionFaults:
    """What the engine keeps per connection (on the protocol object)."""

    ordinal: int
    rng: random.Random
    counts: dict = field(default_factory=dict)
    slow: int = 0  # bytes per second; 0: full speed
    hidden_keywords: set = field(default_factory=set)
    slow_buffer: bytearray = field(default_factory=bytearray)
    slow_handle: object = None


class _Context:
    """One stage point of one session, as the rules see it."""

    __slots__ = ("engine", "proto", "state", "stage", "count", "arg", "command", "rule")

    def __init__(self, engine, proto, state, stage, count, arg, command):
        self.engine, self.proto, self.state = engine, proto, state
        self.stage, self.count, self.arg, self.command = stage, count, arg, command
        self.rule: Fault | None = None

    @property
    def client_ip(self) -> str:
        return self.proto._client.rsplit(":", 1)[0]

    @property
    def addresses(self) -> list[str]:
        """The addresses this stage is about (address matchers test these)."""
        arg = self.arg or ""
        if self.stage in ("mail", "rcpt"):
            m = re.search(r"<([^>]*)>", arg) or re.search(r":\s*(\S+)", arg)
            return [m.group(1)] if m else []
        if self.stage == "vrfy":
            return [arg.strip("<> ")]
        if self.stage == "helo":
            return [arg.strip()]
        env = self.proto.envelope
        return [a for a in [env.mail_from or "", *env.rcpt_tos] if a]

    async def write(self, lines: list[str], injected: bool = True) -> Reply:
        reply = self.proto._write_reply(
            lines, self.command, injected=self.rule.name if injected else None
        )
        await self._drain()
        return reply

    def write_raw(self, raw: bytes) -> None:
        p = self.proto
        p._record(
            Line(
                p._sid,
                time.time(),
                SERVER,
                raw,
                p._client,
                command=self.command,
                reply=_parse_loose(raw, self.command),
                injected=self.rule.name,
            )
        )
        self.engine.write(p, raw)

    def event(self, note: str) -> None:
        # Policy checks (use_zone) name themselves; fault rules say they are faults.
        kind = "" if self.rule.name.startswith("identity check") else "fault "
        self.proto._event(f"{kind}{self.rule.name}: {note}")

    async def _drain(self) -> None:
        w = self.proto._writer
        if w is not None and self.proto.transport is not None:
            try:
                await w.drain()
            except ConnectionError:
                pass


class FaultEngine:
    """The rules a LabServer consults at every stage; change them while it runs."""

    def __init__(self, seed: int | None = None):
        self._lock = threading.Lock()
        self._rules: tuple[Fault, ...] = ()
        self._checks: tuple[Fault, ...] = ()  # policy checks (dnszone); clear() keeps them
        self._by_stage: dict[str, tuple[Fault, ...]] = {}  # checks + rules, per stage
        self._greylist: dict = {}
        self._sim_now: dict[str, float] = {}
        self.clock = time.monotonic  # greylisting's clock (trials simulate time per sender)
        self.reseed(seed)

    # --- rules ------------------------------------------------------------

    @property
    def rules(self) -> list[Fault]:
        """The active rules, in the order they are tried."""
        return list(self._rules)

    def add(self, *faults: Fault | str) -> list[Fault]:
        """Add rules (Fault objects or spec strings such as ``'rcpt:451:0.3'``)."""
        parsed = [f if isinstance(f, Fault) else parse_fault(f) for f in faults]
        with self._lock:
            for f in parsed:
                f._first_session = self._sessions
            self._rules = self._rules + tuple(parsed)
            self._index()
        return parsed

    def remove(self, fault: Fault | str) -> None:
        """Remove one rule (the object, or its spec text)."""
        with self._lock:
            self._rules = tuple(r for r in self._rules if r is not fault and r.name != fault)
            self._index()

    def set(self, *faults: Fault | str) -> list[Fault]:
        """Replace every rule with these."""
        self.clear()
        return self.add(*faults)

    def clear(self) -> None:
        """Remove every rule and forget greylisting history."""
        with self._lock:
            self._rules = ()
            self._index()
            self._greylist.clear()

    def reseed(self, seed: int | None) -> None:
        """Start the random sequence again from ``seed`` (None: a fresh random seed)."""
        with self._lock:
            self.seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
            self._sessions = 0
            self._per_client: dict[str, int] = {}
            self._greylist.clear()
            for r in self._rules:
                r._first_session = 0

    def _index(self) -> None:
        # Called with the lock held; readers see either the old or the new dict.
        by_stage: dict[str, list[Fault]] = {}
        for r in self._checks + self._rules:
            by_stage.setdefault(r.stage, []).append(r)
        self._by_stage = {k: tuple(v) for k, v in by_stage.items()}

    def set_checks(self, *checks: Fault) -> None:
        """Install policy checks that run before the fault rules (``dnszone.use_zone``)."""
        with self._lock:
            self._checks = tuple(checks)
            self._index()

    def now(self, sender: str = "") -> float:
        """Greylisting's clock: simulated time for a trial's sender, else real time."""
        t = self._sim_now.get(sender)
        return self.clock() if t is None else t

    def _set_sim_time(self, sender: str, t: float | None) -> None:
        if t is None:
            self._sim_now.pop(sender, None)
        else:
            self._sim_now[sender] = t

    def __repr__(self) -> str:
        rules = ", ".join(r.name for r in self._rules) or "no rules"
        return f"<FaultEngine seed={self.seed}: {rules}>"

    # --- called by the server at each stage point -------------------------

    def _session(self, proto) -> _SessionFaults:
        st = getattr(proto, "_fault_state", None)
        if st is None:
            ip = proto._client.rsplit(":", 1)[0]
            with self._lock:
                self._sessions += 1
                n = self._sessions
                k = self._per_client[ip] = self._per_client.get(ip, 0) + 1
            # Seeded by (seed, client address, its k-th session), not by arrival order:
            # clients on different 127.0.0.x addresses running at the same time
            # (the trial runner's workers) still get the same draws every run.
            st = _SessionFaults(n, random.Random(f"{self.seed}/{ip}/{k}"))
            proto._fault_state = st
        return st

    async def run(self, proto, stage, normal, arg: str = ""):
        """Run the normal behaviour of ``stage`` through every rule that fires there."""
        st = self._session(proto)
        if isinstance(stage, Command):
            stage = _STAGE_OF_COMMAND.get(stage)
            if stage is None:  # STARTTLS, AUTH, EXPN, HELP: no faults (yet)
                return await normal()
        st.counts[stage] = count = st.counts.get(stage, 0) + 1
        # Stages without a rule skip the engine: a rule at RCPT costs nothing at MAIL.
        rules = self._by_stage.get(stage)
        if not rules:
            return await normal()
        ctx = _Context(self, proto, st, stage, count, arg, _COMMAND_OF_STAGE[stage])
        return await self._chain(rules, 0, ctx, normal)

    async def _chain(self, rules, i, ctx, normal):
        for j in range(i, len(rules)):
            if rules[j].matches(ctx):
                rule = rules[j]

                async def rest(j=j):
                    return await self._chain(rules, j + 1, ctx, normal)

                ctx.rule = rule
                return await rule.action.apply(ctx, rest)
        return await normal()

    def keywords(self, proto, keywords: list[str]) -> list[str]:
        """The EHLO keywords left after ``noext`` faults in this session."""
        st = getattr(proto, "_fault_state", None)
        if st is None or not st.hidden_keywords:
            return keywords
        return [k for k in keywords if k.split(" ", 1)[0].upper() not in st.hidden_keywords]

    def write(self, proto, raw: bytes) -> None:
        """Write server bytes, at the session's slow-link rate if one is set."""
        st = getattr(proto, "_fault_state", None)
        t = proto.transport
        if t is None or t.is_closing():
            return
        if st is None or not st.slow:
            t.write(raw)
            return
        st.slow_buffer += raw
        if st.slow_handle is None:
            self._drip(proto, st)

    def _drip(self, proto, st: _SessionFaults) -> None:
        # 20 ticks a second; at least one byte per tick so slow=1 still moves.
        t = proto.transport
        if t is None or t.is_closing() or not st.slow_buffer:
            st.slow_handle = None
            return
        n = max(1, st.slow // 20)
        chunk, st.slow_buffer[:n] = bytes(st.slow_buffer[:n]), b""
        t.write(chunk)
        st.slow_handle = proto.loop.call_later(n / st.slow, self._drip, proto, st)
