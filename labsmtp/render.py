"""HTML views for notebooks: transcripts, replies and the mailbox as readable tables."""

from __future__ import annotations

import html

from .style import CLASS_COLOURS, CLIENT_COLOUR, INJECTED_COLOUR

# JupyterLab right-aligns table cells (.jp-RenderedHTMLCommon td) with a more
# specific selector than ours: out-specify it, or the transcript reads backwards.
_CSS = (
    "<style>.labsmtp-t{border-collapse:collapse;font-family:monospace;font-size:13px}"
    ".labsmtp-t td,.labsmtp-t th,.jp-RenderedHTMLCommon .labsmtp-t td,"
    ".jp-RenderedHTMLCommon .labsmtp-t th{padding:2px 8px;text-align:left;"
    "vertical-align:top;border-bottom:1px solid #ddd}.labsmtp-t th{background:#f3f3f3}</style>"
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
            if ln.reply is not None and ln.command and not ln.reply.legal:
                klass += ' <b title="not a legal reply to this command (RFC 5321 4.3.2)">!</b>'
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
    colour = CLASS_COLOURS.get(reply.klass, "#999")
    body = html.escape("\n".join(reply.lines)).replace("\n", "<br>")
    return (
        f'<div style="border-left:6px solid {colour};padding-left:8px;font-family:monospace">'
        f"{body}</div><div style='font-size:12px;color:#444'>{html.escape(reply.explain())}</div>"
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
