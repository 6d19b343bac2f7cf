"""python -m labsmtp experiment, and serve --fault, as a learner runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from labsmtp.lab.client import StepClient

PY = [sys.executable, "-m", "labsmtp"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def run(*args):
    return subprocess.run(PY + list(args), capture_output=True, text=True, env=ENV, timeout=60)


def test_experiment_prints_json_counts():
    p = run(
        "experiment",
        "--trials",
        "40",
        "--seed",
        "3",
        "--fault",
        "rcpt:451:0.3",
        "--fault",
        "mail:550:0.1",
        "--retry",
        "none",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["trials"] == 40 and d["retry"] == "none" and d["seed"] == 3
    assert d["faults"] == ["rcpt:451:0.3", "mail:550:0.1"]
    assert sum(d["by_outcome"].values()) == 40
    assert d["by_outcome"]["deferred"] == d["by_stage_code"]["rcpt"].get("451", 0)
    assert d["by_outcome"]["bounced"] == d["by_stage_code"]["mail"].get("550", 0)
    again = json.loads(
        run(
            "experiment",
            "--trials",
            "40",
            "--seed",
            "3",
            "--fault",
            "rcpt:451:0.3",
            "--fault",
            "mail:550:0.1",
            "--retry",
            "none",
            "--json",
        ).stdout
    )
    assert again["by_stage_code"] == d["by_stage_code"]  # same seed, same counts


def test_experiment_prints_a_summary():
    p = run("experiment", "--trials", "20", "--fault", "rcpt:greylist=100s", "--retry", "mta")
    assert p.returncode == 0, p.stderr
    assert "delivered            20" in p.stdout and "greylist" in p.stdout


def test_a_malformed_fault_spec_shows_the_grammar():
    p = run("experiment", "--fault", "rcpt:sometimes")
    assert p.returncode == 2
    assert "STAGE[#N]:ACTION" in p.stderr and "Traceback" not in p.stderr


def test_serve_with_faults():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        PY + ["serve", "--port", str(port), "--fault", "rcpt#2:452", "--fault", "noop:550"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        end = time.monotonic() + 10
        while True:
            try:
                c = StepClient("127.0.0.1", port, timeout=5)
                c.connect()
                break
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        c.helo()
        c.mail("ada@example.org")
        assert c.rcpt("a@lab.example.org").code == 250
        assert c.rcpt("b@lab.example.org").code == 452
        assert c.noop().code == 550
        c.quit()
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=10)[0]
    assert "[injected by rcpt#2:452]" in out
