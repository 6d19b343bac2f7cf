"""Robustness: bad bytes, load, slow clients, lifecycle, memory and learner input.

The figures these tests hold are reported by ``benchmarks/robustness.py``.
Hypothesis runs derandomized (the same inputs every run, so CI is stable and
the README's "inputs tried" is exact); raise ``FUZZ_EXAMPLES`` to search wider.
"""

from __future__ import annotations

import gc
import logging
import os
import smtplib
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labsmtp import LabServer, LabValueError, Policy, StepClient
from labsmtp.lab.transcript import CLIENT, EVENT, SERVER

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
USERS = {"alice": "wonderland"}
# Ends whatever state a fuzz payload left the session in: a pending line is
# completed, DATA is ended, then QUIT.  Every part gets a reply of its own.
SUFFIX = b"\r\n.\r\nQUIT\r\n"

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Complaints(logging.Handler):
    """Anything logged at WARNING or above would show up in a notebook cell."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzz_server():
    """One server for all fuzz inputs: STARTTLS and AUTH on (AUTH allowed in the clear,
    so the fuzzer reaches the AUTH dialogue without a TLS handshake)."""
    complaints = _Complaints()
    for name in ("asyncio", "mail.log", ""):
        logging.getLogger(name).addHandler(complaints)
    s = LabServer(
        name="fuzz",
        users=USERS,
        tls=True,
        auth_require_tls=False,
        hard_error_limit=60,
        idle_timeout=10,
        max_lines=200_000,
    ).start()
    s.complaints = complaints
    yield s
    s.stop()
    for name in ("asyncio", "mail.log", ""):
        logging.getLogger(name).removeHandler(complaints)


def _send_and_drain(address, payload: bytes, wait: float = 5.0) -> tuple[int, bytes]:
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


def _session_of(server, port: int):
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


def _check_after(server, port: int) -> None:
    info = _session_of(server, port)
    assert_one_reply_per_command(server.transcript.lines(info.id))
    assert server._internal_errors == []
    assert server.complaints.records == []
    # A fresh client still gets a correct dialogue.
    c = server.client()
    assert c.history[0].reply.code == 220
    assert c.ehlo().code == 250
    assert c.mail("fresh@example.org").code == 250
    assert c.quit().code == 221


# --- bad input: property-based fuzzing --------------------------------------------

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


@FUZZ
@given(payload=command_lines)
def test_fuzzed_command_lines_get_one_reply_each(fuzz_server, payload):
    port, data = _send_and_drain(fuzz_server.address, payload)
    assert data.startswith(b"220 ")
    _check_after(fuzz_server, port)


@FUZZ
@given(payload=st.binary(max_size=4096))
def test_random_byte_streams(fuzz_server, payload):
    port, _ = _send_and_drain(fuzz_server.address, payload)
    _check_after(fuzz_server, port)


@FUZZ
@given(
    first=st.binary(max_size=20),
    size=st.sampled_from([511, 512, 513, 1000, 8191, 8192, 8193, 70_000]),
    filler=st.sampled_from([b"A", b"\x00", b"\xff", b"\r", b"\n.", b" "]),
)
def test_overlong_and_huge_lines(fuzz_server, first, size, filler):
    payload = b"EHLO x.example.org\r\nMAIL FROM:<a@lab.example.org>\r\n" + first + filler * size
    port, _ = _send_and_drain(fuzz_server.address, payload)
    _check_after(fuzz_server, port)


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


@FUZZ
@given(pieces=st.lists(body_piece, max_size=30))
def test_lf_dot_lf_smuggling_never_ends_the_message(fuzz_server, pieces):
    """Only <CRLF>.<CRLF> ends DATA (§4.1.1.4); bare-LF/CR dots are message text."""
    body = b"".join(pieces)
    # Dot-stuff at CRLF line starts only, as a correct client does (§4.5.2).
    wire = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in body.split(b"\r\n"))
    before = len(fuzz_server.mailbox)
    c = fuzz_server.client()
    c.ehlo()
    c.mail("sender@example.org")
    c.rcpt("postmaster@lab.example.org")
    assert c.command("DATA").code == 354
    reply = c.raw(wire + b"\r\n.\r\n")
    assert reply.code == 250, reply
    assert c.noop().code == 250  # the next reply is NOOP's: nothing was smuggled in
    c.quit()
    assert len(fuzz_server.mailbox) == before + 1
    assert fuzz_server.mailbox.last().content == body + b"\r\n"
    assert fuzz_server._internal_errors == []


def test_a_pipelined_burst_of_2000_commands_gets_2000_replies_in_order(fuzz_server):
    burst = b"EHLO burst.example.org\r\n" + b"NOOP\r\nRSET\r\n" * 1000
    port, data = _send_and_drain(fuzz_server.address, burst)
    info = _session_of(fuzz_server, port)
    lines = fuzz_server.transcript.lines(info.id)
    assert assert_one_reply_per_command(lines) == 2001 + 3  # + SUFFIX's three lines
    assert data.count(b"250 2.0.0 OK\r\n") == 2000


# --- load -------------------------------------------------------------------------------

LOAD_SESSIONS = 200


def test_200_simultaneous_sessions_each_deliver_exactly_once():
    with LabServer(name="load", max_connections=LOAD_SESSIONS + 10, max_messages=1000) as s:
        barrier = threading.Barrier(LOAD_SESSIONS)
        acked, failed = [], []

        def session(i: int):
            try:
                with smtplib.SMTP(
                    s.host, s.port, local_hostname=f"c{i}.example.org", timeout=30
                ) as m:
                    barrier.wait(timeout=30)  # all 200 connected and greeted at once
                    m.sendmail(
                        f"s{i}@example.org",
                        ["postmaster@lab.example.org"],
                        f"Subject: load {i}\r\n\r\nmessage {i}\r\n",
                    )
                    acked.append(i)  # sendmail returned: the final dot got 250
            except Exception as exc:  # pragma: no cover - reported by the assert below
                failed.append((i, repr(exc)))

        threads = [threading.Thread(target=session, args=(i,)) for i in range(LOAD_SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failed == []
        assert len(acked) == LOAD_SESSIONS
        subjects = sorted(m.subject for m in s.mailbox)
        assert subjects == sorted(f"load {i}" for i in acked)  # each exactly once
        time.sleep(0.2)
        sessions = [info for info in s.sessions]
        assert len(sessions) == LOAD_SESSIONS
        assert sorted(info.helo for info in sessions) == sorted(
            f"c{i}.example.org" for i in range(LOAD_SESSIONS)
        )
        for info in sessions:
            assert_one_reply_per_command(s.transcript.lines(info.id))
        assert s._internal_errors == []


def beside_a_slow_client(dialogues: int = 50) -> tuple[float, int]:
    """Run full dialogues while another client sends one byte a second.

    Returns (seconds the dialogues took, messages delivered); the benchmark
    (benchmarks/robustness.py) reports the same run.
    """
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


def test_a_client_sending_one_byte_a_second_does_not_block_others():
    elapsed, delivered = beside_a_slow_client(50)
    assert delivered == 50
    assert elapsed < 5.0, f"50 dialogues took {elapsed:.1f} s beside a slow client"


# --- lifecycle and memory ----------------------------------------------------------------


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


CYCLES = 100


def test_100_start_stop_cycles_leave_no_thread_socket_or_fd():
    s = LabServer(name="cycles", users=USERS, implicit_tls=True)
    s.start()
    s.client().quit()
    s.stop()  # warm up: lazy imports, the lab CA, its certificate
    gc.collect()
    threads, fds = set(threading.enumerate()), _fds()
    for _ in range(CYCLES):
        s.start()
        c = s.client()
        c.ehlo()
        c.starttls()
        c.ehlo()
        c.auth("alice", "wonderland")
        c.quit()
        s.client(implicit_tls=True).close()  # a client that vanishes without QUIT
        s.stop()
    gc.collect()
    assert set(threading.enumerate()) == threads
    assert _fds() <= fds
    assert not s.running and s.tls_port is None


DIALOGUES = 10_000
DIALOGUE = (
    b"EHLO load.example.org\r\nMAIL FROM:<a@example.org>\r\n"
    b"RCPT TO:<postmaster@lab.example.org>\r\nDATA\r\nSubject: m\r\n\r\nhello\r\n.\r\n"
    b"QUIT\r\n"
)
# Caps for the memory test, and the bound it must stay within once they are full.
MEMORY_CAPS = {"max_lines": 2_000, "max_messages": 100, "max_sessions": 1_000}
MEMORY_BOUND_MB = 8


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _dialogues(address, n: int, threads: int = 8) -> None:
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


def test_memory_stays_bounded_over_10000_dialogues():
    with LabServer(name="memory", **MEMORY_CAPS) as s:
        _dialogues(s.address, 2_000)  # fills every cap
        gc.collect()
        rss, objects = _rss_mb(), len(gc.get_objects())
        _dialogues(s.address, DIALOGUES - 2_000)
        time.sleep(0.2)
        gc.collect()
        grown_mb, grown_objects = _rss_mb() - rss, len(gc.get_objects()) - objects
        assert len(s.mailbox) == MEMORY_CAPS["max_messages"]
        assert s.mailbox.evicted == DIALOGUES - MEMORY_CAPS["max_messages"]
        assert len(s.transcript) == MEMORY_CAPS["max_lines"]
        assert len(s.sessions) == MEMORY_CAPS["max_sessions"]
        assert s.sessions[-1].id == DIALOGUES
        assert s._internal_errors == []
        assert grown_mb < MEMORY_BOUND_MB, f"RSS grew {grown_mb:.1f} MB after the caps were full"
        assert grown_objects < 2_000, f"{grown_objects} more live objects"


# --- learner input ----------------------------------------------------------------------------


def _bad_calls(server):
    from labsmtp import get_persona
    from labsmtp.lab import faults, tls

    c = server.client()
    return {
        "LabServer(port=-1)": lambda: LabServer(-1),
        "LabServer(port='25')": lambda: LabServer("25"),
        "LabServer(host='')": lambda: LabServer(host=""),
        "LabServer(host='0.0.0.0')": lambda: LabServer(host="0.0.0.0"),
        "LabServer(hostname='a b')": lambda: LabServer(hostname="a b"),
        "LabServer(persona=3)": lambda: LabServer(persona=3),
        "LabServer(persona='qmail-1.0')": lambda: LabServer(persona="qmail-1.0"),
        "LabServer(max_lines=0)": lambda: LabServer(max_lines=0),
        "LabServer(max_sessions='many')": lambda: LabServer(max_sessions="many"),
        "LabServer(policy='strict')": lambda: LabServer(policy="strict"),
        "LabServer(no_such_switch=1)": lambda: LabServer(no_such_switch=1),
        "LabServer(mode='relay')": lambda: LabServer(mode="relay"),
        "LabServer(users=['alice'])": lambda: LabServer(users=["alice"]),
        "LabServer(users={'alice': 3})": lambda: LabServer(users={"alice": 3}),
        "LabServer(tls='yes')": lambda: LabServer(tls="yes"),
        "LabServer(implicit_tls=-1)": lambda: LabServer(implicit_tls=-1),
        "LabServer(mode='submission')": lambda: LabServer(mode="submission"),
        "Policy(max_recipients=0)": lambda: Policy(max_recipients=0),
        "Policy(idle_timeout=-1)": lambda: Policy(idle_timeout=-1),
        "Policy(mynetworks='not-a-net')": lambda: Policy(mynetworks="not-a-net"),
        "Policy(smtpd_helo_restrictions='reject_everything')": lambda: Policy(
            smtpd_helo_restrictions="reject_everything"
        ),
        "server.configure(mode='open')": lambda: server.configure(mode="open"),
        "server.configure(max_connections=0)": lambda: server.configure(max_connections=0),
        "server.client(implicit_tls=True) without the port": lambda: server.client(
            implicit_tls=True
        ),
        "StepClient(port=-1)": lambda: StepClient(port=-1),
        "StepClient(timeout=0)": lambda: StepClient(timeout=0),
        "StepClient(source=127)": lambda: StepClient(source=127),
        "StepClient(server_name='')": lambda: StepClient(server_name=""),
        "StepClient(trust='nowhere')": lambda: StepClient(trust="nowhere"),
        "StepClient(implicit_tls='yes')": lambda: StepClient(implicit_tls="yes"),
        "client.mail('no-at-sign')": lambda: c.mail("no-at-sign"),
        "client.mail(42)": lambda: c.mail(42),
        "client.rcpt('')": lambda: c.rcpt(""),
        "client.rcpt('<a@b>')": lambda: c.rcpt("<a@b>"),
        "client.raw(3)": lambda: c.raw(3),
        "client.auth(1, 2)": lambda: c.auth(1, 2),
        "client.auth(mechanism='CRAM-MD5')": lambda: c.auth("a", "b", "CRAM-MD5"),
        "client.starttls(trust='nowhere')": lambda: tls.client_context(trust="nowhere"),
        "get_persona(3)": lambda: get_persona(3),
        "Fault(probability=2)": lambda: faults.Fault("RCPT", faults.HangUp(), probability=2),
        "parse_fault('garbage')": lambda: faults.parse_fault("garbage"),
        "parse_fault('RCPT:reply 250 2')": lambda: faults.parse_fault("RCPT:hangup 2"),
    }


def test_every_public_entry_point_answers_wrong_input_with_a_clear_message(server):
    calls = _bad_calls(server)
    unclear = {}
    for label, call in calls.items():
        try:
            call()
        except LabValueError as exc:
            text = str(exc)
            if len(text) < 20 or "Traceback" in text:
                unclear[label] = text
        except Exception as exc:  # pragma: no cover - the assert shows it
            unclear[label] = f"{type(exc).__name__}: {exc}"
        else:
            unclear[label] = "accepted without complaint"
    assert unclear == {}
    assert len(calls) >= 40
