"""Record what a real SMTP server answers to scripted or generated dialogues.

    python tests/recordings/record.py --server 127.0.0.1:10025 \
        --software "Postfix 3.7.11" --out tests/recordings/postfix-3.7.json
    python tests/recordings/record.py --server 127.0.0.1:25 --dialogues generated/corpus.json ...

Every dialogue is replayed over a fresh TCP connection, from the client
address it names (127.0.0.x are all loopback on Linux).  The item kinds are
described in generate.py; in short: a string is one command line (CRLF
added, one reply read), ``raw`` is exact bytes (N replies read),
``pipeline`` is several commands in one write (one reply read per command),
``message``/``message_raw``/``message_bytes`` is a message body, sent only
after a 354, and ``bdat`` is a BDAT command and its chunk in one write
(RFC 3030).

Each item gives one exchange (a raw or pipeline item one per reply read):
``{"sent": ..., "reply": [lines]}``, or ``"reply": null`` with an
``"outcome"``: ``"closed"`` (the server closed the connection; nothing more
is sent), ``"timeout"`` (no complete reply within --timeout seconds: a hang
is data, not a crash; later replies in the same dialogue are waited for
--after-timeout seconds only), ``"skipped"`` (a message not sent because the
reply before it was not 354), ``"none expected"`` (raw bytes that end no
line).  Replies that arrive unasked right after raw bytes, a pipelined group,
a raw message, a BDAT command or an over-long line (within --settle seconds)
are kept in ``"extra"`` on that exchange.  After a 220 reply to STARTTLS the
recorder starts TLS (no certificate checks) and goes on inside it
(``"tls": version``).  Reply lines are decoded as UTF-8, undecodable bytes
as backslash escapes.

The result is a JSON file that the persona tests compare the lab against.
Standard library only, so it runs before the lab's own venv exists.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import pathlib
import select
import socket
import ssl
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
CRLF = b"\r\n"
LONG_LINE = 510  # octets before CRLF; longer command lines get a settle time (RFC 5321 4.5.3.1.4)


class Closed(Exception):
    """The server closed the connection (or reset it)."""


class Conn:
    """A client connection with its own buffer, so that timeouts leave it usable."""

    def __init__(self, sock: socket.socket, send_timeout: float = 15.0):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.send_timeout = send_timeout

    def send(self, data: bytes) -> None:
        # A server that stops reading would block sendall() forever.
        self.sock.settimeout(self.send_timeout)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise Closed("send stalled: the server stopped reading") from None
        except OSError as exc:  # BrokenPipe, ConnectionReset, SSL errors
            raise Closed(repr(exc)) from None
        finally:
            self.sock.settimeout(None)

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; False on timeout.  Sets eof when the server closed."""
        if self.eof:
            return True
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        wait = deadline - time.monotonic()
        if not pending:
            if wait <= 0:
                return False
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return False
        # A TLS record that carries no application data (a TLS 1.3 session
        # ticket) makes a blocking recv() wait for more: never block past
        # the deadline.
        self.sock.settimeout(max(wait, 0.01))
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, ssl.SSLWantReadError):
            return time.monotonic() < deadline
        except OSError:
            data = b""
        finally:
            self.sock.settimeout(None)
        if not data:
            self.eof = True
        self.buf += data
        return True

    def read_line(self, deadline: float) -> bytes | None | str:
        """One line without its line end; None at EOF; "timeout"."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
                return line.rstrip(b"\r\n")
            if self.eof:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            if not self._fill(deadline):
                return "timeout"

    def read_reply(self, timeout: float) -> tuple[list[str] | None, str | None]:
        """One (possibly multi-line) reply and an outcome (None, "closed", "timeout")."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            line = self.read_line(deadline)
            if line is None or line == "timeout":
                return (lines or None), ("closed" if line is None else "timeout")
            lines.append(line.decode("utf-8", "backslashreplace"))
            if len(line) < 4 or line[3:4] != b"-":
                return lines, None

    def has_data(self, wait: float) -> bool:
        """Did the server say something (or close) within `wait` seconds?"""
        deadline = time.monotonic() + wait
        while not (self.buf or self.eof) and time.monotonic() < deadline:
            self._fill(deadline)
        return bool(self.buf) or self.eof

    def starttls(self) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(15)
        self.sock = ctx.wrap_socket(self.sock)
        self.sock.settimeout(None)
        return self.sock.version() or "TLS"


