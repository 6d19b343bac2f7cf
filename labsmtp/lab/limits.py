"""Who is served, and for how long: the connection limits and the idle timeout.

A server at its limit answers 421 and closes (RFC 5321 §3.8), or, as Postfix's
master(8) and OpenSMTPD do, leaves the new client waiting, unanswered, until a
place is free.  Only admitted sessions count: a refused connection never takes
a place, so a burst gets every place there is (issue 11; before, a burst of 200
against a limit of 100 got about 74 served).  Checked in the programs' order:
the server's limit first (Postfix's process limit, Exim's smtp_accept_max),
then the client's (smtpd_client_connection_count_limit, smtp_accept_max_per_host).
A session that says nothing for the policy's ``idle_timeout`` is closed with 421
(RFC 5321 §4.5.3.2, ``IdleTimer``).  Everything here runs on the server's event
loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ..protocol.session import Setup

# Asked once per accepted connection with (client IP, client port): None admits
# it, a reason refuses it (the persona's connection_refused reply, and the reason
# in the transcript).  Asked before the limits: a refused client takes no place.
Admission = Callable[[str, int], "str | None"]

# The persona's reply key for each refusal by the limits (421 closes, §3.8).
REFUSALS = {"full": "too_many_connections", "client": "too_many_from_client"}


class Client(Protocol):
    """What the limits read of a connection."""

    ip: str
    setup: Setup

    @property
    def closing(self) -> bool: ...


class Places:
    """The sessions being served, and the clients waiting for a place."""

    def __init__(self) -> None:
        self.served: set[Client] = set()
        self._waiting: list[asyncio.Future[None]] = []

    def admit(self, conn: Client) -> str:
        """Take ``conn`` in if the limits leave room: "ok", or why not: "full"
        (max_connections) or "client" (max_connections_per_client)."""
        policy, persona = conn.setup.policy, conn.setup.persona
        if len(self.served) >= policy.max_connections:
            return "full"
        per = policy.max_connections_per_client
        spared = persona.per_client_limit_spares_trusted and policy.is_trusted(conn.ip)
        if per and not spared and sum(1 for c in self.served if c.ip == conn.ip) >= per:
            return "client"
        self.served.add(conn)
        return "ok"

    async def enter(self, conn: Client, note: Callable[[str], None]) -> str:
        """A place for ``conn``: "ok", or why not ("full", "client", or "gone" if
        it left while it waited).  A persona that ``waits_when_full`` leaves the
        client waiting, unanswered, for a free place (``note`` says so)."""
        verdict = self.admit(conn)
        if verdict == "full" and conn.setup.persona.waits_when_full:
            note("the server is full: the client waits, unanswered, for a free place")
            verdict = await self.wait_for_room(conn)
        return verdict

    async def wait_for_room(self, conn: Client) -> str:
        """Wait until ``conn`` is let in ("ok"), refused per client ("client"), or
        has gone while it waited ("gone")."""
        loop = asyncio.get_running_loop()
        while True:
            if conn.closing:
                return "gone"
            verdict = self.admit(conn)
            if verdict != "full":
                return verdict
            waiter = loop.create_future()
            self._waiting.append(waiter)
            await waiter

    def leave(self, conn: Client) -> None:
        """``conn`` is gone: its place is free, and whoever waits for one may try."""
        self.served.discard(conn)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)


def _nothing() -> None:
    pass


class IdleTimer:
    """Calls ``expired`` once ``seconds`` pass without a ``touch()``.

    One timer per session that re-arms itself when it fires early costs far
    less than a new timer for every line."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, expired: Callable[[], None]
    ) -> None:
        self.loop, self.seconds, self.expired = loop, seconds, expired
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0

    def touch(self) -> None:
        """Something happened: the idle time starts over."""
        self._last = self.loop.time()
        if self._handle is None:
            self._handle = self.loop.call_later(self.seconds, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            # touch() never re-arms a cancelled timer, so ``expired`` is never called
            # now: let go of it (a bound method of the connection would keep a cycle
            # that only the garbage collector frees, once per connection).
            self.expired = _nothing

    def _fire(self) -> None:
        idle = self.loop.time() - self._last
        if idle < self.seconds:
            self._handle = self.loop.call_later(self.seconds - idle, self._fire)
            return
        self._handle = None
        self.expired()
