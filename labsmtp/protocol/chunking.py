"""BDAT (RFC 3030 CHUNKING): a chunk read whole, chunks put together into one message.

After ``BDAT <size> [LAST]`` the client sends exactly ``size`` octets and only
then waits for the reply (RFC 3030 §2): the server reads them without looking
for line ends or dots (no dot-unstuffing, nothing in them is a command), also
when it is going to refuse the chunk, so that it stays in step with a
pipelining client.  ``Chunk`` is one chunk being read from the client's bytes;
``Chunks`` is the message a transaction's chunks make: their total size
against ``message_size_limit`` (RFC 1870 with RFC 3030 §4), and whether a chunk
was refused, after which the rest of the message is discarded until BDAT LAST
or RSET.  The session (``session.py``) decides what to answer; the state table
(``states.py``) says where each reply leads.
"""

from __future__ import annotations

from dataclasses import dataclass

from .lines import LINES_SHOWN, LineBuffer

PREVIEW = 16_384  # octets of a chunk kept for the transcript when the chunk itself is not kept


@dataclass(frozen=True)
class BdatCommand:
    """What ``BDAT 1000 LAST`` says: the chunk's size in octets and whether it is the last."""

    size: int
    last: bool


def parse_bdat(argument: str) -> BdatCommand | None:
    """RFC 3030 §2's ``bdat-cmd = "BDAT" SP chunk-size [SP end-marker]``, or None."""
    parts = argument.split()
    if not 1 <= len(parts) <= 2 or not (parts[0].isascii() and parts[0].isdigit()):
        return None
    if len(parts) == 2 and parts[1].upper() != "LAST":
        return None
    return BdatCommand(int(parts[0]), len(parts) == 2)


class Chunk:
    """One chunk being read: exactly ``command.size`` octets, whatever they are."""

    __slots__ = ("command", "argument", "left", "keep", "data")

    def __init__(self, command: BdatCommand, argument: str, keep: bool) -> None:
        self.command, self.argument = command, argument
        self.left = command.size
        self.keep = keep  # False: the chunk will be refused; keep only a preview
        self.data = bytearray()

    def feed(self, buffer: LineBuffer) -> bool:
        """Take what has arrived of the chunk; True if anything was taken."""
        got = buffer.take(self.left)
        self.left -= len(got)
        room = len(got) if self.keep else max(0, PREVIEW - len(self.data))
        self.data += got[:room]
        return bool(got)

    @property
    def complete(self) -> bool:
        return self.left == 0

    def lines(self, budget: int) -> tuple[list[bytes], int]:
        """The chunk's first ``budget`` lines for the transcript, and the octets left out."""
        shown = bytes(self.data).splitlines(keepends=True)[:budget]
        return shown, self.command.size - sum(map(len, shown))


class Chunks:
    """The message a transaction's chunks make, until BDAT LAST, RSET or a new transaction."""

    __slots__ = ("parts", "size", "failed", "shown")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0  # octets taken so far (RFC 3030 §4: SIZE counts every chunk)
        self.failed = False  # a chunk was refused: the rest are read and discarded
        self.shown = 0  # message lines shown in the transcript so far

    def fits(self, size: int, limit: int) -> bool:
        """Whether ``size`` more octets keep the message within ``limit``."""
        return self.size + size <= limit

    def add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def content(self) -> bytes:
        return b"".join(self.parts)

    def budget(self) -> int:
        """How many more message lines the transcript shows (as for DATA: ``LINES_SHOWN``)."""
        return max(0, LINES_SHOWN - self.shown)

    def reset(self) -> None:
        self.parts, self.size, self.failed, self.shown = [], 0, False, 0


def longest_line(content: bytes) -> int:
    """The longest line of ``content`` in octets, its CRLF included (§4.5.3.1.6)."""
    return max((len(line) for line in content.splitlines(keepends=True)), default=0)
