"""Trials: many complete, real dialogues against a lab server, with a retry policy.

Theory of operation.  Each trial is one message from one client: connect,
EHLO, MAIL, RCPT, DATA, the text, QUIT, over a real socket, with whatever
faults the server has.  A retry policy decides what the client does after a
failure: ``none`` gives up; ``mta`` behaves like a real MTA (RFC 5321
§4.5.4.1: retry 4xx and lost connections with growing waits, never retry
5xx, RSET after a refused transaction); ``naive`` retries everything, 5xx
too, which is how a lesson shows why the first digit matters.

Waits between attempts run in *simulated* time (nobody waits 30 minutes in
a workshop); the dialogues themselves are real.  Greylisting on the server
reads the same simulated clock through the fault engine, per trial sender.
With ``simulate_delays=True`` a tarpit (``delay=``) is simulated too: the
server answers at once and the client adds the delay to its clock, and a
delay at least as long as its timeout counts as a timeout (the fault lab
panel runs this way, so no setting freezes it).  ``cancel`` stops a run
between dialogues.

The client here is a tight raw-socket loop, not ``StepClient``: it records
only the reply codes, which keeps a thousand trials within a few seconds.
It reads replies through the lab's one reader (``client.ReplyReader``).
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from ..errors import LabError, LabValueError
from ..protocol.states import CLOSING_CODES, Stage
from .client import ConnectionEnded, ReplyReader
from .faults import Fault, FaultEngine

OUTCOMES = ("delivered", "deferred", "bounced", "connection lost")
# The stages a trial's dialogue goes through, in order.
TRIAL_STAGES = (
    Stage.CONNECT,
    Stage.HELO,
    Stage.MAIL,
    Stage.RCPT,
    Stage.DATA,
    Stage.DOT,
    Stage.RSET,
    Stage.QUIT,
)
_TRANSACTION = TRIAL_STAGES[:6]  # connect .. dot: where a delivery can fail


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries: attempts, waits (simulated seconds), what it retries."""

    name: str
    max_attempts: int = 1
    first_wait: float = 0.0  # seconds before the second attempt
    factor: float = 1.0  # each later wait is this many times longer
    retry_4xx: bool = False
    retry_5xx: bool = False
    retry_lost: bool = False
    rset_after_reject: bool = False

    def wait(self, attempt: int) -> float:
        """Simulated seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return self.first_wait * self.factor ** (attempt - 1)

    def retries(self, outcome: str) -> bool:
        """True if this policy tries again after an attempt with ``outcome``."""
        return {
            "deferred": self.retry_4xx,
            "bounced": self.retry_5xx,
            "connection lost": self.retry_lost,
        }.get(outcome, False)


POLICIES = {
    "none": RetryPolicy("none"),
    # Postfix-like: 5 attempts, waits 60 s, 120 s, 240 s, 480 s (its queue runs
    # are minutes apart; RFC 5321 §4.5.4.1 asks for at least 30 minutes, which a
    # lesson compresses).
    "mta": RetryPolicy(
        "mta", 5, 60.0, 2.0, retry_4xx=True, retry_lost=True, rset_after_reject=True
    ),
    # Retries whatever happens, every 10 s, and never says RSET.
    "naive": RetryPolicy("naive", 5, 10.0, 1.0, retry_4xx=True, retry_5xx=True, retry_lost=True),
}


def get_policy(policy: str | RetryPolicy) -> RetryPolicy:
    """The retry policy called ``policy`` (none, mta, naive), or the one given."""
    if isinstance(policy, RetryPolicy):
        return policy
    try:
        return POLICIES[str(policy).lower()]
    except KeyError:
        raise LabValueError(
            f"unknown retry policy {policy!r}; choose one of: {', '.join(POLICIES)}"
        ) from None


@dataclass
class Attempt:
    """One connection of a trial: the code per stage and how it ended."""

    number: int
    started: float  # simulated seconds since the trial began
    codes: dict[Stage, int | None] = field(default_factory=dict)
    outcome: str = "connection lost"
    failed_stage: Stage | None = None
    latency: float = 0.0  # seconds the dialogue took (real, plus any simulated tarpit delay)
    simulated: float = 0.0  # of which simulated tarpit delay (run_trials(simulate_delays=True))


@dataclass
class Trial:
    """One message's fate: every attempt, the final outcome, the simulated time."""

    index: int
    attempts: list[Attempt]
    outcome: str
    time: float  # simulated seconds from the first attempt to the final outcome


