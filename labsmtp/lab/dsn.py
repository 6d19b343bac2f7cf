"""Delivery status notifications: the bounce message an MTA sends when it gives up.

RFC 3464 defines the format: a ``multipart/report; report-type=delivery-status``
message (RFC 6522) with three parts:

1. a human-readable explanation (``text/plain``);
2. ``message/delivery-status``: machine-readable fields, one block about the
   message (``Reporting-MTA``, ``Arrival-Date``, ...) then one block per
   recipient (``Final-Recipient``, ``Action``, ``Status``, ``Remote-MTA``,
   ``Diagnostic-Code``, ``Last-Attempt-Date``);
3. the original message (``message/rfc822``) or only its header
   (``text/rfc822-headers``), as the sender asked with ``RET=FULL`` or
   ``RET=HDRS`` (RFC 3461 §4.3).

The notification goes to the *envelope* sender (the reverse-path of MAIL
FROM, not the From: header) with a null reverse-path, ``MAIL FROM:<>``
(RFC 5321 §4.5.5, §6.1), so that a bounce can never cause another bounce.

``build_dsn`` writes one; ``read_dsn`` takes one apart for a lesson to show.
Neither does any I/O.  ``notify_delivered`` is the other kind, the "delivered"
notice a server making final delivery owes a sender who asked NOTIFY=SUCCESS.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LabValueError
from ..render import TextReport
from .mailbox import Mailbox, StoredMessage

ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")  # RFC 3464 §2.3.3
RETURN_LIMIT = 50_000  # Postfix's bounce_size_limit: a bigger original comes back as headers only


@dataclass(frozen=True)
class RecipientReport:
    """The per-recipient fields of a DSN (RFC 3464 §2.3) for one recipient."""

    recipient: str  # Final-Recipient
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # RFC 3463 code, e.g. 5.1.1
    remote_mta: str = ""  # the host that gave the reply (Remote-MTA), if one did
    diagnostic: str = ""  # "smtp; 550 5.1.1 ..." (the server's reply) or "X-...; text"
    last_attempt: str = ""  # RFC 5322 date of the last attempt
    original_recipient: str = ""  # ORCPT as the sender gave it, e.g. "rfc822;bob@shop.example"


def _fold(name: str, value: str, width: int = 78) -> str:
    """One header field, folded at spaces so no line is longer than ``width`` (RFC 5322 §2.2.3)."""
    words = value.split(" ")
    lines, line = [], f"{name}: {words[0]}"
    for w in words[1:]:
        if len(line) + 1 + len(w) > width and line.strip():
            lines.append(line)
            line = " " + w
        else:
            line += " " + w
    lines.append(line)
    return "\r\n".join(lines)


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def header_block(message: bytes) -> bytes:
    """The header section of a message (up to the first empty line), CRLF line ends."""
    data = _crlf(message)
    head, sep, _ = data.partition(b"\r\n\r\n")
    return head + b"\r\n" if sep else data


def _explain(r: RecipientReport) -> str:
    who = f"<{r.recipient}>"
    if r.remote_mta and r.diagnostic.lower().startswith("smtp;"):
        said = r.diagnostic.split(";", 1)[1].strip()
        return f"{who}: host {r.remote_mta} said: {said}"
    text = r.diagnostic.split(";", 1)[1].strip() if ";" in r.diagnostic else r.diagnostic
    return f"{who}: {text or 'delivery failed'}"


# Over the complexity gate (ruff C90, 12) as it came from issue 12; split when next changed.
def build_dsn(  # noqa: C901
    *,
    reporting_mta: str,
    sender: str,
    recipients: list[RecipientReport],
    original: bytes,
    arrival_date: str,
    date: str,
    message_id: str,
    boundary: str,
    ret: str | None = None,
    envid: str | None = None,
    received_from_mta: str | None = None,
    return_limit: int = RETURN_LIMIT,
) -> bytes:
    """The bytes of an RFC 3464 delivery status notification to ``sender`` about ``recipients``.

    ``ret``: "FULL" returns the whole original, "HDRS" its header only (RFC 3461
    §4.3); None lets the MTA choose: the whole message up to ``return_limit``
    bytes (as Postfix does), else the header.
    """
    if not sender:
        # RFC 5321 §4.5.5 and §6.1: never a notification about a message with <>.
        raise LabValueError("a bounce goes to the envelope sender; this message had none (<>)")
    if not recipients:
        raise LabValueError("a delivery status notification needs at least one recipient")
    for r in recipients:
        if r.action not in ACTIONS:
            raise LabValueError(f"Action must be one of {', '.join(ACTIONS)}, not {r.action!r}")
    if ret is not None and str(ret).upper() not in ("FULL", "HDRS"):
        raise LabValueError(f"RET must be FULL or HDRS (RFC 3461 §4.3), not {ret!r}")
    original = _crlf(bytes(original))
    whole = (ret or "").upper() == "FULL" or (ret is None and len(original) <= return_limit)
    failed = [r for r in recipients if r.action == "failed"]
    subject = "Undelivered Mail Returned to Sender" if failed else "Delivery Status Notification"
    b = boundary
    out = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: {subject}",
        f"Date: {date}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",  # RFC 3834 §5: made by a machine, do not answer
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{b}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{b}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is the mail system at host {reporting_mta}.",
        "",
    ]
    if failed:
        out += [
            "Your message could not be delivered to one or more recipients.",
            "It is attached below." if whole else "Its header is attached below.",
            "",
            "The mail system",
            "",
        ]
    else:
        out += ["This is a report on the delivery of your message.", ""]
    out += [_explain(r) for r in recipients]
    out += [
        "",
        f"--{b}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
    ]
    # Per-message fields (RFC 3464 §2.2), then a blank line and one block per recipient.
    if envid:
        out.append(f"Original-Envelope-Id: {envid}")
    out.append(f"Reporting-MTA: dns; {reporting_mta}")
    if received_from_mta:
        out.append(f"Received-From-MTA: dns; {received_from_mta}")
    out.append(f"Arrival-Date: {arrival_date}")
    for r in recipients:
        out.append("")
        if r.original_recipient:
            out.append(f"Original-Recipient: {r.original_recipient}")
        out += [f"Final-Recipient: rfc822; {r.recipient}", f"Action: {r.action}"]
        out.append(f"Status: {r.status}")
        if r.remote_mta:
            out.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            out.append(_fold("Diagnostic-Code", r.diagnostic))
        if r.last_attempt:
            out.append(f"Last-Attempt-Date: {r.last_attempt}")
    out += ["", f"--{b}"]
    eight_bit = any(c > 127 for c in original)
    if whole:
        out += ["Content-Description: Undelivered Message", "Content-Type: message/rfc822"]
        body = original
    else:
        out += [
            "Content-Description: Undelivered Message Headers",
            "Content-Type: text/rfc822-headers",
        ]
        body = header_block(original)
    if eight_bit:
        out.append("Content-Transfer-Encoding: 8bit")
    out.append("")
    head = ("\r\n".join(out) + "\r\n").encode("ascii", "replace")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + body + f"\r\n--{b}--\r\n".encode()


@dataclass
class DsnReport(TextReport):
    """A delivery status notification taken apart: its fields, its text, what it returned."""

    per_message: dict[str, str]
    recipients: list[dict[str, str]]
    human: str  # the text/plain part
    returned: str  # "message", "headers" or "nothing"
    original: email.message.Message | None  # the returned message (or its header)
    headers: dict[str, str] = field(default_factory=dict)  # the DSN's own header fields

    def __str__(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.per_message.items()]
        for r in self.recipients:
            lines.append("")
            lines += [f"{k}: {v}" for k, v in r.items()]
        lines += ["", f"(returned: {self.returned})"]
        return "\n".join(lines)


def read_dsn(message: Any) -> DsnReport:
    """Take a DSN apart with Python's ``email`` package (a StoredMessage, bytes, str or Message)."""
    msg: Any  # the email package's parts are typed loosely: walked by content type below
    if hasattr(message, "content") and isinstance(message.content, bytes):
        message = message.content
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    if isinstance(message, (bytes, bytearray)):
        msg = email.message_from_bytes(bytes(message), policy=email.policy.default)
    elif isinstance(message, email.message.Message):
        msg = message
    else:
        raise LabValueError(
            f"read_dsn() takes a message (a mailbox entry, bytes or text), not {type(message).__name__}"
        )
    ctype = msg.get_content_type()
    if ctype != "multipart/report" or msg.get_param("report-type") != "delivery-status":
        raise LabValueError(
            f"this message is not a delivery status notification: its Content-Type is {ctype}"
            + (
                f"; report-type={msg.get_param('report-type')}"
                if ctype == "multipart/report"
                else ""
            )
            + " (a DSN is multipart/report; report-type=delivery-status, RFC 3464)"
        )
    parts = msg.get_payload()
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    if status is None:
        raise LabValueError("this report has no message/delivery-status part (RFC 3464 §2)")
    blocks = status.get_payload()
    per_message = {k: str(v) for k, v in blocks[0].items()} if blocks else {}
    per_rcpt = [{k: " ".join(str(v).split()) for k, v in b.items()} for b in blocks[1:]]
    human = next((p.get_content() for p in parts if p.get_content_type() == "text/plain"), "")
    returned, original = "nothing", None
    for p in parts:
        if p.get_content_type() == "message/rfc822":
            returned, original = "message", p.get_payload()[0]
        elif p.get_content_type() == "text/rfc822-headers":
            returned = "headers"
            original = email.message_from_bytes(
                p.get_payload(decode=True) or b"", policy=email.policy.default
            )
    return DsnReport(
        per_message,
        per_rcpt,
        human,
        returned,
        original,
        {k: str(v) for k, v in msg.items()},
    )


