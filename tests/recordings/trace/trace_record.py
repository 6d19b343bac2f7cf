"""Replay sessions.json against a real MTA and record the trace fields it writes.

    python3 trace_record.py --server 127.0.0.1:10070 --mail DIR --software "Postfix 3.7.11" \
        --settings "..." --dns-log FILE --out postfix-3.7.json

Run by record_trace.sh inside the MTA's private network namespace.  Each
session is one connection from its client address (smtplib: a client nobody
here wrote), greeting with HELO/EHLO (or not at all), STARTTLS and AUTH PLAIN
when asked, one message to the session's recipients.  The message carries an
``X-Lab-Session:`` header so that its deliveries can be found in DIR, the
mail directory the MTA delivers into (one file per delivered copy, under
DIR/<local part>/...).  For each delivered copy the lines the MTA added above
the message as sent are recorded verbatim (folding kept, CRLF/LF removed):
that is where ``Received:``, ``Return-Path:`` and friends are.

Standard library only (runs as root with the system python3).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import pathlib
import smtplib
import ssl
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def build_message(session: dict, sender: str) -> str:
    rcpts = session["rcpts"]
    lines = list(session.get("prior_received", []))
    lines += [
        f"From: Ada <{sender or 'ada@client.example.org'}>",
        f"To: {', '.join(rcpts)}",
        f"Subject: trace {session['name']}",
        "Date: Mon, 30 Nov 2026 12:00:00 +0000",
        f"Message-ID: <trace-{session['name']}@client.example.org>",
        f"X-Lab-Session: {session['name']}",
        "",
        f"Where does the HELO name of session {session['name']} end up?",
    ]
    return "\r\n".join(lines) + "\r\n"


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".replace("\n", " | ")


def _greet(smtp: smtplib.SMTP, session: dict, log: list[dict]) -> None:
    verb, name = session["verb"], session["helo"]
    if verb == "EHLO":
        code, text = smtp.ehlo(name)
        log.append({"sent": f"EHLO {name}", "reply": _reply(code, text)})
    elif verb == "HELO":
        code, text = smtp.docmd("HELO", name)
        smtp.helo_resp = text
        log.append({"sent": f"HELO {name}", "reply": _reply(code, text)})


def _starttls(smtp: smtplib.SMTP, session: dict, log: list[dict]) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if session["starttls"] == "TLSv1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    code, text = smtp.starttls(context=ctx)
    # what the server's ssl object reports too: version, (cipher, protocol, bits)
    tls = smtp.sock.version(), smtp.sock.cipher()
    log.append({"sent": "STARTTLS", "reply": _reply(code, text), "tls": list(tls)})
    code, text = smtp.ehlo(session["helo"])
    log.append({"sent": f"EHLO {session['helo']}", "reply": _reply(code, text)})


def _auth(smtp: smtplib.SMTP, script: dict, log: list[dict]) -> None:
    smtp.user, smtp.password = script["auth"]
    sent = "AUTH PLAIN <ada/secret>"
    try:
        code, text = smtp.auth("PLAIN", smtp.auth_plain, initial_response_ok=True)
        log.append({"sent": sent, "reply": _reply(code, text)})
    except smtplib.SMTPNotSupportedError:
        log.append({"sent": sent, "reply": None, "error": "AUTH not offered"})
    except smtplib.SMTPAuthenticationError as exc:
        log.append({"sent": sent, "reply": _reply(exc.smtp_code, exc.smtp_error)})


def _transaction(smtp: smtplib.SMTP, session: dict, sender: str, log: list[dict]) -> str | None:
    """MAIL, RCPT each, DATA; the 250 reply to the final dot, if any."""
    code, text = smtp.mail(sender)
    log.append({"sent": f"MAIL FROM:<{sender}>", "reply": _reply(code, text)})
    if code != 250:
        return None
    accepted = 0
    for rcpt in session["rcpts"]:
        code, text = smtp.rcpt(rcpt)
        log.append({"sent": f"RCPT TO:<{rcpt}>", "reply": _reply(code, text)})
        accepted += code in (250, 251)
    if not accepted:
        return None
    try:
        code, text = smtp.data(build_message(session, sender))
    except smtplib.SMTPDataError as exc:
        code, text = exc.smtp_code, exc.smtp_error
    log.append({"sent": "DATA <message>", "reply": _reply(code, text)})
    return _reply(code, text) if code == 250 else None


def run_session(host: str, port: int, session: dict, script: dict) -> dict:
    sender = session.get("sender", script["sender"])
    log: list[dict] = []
    queue_reply = None
    smtp = smtplib.SMTP(timeout=30, source_address=(session["client"], 0))
    smtp.ehlo_msg = "EHLO"  # smtplib sends "ehlo" by default; real clients shout
    try:
        smtp._host = host  # starttls() passes it as server_hostname (SNI)
        code, text = smtp.connect(host, port)
        log.append({"sent": None, "reply": _reply(code, text)})
        _greet(smtp, session, log)
        if session.get("starttls"):
            _starttls(smtp, session, log)
        if session.get("auth"):
            _auth(smtp, script, log)
        queue_reply = _transaction(smtp, session, sender, log)
        code, text = smtp.quit()
        log.append({"sent": "QUIT", "reply": _reply(code, text)})
    except (OSError, smtplib.SMTPException) as exc:
        log.append({"sent": None, "reply": None, "error": repr(exc)})
        smtp.close()
    return {"exchanges": log, "accepted_reply": queue_reply}


def split_deliveries(mail_dir: pathlib.Path) -> dict[str, list[tuple[str, list[str]]]]:
    """session name -> [(mailbox, header lines as delivered)]."""
    found: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(p for p in mail_dir.rglob("*") if p.is_file()):
        mailbox = path.relative_to(mail_dir).parts[0]
        text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        head = text.split("\n\n", 1)[0].split("\n")
        session = next(
            (ln.split(":", 1)[1].strip() for ln in head if ln.lower().startswith("x-lab-session:")),
            None,
        )
        if session:
            found.setdefault(session, []).append((mailbox, head))
    return found


def added_lines(head: list[str], session: dict, sender: str) -> list[str]:
    """The delivered header lines above the first line of the message as sent."""
    first = build_message(session, sender).split("\r\n", 1)[0]
    try:
        return head[: head.index(first)]
    except ValueError:
        return head  # the first line was rewritten: keep the whole header


def fields(lines: list[str]) -> list[str]:
    """Header lines joined into fields, each keeping its folds as \\n."""
    out: list[str] = []
    for ln in lines:
        if ln[:1] in (" ", "\t") and out:
            out[-1] += "\n" + ln
        else:
            out.append(ln)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--mail", required=True, type=pathlib.Path)
    ap.add_argument("--software", required=True)
    ap.add_argument("--settings", default="")
    ap.add_argument("--dns-log", type=pathlib.Path)
    ap.add_argument("--sessions", type=pathlib.Path, default=HERE / "sessions.json")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for deliveries")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    args = ap.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    script = json.loads(args.sessions.read_text())

    def dns_lines() -> list[str]:
        if args.dns_log and args.dns_log.exists():
            return args.dns_log.read_text().splitlines()
        return []

    results = []
    for session in script["sessions"]:
        before = len(dns_lines())
        rec = run_session(host, int(port), session, script)
        time.sleep(0.3)  # let lookups made after QUIT land in this session's share
        rec = {
            "name": session["name"],
            "input": session,
            **rec,
            "dns_queries": dns_lines()[before:],
        }
        results.append(rec)
        print(
            f"{session['name']}: {rec['accepted_reply'] or rec['exchanges'][-1]}", file=sys.stderr
        )

    expected = sum(
        sum(
            1
            for e in r["exchanges"]
            if e["sent"]
            and e["sent"].startswith("RCPT")
            and e["reply"]
            and e["reply"][:3] in ("250", "251")
        )
        for r in results
        if r["accepted_reply"]
    )
    deadline = time.monotonic() + args.wait
    while True:
        got = split_deliveries(args.mail)
        if sum(len(v) for v in got.values()) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for rec in results:
        sender = rec["input"].get("sender", script["sender"])
        rec["deliveries"] = []
        for mailbox, head in sorted(got.get(rec["name"], [])):
            added = added_lines(head, rec["input"], sender)
            rec["deliveries"].append(
                {
                    "mailbox": mailbox,
                    "added_lines": added,
                    "added_fields": fields(added),
                    "header_as_delivered": head,
                }
            )
    missing = expected - sum(len(r["deliveries"]) for r in results)
    out = {
        "software": args.software,
        "recorded": _dt.date.today().isoformat(),
        "settings": args.settings,
        "sessions_file": "tests/recordings/trace/sessions.json",
        "sessions": results,
    }
    if missing:
        out["missing_deliveries"] = missing
        print(f"WARNING: {missing} delivered copies are missing", file=sys.stderr)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