@dataclass
class TrialResults:
    """What N trials found, with summaries by outcome, by stage and code, by attempt."""

    trials: list[Trial]
    policy: RetryPolicy
    seed: int | None
    faults: list[str]
    elapsed: float  # real seconds the run took

    def by_outcome(self) -> dict[str, int]:
        """How many trials ended in each outcome (every outcome listed, zeros too)."""
        c = Counter(t.outcome for t in self.trials)
        return {o: c.get(o, 0) for o in OUTCOMES}

    def by_stage_code(self) -> dict[Stage, dict[str, int]]:
        """Replies seen in every attempt: {stage: {code: count}}; 'none' for no reply."""
        out: dict[Stage, Counter[str]] = {s: Counter() for s in TRIAL_STAGES}
        for t in self.trials:
            for a in t.attempts:
                for stage, code in a.codes.items():
                    out[stage][str(code) if code is not None else "none"] += 1
        return {s: dict(sorted(c.items())) for s, c in out.items() if c}

    def by_attempt(self) -> dict[int, dict[str, int]]:
        """For attempt number k: how many attempts ended in each outcome."""
        out: dict[int, Counter[str]] = {}
        for t in self.trials:
            for a in t.attempts:
                out.setdefault(a.number, Counter())[a.outcome] += 1
        return {k: {o: c.get(o, 0) for o in OUTCOMES} for k, c in sorted(out.items())}

    def latencies(self) -> list[float]:
        """Real seconds per attempt (every attempt of every trial)."""
        return [a.latency for t in self.trials for a in t.attempts]

    def to_dict(self) -> dict:
        """The counts as plain data (what ``experiment --json`` prints)."""
        return {
            "trials": len(self.trials),
            "seed": self.seed,
            "retry": self.policy.name,
            "faults": list(self.faults),
            "by_outcome": self.by_outcome(),
            "by_stage_code": self.by_stage_code(),
            "by_attempt": {str(k): v for k, v in self.by_attempt().items()},
            "attempts": sum(len(t.attempts) for t in self.trials),
            "elapsed_seconds": round(self.elapsed, 3),
        }

    def summary(self) -> str:
        """A short text report: outcomes, replies per stage, attempts."""
        n = len(self.trials) or 1
        lines = [
            f"{len(self.trials)} trials, retry policy {self.policy.name}, seed {self.seed}, "
            f"faults: {', '.join(self.faults) or 'none'} ({self.elapsed:.2f} s)",
            "outcome:",
        ]
        for o, k in self.by_outcome().items():
            lines.append(f"  {o:<16} {k:>6}  {100 * k / n:5.1f}%")
        lines.append("replies by stage:")
        for stage, codes in self.by_stage_code().items():
            lines.append(
                f"  {stage:<8} "
                + ", ".join(f"{'no reply' if c == 'none' else c} ×{k}" for c, k in codes.items())
            )
        lines.append("attempts:")
        for k, outs in self.by_attempt().items():
            lines.append(f"  #{k}: " + ", ".join(f"{o} {v}" for o, v in outs.items() if v))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.summary())}</pre>"


class TrialsCancelled(LabError):
    """A run of trials was cancelled (``cancel`` was set) before it finished."""


class _Lost(Exception):
    """The connection closed, timed out or sent something that is not a reply."""

    def __init__(self, why: str, *, closing_reply: bool = False):
        super().__init__(why)
        self.closing_reply = closing_reply  # a 421: the server said "try again later" (§3.8)


