"""Faults: small rules that make the lab server misbehave on purpose.

Theory of operation.  A ``Fault`` is a rule with three parts: *where* (a
``Stage`` of the dialogue), *what* (an ``Action``) and *when* (matchers: a
probability, an address pattern, the Nth occurrence, a range of sessions, a
client address).  At each stage point the server hands the engine a
``FaultContext`` and the normal behaviour; the engine either runs it
unchanged, wraps it (a delay, a slow link, fewer EHLO keywords) or replaces
it (an injected reply, a hang-up).  So a fault wraps the normal behaviour as
aiosmtpd's own tests do with swapped-in handlers.  Actions see only the
context: the stage, the command and its argument, the session's id, client
and envelope, the persona, and a ``Link`` to reply, close, wait or slow down
with; never the server's insides.  Every reply text comes from the persona.

Reproducibility: every random choice comes from a per-session generator
seeded with ``(engine seed, client address, that client's session number)``,
so the same seed, the same rules and the same dialogues give the same
transcripts, run after run, even when clients on different addresses
overlap in time.

The short spec grammar (``parse_fault``) is shared by Python, ``serve
--fault`` and ``experiment --fault``.  Each action reads and writes its own
part of it (``Action.parse``, ``Action.spec``) and describes it
(``Action.grammar``); ``SPEC_GRAMMAR`` is put together from those.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import LabValueError
from ..protocol.replies import Reply
from ..protocol.states import Stage
from .fault_actions import (
    ACTIONS,
    DEFAULT_REPLIES,
    FAULT_STAGES,
    Action,
    CutOff,
    Delay,
    FaultContext,
    Greylist,
    HangUp,
    Link,
    Malformed,
    NoExtensions,
    Normal,
    ReplyWith,
    SessionFaults,
    SlowLink,
)

STAGES = FAULT_STAGES  # the name lessons and widgets know

__all__ = [
    "ACTIONS",
    "DEFAULT_REPLIES",
    "FAULT_STAGES",
    "SPEC_GRAMMAR",
    "STAGES",
    "Action",
    "CutOff",
    "Delay",
    "Fault",
    "FaultContext",
    "FaultEngine",
    "Greylist",
    "HangUp",
    "Link",
    "Malformed",
    "NoExtensions",
    "ReplyWith",
    "SessionFaults",
    "SlowLink",
    "parse_fault",
]


def _grammar_text() -> str:
    actions = "\n".join(
        ("  ACTION  " if i == 0 else "          ") + ln
        for i, ln in enumerate(ln for a in ACTIONS for ln in a.grammar.split("\n"))
    )
    examples = [a.example for a in ACTIONS] + [
        "mail:421",
        "rcpt#2:452",
        "rcpt:550:addr=*@spam.example",
        "rcpt:451:sessions=1-3",
    ]
    return (
        "fault spec:  STAGE[#N]:ACTION[:WHEN]...\n"
        "  STAGE   connect (or greeting), helo (or ehlo), mail, rcpt, data, dot (end of data),\n"
        "          rset, noop, vrfy, quit;  #N = only the Nth such command of a session\n"
        f"{actions}\n"
        "  WHEN    0.3              with probability 0.3 (from the seed)\n"
        "          addr=PATTERN     only for matching addresses (exact or *?[] pattern)\n"
        "          sessions=1-3     only in sessions 1 to 3 after the rule was added (4- : from 4 on)\n"
        "          client=PATTERN   only for clients whose IP matches (127.0.0.2, 127.0.0.*)\n"
        f"examples: {'  '.join(examples[:5])}\n          {'  '.join(examples[5:])}"
    )


SPEC_GRAMMAR = _grammar_text()


# --- the rule ----------------------------------------------------------------------


@dataclass
class Fault:
    """One fault rule: where (stage), what (action), when (matchers).  Its one validator."""

    stage: Stage | str  # a Stage once made (names such as "ehlo" or "greeting" are read)
    action: Action
    probability: float = 1.0
    address: str | None = None  # exact address or fnmatch pattern, case-insensitive
    nth: int | None = None  # only the Nth time this stage comes up in a session
    sessions: tuple[int, int | None] | None = None  # (first, last) counted from when added
    client: str | None = None  # only for client IPs matching this (exact or fnmatch pattern)
    name: str = ""
    _first_session: int = field(default=0, repr=False, compare=False)

    def __post_init__(self) -> None:
        stage = Stage.of(str(self.stage))
        if stage not in FAULT_STAGES:
            raise LabValueError(
                f"unknown fault stage {self.stage!r}; stages: {', '.join(FAULT_STAGES)}"
            )
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
        if self.nth is not None and (
            isinstance(self.nth, bool) or not isinstance(self.nth, int) or self.nth < 1
        ):
            raise LabValueError(f"nth (#N) must be a whole number of at least 1, not {self.nth!r}")
        if self.sessions is not None:
            lo, hi = self.sessions
            if lo < 1 or (hi is not None and hi < lo):
                raise LabValueError(
                    f"sessions must be a range such as 1-3 or 4-, not {self.sessions!r}"
                )
        for label, value in (("addr=", self.address), ("client=", self.client)):
            if value is not None and (not isinstance(value, str) or not value):
                raise LabValueError(f"{label} needs an address or pattern, not {value!r}")
        if not self.name:
            self.name = self.spec()

    def spec(self) -> str:
        """The spec text of this rule (what parse_fault reads back into an equal rule)."""
        parts = [f"{self.stage}" + (f"#{self.nth}" if self.nth else ""), self.action.spec()]
        if self.probability < 1:
            parts.append(repr(float(self.probability)))
        if self.address:
            parts.append(f"addr={self.address}")
        if self.sessions:
            lo, hi = self.sessions
            parts.append(f"sessions={lo}-{hi if hi is not None else ''}")
        if self.client:
            parts.append(f"client={self.client}")
        return ":".join(parts)

    def matches(self, ctx: FaultContext) -> bool:
        """True if this rule fires here (draws from the session's generator if random)."""
        if self.nth is not None and ctx.count != self.nth:
            return False
        if self.sessions is not None:
            n = ctx.faults.ordinal - self._first_session
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
        return self.probability >= 1 or ctx.faults.rng.random() < self.probability


def _grammar_error(spec: str, why: str) -> LabValueError:
    return LabValueError(f"bad fault spec {spec!r}: {why}\n{SPEC_GRAMMAR}")


def _parse_action(what: str) -> Action:
    for action in ACTIONS:
        parsed = action.parse(what)
        if parsed is not None:
            return parsed
    raise LabValueError(f"unknown action {what!r}")


def _parse_when(when: str, found: dict[str, object]) -> None:
    name, eq, value = when.partition("=")
    if eq and name in ("client", "addr"):
        found["client" if name == "client" else "address"] = value
    elif eq and name == "sessions":
        m = re.match(r"^(\d+)(?:-(\d*))?$", value)
        if not m:
            raise LabValueError(f"{when!r}: sessions are counted from 1, e.g. sessions=1-3")
        lo, hi = int(m.group(1)), m.group(2)
        found["sessions"] = (lo, lo if hi is None else (int(hi) if hi else None))
    else:
        try:
            found["probability"] = float(when)
        except ValueError:
            raise LabValueError(f"{when!r} is not a probability, addr= or sessions=") from None


def parse_fault(spec: str) -> Fault:
    """Parse a short fault spec such as ``rcpt:451:0.3`` (see ``SPEC_GRAMMAR``)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise _grammar_error(str(spec), "expected at least STAGE:ACTION")
    where, what, *whens = [p.strip() for p in spec.split(":")]
    m = re.match(r"^([A-Za-z.]+)(?:#(\d+))?$", where)
    if not m:
        raise _grammar_error(spec, f"{where!r} is not a stage (with an optional #N)")
    try:
        found: dict[str, object] = {}
        for when in whens:
            _parse_when(when, found)
        return Fault(
            Stage.of(m.group(1)) or m.group(1),
            _parse_action(what),
            nth=int(m.group(2)) if m.group(2) else None,
            name=spec,
            **found,  # type: ignore[arg-type]
        )
    except LabValueError as exc:
        raise _grammar_error(spec, str(exc)) from None


# --- the engine ----------------------------------------------------------------------


class FaultEngine:
    """The rules a LabServer consults at every stage; change them while it runs."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: tuple[Fault, ...] = ()
        self._by_stage: dict[Stage, tuple[Fault, ...]] = {}
        self._greylist: dict[tuple[str, str, str], float] = {}
        self._sim_now: dict[str, float] = {}
        self.clock: Callable[[], float] = time.monotonic  # greylisting's clock
        self.seed = 0
        self._sessions = 0
        self._per_client: dict[str, int] = {}
        # Client address -> simulated seconds of tarpit delay so far (trials that
        # simulate delays register their address; a delay then counts, not sleeps).
        self._sim_delays: dict[str, float] = {}
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
            self._per_client = {}
            self._greylist.clear()
            for r in self._rules:
                r._first_session = 0

    def _index(self) -> None:
        # Called with the lock held; readers see either the old or the new dict.
        by_stage: dict[Stage, list[Fault]] = {}
        for r in self._rules:
            by_stage.setdefault(Stage(r.stage), []).append(r)
        self._by_stage = {k: tuple(v) for k, v in by_stage.items()}

    # --- greylisting's clock --------------------------------------------------

    def now(self, sender: str = "") -> float:
        """Greylisting's clock: simulated time for a trial's sender, else real time."""
        t = self._sim_now.get(sender)
        return self.clock() if t is None else t

    def simulate_delay(self, client_ip: str, seconds: float) -> bool:
        """Count ``seconds`` of delay for a client whose delays are simulated; False: really wait."""
        if client_ip not in self._sim_delays:
            return False
        self._sim_delays[client_ip] += seconds
        return True

    def simulate_time(self, sender: str, t: float | None) -> None:
        """Let greylisting see ``t`` as the time for ``sender`` (None: real time again)."""
        if t is None:
            self._sim_now.pop(sender, None)
        else:
            self._sim_now[sender] = t

    def first_seen(self, triplet: tuple[str, str, str], now: float) -> float:
        """When greylisting first saw this client+sender+recipient (now, if never)."""
        return self._greylist.setdefault(triplet, now)

    def __repr__(self) -> str:
        rules = ", ".join(r.name for r in self._rules) or "no rules"
        return f"<FaultEngine seed={self.seed}: {rules}>"

    # --- asked by the server at each stage point -------------------------------

    def open_session(self, client_ip: str) -> SessionFaults:
        """A new connection from ``client_ip``: its ordinal and its own generator."""
        with self._lock:
            self._sessions += 1
            n = self._sessions
            k = self._per_client[client_ip] = self._per_client.get(client_ip, 0) + 1
        # Seeded by (seed, client address, its k-th session), not by arrival order:
        # clients on different 127.0.0.x addresses running at the same time
        # (the trial runner's workers) still get the same draws every run.
        return SessionFaults(n, random.Random(f"{self.seed}/{client_ip}/{k}"))

    def at(self, faults: SessionFaults, stage: Stage) -> tuple[int, tuple[Fault, ...]]:
        """Count one more ``stage`` in this session; its number and the rules that may fire."""
        faults.counts[stage] = count = faults.counts.get(stage, 0) + 1
        return count, self._by_stage.get(stage, ())

    async def run(
        self, ctx: FaultContext, rules: tuple[Fault, ...], normal: Normal
    ) -> Reply | None:
        """Run the normal behaviour of ``ctx.stage`` through every rule that fires there."""
        return await self._chain(rules, 0, ctx, normal)

    async def _chain(
        self, rules: tuple[Fault, ...], i: int, ctx: FaultContext, normal: Normal
    ) -> Reply | None:
        for j in range(i, len(rules)):
            if rules[j].matches(ctx):
                rule = rules[j]

                async def rest(j: int = j) -> Reply | None:
                    return await self._chain(rules, j + 1, ctx, normal)

                ctx.rule = rule
                return await rule.action.apply(ctx, rest)
        return await normal()
