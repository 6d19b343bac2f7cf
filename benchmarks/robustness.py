"""Measure the lab server's robustness figures and print them as a README section.

    .venv/bin/python benchmarks/robustness.py              # the README's figures
    .venv/bin/python benchmarks/robustness.py --sessions 500 --fuzz 1000

Each figure comes from the same code paths as ``tests/test_robustness.py``
(which asserts them); this script only measures and reports, so the numbers
in the README can be re-made with one command on any machine.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import smtplib
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

T = None  # tests/test_robustness.py, imported in main() once FUZZ_EXAMPLES is set

from labsmtp import LabServer  # noqa: E402


def load(sessions: int) -> dict:
    """``sessions`` simultaneous smtplib sessions, each sending one message."""
    with LabServer(
        name="bench-load",
        max_connections=sessions + 10,
        max_messages=sessions * 2,
        max_sessions=sessions * 2,
    ) as s:
        barrier = threading.Barrier(sessions)
        acked, failed = [], []

        def one(i):
            try:
                with smtplib.SMTP(
                    s.host, s.port, local_hostname=f"c{i}.example.org", timeout=60
                ) as m:
                    barrier.wait(timeout=60)
                    m.sendmail(
                        f"s{i}@example.org",
                        ["postmaster@lab.example.org"],
                        f"Subject: load {i}\r\n\r\nmessage {i}\r\n",
                    )
                    acked.append(i)
            except Exception as exc:
                failed.append(repr(exc))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.perf_counter() - started
        subjects = [m.subject for m in s.mailbox]
        return {
            "sessions": sessions,
            "acknowledged": len(acked),
            "failed": len(failed),
            "in mailbox exactly once": len(subjects) == len(set(subjects)) == len(acked),
            "sessions in transcript": len(s.sessions),
            "seconds": round(elapsed, 2),
            "internal errors": len(s._internal_errors),
        }


def fuzz() -> dict:
    """Run the tests' fuzz properties (FUZZ_EXAMPLES inputs each); count what was sent."""
    counted = {"connections": 0, "bytes": 0}
    send = T._send_and_drain

    def counting(address, payload, wait=5.0):
        counted["connections"] += 1
        counted["bytes"] += len(payload) + len(T.SUFFIX)
        return send(address, payload, wait)

    T._send_and_drain = counting
    complaints = T._Complaints()
    s = LabServer(
        name="bench-fuzz",
        users=T.USERS,
        tls=True,
        auth_require_tls=False,
        hard_error_limit=60,
        idle_timeout=10,
        max_lines=200_000,
    ).start()
    s.complaints = complaints
    tests = [
        T.test_fuzzed_command_lines_get_one_reply_each,
        T.test_random_byte_streams,
        T.test_overlong_and_huge_lines,
        T.test_lf_dot_lf_smuggling_never_ends_the_message,
    ]
    started = time.perf_counter()
    try:
        for test in tests:
            test(fuzz_server=s)  # each asserts its property for every input
    finally:
        T._send_and_drain = send
        s.stop()
    return {
        "properties": len(tests),
        "inputs per property (max)": T.FUZZ_EXAMPLES,
        "raw fuzz connections": counted["connections"],
        "sessions opened (fuzz + checks)": len(s.sessions),
        "fuzz bytes sent": counted["bytes"],
        "internal errors": len(s._internal_errors),
        "seconds": round(time.perf_counter() - started, 1),
    }


def cycles(n: int) -> dict:
    """``n`` start/stop cycles with a STARTTLS+AUTH dialogue each; count leftovers."""
    s = LabServer(name="bench-cycles", users=T.USERS, implicit_tls=True)
    s.start(), s.client().quit(), s.stop()
    gc.collect()
    threads, fds = len(threading.enumerate()), T._fds()
    started = time.perf_counter()
    for _ in range(n):
        s.start()
        c = s.client()
        c.ehlo(), c.starttls(), c.ehlo(), c.auth("alice", "wonderland"), c.quit()
        s.client(implicit_tls=True).close()
        s.stop()
    gc.collect()
    return {
        "cycles": n,
        "threads left behind": len(threading.enumerate()) - threads,
        "file descriptors left behind": T._fds() - fds,
        "seconds": round(time.perf_counter() - started, 1),
    }


def memory(dialogues: int) -> dict:
    """RSS after the caps fill (2,000 dialogues) and after ``dialogues`` in all."""
    with LabServer(name="bench-memory", **T.MEMORY_CAPS) as s:
        T._dialogues(s.address, 2_000)
        gc.collect()
        before = T._rss_mb()
        started = time.perf_counter()
        T._dialogues(s.address, dialogues - 2_000)
        rate = (dialogues - 2_000) / (time.perf_counter() - started)
        gc.collect()
        after = T._rss_mb()
        return {
            "dialogues": dialogues,
            "caps": ", ".join(f"{k}={v:,}" for k, v in T.MEMORY_CAPS.items()),
            "RSS after caps filled (MB)": round(before, 1),
            "RSS at the end (MB)": round(after, 1),
            "growth (MB)": round(after - before, 1),
            "bound asserted by the test (MB)": T.MEMORY_BOUND_MB,
            "dialogues per second (pipelined, 8 client threads)": round(rate),
        }


def slow_client() -> dict:
    """50 full dialogues while another client sends one byte a second."""
    elapsed, delivered = T.beside_a_slow_client(50)
    return {
        "dialogues beside a 1 byte/s client": 50,
        "seconds": round(elapsed, 2),
        "delivered": delivered,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--fuzz", type=int, default=250, help="inputs per fuzz property")
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--dialogues", type=int, default=10_000)
    args = p.parse_args(argv)
    global T
    os.environ["FUZZ_EXAMPLES"] = str(args.fuzz)
    import test_robustness as T  # the tests' own helpers, strategies and bounds

    command = "python benchmarks/robustness.py " + " ".join(argv or sys.argv[1:])
    results = {
        "Load": load(args.sessions),
        "Slow client": slow_client(),
        "Bad input (hypothesis, derandomized)": fuzz(),
        "Lifecycle": cycles(args.cycles),
        "Memory": memory(args.dialogues),
    }
    print("## Robustness figures\n")
    print(
        f"Measured with `{command.strip()}` on Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end), "
        f"{time.strftime('%Y-%m-%d')}. "
        "The same properties are asserted by `pytest tests/test_robustness.py`.\n"
    )
    for section, figures in results.items():
        print(f"**{section}**\n")
        print("| figure | value |\n|---|---|")
        for k, v in figures.items():
            print(
                f"| {k} | {v:,} |"
                if isinstance(v, int) and not isinstance(v, bool)
                else f"| {k} | {v} |"
            )
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