class _Wire:
    """A bare SMTP client socket: send a line, read one reply's code.

    ``sim_delays``: the fault engine's per-client tarpit tally when delays are
    simulated; each reply's share is added to ``simulated`` and a share of at
    least ``timeout`` is a timeout, as a real wait that long would have been.
    """

    def __init__(
        self,
        address: tuple[str, int],
        timeout: float,
        source: str | None = None,
        sim_delays: dict[str, float] | None = None,
    ):
        self.timeout, self.source, self.sim_delays = timeout, source, sim_delays
        self.simulated = 0.0
        try:
            self.sock = socket.create_connection(
                address, timeout=timeout, source_address=(source, 0) if source else None
            )
        except OSError as exc:
            raise _Lost(str(exc)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = ReplyReader(self.sock)

    def _waited(self) -> None:
        if self.sim_delays is None or self.source is None:
            return
        tally = self.sim_delays.get(self.source, 0.0)
        share, self.simulated = tally - self.simulated, tally
        if share >= self.timeout:
            self.simulated += self.timeout - share  # the client gave up after its timeout
            raise _Lost("timed out")

    def reply(self) -> int:
        try:
            raw = self.reader.read()
        except (OSError, ConnectionEnded) as exc:  # TimeoutError is an OSError
            raise _Lost(str(exc)) from None
        self._waited()
        last = raw.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        if len(last) < 3 or not last[:3].isdigit() or not b"200" <= last[:3] <= b"599":
            raise _Lost("malformed reply")
        return int(last[:3])

    def send(self, data: bytes) -> int:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Lost(str(exc)) from None
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class _Attempting:
    """One attempt in progress: where it is, and the code it got at each stage."""

    def __init__(self, attempt: Attempt, wire: _Wire):
        self.attempt, self.wire, self.stage = attempt, wire, Stage.CONNECT

    def step(self, stage: Stage, line: bytes | None) -> int:
        self.stage = stage
        code = self.wire.reply() if line is None else self.wire.send(line)
        self.attempt.codes[stage] = code
        return code

    def transaction(self, sender: bytes, recipients: Sequence[bytes], message: bytes) -> None:
        """Greeting to final dot; ``attempt.outcome`` is 'delivered' if all of it went well."""
        steps: list[tuple[Stage, bytes | None]] = [
            (Stage.CONNECT, None),
            (Stage.HELO, b"EHLO trials.example.org\r\n"),
            (Stage.MAIL, b"MAIL FROM:<" + sender + b">\r\n"),
        ]
        steps += [(Stage.RCPT, b"RCPT TO:<" + r + b">\r\n") for r in recipients]
        steps += [(Stage.DATA, b"DATA\r\n"), (Stage.DOT, message)]
        accepted = 0
        for stage, line in steps:
            if stage is Stage.DATA and not accepted:
                self.stage = stage
                return  # no recipient accepted: DATA would only earn a 503 (§3.3)
            code = self.step(stage, line)
            if stage is Stage.RCPT:
                accepted += code < 400  # §3.3: one refused recipient does not end it
            elif code >= 400 or (stage is Stage.DATA and code != 354):
                return
        self.attempt.outcome = "delivered"

    def judge(self) -> None:
        """Name the stage that failed and what its first digit means; a 421 ends the line."""
        a = self.attempt
        failed = [s for s in _TRANSACTION if (a.codes.get(s) or 0) >= 400]
        a.failed_stage = failed[0] if failed else self.stage
        first = a.codes[a.failed_stage] or 0
        a.outcome = "deferred" if first < 500 else "bounced"
        if first in CLOSING_CODES:
            raise _Lost("421: the server closed the channel", closing_reply=True)

    def lost(self, exc: _Lost) -> None:
        a = self.attempt
        a.codes.setdefault(self.stage, None)
        if exc.closing_reply:
            a.outcome = "deferred"  # §3.8: 421 is "try again later"
        elif a.outcome not in ("deferred", "bounced") and (
            a.outcome != "delivered" or self.stage is not Stage.QUIT
        ):
            a.outcome, a.failed_stage = "connection lost", self.stage


def _attempt(
    address: tuple[str, int],
    number: int,
    started: float,
    sender: bytes,
    recipients: Sequence[bytes],
    message: bytes,
    policy: RetryPolicy,
    timeout: float,
    source: str | None = None,
    sim_delays: dict[str, float] | None = None,
) -> Attempt:
    a = Attempt(number, started)
    t0 = time.perf_counter()
    wire = run = None
    if sim_delays is not None and source is not None:
        sim_delays[source] = 0.0  # this attempt's tarpit tally starts at nothing
    try:
        wire = _Wire(address, timeout, source, sim_delays)
        run = _Attempting(a, wire)
        run.transaction(sender, recipients, message)
        if a.outcome != "delivered":
            run.judge()
            if policy.rset_after_reject and a.failed_stage not in (Stage.CONNECT, Stage.HELO):
                run.step(Stage.RSET, b"RSET\r\n")
        run.step(Stage.QUIT, b"QUIT\r\n")
    except _Lost as exc:
        if run is None:
            a.codes[Stage.CONNECT] = None
            a.failed_stage = Stage.CONNECT
        else:
            run.lost(exc)
    finally:
        if wire is not None:
            wire.close()
            a.simulated = wire.simulated
        a.latency = time.perf_counter() - t0 + a.simulated
    return a


def _source(i: int) -> str:
    """Trial ``i``'s own loopback address, 127.1.0.1 upwards (all of 127/8 is loopback).

    One address per trial keeps greylisting's client+sender+recipient triplet
    stable across its attempts, and seeds the server's draws per client, so
    overlapping trials give the same results every run.
    """
    return f"127.{1 + (i // 64516) % 250}.{(i // 254) % 254}.{1 + i % 254}"


def _one_trial(
    i: int,
    address: tuple[str, int],
    policy: RetryPolicy,
    engine: FaultEngine,
    rcpts: Sequence[bytes],
    message: bytes,
    timeout: float,
    sim_delays: dict[str, float] | None = None,
    cancel: Any = None,
) -> Trial:
    sender = f"trial{i + 1}@example.org"
    sender_b, source = sender.encode(), _source(i)
    attempts: list[Attempt] = []
    now = 0.0
    try:
        for number in range(1, policy.max_attempts + 1):
            if cancel is not None and cancel.is_set():
                raise TrialsCancelled("cancelled")
            engine.simulate_time(sender, now)  # greylisting sees the simulated clock
            a = _attempt(
                address, number, now, sender_b, rcpts, message, policy, timeout, source, sim_delays
            )
            attempts.append(a)
            now += a.latency
            if a.outcome == "delivered" or not policy.retries(a.outcome):
                break
            if number < policy.max_attempts:
                now += policy.wait(number)
    finally:
        engine.simulate_time(sender, None)
        if sim_delays is not None:
            sim_delays.pop(source, None)
    return Trial(i + 1, attempts, attempts[-1].outcome, now)


def run_trials(
    server: Any,
    n: int = 100,
    *,
    retry: str | RetryPolicy = "mta",
    seed: int | None = None,
    faults: str | Fault | Sequence[str | Fault] | None = None,
    recipients: int = 1,
    timeout: float = 2.0,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    simulate_delays: bool = False,
    cancel: Any = None,
) -> TrialResults:
    """Run ``n`` real dialogues against ``server`` (with its faults) under a retry policy.

    ``faults``: spec strings or Fault objects to install first (replacing the
    server's rules); ``seed`` restarts the fault engine's random sequence so the
    same seed gives the same results; ``workers`` clients run at once (each
    trial from its own 127.x.y.z address); ``progress(done, total)`` is called
    now and then.  ``simulate_delays``: count tarpit delays instead of waiting
    for them; ``cancel``: a ``threading.Event`` that stops the run
    (``TrialsCancelled``) between dialogues.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise LabValueError(f"the number of trials must be a whole number of at least 1, not {n!r}")
    if (
        isinstance(recipients, bool)
        or not isinstance(recipients, int)
        or not 1 <= recipients <= 100
    ):
        raise LabValueError(f"recipients must be a whole number from 1 to 100, not {recipients!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise LabValueError(f"workers must be a whole number from 1 to 64, not {workers!r}")
    policy = get_policy(retry)
    server.ensure_running()  # stopped by stop_all() or .stop()? start it again, and say so
    engine = server.faults
    if faults is not None:
        engine.set(*([faults] if isinstance(faults, (str, Fault)) else list(faults)))
    engine.reseed(seed if seed is not None else server.seed)
    address = server.address
    domain = next(iter(server.policy.mydestination), server.hostname).encode()
    rcpts = [b"user%d@" % i + domain for i in range(1, recipients + 1)]
    message = (
        b"Subject: trial\r\nFrom: <trials@example.org>\r\n\r\nOne of many trial messages.\r\n.\r\n"
    )
    results: list[Trial | None] = [None] * n
    t0 = time.perf_counter()
    step = max(1, n // 50)
    sim_delays = engine._sim_delays if simulate_delays else None
    if progress is not None:
        progress(0, n)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {
            pool.submit(
                _one_trial, i, address, policy, engine, rcpts, message, timeout, sim_delays, cancel
            ): i
            for i in range(n)
        }
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()  # raises TrialsCancelled once cancelled
            if progress is not None and (done % step == 0 or done == n):
                progress(done, n)
    finally:
        # Cancelled (or failed): drop the trials not started; the running ones end
        # at their next attempt, so the next run starts from a quiet server.
        pool.shutdown(wait=True, cancel_futures=True)
    finished = [t for t in results if t is not None]
    return TrialResults(
        finished, policy, engine.seed, [r.name for r in engine.rules], time.perf_counter() - t0
    )
