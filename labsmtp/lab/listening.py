"""Where a running lab server lives: its loop thread, its sockets, what its connections share.

Theory of operation.  Every ``LabServer.start()`` gets a fresh ``LoopThread``
(an asyncio loop on a daemon thread of its own: a notebook's thread runs a loop
already) and binds its listening sockets there with ``listen``; each accepted
connection is a ``server.Connection`` around the one ``Site`` the server
shares with its connections.  A taken port fails at once, with advice in a
notebook's terms (``port_error``).  ``goodbye`` closes the listeners, says 421
to the live sessions and drops their sockets, so ``stop()`` never waits on a
client that does not read.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import PortInUseError
from ..protocol.session import Setup
from .faults import FaultEngine
from .limits import Admission, Places
from .mailbox import Mailbox, StoredMessage
from .server import Connection
from .transcript import Line, Transcript

T = TypeVar("T")


@dataclass
class Site:
    """What the connections of one running server share (LabServer builds it)."""

    transcript: Transcript
    mailbox: Mailbox
    faults: FaultEngine
    setup: Callable[[], Setup]  # the server's settings now, for a new connection
    tls_context: Callable[[], ssl.SSLContext]
    admission: Callable[[], Admission | None] = lambda: None
    # After a message is stored: what final delivery does next (a "delivered" DSN);
    # returns notes for the transcript.
    delivered: Callable[[StoredMessage], list[str]] = lambda message: []
    listeners: list[Callable[[Line], None]] = field(default_factory=list)
    active: set[Connection] = field(default_factory=set)  # every open connection
    places: Places = field(default_factory=Places)  # the admitted: the limits count these
    internal_errors: list[str] = field(default_factory=list)
    _ids: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_session_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids


class LoopThread:
    """An asyncio event loop on a daemon thread: where a running server lives."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=f"labsmtp {name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            # Cancel what is left (connections waiting for a client) and close the
            # loop here, on its own thread: a notebook's thread runs a loop already.
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def port_is_free(host: str, port: int) -> bool:
    """True if a listener could bind ``host:port`` now (SO_REUSEADDR, as asyncio does)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_error(host: str, port: int, exc: OSError) -> PortInUseError:
    """What a failed bind means, and what to do about it (in a notebook's terms; the
    command line words its own advice from ``reason``)."""
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"port {port} on {host} is already in use by another program or server. "
            f"Leave out port= to let the lab pick a free one, choose another port, "
            f"or stop the other server (labsmtp.stop_all() stops every lab server "
            f"in this notebook).",
            host=host,
            port=port,
            reason="in use",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PortInUseError(
            f"not allowed to listen on port {port} (ports below 1024 need root). "
            f"Use a port such as 2525, or leave out port= to let the lab pick one.",
            host=host,
            port=port,
            reason="not allowed",
        )
    return PortInUseError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}", host=host, port=port
    )


async def listen(
    site: Site,
    host: str,
    ports: Sequence[tuple[int, ssl.SSLContext | None]],
    handshake_timeout: float,
) -> list[asyncio.Server]:
    """Listen on each ``(port, ssl context or None)`` in order (on the running loop);
    a failed bind closes those already bound and raises ``PortInUseError``."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    for port, context in ports:
        try:
            server = await loop.create_server(
                lambda: Connection(site),
                host,
                port,
                reuse_address=True,
                ssl=context,
                ssl_handshake_timeout=handshake_timeout if context else None,
            )
        except OSError as exc:
            for s in servers:
                s.close()
            raise port_error(host, port, exc) from None
        servers.append(server)
    return servers


async def goodbye(servers: Sequence[asyncio.Server], site: Site) -> None:
    """Close the listeners, say 421 to every live session (§3.8), then drop their sockets."""
    for server in servers:
        server.close()  # the listening sockets close at once
    live = list(site.active)
    for conn in live:
        conn.shutdown()
    await asyncio.sleep(0.01)  # let the 421s out
    for conn in live:
        if conn.transport is not None:
            conn.transport.abort()  # a client that never reads must not keep its socket
    await asyncio.sleep(0)  # connection_lost runs
