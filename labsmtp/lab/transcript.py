"""Transcripts: every line of every dialogue, in both directions, bounded.

The server thread appends (each connection through its ``Recorder``, which
also hands every line to the live listeners, such as ``serve``'s printer);
the notebook thread reads snapshots.  A deque with ``maxlen`` keeps memory
bounded in a long workshop; ``dropped`` says how many of the oldest lines
fell off, so nothing disappears silently.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..protocol.events import ClientLine
from ..protocol.frozen import fast_init
from ..protocol.replies import Reply

CLIENT, SERVER, EVENT = "client", "server", "event"


@fast_init
@dataclass(frozen=True, slots=True)
class Line:
    """One line (or one whole reply) of a dialogue, as it crossed the wire."""

    session: int
    time: float
    direction: str  # "client", "server" or "event" (connect, close, elided text)
    raw: bytes
    client: str  # "127.0.0.2:40112"
    command: str | None = None  # client: the verb sent; server: the command answered
    reply: Reply | None = None  # server lines: the parsed reply
    tls: bool = False  # travelled inside TLS
    injected: str | None = None  # the fault rule that made this reply, if any
    note: str = ""

    @property
    def text(self) -> str:
        if self.direction == EVENT:
            return self.note
        return self.raw.decode("utf-8", "replace").rstrip("\r\n")

    @property
    def marker(self) -> str:
        """swaks-style direction marker: -> sent, <- received, <** error, ~> <~ inside TLS."""
        if self.direction == EVENT:
            return "==="
        if self.direction == CLIENT:
            return "~>" if self.tls else "->"
        bad = self.reply is not None and self.reply.klass in ("4xx", "5xx", "none")
        return ("<~" if self.tls else "<-") + ("*" if bad and self.tls else "**" if bad else "")

    def as_dict(self) -> dict:
        d = {
            "session": self.session,
            "time": round(self.time, 6),
            "direction": self.direction,
            "client": self.client,
            "text": self.text,
            "command": self.command,
            "tls": self.tls,
        }
        if self.reply is not None:
            d.update(
                code=self.reply.code,
                enhanced=self.reply.enhanced,
                legal=self.reply.legal,
                elapsed=self.reply.elapsed,
            )
        if self.injected:
            d["injected"] = self.injected
        if self.note and self.direction != EVENT:
            d["note"] = self.note
        return d


@dataclass
class SessionInfo:
    """What the server knows about one connection."""

    id: int
    client: str
    started: float
    ended: float | None = None
    helo: str | None = None
    states: list[str] = field(default_factory=list)  # the path through the state table
    messages: int = 0


class LineList(list):
    """A list of ``Line`` that shows itself as a readable table in a notebook."""

    def to_text(self) -> str:
        return "\n".join(_text_line(ln) for ln in self)

    def replies(self) -> list[Reply]:
        return [ln.reply for ln in self if ln.reply is not None]

    def _repr_html_(self) -> str:
        from ..render import transcript_html

        return transcript_html(self)

    def __str__(self) -> str:  # print(transcript) gives the swaks-style text
        return self.to_text()


def _text_line(ln: Line) -> str:
    out = []
    for part in ln.text.split("\n") or [""]:
        out.append(f"{ln.marker:>4} {part}")
    if ln.injected:
        out[-1] += f"   [injected by {ln.injected}]"
    return "\n".join(out)


class Transcript:
    """Every line of every session the server saw, newest kept, oldest dropped."""

    def __init__(self, max_lines: int = 50_000, max_sessions: int = 10_000):
        self.max_lines, self.max_sessions = max_lines, max_sessions
        self._lines: deque[Line] = deque(maxlen=max_lines)
        self._sessions: OrderedDict[int, SessionInfo] = OrderedDict()
        self._lock = threading.Lock()
        self._appended = 0
        self._sessions_dropped = 0

    # --- written by the server thread ----------------------------------

    def add(self, line: Line) -> None:
        with self._lock:
            self._lines.append(line)
            self._appended += 1

    def open_session(self, info: SessionInfo) -> None:
        with self._lock:
            self._sessions[info.id] = info
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
                self._sessions_dropped += 1

    # --- read by learners ----------------------------------------------

    @property
    def dropped(self) -> int:
        """How many of the oldest lines were dropped to stay within ``max_lines``."""
        with self._lock:
            return self._appended - len(self._lines)

    def lines(self, session: int | None = None) -> LineList:
        """All kept lines, or one session's."""
        with self._lock:
            snap = list(self._lines)
        if session is not None:
            snap = [ln for ln in snap if ln.session == session]
        return LineList(snap)

    def sessions(self) -> list[SessionInfo]:
        """Every kept session, oldest first."""
        with self._lock:
            return list(self._sessions.values())

    def session(self, session_id: int | None = None) -> LineList:
        """One session's lines; the newest session if no id is given."""
        if session_id is None:
            with self._lock:
                if not self._sessions:
                    return LineList()
                session_id = next(reversed(self._sessions))
        return self.lines(session_id)

    def last(self) -> LineList:
        """The newest session's lines."""
        return self.session(None)

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._sessions.clear()
            self._appended = 0
            self._sessions_dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._lines)

    def to_text(self, session: int | None = None) -> str:
        """The transcript as text with swaks-style markers (-> sent, <- received)."""
        return self.lines(session).to_text()

    def to_jsonl(self, session: int | None = None) -> str:
        """The transcript as JSON lines, one object per line."""
        return "".join(json.dumps(ln.as_dict()) + "\n" for ln in self.lines(session))

    def save(self, path, session: int | None = None) -> str:
        """Write the transcript to ``path``: .jsonl gives JSON lines, anything else text."""
        path = str(path)
        text = self.to_jsonl(session) if path.endswith(".jsonl") else self.to_text(session)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") or not text else text + "\n")
        return path

    def _repr_html_(self) -> str:
        from ..render import transcript_html

        return transcript_html(self.lines(), dropped=self.dropped)


class Recorder:
    """One connection's pen: its lines into the transcript, and to every listener."""

    def __init__(
        self,
        transcript: Transcript,
        listeners: list[Callable[[Line], None]],
        session: int,
        client: str,
    ) -> None:
        self.transcript, self.listeners = transcript, listeners
        self.session, self.client = session, client

    def client_line(self, seen: ClientLine, tls: bool) -> None:
        """A line the client sent (``seen.note``: what the session made of it)."""
        at = time.time()
        self.emit(
            Line(
                self.session,
                at,
                CLIENT,
                seen.raw,
                self.client,
                seen.command,
                tls=tls,
                note=seen.note,
            )
        )

    def server_line(self, raw: bytes, reply: Reply, tls: bool, injected: str | None) -> None:
        """A reply the server is about to write (recorded first: a client that has
        read a reply finds it in the transcript)."""
        now = time.time()
        self.emit(
            Line(self.session, now, SERVER, raw, self.client, reply.command, reply, tls, injected)
        )

    def note(self, text: str) -> None:
        """An event of the connection (connect, TLS, a fault, a close), in words."""
        self.emit(Line(self.session, time.time(), EVENT, b"", self.client, note=text))

    def emit(self, line: Line) -> None:
        self.transcript.add(line)
        for listener in self.listeners:
            try:
                listener(line)
            except Exception:  # a broken printer must not break the server
                pass