def delivered_notice(
    message: Any, recipients: list[str], *, reporting_mta: str, queue_id: str, when: float
) -> bytes:
    """The "delivered" DSN (RFC 3464 §2.3.3, ``Action: delivered``) that a server making
    final delivery owes a sender who asked NOTIFY=SUCCESS for ``recipients`` (RFC 3461
    §6.2); ``message`` is the StoredMessage delivered."""
    import email.utils

    request = message.dsn
    date = email.utils.formatdate(when, usegmt=True)
    return build_dsn(
        reporting_mta=reporting_mta,
        sender=message.mail_from,
        recipients=[
            RecipientReport(
                r,
                "delivered",
                "2.0.0",
                diagnostic="X-Lab; delivered to the lab mailbox",
                original_recipient=request.orcpt.get(r, ""),
            )
            for r in recipients
        ],
        original=message.content,
        arrival_date=email.utils.formatdate(message.received, usegmt=True),
        date=date,
        message_id=f"<{queue_id}.dsn@{reporting_mta}>",
        boundary=f"{queue_id}.{int(when)}/{reporting_mta}",
        ret=request.ret,
        envid=request.envid,
        received_from_mta=message.helo,
    )


def notify_delivered(
    message: StoredMessage,
    *,
    reporting_mta: str,
    queue_id: Callable[[], str],
    is_local: Callable[[str], bool],
    mailbox: Mailbox,
    outbox: Mailbox,
) -> list[str]:
    """Final delivery's duty to a sender who asked NOTIFY=SUCCESS (RFC 3461 §6.2): a
    "delivered" DSN to the envelope sender, into ``mailbox`` when ``is_local`` says the
    sender's domain is the server's own, else into ``outbox`` (nothing leaves the
    machine).  Returns what to note in the transcript."""
    if not any(message.rcpt_parameters):
        return []  # no NOTIFY at all: SUCCESS is never reported (§4.1); most messages
    request = message.dsn  # parsed once, not per recipient
    asked = [r for r in message.rcpt_tos if request.wants(r, "SUCCESS")]
    if not asked:
        return []
    who = ", ".join(f"<{r}>" for r in asked)
    sender = message.mail_from
    if not sender:
        return [f"NOTIFY=SUCCESS for {who}, but the sender is <>: no notification (RFC 3461 §6.2)"]
    qid = queue_id()
    dsn = delivered_notice(
        message, asked, reporting_mta=reporting_mta, queue_id=qid, when=time.time()
    )
    notice = StoredMessage(
        qid,
        None,
        "",
        (sender,),
        "",
        b"Return-Path: <>\r\n" + dsn,
        session=message.session,
        sent=dsn,
    )
    if is_local(sender.rpartition("@")[2]):
        mailbox.add(notice)
        return [
            f"NOTIFY=SUCCESS for {who}: a 'delivered' notification (RFC 3464) to <{sender}>, in this server's mailbox"
        ]
    outbox.add(notice)
    return [
        f"NOTIFY=SUCCESS for {who}: a 'delivered' notification (RFC 3464) is due to <{sender}>, "
        f"whose domain is not this server's; a real server would send it to that domain's MX. "
        f"The lab sends no mail off this machine: it waits in server.outbox"
    ]
