"""How big Postfix's queue file for a message is: what ``message_size_limit`` limits.

Postfix's ``message_size_limit`` is "the maximal size in bytes of a message,
including envelope information": cleanup(8) may not write a queue file larger
than that (it sets the file size limit; EFBIG becomes "552 5.3.4 Error: message
file too big" after the final dot).  So a message well under the limit is refused
when its envelope and Postfix's own header lines make the file too big: with
``message_size_limit = 2000`` a 950-octet message from 127.0.0.1 is taken and a
975-octet one is not (tests/recordings/behaviour/postfix.md, "limits").

The queue file (src/global/record.c, rec_type.h, cleanup_envelope.c) is a list
of records, each a type byte, the length in 7-bit groups, then the data: the
size record, the arrival time, attributes naming the client, the sender, each
recipient (its DSN original recipient, original and final address), then the
content, one record per line (a line is cut into records of line_length_limit),
Postfix's Received: field first and, for a client on the server's own
addresses (local_header_rewrite_clients = permit_inet_interfaces), the
Message-Id:, Date: and From: fields cleanup adds when they are missing.  A few
fields vary by a digit or two from one message to the next (the client's port,
the microseconds, the queue id): the model takes their usual widths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import trace

if TYPE_CHECKING:
    from ..session import Session

SIZE_RECORD = 95  # "%15ld %15ld %15ld %15ld %15ld %15ld" (REC_TYPE_SIZE_FORMAT)
QUEUE_ID = "0" * 11  # a short queue id: 5 hex digits of microseconds, then the inode's
TIME = "1796048784 123456"  # arrival time: seconds, microseconds
PORT = "54321"  # the client's port, as seen by smtpd
LOCAL_ADDRESSES = ("127.0.0.1", "::1")  # the lab server's own (inet_interfaces)
ADDED_WHEN_MISSING = ("message-id", "date", "from")  # cleanup, for local clients
LINE_LIMIT = 2048  # line_length_limit: longer lines become several records


def record(data: bytes | str) -> int:
    """The octets of one record carrying ``data``: type, length (7 bits a byte), data."""
    n = len(data.encode() if isinstance(data, str) else data)
    length_octets = 1
    while n >> (7 * length_octets):
        length_octets += 1
    return 1 + length_octets + n


def text_records(line: bytes) -> int:
    """One line of content (without its line end) as queue file records."""
    if not line:
        return record(b"")
    return sum(record(line[i : i + LINE_LIMIT]) for i in range(0, len(line), LINE_LIMIT))


def envelope(session: Session, sender: str, recipients: tuple[str, ...]) -> int:
    """The records before the content: size, time, attributes, sender, recipients."""
    ip = session.client_ip
    ptr, confirmed = session.setup.reverse_of(ip)
    name = ptr if ptr and confirmed else "unknown"
    protocol = trace.protocol_keyword(
        ("EHLO" if session.extended else "HELO") if session.helo else None,
        session.tls,
        session.user is not None,
    )
    attributes = [
        f"create_time={TIME.split()[0]}",
        f"log_ident={QUEUE_ID}",
        f"rewrite_context={'local' if ip in LOCAL_ADDRESSES else 'remote'}",
        f"log_client_name={name}",
        f"log_client_address={ip}",
        f"log_client_port={PORT}",
        f"log_message_origin={name}[{ip}]",
        f"log_protocol_name={protocol}",
        f"client_name={name}",
        f"reverse_client_name={ptr or 'unknown'}",
        f"client_address={ip}",
        f"client_port={PORT}",
        "server_address=127.0.0.1",
        "server_port=25",
        f"protocol_name={protocol}",
        f"client_address_type={10 if ':' in ip else 2}",
    ]
    if session.helo is not None:
        attributes += [f"log_helo_name={session.helo}", f"helo_name={session.helo}"]
    size = record("_" * SIZE_RECORD) + record(TIME) + record(sender)
    size += sum(record(a) for a in attributes)
    for rcpt in recipients:
        size += record(f"dsn_orig_rcpt=rfc822;{rcpt}") + 2 * record(rcpt)
    return size + record(b"")  # the message content marker


def added_headers(session: Session, content: bytes, sender: str) -> list[str]:
    """The header fields cleanup adds to a local client's message that lacks them."""
    if session.client_ip not in LOCAL_ADDRESSES:
        return []
    header = content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    present = {ln.split(b":", 1)[0].strip().lower().decode("latin-1") for ln in header}
    host = session.setup.hostname
    values = {
        "message-id": f"Message-Id: <20261130142624.{QUEUE_ID}@{host}>",
        "date": "Date: Mon, 30 Nov 2026 14:26:24 +0000 (UTC)",
        "from": f"From: {sender or 'MAILER-DAEMON'}",
    }
    return [values[f] for f in ADDED_WHEN_MISSING if f not in present]


def queue_file_size(
    session: Session, content: bytes, sender: str, recipients: tuple[str, ...]
) -> int:
    """The size of the queue file Postfix writes for ``content`` (CRLF line ends)."""
    facts = session.trace_facts(QUEUE_ID, sender, recipients)
    received = trace.received(facts, "postfix").split("\r\n")
    lines = content.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    size = envelope(session, sender, recipients)
    size += sum(record(r) for r in received)
    size += sum(record(h) for h in added_headers(session, content, sender))
    size += sum(text_records(ln) for ln in lines)
    return size + 2 * record(b"")  # the extracted-information and end markers
