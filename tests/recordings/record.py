"""Record what a real SMTP server answers to the scripted dialogues.

    python tests/recordings/record.py --server 127.0.0.1:10025 \
        --software "Postfix 3.7.11" --out tests/recordings/postfix-3.7.json

Every dialogue in dialogues.json is replayed over a fresh TCP connection,
from the client address it names (127.0.0.x are all loopback on Linux), one
line at a time: send a line, read exactly one (possibly multi-line) reply.
The result is a JSON file that the persona tests compare the lab against.
Standard library only, so it runs before the lab's own venv exists.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import pathlib
import socket
import sys

HERE = pathlib.Path(__file__).resolve().parent


def _read_reply(sock_file) -> list[str] | None:
    """One SMTP reply: lines up to the one whose 4th character is a space."""
    lines: list[str] = []
    while True:
        raw = sock_file.readline()
        if not raw:
            return lines or None  # connection closed
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines


def message_payload(item: dict) -> bytes:
    """The bytes that carry a message body, dot-stuffed, ending <CRLF>.<CRLF>."""
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


def describe(item) -> str:
    if isinstance(item, str):
        return item
    if "message" in item:
        return "<message>"
    return f"<message of {item['message_bytes']} bytes>"


def run_dialogue(host: str, port: int, dialogue: dict, timeout: float) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((dialogue.get("client", "127.0.0.1"), 0))
    sock.connect((host, port))
    f = sock.makefile("rb")
    exchanges = [{"sent": None, "reply": _read_reply(f)}]
    for item in dialogue["lines"]:
        if exchanges[-1]["reply"] is None:
            break  # the server hung up; nothing more can be said
        try:
            if isinstance(item, str):
                sock.sendall(item.encode() + b"\r\n")
            else:
                sock.sendall(message_payload(item))
            reply = _read_reply(f)
        except (TimeoutError, ConnectionError) as exc:
            reply = None
            exchanges.append({"sent": describe(item), "reply": None, "error": repr(exc)})
            break
        exchanges.append({"sent": describe(item), "reply": reply})
    sock.close()
    return {
        "name": dialogue["name"],
        "client": dialogue.get("client", "127.0.0.1"),
        "exchanges": exchanges,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True, help="HOST:PORT of the real server")
    ap.add_argument("--software", required=True, help="name and version, e.g. 'Postfix 3.7.11'")
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--dialogues", type=pathlib.Path, default=HERE / "dialogues.json")
    ap.add_argument("--settings", default="", help="the server settings used, recorded verbatim")
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    script = json.loads(args.dialogues.read_text())
    recorded = []
    for d in script["dialogues"]:
        rec = run_dialogue(host, int(port), d, args.timeout)
        recorded.append(rec)
        print(
            f"{d['name']}: "
            + " | ".join((e["reply"] or ["<closed>"])[-1] for e in rec["exchanges"]),
            file=sys.stderr,
        )
    out = {
        "software": args.software,
        "recorded": _dt.date.today().isoformat(),
        "settings": args.settings,
        "dialogues": recorded,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
