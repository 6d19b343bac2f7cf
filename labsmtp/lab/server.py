"""The lab server's connections: asyncio at the edge, the protocol session inside.

Theory of operation.  ``LabServer`` (``labserver.py``) runs an asyncio loop
on a thread of its own and listens.  Every accepted connection gets a
``Connection``: an ``asyncio.Protocol`` that feeds the client's bytes to a
sans-IO ``Session`` (``protocol/session.py``) and acts on what the session
decides.  It writes replies, records both directions in the ``Transcript``,
stores accepted messages in the ``Mailbox`` before their 250 goes out,
switches to TLS after STARTTLS (``loop.start_tls``), and at each fault point
lets the ``FaultEngine`` answer instead (``Connection`` is the ``faults.Link``
the rules act through).  No rule of the dialogue lives here, and neither do
the limits (``limits.py``: places, the idle timer) nor the recording
(``transcript.Recorder``).

What one running server's connections share is a ``listening.Site``; its
``admission`` is the one hook that may refuse a connection before its greeting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..protocol.events import (
    Answer,
    Authenticated,
    AuthFailed,
    Event,
    Greeted,
    HangUp,
    MessageAccepted,
    Note,
    Pending,
    StateChanged,
    Turn,
)
from ..protocol.replies import Reply, reply_from_lines
from ..protocol.session import Session
from .faults import FaultContext, SessionFaults
from .limits import REFUSALS, IdleTimer
from .mailbox import StoredMessage
from .tls import summary, tls_info
from .transcript import Recorder, SessionInfo

if TYPE_CHECKING:
    from .listening import Site


class Connection(asyncio.Protocol):
    """One client connection: bytes to the session, its decisions to the wire."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.transport: asyncio.Transport | None = None
        self._closing = False
        self._closed_by_client = False
        self._eof = False
        self._wakeup: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._pending: Pending | None = None
        self._rate = 0  # bytes per second on a slowed link (0: full speed)
        self._slow = bytearray()
        self._slow_handle: asyncio.TimerHandle | None = None

    # --- asyncio's side ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, site = transport, self.site
        self.loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        ip, port = transport.get_extra_info("peername")[:2]
        self.ip, self.port, self.client = ip, port, f"{ip}:{port}"
        setup = site.setup()
        self.setup, self.idle = setup, setup.policy.idle_timeout
        self.idle_timer = IdleTimer(self.loop, self.idle, self._idle)
        ssl_object = transport.get_extra_info("ssl_object")
        self.session = Session(setup, ip, tls=ssl_object is not None, tls_info=tls_info(ssl_object))
        self.sid = site.new_session_id()
        self.info = SessionInfo(
            self.sid, self.client, time.time(), states=[self.session.state.value]
        )
        site.transcript.open_session(self.info)
        self.pen = Recorder(site.transcript, site.listeners, self.sid, self.client)
        site.active.add(self)
        self.fault_state: SessionFaults = site.faults.open_session(ip)
        self.pen.note(f"connection from {self.client}")
        if self.session.tls:
            self.pen.note(f"implicit TLS (RFC 8314): {self._tls_summary()}")
        if setup.mode == "open-relay":
            self.pen.note(
                "WARNING: this lab server is a deliberately misconfigured OPEN RELAY: "
                "it accepts mail for any domain from anyone"
            )
        self.idle_timer.touch()
        self.task = self.loop.create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self.session.receive(data)
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return not self.session.tls  # half-open: the replies still go out (TLS can't)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.info.ended is None:
            self.info.ended = time.time()
            self.site.active.discard(self)
            self.site.places.leave(self)
            by_server = self._closing and not self._closed_by_client
            self.pen.note(
                "server closed the connection" if by_server else "client closed the connection"
            )
            self._apply(self.session.closed())
        self._closing = True
        self.transport = None
        self.idle_timer.cancel()
        if self._slow_handle is not None:
            self._slow_handle.cancel()
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    @property
    def closing(self) -> bool:
        """True once this connection is closing or gone."""
        return self._closing

    # --- the dialogue ----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._dialogue()
        except asyncio.CancelledError:
            self._close()  # the loop is stopping
            raise
        except ConnectionError:
            self._close()
        except Exception as exc:  # never a silent hang-up, never a traceback in a cell
            self.site.internal_errors.append(repr(exc))
            self._apply(self.session.internal_error())
            self._close()

    async def _dialogue(self) -> None:
        session, site = self.session, self.site
        check = site.admission()
        why = check(self.ip, self.port) if check is not None else None
        if why:
            # 554: the session waits for QUIT and answers the rest 503 (RFC 5321 §3.1)
            self.pen.note(f"connection refused: {why}")
            self._apply(session.refuse("connection_refused", reason=why))
        elif await self._admitted():
            await self._at(session.connect())
        else:
            return
        while not self._closing:
            turn = session.next_turn()
            if turn is not None:
                await self._take(turn)
            elif session.tls_pending:
                await self._start_tls()
            elif self._eof:
                self._record(session.eof())
                self._closed_by_client = True
                self._close()
            else:
                await self._more()

    async def _admitted(self) -> bool:
        """A place among the sessions served, or the refusal said (421 closes, §3.8)."""
        verdict = await self.site.places.enter(self, self.pen.note)
        if verdict in REFUSALS:
            self._apply(self.session.refuse(REFUSALS[verdict]))
        return verdict == "ok"  # anything else: refused, or gone while it waited

    async def _take(self, turn: Turn) -> None:
        self.idle_timer.touch()
        self._record(turn)
        if turn.pending is not None and not self._closing:
            await self._at(turn.pending)
        if self._drained is not None:
            await self._drained  # the client reads slower than we write: wait

    async def _at(self, pending: Pending) -> None:
        """A fault point: the engine's rules for this stage, or straight to the session."""
        engine, session = self.site.faults, self.session
        count, rules = engine.at(self.fault_state, pending.stage)
        self._pending = pending
        if not rules:
            self._apply(session.respond(pending))
            return

        async def normal() -> Reply | None:
            return self._apply(session.respond(pending))

        ctx = FaultContext(
            engine,
            self,
            self.fault_state,
            pending.stage,
            count,
            pending.argument,
            self.sid,
            self.ip,
            self.setup.persona,
            session.sender,
            session.recipients,
        )
        await engine.run(ctx, rules, normal)

    async def _more(self) -> None:
        """Wait until the client sends more (or goes away)."""
        self._wakeup = self.loop.create_future()
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _start_tls(self) -> None:
        """STARTTLS said 220: the socket's bytes now go through TLS (RFC 3207)."""
        assert self.transport is not None
        try:
            self.transport = await self.loop.start_tls(
                self.transport,
                self,
                self.site.tls_context(),
                server_side=True,
                ssl_handshake_timeout=min(60.0, self.idle),
            )
        except OSError as exc:  # ssl.SSLError, a reset, the handshake's timeout
            # A client that rejects our certificate aborts the handshake; that is a
            # lesson, not a server error.  The TLS layer never told us we were
            # connected, so it will not say the connection is gone: we do.
            self.pen.note(f"TLS handshake failed: {exc}")
            self._apply(self.session.hang_up())
            self.connection_lost(None)
            return
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        self._apply(self.session.tls_started(tls_info(ssl_object)))
        self.pen.note(
            f"TLS started: {self._tls_summary()}; the session starts over (RFC 3207 §4.2)"
        )
        self.idle_timer.touch()

    # --- acting on the session's events -------------------------------------------

    def _record(self, turn: Turn) -> None:
        for seen in turn.received:
            self.pen.client_line(seen, self.session.tls)
        self._apply(turn.events)

    def _apply(self, events: Sequence[Event]) -> Reply | None:
        """Do what the session decided, in order; the last reply sent (if any)."""
        reply = None
        for ev in events:
            if isinstance(ev, Answer):
                reply = self._send(ev.lines, ev.command)
            elif isinstance(ev, StateChanged):
                self.info.states.append(ev.state.value)
            elif isinstance(ev, Greeted):
                self.info.helo = ev.name
            elif isinstance(ev, MessageAccepted):
                stored = StoredMessage.accepted(ev, self.sid)
                self.site.mailbox.add(stored)
                self.info.messages += 1
                for text in self.site.delivered(stored):  # NOTIFY=SUCCESS (RFC 3461)
                    self.pen.note(text)
            elif isinstance(ev, Authenticated):
                self.pen.note(f"authenticated as {ev.user!r} with {ev.mechanism}")
            elif isinstance(ev, AuthFailed):
                self.pen.note(f"AUTH {ev.mechanism} failed for user {ev.user!r}")
            elif isinstance(ev, Note):
                self.pen.note(ev.text)
            elif isinstance(ev, HangUp):
                self._close()
        return reply

    def _send(
        self, lines: Sequence[str], command: str | None, injected: str | None = None
    ) -> Reply:
        listed = list(lines)
        text = "\r\n".join(listed) + "\r\n" if listed else ""
        raw = text.encode("utf-8", "surrogateescape")
        reply = reply_from_lines(listed, raw, command, injected)
        self.send_raw(raw, reply, injected, answers=False)
        return reply

    def _close(self) -> None:
        self._closing = True
        self.idle_timer.cancel()  # a closing session is not idle (it never reopens)
        if self.transport is not None:
            self.transport.close()

    # --- the link: what fault rules may do ------------------------------------------

    def render(self, key: str, **fields: object) -> list[str]:
        return self.session.render(key, **fields)

    def send(self, lines: Sequence[str], command: str, injected: str | None) -> Reply:
        reply = self._send(lines, command, injected)
        if self._pending is not None:
            self._apply(self.session.answered(self._pending, reply.code))
        return reply

    def send_raw(self, raw: bytes, reply: Reply, injected: str | None, answers: bool) -> None:
        self.pen.server_line(raw, reply, self.session.tls, injected)  # before the client reads it
        self._write(raw)
        if answers and self._pending is not None:
            self._apply(self.session.answered(self._pending, reply.code))

    def hang_up(self) -> None:
        self._apply(self.session.hang_up())
        self._close()

    def slow_down(self, bytes_per_second: int) -> None:
        self._rate = bytes_per_second

    def hide_keywords(self, keywords: frozenset[str]) -> None:
        self.session.hide_keywords(keywords)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def read_a_little(self, timeout: float) -> None:
        if not self._eof and not self._closing:
            try:
                await asyncio.wait_for(self._more(), timeout)
            except asyncio.TimeoutError:
                pass

    def note(self, text: str) -> None:
        self.pen.note(text)

    # --- the wire: writing, a slowed link, the idle timeout -----------------------------

    def _write(self, raw: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if not self._rate:
            t.write(raw)
            return
        self._slow += raw
        if self._slow_handle is None:
            self._drip()

    def _drip(self) -> None:
        # 20 ticks a second; at least one byte per tick so slow=1 still moves.
        t = self.transport
        if t is None or t.is_closing() or not self._slow:
            self._slow_handle = None
            return
        n = max(1, self._rate // 20)
        chunk, self._slow[:n] = bytes(self._slow[:n]), b""
        t.write(chunk)
        self._slow_handle = self.loop.call_later(n / self._rate, self._drip)

    def _idle(self) -> None:
        if not self._closing:
            # RFC 5321 §4.5.3.2: the server may close an idle session, with 421 first.
            self._apply(self.session.timed_out())
            self._close()

    def shutdown(self) -> None:
        """The server stops under this session: 421, then close (§3.8)."""
        if not self._closing:
            self._apply(self.session.shutting_down())
        self._close()

    def _tls_summary(self) -> str:
        return summary(self.transport.get_extra_info("ssl_object") if self.transport else None)
