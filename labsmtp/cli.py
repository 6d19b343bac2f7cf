"""The command line: ``python -m labsmtp serve | talk | send``.

``serve`` runs the lab server in the foreground and prints every line live
(swaks-style markers: ``->`` from the client, ``<-`` from the server,
``<**`` an error reply).  Policy switches carry Postfix's parameter names.
``talk`` is a line client for the JupyterLab terminal (a telnet that knows
SMTP replies).  ``send`` sends one message and, like swaks, exits with a code
that names the phase that failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .errors import LabConnectionError, LabError
from .protocol.personas import persona_names
from .protocol.policy import HELO_RESTRICTIONS

# swaks's exit codes: the phase that failed.
EXIT_CODES = {
    "connect": 2,
    "greeting": 21,
    "HELO": 22,
    "EHLO": 22,
    "MAIL": 23,
    "RCPT": 24,
    "DATA": 25,
    "after the final dot": 26,
    ".": 26,
}


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:2525, not {text!r}")
    return host.strip("[]"), int(port)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"a port is a number from 1 to 65535 (0: any free one), not {text!r}"
        )
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def _restrictions(text: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.replace(" ", ",").split(",") if t.strip())
    for item in items:
        if item not in HELO_RESTRICTIONS:
            raise argparse.ArgumentTypeError(
                f"unknown restriction {item!r}; choose from {', '.join(HELO_RESTRICTIONS)}"
            )
    return items


def _fault_spec(text: str) -> str:
    from .lab.faults import parse_fault

    try:
        parse_fault(text)
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.replace(" ", ",").split(",") if t.strip())


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m labsmtp",
        description="A real SMTP server and client for learning the protocol (loopback only).",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="{serve,talk,send,experiment}")
    sub.required = True

    s = sub.add_parser("serve", help="run the lab server and print every dialogue live")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=_port, default=2525, help="port (default 2525; 0 = any free)")
    s.add_argument("--persona", default="generic", choices=persona_names())
    s.add_argument("--hostname", default="mx.lab.example.org", help="the server's own name")
    s.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="really listen on a non-loopback address (other machines could connect)",
    )
    s.add_argument(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="SPEC",
        help="a fault rule such as rcpt:451:0.3 or data:drop (repeatable)",
    )
    p = s.add_argument_group("policy (Postfix parameter names)")
    p.add_argument(
        "--smtpd-helo-required", action="store_true", help="refuse MAIL before HELO/EHLO"
    )
    p.add_argument(
        "--smtpd-helo-restrictions",
        type=_restrictions,
        default=(),
        metavar="LIST",
        help="comma-separated: " + ", ".join(HELO_RESTRICTIONS),
    )
    p.add_argument(
        "--mydestination", type=_csv, metavar="DOMAINS", help="the lab's own mail domains"
    )
    p.add_argument("--mynetworks", type=_csv, metavar="CIDRS", help="clients allowed to relay")
    p.add_argument("--message-size-limit", type=_positive_int, metavar="BYTES")
    p.add_argument(
        "--open-relay", action="store_true", help="DANGEROUS misconfiguration, for a lesson"
    )

    t = sub.add_parser("talk", help="type SMTP commands to a server, see each reply")
    t.add_argument("server", type=_hostport, metavar="HOST:PORT")
    t.add_argument("--source", help="local address to connect from, e.g. 127.0.0.2")
    t.add_argument("--timeout", type=float, default=30.0)

    d = sub.add_parser("send", help="send one message; the exit code names the failed phase")
    d.add_argument("--server", type=_hostport, required=True, metavar="HOST:PORT")
    d.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    d.add_argument("--to", action="append", required=True, metavar="ADDRESS", help="repeatable")
    d.add_argument("--helo", default=None, help="name to greet with (default client.example.org)")
    d.add_argument("--ehlo", action="store_true", help="greet with EHLO instead of HELO")
    d.add_argument("--subject", default="Test from labsmtp")
    d.add_argument("--body", default="This is a test message from the lab.")
    d.add_argument("--source", help="local address to connect from, e.g. 127.0.0.2")
    d.add_argument("--timeout", type=float, default=30.0)

    x = sub.add_parser("experiment", help="run N real dialogues against a lab server with faults")
    x.add_argument("--trials", type=_positive_int, default=100, metavar="N")
    x.add_argument("--seed", type=int, default=1, metavar="S", help="same seed, same results")
    x.add_argument(
        "--fault",
        action="append",
        type=_fault_spec,
        default=[],
        metavar="SPEC",
        help="a fault rule such as rcpt:451:0.3 (repeatable)",
    )
    x.add_argument(
        "--retry",
        choices=("none", "mta", "naive"),
        default="mta",
        help="client retry policy (default mta)",
    )
    x.add_argument("--workers", type=_positive_int, default=2, help="clients at once")
    x.add_argument("--persona", default="generic", choices=persona_names())
    x.add_argument("--json", action="store_true", help="print one JSON object")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {
            "serve": cmd_serve,
            "talk": cmd_talk,
            "send": cmd_send,
            "experiment": cmd_experiment,
        }
        return commands[args.cmd](args)
    except LabError as exc:
        print(f"labsmtp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _print_line(line) -> None:
    for part in line.text.split("\n") or [""]:
        tag = f"[{line.session}]"
        extra = f"   [injected by {line.injected}]" if line.injected else ""
        print(f"{tag:>6} {line.marker:>4} {part}{extra}", flush=True)


def cmd_serve(args) -> int:
    from .lab.server import LabServer

    switches = {}
    if args.smtpd_helo_required:
        switches["smtpd_helo_required"] = True
    if args.smtpd_helo_restrictions:
        switches["smtpd_helo_restrictions"] = args.smtpd_helo_restrictions
    for name in ("mydestination", "mynetworks", "message_size_limit"):
        if getattr(args, name) is not None:
            switches[name] = getattr(args, name)
    if args.open_relay:
        switches["open_relay"] = True
    server = LabServer(
        args.port,
        args.host,
        persona=args.persona,
        hostname=args.hostname,
        allow_non_loopback=args.allow_non_loopback,
        name="cli",
        **switches,
    )
    server.on_line(_print_line)
    server.faults.add(*args.fault)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(
        f"labsmtp: {server.persona.software} as {server.hostname} listening on "
        f"{server.host}:{server.port} (Ctrl-C to stop)",
        flush=True,
    )
    if args.open_relay:
        print("labsmtp: WARNING: open relay mode - accepts mail for any domain (loopback only)")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        print(
            f"labsmtp: stopped; {len(server.mailbox)} message(s) accepted in "
            f"{len(server.sessions)} session(s)",
            flush=True,
        )
    return 0


def cmd_talk(args) -> int:
    from .lab.client import StepClient

    client = StepClient(*args.server, source=args.source, timeout=args.timeout)
    greeting = client.connect()
    print(str(greeting), flush=True)
    in_data = False
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        try:
            if in_data:
                client._write((line + "\r\n").encode("utf-8", "surrogateescape"), "DATA")
                if line == ".":
                    in_data = False
                    reply = client._read_reply(".", 0.0)
                    print(str(reply), flush=True)
                continue
            reply = client.raw(line)
        except LabConnectionError as exc:
            print(f"labsmtp: {exc}", file=sys.stderr)
            return EXIT_CODES.get(exc.phase, 1)
        print(str(reply), flush=True)
        if reply.code == 354:
            in_data = True
            print("(type the message; a line with only '.' ends it)", file=sys.stderr)
        if reply.code in (221, 421):
            return 0
    if client.sock is not None:
        print(str(client.quit()), flush=True)
    return 0


def cmd_send(args) -> int:
    from .lab.client import StepClient

    client = StepClient(*args.server, source=args.source, timeout=args.timeout)

    def show(reply, sent=None):
        if sent:
            print(f" -> {sent}", flush=True)
        marker = " <-" if reply.ok else "<**"
        for ln in reply.lines:
            print(f"{marker} {ln}", flush=True)
        return reply

    try:
        code = _send_dialogue(client, args, show)
    except LabConnectionError as exc:
        print(f"labsmtp: {exc}", file=sys.stderr)
        return EXIT_CODES.get(exc.phase, 1)
    if code and client.sock is not None:  # like swaks: say goodbye after a failure
        try:
            show(client.quit(), "QUIT")
        except LabConnectionError:
            pass
    return code


def _send_dialogue(client, args, show) -> int:
    """Greeting, HELO/EHLO, MAIL, RCPT..., DATA, message: 0, or the failed phase's code."""
    from .lab.client import make_message

    greet = show(client.connect())
    if greet.code != 220:
        return EXIT_CODES["greeting"]
    name = args.helo or "client.example.org"
    verb = "EHLO" if args.ehlo else "HELO"
    hello = show(client.ehlo(name) if args.ehlo else client.helo(name), f"{verb} {name}")
    if not hello.ok:
        return EXIT_CODES["HELO"]
    if not show(client.mail(args.sender), f"MAIL FROM:<{args.sender}>").ok:
        return EXIT_CODES["MAIL"]
    accepted = 0
    for rcpt in args.to:
        accepted += show(client.rcpt(rcpt), f"RCPT TO:<{rcpt}>").ok
    if not accepted:
        return EXIT_CODES["RCPT"]
    if show(client.data(), "DATA").code != 354:
        return EXIT_CODES["DATA"]
    msg = make_message(args.sender, ", ".join(args.to), args.subject, args.body)
    print(f" -> <message, {len(msg)} bytes>")
    print(" -> .", flush=True)
    if not show(client.send_message(msg)).ok:
        return EXIT_CODES["after the final dot"]
    show(client.quit(), "QUIT")
    return 0


def cmd_experiment(args) -> int:
    from .lab.server import LabServer
    from .lab.trials import run_trials

    def progress(done, total):
        if not args.json and sys.stderr.isatty():
            bar = "#" * (30 * done // total)
            print(
                f"\r  [{bar:<30}] {done}/{total}",
                end="" if done < total else "\n",
                file=sys.stderr,
                flush=True,
            )

    with LabServer(persona=args.persona, seed=args.seed, name="cli-experiment") as server:
        results = run_trials(
            server,
            args.trials,
            retry=args.retry,
            seed=args.seed,
            faults=args.fault,
            workers=args.workers,
            progress=progress,
        )
    if args.json:
        print(json.dumps(results.to_dict()))
    else:
        print(results.summary())
    return 0
