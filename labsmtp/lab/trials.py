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

The client here is a tight raw-socket loop, not ``StepClient``: it records
only the reply codes, which keeps a thousand trials within a few seconds.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from ..errors import LabValueError
from ..protocol.replies import reply_is_complete

OUTCOMES = ("delivered", "deferred", "bounced", "connection lost")
TRIAL_STAGES = ("connect", "helo", "mail", "rcpt", "data", "dot", "rset", "quit")


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
    codes: dict[str, int | None] = field(default_factory=dict)
    outcome: str = "connection lost"
    failed_stage: str | None = None
    latency: float = 0.0  # real seconds the dialogue took


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

    def by_stage_code(self) -> dict[str, dict[str, int]]:
        """Replies seen in every attempt: {stage: {code: count}}; 'none' for no reply."""
        out: dict[str, Counter] = {s: Counter() for s in TRIAL_STAGES}
        for t in self.trials:
            for a in t.attempts:
                for stage, code in a.codes.items():
                    out[stage][str(code) if code is not None else "none"] += 1
        return {s: dict(sorted(c.items())) for s, c in out.items() if c}

    def by_attempt(self) -> dict[int, dict[str, int]]:
        """For attempt number k: how many attempts ended in each outcome."""
        out: dict[int, Counter] = {}
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
            lines.append(f"  {stage:<8} " + "  ".join(f"{c}x{k}" for c, k in codes.items()))
        lines.append("attempts:")
        for k, outs in self.by_attempt().items():
            lines.append(f"  #{k}: " + ", ".join(f"{o} {v}" for o, v in outs.items() if v))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.summary())}</pre>"


class _Lost(Exception):
    """The connection closed, timed out or sent something that is not a reply."""


class _Wire:
    """A bare SMTP client socket: send a line, read one reply's code."""

    def __init__(self, address, timeout: float, source: str | None = None):
        try:
            self.sock = socket.create_connection(
                address, timeout=timeout, source_address=(source, 0) if source else None
            )
        except OSError as exc:
            raise _Lost(str(exc)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self) -> int:
        while True:
            n = reply_is_complete(self.buf)
            if n:
                raw, self.buf = self.buf[:n], self.buf[n:]
                last = raw.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
                if len(last) < 3 or not last[:3].isdigit() or not b"200" <= last[:3] <= b"599":
                    raise _Lost("malformed reply")
                return int(last[:3])
            try:
                chunk = self.sock.recv(65536)
            except OSError as exc:
                raise _Lost(str(exc)) from None
            if not chunk:
                raise _Lost("closed")
            self.buf += chunk

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


def _attempt(
    address, number, started, sender, recipients, message, policy, timeout, source=None
) -> Attempt:
    a = Attempt(number, started)
    codes = a.codes
    t0 = time.perf_counter()
    stage = "connect"
    wire = None
    try:
        wire = _Wire(address, timeout, source)
        steps = [
            ("connect", None),
            ("helo", b"EHLO trials.example.org\r\n"),
            ("mail", b"MAIL FROM:<" + sender + b">\r\n"),
        ]
        steps += [("rcpt", b"RCPT TO:<" + r + b">\r\n") for r in recipients]
        steps += [("data", b"DATA\r\n"), ("dot", message)]
        accepted = 0
        for stage, line in steps:
            if stage == "data" and not accepted:
                break  # no recipient accepted: DATA would only earn a 503 (§3.3)
            code = wire.reply() if line is None else wire.send(line)
            codes[stage] = code
            if stage == "rcpt":
                accepted += code < 400
                continue  # §3.3: one refused recipient does not end the transaction
            if code >= 400 or (stage == "data" and code != 354):
                break
        else:
            a.outcome = "delivered"
        if a.outcome != "delivered":
            failed = [
                s
                for s in ("connect", "helo", "mail", "rcpt", "data", "dot")
                if codes.get(s) is not None and codes[s] >= 400
            ]
            a.failed_stage = failed[0] if failed else stage
            first = codes[a.failed_stage]
            a.outcome = "deferred" if first < 500 else "bounced"
            if first == 421:
                raise _Lost("421: the server closed the channel")
            if policy.rset_after_reject and a.failed_stage not in ("connect", "helo"):
                stage = "rset"
                codes["rset"] = wire.send(b"RSET\r\n")
        stage = "quit"
        codes["quit"] = wire.send(b"QUIT\r\n")
    except _Lost as exc:
        codes.setdefault(stage, None)
        if a.outcome not in ("deferred", "bounced") or str(exc).startswith("421"):
            # A 421 is a deferral (§3.8: "try again later"); the rest is a lost link.
            if str(exc).startswith("421"):
                a.outcome = "deferred"
            elif a.outcome != "delivered" or stage != "quit":
                a.outcome = "connection lost"
                a.failed_stage = stage
    finally:
        if wire is not None:
            wire.close()
        a.latency = time.perf_counter() - t0
    return a


def _source(i: int) -> str:
    """Trial ``i``'s own loopback address, 127.1.0.1 upwards (all of 127/8 is loopback).

    One address per trial keeps greylisting's client+sender+recipient triplet
    stable across its attempts, and seeds the server's draws per client, so
    overlapping trials give the same results every run.
    """
    return f"127.{1 + (i // 64516) % 250}.{(i // 254) % 254}.{1 + i % 254}"


def _one_trial(i, address, policy, engine, rcpts, message, timeout) -> Trial:
    sender = f"trial{i + 1}@example.org"
    sender_b, source = sender.encode(), _source(i)
    attempts: list[Attempt] = []
    now = 0.0
    for number in range(1, policy.max_attempts + 1):
        engine._set_sim_time(sender, now)  # greylisting sees the simulated clock
        a = _attempt(address, number, now, sender_b, rcpts, message, policy, timeout, source)
        attempts.append(a)
        now += a.latency
        if a.outcome == "delivered" or not policy.retries(a.outcome):
            break
        if number < policy.max_attempts:
            now += policy.wait(number)
    engine._set_sim_time(sender, None)
    return Trial(i + 1, attempts, attempts[-1].outcome, now)


def run_trials(
    server,
    n: int = 100,
    *,
    retry: str | RetryPolicy = "mta",
    seed: int | None = None,
    faults=None,
    recipients: int = 1,
    timeout: float = 2.0,
    workers: int = 2,
    progress=None,
) -> TrialResults:
    """Run ``n`` real dialogues against ``server`` (with its faults) under a retry policy.

    ``faults``: spec strings or Fault objects to install first (replacing the
    server's rules); ``seed`` restarts the fault engine's random sequence so the
    same seed gives the same results; ``workers`` clients run at once (each
    trial from its own 127.x.y.z address); ``progress(done, total)`` is called
    now and then.
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
    if not server.running:
        raise LabValueError("the server is not running: call server.start() first")
    engine = server.faults
    if faults is not None:
        engine.set(*([faults] if isinstance(faults, str) else list(faults)))
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
    if progress is not None:
        progress(0, n)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_one_trial, i, address, policy, engine, rcpts, message, timeout): i
            for i in range(n)
        }
        for done, fut in enumerate(as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if progress is not None and (done % step == 0 or done == n):
                progress(done, n)
    return TrialResults(
        results, policy, engine.seed, [r.name for r in engine.rules], time.perf_counter() - t0
    )


run = run_trials  # ``trials.run(server, 200)`` reads well in a lesson
