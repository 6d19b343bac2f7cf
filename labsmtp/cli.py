"""The command line: ``python -m labsmtp serve | talk | send | experiment``.

``serve`` runs the lab server in the foreground and prints every line live
(swaks-style markers: ``->`` from the client, ``<-`` from the server,
``<**`` an error reply).  Policy switches carry Postfix's parameter names;
``--set NAME=VALUE`` sets any setting of the persona under its program's own
name (``smtp_accept_max=20`` for Exim); ``--fault`` rules replay exactly
under the same ``--seed``.  ``talk`` is a
line client for the JupyterLab terminal (a telnet that knows SMTP replies).
``send`` sends one message and, like swaks, exits with a code that names the
stage that failed.  ``experiment`` runs many real dialogues against faults.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import textwrap
import threading
from typing import Any

from .errors import ConnectFailed, LabConnectionError, LabError, PortInUseError, set_front_end
from .lab.client import StepClient, make_message
from .lab.faults import Fault, parse_fault
from .lab.labserver import LabServer
from .lab.trials import POLICIES, run_trials
from .protocol.personas import get_persona, persona_names
from .protocol.policy import HELO_RESTRICTIONS
from .protocol.states import Stage

# swaks's exit codes: the stage that failed (2: nothing answered at all).
CONNECT_FAILED = 2
EXIT_CODES: dict[Stage, int] = {
    Stage.CONNECT: 21,  # the greeting
    Stage.HELO: 22,
    Stage.MAIL: 23,
    Stage.RCPT: 24,
    Stage.DATA: 25,
    Stage.DOT: 26,  # after the final dot
    Stage.AUTH: 28,
    Stage.STARTTLS: 29,
    Stage.TLS: 29,
}


def exit_code(exc: LabConnectionError) -> int:
    """swaks's exit code for a connection error, from the stage it names."""
    if isinstance(exc, ConnectFailed):
        return CONNECT_FAILED
    stage = Stage.of(exc.phase)
    return EXIT_CODES.get(stage, 1) if stage is not None else 1


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


