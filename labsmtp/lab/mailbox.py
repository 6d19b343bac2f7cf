"""The mailbox: every message the server acknowledged with 250 after DATA.

Nothing here is delivered anywhere: a message is kept in memory with its
envelope, bounded, and can be exported as an mbox file that ordinary mail
programs open.
"""

from __future__ import annotations

import email
import email.policy
import mailbox as _stdlib_mailbox
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StoredMessage:
    """A message and its SMTP envelope, as the server accepted it."""

    queue_id: str
    helo: str | None
    mail_from: str
    rcpt_tos: tuple[str, ...]
    client: str
    content: bytes  # the message text after dot-unstuffing, CRLF line ends
    received: float = field(default_factory=time.time)
    session: int = 0

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def message(self) -> email.message.EmailMessage:
        """The content parsed as an RFC 5322 message (headers and body)."""
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def __repr__(self) -> str:
        return (
            f"<StoredMessage {self.queue_id} from <{self.mail_from}> to "
            f"{', '.join('<' + r + '>' for r in self.rcpt_tos)}, {self.size} bytes>"
        )


class Mailbox:
    """The messages the lab server accepted, newest kept, oldest evicted."""

    def __init__(self, max_messages: int = 10_000):
        self.max_messages = max_messages
        self._items: deque[StoredMessage] = deque(maxlen=max_messages)
        self._lock = threading.Lock()
        self._stored = 0

    def add(self, msg: StoredMessage) -> None:
        with self._lock:
            self._items.append(msg)
            self._stored += 1

    @property
    def evicted(self) -> int:
        """How many of the oldest messages were dropped to stay within ``max_messages``."""
        with self._lock:
            return self._stored - len(self._items)

    @property
    def messages(self) -> list[StoredMessage]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self):
        return iter(self.messages)

    def __getitem__(self, i):
        return self.messages[i]

    def last(self) -> StoredMessage | None:
        """The newest message, or None if the mailbox is empty."""
        with self._lock:
            return self._items[-1] if self._items else None

    def find(self, *, rcpt: str | None = None, sender: str | None = None) -> list[StoredMessage]:
        """Messages for a recipient and/or from a sender (exact, case-insensitive)."""
        out = []
        for m in self.messages:
            if rcpt is not None and rcpt.lower() not in (r.lower() for r in m.rcpt_tos):
                continue
            if sender is not None and sender.lower() != m.mail_from.lower():
                continue
            out.append(m)
        return out

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._stored = 0

    def to_mbox(self, path) -> str:
        """Write every message to an mbox file (envelope sender in the From_ line)."""
        box = _stdlib_mailbox.mbox(str(path), create=True)
        try:
            box.lock()
            for m in self.messages:
                msg = _stdlib_mailbox.mboxMessage(m.content)
                msg.set_from(m.mail_from or "MAILER-DAEMON", time.gmtime(m.received))
                for r in m.rcpt_tos:
                    msg["X-Lab-Envelope-To"] = r
                box.add(msg)
            box.flush()
        finally:
            box.unlock()
            box.close()
        return str(path)

    def _repr_html_(self) -> str:
        from ..render import mailbox_html

        return mailbox_html(self)