def message_payload(item: dict) -> bytes:
    """The bytes that carry a message body, dot-stuffed, ending <CRLF>.<CRLF>."""
    if "message_raw" in item:
        return item["message_raw"].encode("latin-1")
    if "message" in item:
        text = item["message"]
    else:
        size = int(item["message_bytes"])
        row = "x" * 76 + "\r\n"
        text = "Subject: big\r\n\r\n" + row * (size // len(row) + 1)
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    stuffed = ["." + ln if ln.startswith(".") else ln for ln in lines]
    return ("\r\n".join(stuffed) + "\r\n.\r\n").encode()


def _short(text: str, limit: int = 300) -> str:
    if len(text) <= limit:
        return text
    return (
        f"{text[:120]}…[{len(text.encode('utf-8', 'surrogateescape'))} octets in all]…{text[-40:]}"
    )


def describe(item) -> str:
    if isinstance(item, str):
        return _short(item)
    if "raw" in item:
        return "raw " + _short(repr(item["raw"]))
    if "message_raw" in item:
        return f"<raw message of {len(item['message_raw'])} octets: {_short(repr(item['message_raw']), 120)}>"
    if "message" in item:
        return "<message>"
    if "message_bytes" in item:
        return f"<message of {item['message_bytes']} bytes>"
    if "bdat" in item:
        return f"BDAT {len(item['bdat'].encode('latin-1'))}{' LAST' if item.get('last') else ''}"
    return json.dumps(item)[:200]


def _command_bytes(item) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8") + CRLF
    return item["raw"].encode("latin-1")


def _replies_for(item) -> int:
    return 1 if isinstance(item, str) else int(item.get("replies", item["raw"].count("\n")))


def _is_long(item) -> bool:
    return isinstance(item, str) and len(item.encode("utf-8")) > LONG_LINE


def _is_starttls(item) -> bool:
    return isinstance(item, str) and item.strip().upper() == "STARTTLS"


class _Replay:
    """One dialogue over one connection: what was sent and what came back."""

    def __init__(self, conn: Conn, timeout: float, after_timeout: float, settle: float):
        self.conn, self.timeout, self.after_timeout, self.settle = (
            conn,
            timeout,
            after_timeout,
            settle,
        )
        self.tmo = timeout
        self.exchanges: list[dict] = []
        self.closed = False
        self.group = 0

    def reply(self, sent: str | None, **extra) -> dict:
        lines, outcome = self.conn.read_reply(self.tmo)
        ex = {"sent": sent, "reply": lines}
        if outcome:
            ex["outcome"] = outcome
            if outcome == "timeout":
                self.tmo = min(self.timeout, self.after_timeout)
            else:
                self.closed = True
        ex.update(extra)
        self.exchanges.append(ex)
        return ex

    def replies(self, item, **extra) -> None:
        """The N replies a command line or raw item asks for."""
        n = _replies_for(item)
        for k in range(n):
            sent = describe(item) if k == 0 else f"{describe(item)} [reply {k + 1} of {n}]"
            self.reply(sent, **extra)
            if self.closed:
                return

    def drain(self, ex: dict) -> None:
        """Replies nobody asked for, arriving within `settle` seconds."""
        while not self.closed and self.conn.has_data(self.settle):
            lines, outcome = self.conn.read_reply(self.tmo)
            if lines:
                ex.setdefault("extra", []).append(lines)
            if outcome == "closed":
                self.closed = True
                ex["extra_outcome"] = "closed"
            if outcome:
                break

    def last_code(self) -> str:
        for ex in reversed(self.exchanges):
            if ex.get("reply"):
                return ex["reply"][-1][:3]
            if ex.get("outcome") != "none expected":
                return ""
        return ""

    def line(self, item) -> None:
        """A command line or raw bytes; STARTTLS answered 220 starts TLS."""
        self.conn.send(_command_bytes(item))
        if _replies_for(item) == 0:
            self.exchanges.append(
                {"sent": describe(item), "reply": None, "outcome": "none expected"}
            )
        self.replies(item)
        if not self.closed and (not isinstance(item, str) or _is_long(item)):
            self.drain(self.exchanges[-1])
        last = self.exchanges[-1]
        if _is_starttls(item) and not self.closed and (last["reply"] or [""])[-1][:3] == "220":
            try:
                last["tls"] = self.conn.starttls()
            except (OSError, ssl.SSLError) as exc:
                last["outcome"] = "tls-failed"
                last["tls_error"] = repr(exc)
                self.closed = True

    def pipeline(self, subs: list) -> None:
        self.group += 1
        self.conn.send(b"".join(_command_bytes(s) for s in subs))
        for s in subs:
            self.replies(s, pipelined=self.group)
            if self.closed:
                return
        self.drain(self.exchanges[-1])

    def bdat(self, item: dict) -> None:
        # RFC 3030 2: the client sends the chunk right after the BDAT line
        # without waiting, and the server must read it even when it refuses
        # the command.  A server without CHUNKING reads the chunk as
        # commands: those replies are kept as unasked ones.
        chunk = item["bdat"].encode("latin-1")
        line = f"BDAT {len(chunk)}{' LAST' if item.get('last') else ''}".encode() + CRLF
        self.conn.send(line + chunk)
        self.reply(describe(item))
        if not self.closed:
            self.drain(self.exchanges[-1])

    def message(self, item: dict) -> None:
        if self.last_code() != "354":
            self.exchanges.append({"sent": describe(item), "reply": None, "outcome": "skipped"})
            return
        self.conn.send(message_payload(item))
        ex = self.reply(describe(item))
        long_lines = any(len(x) > 998 for x in item.get("message", "").split("\r\n"))
        if not self.closed and ("message_raw" in item or "message_bytes" in item or long_lines):
            self.drain(ex)

    def item(self, item) -> None:
        if isinstance(item, str) or "raw" in item:
            self.line(item)
        elif "pipeline" in item:
            self.pipeline(item["pipeline"])
        elif "bdat" in item:
            self.bdat(item)
        elif any(k in item for k in ("message", "message_raw", "message_bytes")):
            self.message(item)
        else:
            raise ValueError(f"unknown dialogue item {item!r}")

    def finish(self) -> str:
        """Anything the server still says before the client hangs up; who closed."""
        if self.closed:
            return "closed by the server"
        end = None
        if self.conn.has_data(self.settle):
            lines, _ = self.conn.read_reply(min(self.tmo, self.settle * 3))
            if lines:
                self.exchanges.append({"sent": None, "reply": lines, "outcome": "unasked"})
            if self.conn.eof and not self.conn.buf:
                end = "closed by the server"
        return end or "closed by the client"


def run_dialogue(
    host: str,
    port: int,
    dialogue: dict,
    timeout: float = 8.0,
    after_timeout: float = 3.0,
    settle: float = 0.3,
) -> dict:
    """Replay one dialogue against HOST:PORT and return what was said."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((dialogue.get("client", "127.0.0.1"), 0))
    sock.settimeout(timeout)
    sock.connect((host, port))
    sock.settimeout(None)
    conn = Conn(sock, send_timeout=max(timeout, 15.0))
    run = _Replay(conn, timeout, after_timeout, settle)
    run.reply(None)
    try:
        for item in dialogue["lines"]:
            if run.closed:
                break
            run.item(item)
    except Closed as exc:
        run.exchanges.append({"sent": None, "reply": None, "outcome": "closed", "detail": str(exc)})
        run.closed = True
    end = run.finish()
    try:
        conn.sock.close()
    except OSError:
        pass
    out = {"name": dialogue["name"], "client": dialogue.get("client", "127.0.0.1")}
    if "area" in dialogue:
        out["area"] = dialogue["area"]
    out["exchanges"] = run.exchanges
    out["end"] = end
    return out


def dialogues_digest(dialogues: list[dict]) -> str:
    """A fingerprint of exactly which dialogues were replayed."""
    import hashlib

    text = json.dumps(dialogues, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _relative(path: pathlib.Path) -> str:
    try:
        return str(path.resolve().relative_to(HERE))
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="HOST:PORT of the real server")
    ap.add_argument("--software", required=True, help="name and version, e.g. 'Postfix 3.7.11'")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument(
        "--dialogues",
        type=pathlib.Path,
        action="append",
        help="dialogues file (repeat for more; default dialogues.json)",
    )
    ap.add_argument("--settings", default="", help="the server settings used, recorded verbatim")
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for a reply")
    ap.add_argument(
        "--after-timeout",
        type=float,
        default=3.0,
        help="seconds to wait for each later reply once one has timed out",
    )
    ap.add_argument(
        "--settle",
        type=float,
        default=0.3,
        help="seconds to wait for unasked replies after raw bytes, pipelines, long lines",
    )
    ap.add_argument("--only", help="replay only the dialogues whose name contains this")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    files = args.dialogues or [HERE / "dialogues.json"]
    scripts = [json.loads(f.read_text()) for f in files]
    script = {"dialogues": [d for s in scripts for d in s["dialogues"]]}
    if len(scripts) == 1 and "generator" in scripts[0]:
        script["generator"] = scripts[0]["generator"]
    recorded = []
    start = time.monotonic()
    for d in script["dialogues"]:
        if args.only and args.only not in d["name"]:
            continue
        rec = run_dialogue(host, int(port), d, args.timeout, args.after_timeout, args.settle)
        recorded.append(rec)
        if not args.quiet:
            print(
                f"{d['name']}: "
                + " | ".join(
                    (e["reply"] or [f"<{e.get('outcome')}>"])[-1][:60] for e in rec["exchanges"]
                ),
                file=sys.stderr,
            )
    out = {
        "software": args.software,
        "recorded": _dt.date.today().isoformat(),
        "settings": args.settings,
    }
    out["dialogues_files"] = [_relative(f) for f in files]
    out["dialogues_sha256"] = dialogues_digest(script["dialogues"])
    if "generator" in script:
        out["corpus"] = script["generator"]
    out["recorder"] = {
        "timeout": args.timeout,
        "after_timeout": args.after_timeout,
        "settle": args.settle,
        "seconds": round(time.monotonic() - start),
    }
    out["dialogues"] = recorded
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