def _fault_spec(text: str) -> Fault:
    try:
        return parse_fault(text)
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.replace(" ", ",").split(",") if t.strip())


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE such as smtpd_delay_reject=no, not {text!r}"
        )
    return name.strip(), value.strip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _settings_epilog() -> str:
    """Each persona's own names for its settings, for ``serve --help``."""
    out = ["settings under the program's own names (--set NAME=VALUE):"]
    for name in persona_names():
        names = get_persona(name).setting_names()
        if names:
            listed = ", ".join(
                f"{n} ({what})" if what.startswith("=") else n for n, what in names.items()
            )
            out += textwrap.wrap(
                f"{name}: {listed}", 78, initial_indent="  ", subsequent_indent="      "
            )
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m labsmtp",
        description="A real SMTP server and client for learning the protocol (loopback only).",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="{serve,talk,send,experiment}")
    sub.required = True

    s = sub.add_parser(
        "serve",
        help="run the lab server and print every dialogue live",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    s.add_argument(
        "--seed", type=int, default=None, metavar="S", help="same seed, same faults, run after run"
    )
    s.add_argument(
        "--owner-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="answer connections from other users of this machine with 554 5.7.1 "
        "(Linux; default: on under JupyterHub, where JUPYTERHUB_USER is set)",
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
    lim = s.add_argument_group(
        "limits (each persona also takes its program's own names for them with --set)"
    )
    lim.add_argument(
        "--max-connections",
        type=_positive_int,
        metavar="N",
        help="sessions served at once; the next is told 421 (Postfix: default_process_limit, "
        "and the next waits instead; Exim: smtp_accept_max)",
    )
    lim.add_argument(
        "--max-connections-per-client",
        type=int,
        metavar="N",
        help="sessions at once from one untrusted address, 0 for no limit "
        "(Postfix: smtpd_client_connection_count_limit; Exim: smtp_accept_max_per_host)",
    )
    lim.add_argument("--max-recipients", type=_positive_int, metavar="N", help="RCPTs per message")
    lim.add_argument(
        "--hard-error-limit", type=_positive_int, metavar="N", help="failed commands, then 421"
    )
    lim.add_argument(
        "--idle-timeout", type=_seconds, metavar="SECONDS", help="idle time before 421"
    )
    s.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=_setting,
        default=[],
        metavar="NAME=VALUE",
        help="any setting of the persona, under its program's name (repeatable; see below)",
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
        choices=tuple(POLICIES),
        default="mta",
        help="client retry policy (default mta)",
    )
    x.add_argument("--workers", type=_positive_int, default=2, help="clients at once")
    x.add_argument("--persona", default="generic", choices=persona_names())
    x.add_argument("--json", action="store_true", help="print one JSON object")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_front_end("cli")  # the library's messages then give terminal advice, not notebook advice
    try:
        return _run(args)
    finally:
        set_front_end(None)  # main() also runs inside tests and notebooks


def _run(args) -> int:
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
    """One transcript line as ``serve`` prints it: [session] marker text."""
    for part in line.text.split("\n") or [""]:
        tag = f"[{line.session}]"
        extra = f"   [injected by {line.injected}]" if line.injected else ""
        print(f"{tag:>6} {line.marker:>4} {part}{extra}", flush=True)


def cmd_serve(args) -> int:
    """Run a lab server in the foreground, printing every line, until Ctrl-C or SIGTERM."""
    switches: dict[str, Any] = {}
    if args.smtpd_helo_required:
        switches["smtpd_helo_required"] = True
    if args.smtpd_helo_restrictions:
        switches["smtpd_helo_restrictions"] = args.smtpd_helo_restrictions
    for name in (
        "mydestination",
        "mynetworks",
        "message_size_limit",
        "max_connections",
        "max_connections_per_client",
        "max_recipients",
        "hard_error_limit",
        "idle_timeout",
    ):
        if getattr(args, name) is not None:
            switches[name] = getattr(args, name)
    if args.open_relay:
        switches["open_relay"] = True
    persona = get_persona(args.persona)
    for name, text in args.settings:
        key, value = persona.parse_setting(name, text)
        switches[key] = value
    server = LabServer(
        args.port,
        args.host,
        persona=args.persona,
        hostname=args.hostname,
        allow_non_loopback=args.allow_non_loopback,
        owner_only=args.owner_only,
        name="cli",
        seed=args.seed,
        **switches,
    )
    server.on_line(_print_line)
    server.faults.add(*args.fault)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server.start()
    except PortInUseError as exc:
        print(f"labsmtp: {_port_advice(exc)}", file=sys.stderr)
        return 1
    print(
        f"labsmtp: {server.persona.software} as {server.hostname} listening on "
        f"{server.host}:{server.port} (Ctrl-C to stop)",
        flush=True,
    )
    print(f"labsmtp: limits: {_limits(server)}", flush=True)
    if server.owner_only:
        print("labsmtp: connections from other users of this machine get 554 5.7.1", flush=True)
    if args.fault:
        print(f"labsmtp: faults {', '.join(f.name for f in args.fault)}, seed {server.faults.seed}")
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


_LIMITS = ("max_connections", "max_connections_per_client", "max_recipients", "idle_timeout")


def _limits(server: LabServer) -> str:
    """The limits in effect, under the program's own names where it has them."""
    names = {lab: own for own, lab in server.persona.policy_names.items()}
    shown = []
    for lab in _LIMITS:
        value = getattr(server.policy, lab)
        value = f"{value:g}s" if isinstance(value, float) else value
        shown.append(f"{names.get(lab, lab)}={value}")
    return ", ".join(shown)


def _port_advice(exc: PortInUseError) -> str:
    """What to do about a port ``serve`` cannot have, in terminal terms."""
    if exc.reason == "in use":
        return (
            f"port {exc.port} on {exc.host} is already in use. If it is a `serve` you "
            f"started, stop it with Ctrl-C in its terminal; `ss -ltnp 'sport = :{exc.port}'` "
            f"shows which program holds it (on a shared JupyterHub it may be another "
            f"learner's). Or choose another port: --port {exc.port + 1 if exc.port < 65535 else 2525}, "
            f"or --port 0 for any free one (serve then prints the port it got)."
        )
    if exc.reason == "not allowed":
        return (
            f"not allowed to listen on port {exc.port}: ports below 1024 need root. "
            f"Use --port 2525 (the default), or --port 0 for any free port."
        )
    return str(exc)


def cmd_talk(args) -> int:
    """Type SMTP lines; each reply is printed (message text after 354 goes as typed)."""
    client = StepClient(*args.server, source=args.source, timeout=args.timeout)
    greeting = client.connect()
    print(str(greeting), flush=True)
    in_data = False
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        try:
            if in_data:
                client.raw(line + "\r\n", expect_reply=False)
                if line == ".":
                    in_data = False
                    print(str(client.read_reply(".")), flush=True)
                continue
            reply = client.raw(line)
            assert reply is not None  # raw() waits for the reply unless told not to
        except LabConnectionError as exc:
            print(f"labsmtp: {exc}", file=sys.stderr)
            return exit_code(exc)
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
    """Send one message, swaks-style; the exit code names the stage that failed."""
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
        return exit_code(exc)
    if code and client.sock is not None:  # like swaks: say goodbye after a failure
        try:
            show(client.quit(), "QUIT")
        except LabConnectionError:
            pass
    return code


def _send_dialogue(client, args, show) -> int:
    """Greeting, HELO/EHLO, MAIL, RCPT..., DATA, message: 0, or the failed stage's code."""
    greet = show(client.connect())
    if greet.code != 220:
        return EXIT_CODES[Stage.CONNECT]
    name = args.helo or "client.example.org"
    verb = "EHLO" if args.ehlo else "HELO"
    hello = show(client.ehlo(name) if args.ehlo else client.helo(name), f"{verb} {name}")
    if not hello.ok:
        return EXIT_CODES[Stage.HELO]
    if not show(client.mail(args.sender), f"MAIL FROM:<{args.sender}>").ok:
        return EXIT_CODES[Stage.MAIL]
    accepted = 0
    for rcpt in args.to:
        accepted += show(client.rcpt(rcpt), f"RCPT TO:<{rcpt}>").ok
    if not accepted:
        return EXIT_CODES[Stage.RCPT]
    if show(client.data(), "DATA").code != 354:
        return EXIT_CODES[Stage.DATA]
    msg = make_message(args.sender, ", ".join(args.to), args.subject, args.body)
    print(f" -> <message, {len(msg)} bytes>")
    print(" -> .", flush=True)
    if not show(client.send_message(msg)).ok:
        return EXIT_CODES[Stage.DOT]
    show(client.quit(), "QUIT")
    return 0


def cmd_experiment(args) -> int:
    """Run N real dialogues against a fresh lab server with the given faults."""

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
