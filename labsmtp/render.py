"""Views for notebooks: transcripts, replies and the mailbox as readable tables, and
what ``stop_all()`` stopped."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Iterable

from .style import CLASS_COLOURS, CLIENT_COLOUR, INJECTED_COLOUR

# JupyterLab right-aligns table cells (.jp-RenderedHTMLCommon td) with a more
# specific selector than ours: out-specify it, or the transcript reads backwards.
# Long lines wrap at spaces, and a long unbroken token (an address, base64) breaks
# anywhere rather than pushing the table wider than the notebook column.
_CSS = (
    "<style>.labsmtp-t{border-collapse:collapse;font-family:monospace;font-size:13px;"
    "max-width:100%}"
    ".labsmtp-t td,.labsmtp-t th,.jp-RenderedHTMLCommon .labsmtp-t td,"
    ".jp-RenderedHTMLCommon .labsmtp-t th{padding:2px 8px;text-align:left;"
    "vertical-align:top;border-bottom:1px solid #ddd;overflow-wrap:anywhere}"
    ".labsmtp-t th{background:#f3f3f3}</style>"
)


def _badge(klass: str) -> str:
    colour = CLASS_COLOURS.get(klass, CLASS_COLOURS["none"])
    return (
        f'<span style="background:{colour};color:#000;padding:0 4px;border-radius:3px">'
        f"{html.escape(klass)}</span>"
    )


def transcript_html(lines, dropped: int = 0, limit: int = 400) -> str:
    """A table: session, direction marker, text; replies coloured by class."""
    rows = []
    shown = list(lines)[-limit:]
    for ln in shown:
        text = html.escape(ln.text).replace("\n", "<br>")
        if ln.direction == "client":
            style = f"color:{CLIENT_COLOUR}"
            klass = ""
        elif ln.direction == "server":
            klass = ln.reply.klass if ln.reply else "none"
            style = f"border-left:6px solid {CLASS_COLOURS.get(klass, '#999')}"
            klass = _badge(klass)
            if ln.reply is not None and ln.command and not ln.reply.listed:
                # §4.3.2 lists *usual* replies: an unlisted one (a 554 or 454 relay
                # refusal) is worth a hover, not an alarm.
                klass = klass.replace(
                    "<span ", f'<span title="{html.escape(ln.reply.explain(detail=True))}" ', 1
                )
        else:
            style, klass = "color:#666;font-style:italic", ""
        if ln.injected:
            klass += (
                f' <span style="color:{INJECTED_COLOUR}" title="made by a fault rule">'
                f"injected: {html.escape(ln.injected)}</span>"
            )
        who = (
            "client" if ln.direction == "client" else ("server" if ln.direction == "server" else "")
        )
        rows.append(
            f"<tr><td>{ln.session}</td><td>{html.escape(ln.marker)}</td><td>{who}</td>"
            f'<td style="{style}">{text}</td><td>{klass}</td></tr>'
        )
    head = ""
    if len(lines) > len(shown):
        head += f"<p>Showing the last {len(shown)} of {len(lines)} lines.</p>"
    if dropped:
        head += f"<p>{dropped} older lines were dropped to keep memory bounded.</p>"
    return (
        _CSS + head + '<table class="labsmtp-t"><tr><th>session</th><th></th><th>who</th>'
        "<th>line</th><th>reply class</th></tr>" + "".join(rows) + "</table>"
    )


def reply_html(reply) -> str:
    """The reply's lines, one short line on what it means, the long story folded away."""
    colour = CLASS_COLOURS.get(reply.klass, "#999")
    body = html.escape("\n".join(reply.lines)).replace("\n", "<br>")
    short, detail = reply.explain(), reply.explain(detail=True)
    more = detail[len(short) :].strip() if detail.startswith(short) else detail
    return (
        f'<div style="border-left:6px solid {colour};padding-left:8px;font-family:monospace;'
        f'overflow-wrap:anywhere">{body}</div>'
        f"<details style='font-size:13px;color:#444;margin-top:2px'>"
        f"<summary>{html.escape(short)}</summary>{html.escape(more)}</details>"
    )


def exchanges_html(history) -> str:
    rows = []
    for ex in history:
        if ex.sent:
            sent = html.escape(ex.sent.decode("utf-8", "replace").rstrip("\r\n"))
            if len(sent) > 300:
                sent = sent[:300] + " ..."
            rows.append(
                f'<tr><td>-&gt;</td><td style="color:{CLIENT_COLOUR}">'
                f"{sent.replace(chr(10), '<br>')}</td><td></td></tr>"
            )
        if ex.reply is not None:
            r = ex.reply
            rows.append(
                f"<tr><td>&lt;-</td><td style='border-left:6px solid "
                f"{CLASS_COLOURS.get(r.klass, '#999')}'>"
                f"{html.escape(chr(10).join(r.lines)).replace(chr(10), '<br>')}</td>"
                f"<td>{_badge(r.klass)}</td></tr>"
            )
    return _CSS + '<table class="labsmtp-t">' + "".join(rows) + "</table>"


def mailbox_html(box) -> str:
    rows = []
    for m in box.messages[-200:]:
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    m.queue_id,
                    m.client,
                    m.helo,
                    "<" + m.mail_from + ">",
                    ", ".join("<" + r + ">" for r in m.rcpt_tos),
                    m.subject,
                    m.size,
                )
            )
            + "</tr>"
        )
    extra = f"<p>{box.evicted} older messages were evicted.</p>" if box.evicted else ""
    return (
        _CSS + extra + '<table class="labsmtp-t"><tr><th>queue id</th><th>client</th><th>HELO</th>'
        "<th>MAIL FROM</th><th>RCPT TO</th><th>Subject</th><th>bytes</th></tr>"
        + "".join(rows)
        + "</table>"
    )


class TextReport:
    """Mixin: a notebook shows ``str(self)`` as preformatted text (reports, routes, results)."""

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


class StoppedServers(int):
    """How many lab servers ``stop_all()`` stopped (an int), shown with their names."""

    names: tuple[str, ...]

    def __new__(cls, names: Iterable[str]) -> StoppedServers:
        stopped = tuple(names)
        self = super().__new__(cls, len(stopped))
        self.names = stopped
        return self

    def __repr__(self) -> str:
        # A notebook cell ending in stop_all() shows this, not a lone number.
        if not self.names:
            return "No lab server was running."
        servers = "lab server" if len(self.names) == 1 else "lab servers"
        text = (
            f"Stopped {len(self.names)} {servers}: {', '.join(self.names)}. "
            f"Using one again starts it again."
        )
        return textwrap.fill(text, width=88)  # no output wider than the notebook column

    def __str__(self) -> str:
        return str(int(self))  # in f-strings and print(), still the plain count
