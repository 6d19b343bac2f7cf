"""Who is served: the connection limits, counted over the sessions being served.

A server at its limit answers 421 and closes (RFC 5321 §3.8), or, as Postfix's
master(8) and OpenSMTPD do, leaves the new client waiting, unanswered, until a
place is free.  Only admitted sessions count: a refused connection never takes
a place, so a burst gets every place there is (issue 11; before, a burst of 200
against a limit of 100 got about 74 served).  Checked in the programs' order:
the server's limit first (Postfix's process limit, Exim's smtp_accept_max),
then the client's (smtpd_client_connection_count_limit, smtp_accept_max_per_host).
Everything here runs on the server's event loop thread.
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
