"""Bytes from the client, cut into lines; message text, counted and un-stuffed.

``LineBuffer`` holds what arrived and hands out one line at a time: a command
line ends at LF (a bare LF is tolerated, as Postfix does), message text at
CRLF only (RFC 5321 §4.1.1.4: only <CRLF>.<CRLF> ends it).  A line longer
than ``READ_LIMIT`` is never kept whole: its first ``READ_LIMIT`` bytes are
kept, the rest counted and dropped, and the buffer reports it as ``TooLong``
once its end arrives (a server that cuts long lines, as Postfix does, reads
the head).

``MessageText`` is what DATA collects between the 354 and the final dot:
the size and line-length limits (§4.5.3.1.6, §4.5.3.1.7), dot-unstuffing
(§4.5.2), and the first lines kept for the transcript.
"""

from __future__ import annotations

from dataclasses import dataclass

READ_LIMIT = 16384  # bytes buffered per line; fits RFC 4954's 12,288-octet AUTH lines
LINES_SHOWN = 200  # message lines recorded per message; the rest are summarised


@dataclass(frozen=True)
class TooLong:
    """A line longer than ``READ_LIMIT``: its size and its first ``READ_LIMIT`` bytes."""

    size: int
    head: bytes = b""


class LineBuffer:
    """The client's bytes not yet read, handed out one line at a time."""

    __slots__ = ("_data", "_pos", "_skipped", "_reported", "_drop", "_head", "limit", "eager")

    def __init__(self, limit: int = READ_LIMIT, eager: bool = False) -> None:
        self._data = b""
        self._pos = 0
        self._skipped = -1  # >= 0: inside an over-long line, this many bytes dropped
        self._reported = False  # that line was already reported (eager)
        self._drop = 0  # bytes still to drop as they arrive (skip)
        self._head = b""  # the first ``limit`` bytes of that line
        self.limit = limit
        self.eager = eager  # report an over-long line at once, not when its end arrives

    def feed(self, data: bytes) -> None:
        if self._drop:
            n = min(self._drop, len(data))
            self._drop -= n
            data = data[n:]
        if self._pos:
            self._data, self._pos = self._data[self._pos :], 0
        self._data += data

    def skip(self, n: int) -> None:
        """Drop the next ``n`` bytes, those here now and those still to come (a
        refused BDAT chunk, RFC 3030 §2: the server reads it anyway)."""
        here = min(n, len(self._data) - self._pos)
        self._pos += here
        self._drop = n - here

    def line(self, end: bytes = b"\n", limit: int | None = None) -> bytes | TooLong | None:
        """The next line with its ending, ``TooLong`` for one over ``limit`` bytes (the
        buffer's own by default), None until more arrive."""
        limit = self.limit if limit is None else limit
        data, pos = self._data, self._pos
        at = data.find(end, pos)
        if self._skipped >= 0:
            if at < 0:
                self._skipped += len(data) - pos
                self._data, self._pos = b"", 0
                return None
            size = self._skipped + at + len(end) - pos
            self._skipped, self._pos = -1, at + len(end)
            if self._reported:  # said already: its end is just dropped
                self._reported = False
                return self.line(end, limit)
            return TooLong(size, self._head)
        if at < 0:
            if len(data) - pos > limit:  # no end in sight: stop keeping it
                self._skipped = len(data) - pos
                self._head = data[pos : pos + limit]
                self._data, self._pos = b"", 0
                if self.eager:
                    self._reported = True
                    return TooLong(self._skipped, self._head)
            return None
        self._pos = at + len(end)
        if at - pos > limit:
            return TooLong(at + len(end) - pos, data[pos : pos + limit])
        return data[pos : self._pos]

    def piece(self, end: bytes, size: int) -> bytes | TooLong | None:
        """Like ``line``, for a reader with a fixed buffer of ``size`` bytes (Exim's
        16,384): a line whose end is not within ``size`` bytes is cut after
        ``size + 1`` bytes (reported as ``TooLong``), and what follows is read as
        further lines.  None until either is complete."""
        data, pos = self._data, self._pos
        at = data.find(end, pos, pos + size + len(end))
        if at >= 0:
            self._pos = at + len(end)
            return data[pos : self._pos]
        if len(data) - pos > size:
            self._pos = pos + size + 1
            return TooLong(size + 1)
        return None

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes as they came, line ends and all (a BDAT chunk, RFC 3030 §2)."""
        data = self._data[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def rest(self) -> bytes:
        """The bytes of an unfinished line (what a closed connection leaves behind)."""
        return self._data[self._pos :]

    def clear(self) -> None:
        """Forget everything buffered (after STARTTLS: RFC 3207 §4.2)."""
        self._data, self._pos, self._skipped, self._head = b"", 0, -1, b""
        self._reported, self._drop = False, 0

    def __bool__(self) -> bool:
        return self._pos < len(self._data) or self._skipped >= 0


class MessageText:
    """One message between DATA's 354 and the final dot, as the server collects it."""

    __slots__ = (
        "size_limit",
        "line_limit",
        "kept",
        "size",
        "too_big",
        "too_long",
        "shown",
        "hidden",
        "hidden_bytes",
        "refused",
    )

    def __init__(self, size_limit: int, line_limit: int) -> None:
        self.size_limit, self.line_limit = size_limit, line_limit
        self.kept: list[bytes] = []
        self.size = 0
        self.too_big = self.too_long = False
        self.shown = self.hidden = self.hidden_bytes = 0
        self.refused: str | None = None  # a grammar's refusal of a line (Grammar.text_line)

    def add(self, line: bytes | TooLong) -> bool:
        """Take one line of text (CRLF included); True if the transcript should show it."""
        if isinstance(line, TooLong):
            self.size += line.size
            self.too_long = True
            self.too_big = self.too_big or self.size > self.size_limit  # as for any line
            self.kept.clear()
            return False
        show = self._show(len(line))
        self.size += len(line)
        stuffed = line.startswith(b".")  # §4.5.3.1.6: the stuffed dot does not count
        if len(line) - stuffed > self.line_limit:
            self.too_long = True
        if self.size > self.size_limit:
            self.too_big = True
        if self.too_big or self.too_long or self.refused is not None:
            self.kept.clear()
        else:
            self.kept.append(line[1:] if stuffed else line)  # §4.5.2 un-stuffing
        return show

    def _show(self, size: int) -> bool:
        """Count one line of ``size`` bytes for the transcript; True if it is shown."""
        show = self.shown < LINES_SHOWN
        if show:
            self.shown += 1
        else:
            self.hidden, self.hidden_bytes = self.hidden + 1, self.hidden_bytes + size
        return show

    def refuse(self, key: str) -> None:
        """Refuse the message after its final dot with reply ``key`` (the first refusal wins)."""
        if self.refused is None:
            self.refused = key
        self.kept.clear()

    @property
    def refusal(self) -> str | None:
        """The reply key refusing this message, or None if it may be stored."""
        if self.refused is not None:
            return self.refused
        if self.too_big:
            return "data_too_big"
        if self.too_long:
            return "text_line_too_long"
        return None

    def content(self) -> bytes:
        return b"".join(self.kept)


def dot_stuff(message: str | bytes | bytearray) -> bytes:
    """The bytes that carry ``message`` after DATA: CRLF line ends, leading dots
    doubled (RFC 5321 §4.5.2), and the final <CRLF>.<CRLF>."""
    if isinstance(message, str):
        message = message.encode("utf-8")
    elif not isinstance(message, (bytes, bytearray)):
        message = bytes(message)  # an email.message.Message's as_bytes()
    text = bytes(message).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    return out + b".\r\n"
