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
import threading
import time

import pytest
from helpers import (
    MEMORY_BOUND_MB,
    MEMORY_CAPS,
    Complaints,
    assert_one_reply_per_command,
    beside_a_slow_client,
    body_piece,
    command_lines,
    fds,
    fuzz_lab_server,
    fuzzed_command_lines,
    lf_dot_lf_smuggling,
    overlong_inputs,
    overlong_line,
    pipelined_dialogues,
    random_byte_stream,
    rss_mb,
    send_and_drain,
    session_of,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labsmtp import LabServer, LabValueError, Policy, StepClient

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
USERS = {"alice": "wonderland"}

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_server():
    complaints = Complaints()
    for name in ("asyncio", "mail.log", ""):
        logging.getLogger(name).addHandler(complaints)
    s = fuzz_lab_server()
    yield s, complaints
    s.stop()
    for name in ("asyncio", "mail.log", ""):
        logging.getLogger(name).removeHandler(complaints)


# --- bad input: property-based fuzzing (the properties live in helpers.py) -------------


@FUZZ
@given(payload=command_lines)
def test_fuzzed_command_lines_get_one_reply_each(fuzz_server, payload):
    fuzzed_command_lines(*fuzz_server, payload)


@FUZZ
@given(payload=st.binary(max_size=4096))
def test_random_byte_streams(fuzz_server, payload):
    random_byte_stream(*fuzz_server, payload)


@FUZZ
@given(**overlong_inputs)
def test_overlong_and_huge_lines(fuzz_server, first, size, filler):
    overlong_line(*fuzz_server, first, size, filler)


@FUZZ
@given(pieces=st.lists(body_piece, max_size=30))
def test_lf_dot_lf_smuggling_never_ends_the_message(fuzz_server, pieces):
    lf_dot_lf_smuggling(fuzz_server[0], pieces)


def test_a_pipelined_burst_of_2000_commands_gets_2000_replies_in_order(fuzz_server):
    server = fuzz_server[0]
    burst = b"EHLO burst.example.org\r\n" + b"NOOP\r\nRSET\r\n" * 1000
    port, data = send_and_drain(server.address, burst)
    info = session_of(server, port)
    lines = server.transcript.lines(info.id)
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
        assert s.internal_errors == []


def test_a_client_sending_one_byte_a_second_does_not_block_others():
    elapsed, delivered = beside_a_slow_client(50)
    assert delivered == 50
    assert elapsed < 5.0, f"50 dialogues took {elapsed:.1f} s beside a slow client"


# --- lifecycle and memory ----------------------------------------------------------------


CYCLES = 100


def test_100_start_stop_cycles_leave_no_thread_socket_or_fd():
    s = LabServer(name="cycles", users=USERS, implicit_tls=True)
    s.start()
    s.client().quit()
    s.stop()  # warm up: lazy imports, the lab CA, its certificate
    gc.collect()
    threads, open_fds = set(threading.enumerate()), fds()
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
    assert fds() <= open_fds
    assert not s.running and s.tls_port is None


DIALOGUES = 10_000


def test_memory_stays_bounded_over_10000_dialogues():
    with LabServer(name="memory", **MEMORY_CAPS) as s:
        pipelined_dialogues(s.address, 2_000)  # fills every cap
        gc.collect()
        rss, objects = rss_mb(), len(gc.get_objects())
        pipelined_dialogues(s.address, DIALOGUES - 2_000)
        time.sleep(0.2)
        gc.collect()
        grown_mb, grown_objects = rss_mb() - rss, len(gc.get_objects()) - objects
        assert len(s.mailbox) == MEMORY_CAPS["max_messages"]
        assert s.mailbox.evicted == DIALOGUES - MEMORY_CAPS["max_messages"]
        assert len(s.transcript) == MEMORY_CAPS["max_lines"]
        assert len(s.sessions) == MEMORY_CAPS["max_sessions"]
        assert s.sessions[-1].id == DIALOGUES
        assert s.internal_errors == []
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
