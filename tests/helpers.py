"""Helpers shared on purpose by the tests and the benchmarks (not a test module).

- the recordings: which personas were recorded, and how replies are compared
  (dates and queue ids masked, nothing else);
- the fuzz strategies for command lines (test_robustness over sockets,
  test_session in memory, benchmarks/robustness.py for the README figures);
- the robustness runs whose figures the benchmark reports and the tests assert.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time

from hypothesis import strategies as st

from labsmtp.lab.transcript import CLIENT, EVENT, SERVER
from labsmtp.protocol.states import State

HOST = "127.0.0.1"

# --- recordings ------------------------------------------------------------------

RECORDED_PERSONAS = ("postfix", "exim", "sendmail", "opensmtpd", "clamsmtpd")

_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), +\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d (?:[+-]\d{4}|GMT|UTC)"
)
_IDS = [
    re.compile(r"(queued as )[0-9A-Za-z]+"),  # Postfix (and Postfix behind clamsmtpd)
    re.compile(r"(OK id=)[0-9A-Za-z-]+"),  # Exim
    re.compile(
        r"(250 2\.0\.0 )[0-9A-Za-z]+(?= Message accepted for delivery)"
    ),  # Sendmail, OpenSMTPD
]


def normalise(lines):
    """Mask what may differ between a recording and the lab: dates and queue/message ids."""
    if lines is None:
        return None
    out = []
    for ln in lines:
        ln = _DATE.sub("<date>", ln)
        for rx in _IDS:
            ln = rx.sub(r"\1<id>", ln)
        out.append(ln)
    return out


# --- dialogue cases run both over sockets and in memory -----------------------------

# (steps taken first, the out-of-order step, the state it must leave unchanged)
OUT_OF_ORDER = [
    ([], "mail", State.CONNECTED),
    ([], "rcpt", State.CONNECTED),
    (["helo"], "rcpt", State.GREETED),
    (["helo"], "data", State.GREETED),
    (["helo", "mail"], "data", State.MAIL),
    (["helo", "mail"], "mail", State.MAIL),
    (["helo", "mail", "rcpt"], "mail", State.RCPT),
]
# (HELO name, smtpd_helo_restrictions, the code Postfix answers)
HELO_RESTRICTIONS = [
    ("client", (), 250),
    ("client", ("reject_non_fqdn_helo_hostname",), 504),
    ("bad_host!", ("reject_invalid_helo_hostname",), 501),
    ("bad_host!", (), 250),
    ("[127.0.0.1]", ("reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname"), 250),
    ("[IPv6:::1]", ("reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname"), 250),
    ("client.example.org", ("reject_non_fqdn_helo_hostname",), 250),
]
# (the lines of one AUTH exchange inside TLS, the code of its final reply)
AUTH_EXCHANGES = [
    (["AUTH"], 501),
    (["AUTH CRAM-MD5"], 504),
    (["AUTH PLAIN !!notbase64"], 501),
    (["AUTH PLAIN", "*"], 501),  # the client cancels (RFC 4954 §4)
    (["AUTH LOGIN", "YWxpY2U=", "*"], 501),
    (["AUTH PLAIN", "AGFsaWNlAHdvbmRlcmxhbmQ="], 235),  # no initial response: 334 first
    (["AUTH PLAIN " + "A" * 400], 501),
]
FUZZ_USERS = {"alice": "wonderland"}


def fuzz_lab_server(name: str = "fuzz"):
    """One server for every fuzz input: STARTTLS and AUTH on (AUTH allowed in the clear,
    so the fuzzer reaches the AUTH dialogue without a TLS handshake)."""
    from labsmtp import LabServer

    return LabServer(
        name=name,
        users=FUZZ_USERS,
        tls=True,
        auth_require_tls=False,
        hard_error_limit=60,
        idle_timeout=10,
        max_lines=200_000,
    ).start()


# --- fuzz strategies -------------------------------------------------------------

VERBS = [
    b"HELO",
    b"EHLO",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY",
    b"EXPN",
    b"HELP",
    b"QUIT",
    b"STARTTLS",
    b"AUTH PLAIN",
    b"AUTH LOGIN",
    b"AUTH",
    b".",
    b"",
    b"BDAT",
    b"helo",
    b"mail from:",
    b"\x00",
    b"\xff\xfe",
]
ODD_ARGS = [
    b"",
    b" ",
    b"<>",
    b"<a@lab.example.org>",
    b"<postmaster@lab.example.org>",
    b"<a@b> SIZE=99999999999",
    b"<a@b> FOO=BAR",
    b"\x00",
    b"\xc3\x28",
    b"\xff" * 3,
    b"A" * 600,
    b"B" * 9000,
    b"*",
    b"=",
    b"AGFsaWNlAHdvbmRlcmxhbmQ=",
    b"client.example.org",
    b"[127.0.0.1]",
    "ünïcödé@exämple.org".encode(),
    b"\t\t",
    b"<" * 50,
]
ENDINGS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r", b""]

arg = st.one_of(
    st.sampled_from(ODD_ARGS),
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
line = st.tuples(
    st.sampled_from(VERBS), st.sampled_from([b"", b" "]), arg, st.sampled_from(ENDINGS)
).map(b"".join)
command_lines = st.lists(line, max_size=40).map(b"".join)

body_piece = st.sampled_from(
    [
        b"text",
        b"\n",
        b"\r",
        b".",
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n..",
        b"\x00",
        b"\xff",
        b"MAIL FROM:<evil@example.org>",
        b"QUIT",
        b"\r\n",
    ]
)


# --- sockets and processes ---------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def fds() -> int:
    """This process's open file descriptors."""
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Complaints(logging.Handler):
    """Anything logged at WARNING or above would show up in a notebook cell."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


# Ends whatever state a fuzz payload left the session in: a pending line is
# completed, DATA is ended, then QUIT.  Every part gets a reply of its own.
SUFFIX = b"\r\n.\r\nQUIT\r\n"


def send_and_drain(address, payload: bytes, wait: float = 5.0) -> tuple[int, bytes]:
    """Send ``payload`` + SUFFIX in one burst; read until the server closes. Returns our port."""
    s = socket.create_connection(address, timeout=wait)
    port = s.getsockname()[1]
    data = b""
    try:
        s.sendall(payload + SUFFIX)
        while chunk := s.recv(65536):
            data += chunk
            if data.endswith(b"220 2.0.0 Ready to start TLS\r\n"):
                # The server now waits for a TLS handshake that this plaintext burst
                # never starts (what it read after STARTTLS is discarded, RFC 3207
                # §4.2); don't sit out the idle timeout.
                s.settimeout(0.2)
    except (ConnectionError, TimeoutError):
        pass
    finally:
        s.close()
    return port, data


def beside_a_slow_client(dialogues: int = 50) -> tuple[float, int]:
    """Run full dialogues while another client sends one byte a second.

    Returns (seconds the dialogues took, messages delivered); the benchmark
    (benchmarks/robustness.py) reports the same run the test asserts.
    """
    from labsmtp import LabServer

    with LabServer(name="slow", idle_timeout=30) as s:
        slow = socket.create_connection(s.address, timeout=10)
        slow.recv(1024)
        stop = threading.Event()

        def trickle():
            for byte in b"EHLO slow.example.org\r\n":
                if stop.wait(1.0):
                    return
                slow.sendall(bytes([byte]))

        t = threading.Thread(target=trickle)
        t.start()
        try:
            time.sleep(1.5)  # the slow client is mid-line
            started = time.perf_counter()
            for i in range(dialogues):
                c = s.client()
                c.ehlo()
                c.mail("fast@example.org")
                c.rcpt("postmaster@lab.example.org")
                assert c.data(f"Subject: fast {i}\r\n\r\nx\r\n").code == 250
                c.quit()
            elapsed = time.perf_counter() - started
        finally:
            stop.set()
            t.join()
            slow.close()
        return elapsed, len(s.mailbox)


DIALOGUE = (
    b"EHLO load.example.org\r\nMAIL FROM:<a@example.org>\r\n"
    b"RCPT TO:<postmaster@lab.example.org>\r\nDATA\r\nSubject: m\r\n\r\nhello\r\n.\r\n"
    b"QUIT\r\n"
)
# Caps for the memory test, and the bound it must stay within once they are full.
MEMORY_CAPS = {"max_lines": 2_000, "max_messages": 100, "max_sessions": 1_000}
MEMORY_BOUND_MB = 8


def pipelined_dialogues(address, n: int, threads: int = 8) -> None:
    """``n`` whole dialogues, each pipelined in one burst, from ``threads`` clients."""

    def worker(k: int):
        for _ in range(k):
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(DIALOGUE)  # the client pipelines; the server answers in order
                while sock.recv(65536):
                    pass

    ts = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


# --- the fuzz properties over sockets (tests assert them, the benchmark counts them) ---


def session_of(server, port: int):
    """The finished session whose client used local ``port``."""
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        for info in reversed(server.sessions):
            if info.client.endswith(f":{port}"):
                if info.ended is not None:
                    return info
                break
        time.sleep(0.01)
    raise AssertionError(f"no finished session from port {port}")


def assert_one_reply_per_command(lines) -> int:
    """Walk one session's transcript: each complete command line gets exactly one reply
    (§4.2) before the next is read; only 421 may come unasked (§3.8).  Returns the
    number of command lines."""
    pending, commands = 0, 0
    for ln in lines:
        if ln.direction == EVENT:
            continue
        if ln.direction == CLIENT:
            if ln.note == "message text" or ln.note.startswith("incomplete line"):
                continue
            assert pending == 0, f"a command was read before the previous one was answered: {ln}"
            pending, commands = 1, commands + 1
        elif ln.direction == SERVER:
            assert ln.reply is not None and ln.reply.code is not None, f"malformed reply {ln.raw!r}"
            if ln.command == "CONNECT":
                continue
            if pending:
                pending = 0
            else:
                assert ln.reply.code == 421, f"a reply nobody asked for: {ln.text}"
    assert pending == 0, "the last command got no reply"
    return commands


def check_after(server, complaints: Complaints, port: int) -> None:
    """One reply per command in that session, no internal error, nothing logged, and a
    fresh client still gets a correct dialogue."""
    info = session_of(server, port)
    assert_one_reply_per_command(server.transcript.lines(info.id))
    assert server.internal_errors == []
    assert complaints.records == []
    c = server.client()
    assert c.history[0].reply.code == 220
    assert c.ehlo().code == 250
    assert c.mail("fresh@example.org").code == 250
    assert c.quit().code == 221


def fuzzed_command_lines(server, complaints: Complaints, payload: bytes) -> None:
    port, data = send_and_drain(server.address, payload)
    assert data.startswith(b"220 ")
    check_after(server, complaints, port)


def random_byte_stream(server, complaints: Complaints, payload: bytes) -> None:
    port, _ = send_and_drain(server.address, payload)
    check_after(server, complaints, port)


def overlong_line(server, complaints: Complaints, first: bytes, size: int, filler: bytes) -> None:
    payload = b"EHLO x.example.org\r\nMAIL FROM:<a@lab.example.org>\r\n" + first + filler * size
    port, _ = send_and_drain(server.address, payload)
    check_after(server, complaints, port)


def lf_dot_lf_smuggling(server, pieces: list[bytes]) -> None:
    """Only <CRLF>.<CRLF> ends DATA (§4.1.1.4); bare-LF/CR dots are message text."""
    body = b"".join(pieces)
    # Dot-stuff at CRLF line starts only, as a correct client does (§4.5.2).
    wire = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in body.split(b"\r\n"))
    before = len(server.mailbox)
    c = server.client()
    c.ehlo()
    c.mail("sender@example.org")
    c.rcpt("postmaster@lab.example.org")
    assert c.command("DATA").code == 354
    reply = c.raw(wire + b"\r\n.\r\n")
    assert reply.code == 250, reply
    assert c.noop().code == 250  # the next reply is NOOP's: nothing was smuggled in
    c.quit()
    assert len(server.mailbox) == before + 1
    assert server.mailbox.last().sent == body + b"\r\n"
    assert server.internal_errors == []


overlong_inputs = dict(
    first=st.binary(max_size=20),
    size=st.sampled_from([511, 512, 513, 1000, 8191, 8192, 8193, 70_000]),
    filler=st.sampled_from([b"A", b"\x00", b"\xff", b"\r", b"\n.", b" "]),
)
