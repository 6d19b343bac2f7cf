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
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..protocol.events import MessageAccepted
from ..protocol.xtext import xtext_decode


def _parameters(params: tuple[str, ...]) -> dict[str, str]:
    """ESMTP parameters by upper-case name: ("RET=HDRS",) -> {"RET": "HDRS"}."""
    return {k.upper(): v for k, _, v in (p.partition("=") for p in params)}


@dataclass(frozen=True, slots=True)
class DsnRequest:
    """What a sender asked of delivery status notifications (RFC 3461), per message."""

    ret: str | None  # FULL or HDRS (RFC 3461 §4.3); None: not said
    envid: str | None  # the sender's own id for the transaction (§4.4), decoded
    notify: Mapping[str, tuple[str, ...]]  # per recipient: NEVER, or SUCCESS/FAILURE/DELAY (§4.1)
    orcpt: Mapping[str, str]  # per recipient: the original recipient, "rfc822;a@b" (§4.2)

    def wants(self, recipient: str, event: str) -> bool:
        """Whether ``event`` (SUCCESS, FAILURE, DELAY) is to be reported for ``recipient``;
        without NOTIFY, FAILURE and DELAY are (§4.1)."""
        asked = self.notify.get(recipient)
        if asked is None:
            return event.upper() in ("FAILURE", "DELAY")
        return event.upper() in asked


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message and its SMTP envelope, as the server accepted it."""

    queue_id: str
    helo: str | None
    mail_from: str
    rcpt_tos: tuple[str, ...]
    client: str
    content: bytes  # as stored: the server's trace fields on top of what the client sent
    received: float = field(default_factory=time.time)
    session: int = 0
    sent: bytes = b""  # the text the client sent (after dot-unstuffing), without trace fields
    mail_parameters: tuple[str, ...] = ()  # MAIL FROM's ESMTP parameters, as sent
    rcpt_parameters: tuple[tuple[str, ...], ...] = ()  # each recipient's, in rcpt_tos order

    @classmethod
    def accepted(cls, event: MessageAccepted, session: int = 0) -> StoredMessage:
        """The message a session accepted (stored before its 250 goes out)."""
        return cls(
            event.queue_id,
            event.helo,
            event.mail_from,
            event.rcpt_tos,
            event.client_ip,
            event.content,
            session=session,
            sent=event.sent,
            mail_parameters=event.mail_parameters,
            rcpt_parameters=event.rcpt_parameters,
        )

    @property
    def dsn(self) -> DsnRequest:
        """The delivery status notifications the sender asked for: RET, ENVID, NOTIFY, ORCPT."""
        mail = _parameters(self.mail_parameters)
        notify, orcpt = {}, {}
        for rcpt, params in zip(self.rcpt_tos, self.rcpt_parameters, strict=False):
            p = _parameters(params)
            if "NOTIFY" in p:
                notify[rcpt] = tuple(v.strip().upper() for v in p["NOTIFY"].split(","))
            if "ORCPT" in p:
                orcpt[rcpt] = xtext_decode(p["ORCPT"])
        envid = mail.get("ENVID")
        return DsnRequest(
            mail["RET"].upper() if "RET" in mail else None,
            xtext_decode(envid) if envid is not None else None,
            MappingProxyType(notify),
            MappingProxyType(orcpt),
        )

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

    def field(self, name: str) -> str | None:
        """The first header field called ``name`` exactly as stored, folded lines and all
        (``print(msg.field("Received"))`` shows it as a mail program's "show original")."""
        head = self.content.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
        lines, found = head.split("\r\n"), list[str]()
        for line in lines:
            if found and line[:1] in (" ", "\t"):
                found.append(line)
            elif found:
                break
            elif line.lower().startswith(name.lower() + ":"):
                found.append(line)
        return "\n".join(found) if found else None

    def __getitem__(self, name: str) -> str | None:
        """A header field of the stored message: ``msg["Received"]`` (the newest one)."""
        value = self.message.get(name)
        return None if value is None else str(value)

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
