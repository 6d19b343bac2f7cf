"""python -m labsmtp serve | talk | send, as a learner runs them in a terminal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import require_tool
from helpers import free_port

PY = [sys.executable, "-m", "labsmtp"]
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def _wait_for(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


@pytest.fixture
def serve():
    procs = []

    def start(*args):
        port = free_port()
        p = subprocess.Popen(
            PY + ["serve", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        procs.append(p)
        _wait_for(port)
        return p, port

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_serve_accepts_swaks_prints_the_dialogue_and_stops_on_sigterm(serve):
    swaks = require_tool("swaks")
    p, port = serve()
    out = subprocess.run(
        [
            swaks,
            "--server",
            f"127.0.0.1:{port}",
            "--to",
            "postmaster@lab.example.org",
            "--from",
            "a@example.org",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    p.send_signal(signal.SIGTERM)
    text, _ = p.communicate(timeout=10)
    assert p.returncode == 0
    assert "<- 220 mx.lab.example.org ESMTP labsmtp ready" in text
    assert "-> MAIL FROM:<a@example.org>" in text
    assert "<- 250 2.0.0 OK: queued as" in text
    assert "1 message(s) accepted" in text
    assert "Traceback" not in text


def test_serve_stops_cleanly_on_ctrl_c(serve):
    p, port = serve()
    p.send_signal(signal.SIGINT)
    text, _ = p.communicate(timeout=10)
    assert p.returncode == 0 and "stopped" in text and "Traceback" not in text


def test_serve_with_postfix_switches_answers_like_postfix(serve):
    p, port = serve(
        "--persona",
        "postfix",
        "--smtpd-helo-required",
        "--smtpd-helo-restrictions",
        "reject_invalid_helo_hostname,reject_non_fqdn_helo_hostname",
        "--mydestination",
        "lab.example.org",
        "--mynetworks",
        "127.0.0.1/32",
        "--message-size-limit",
        "1048576",
    )
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rwb")
    assert f.readline() == b"220 mx.lab.example.org ESMTP Postfix (Debian/GNU)\r\n"
    # Stock smtpd_delay_reject = yes: the HELO verdict is said at RCPT.
    for line, want in [
        (b"MAIL FROM:<a@example.org>", b"503 5.5.1 Error: send HELO/EHLO first"),
        (b"HELO client", b"250 mx.lab.example.org"),
        (b"MAIL FROM:<a@example.org>", b"250 2.1.0 Ok"),
        (
            b"RCPT TO:<postmaster@lab.example.org>",
            b"504 5.5.2 <client>: Helo command rejected: need fully-qualified hostname",
        ),
        (b"HELO bad_host!", b"250 mx.lab.example.org"),
        (b"MAIL FROM:<a@example.org>", b"250 2.1.0 Ok"),
        (
            b"RCPT TO:<postmaster@lab.example.org>",
            b"501 5.5.2 <bad_host!>: Helo command rejected: Invalid name",
        ),
        (b"QUIT", b"221 2.0.0 Bye"),
    ]:
        f.write(line + b"\r\n")
        f.flush()
        assert f.readline().rstrip() == want
    s.close()
    p.terminate()
    p.wait(timeout=10)


def test_send_exit_codes_name_the_failed_phase(server):
    ok = subprocess.run(
        PY
        + [
            "send",
            "--server",
            f"127.0.0.1:{server.port}",
            "--from",
            "a@example.org",
            "--to",
            "postmaster@lab.example.org",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert "<- 250 2.0.0 OK: queued as" in ok.stdout
    assert len(server.mailbox) == 1
    relay = subprocess.run(
        PY
        + [
            "send",
            "--server",
            f"127.0.0.1:{server.port}",
            "--from",
            "a@example.org",
            "--to",
            "x@elsewhere.net",
            "--source",
            "127.0.0.2",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert relay.returncode == 24 and "<** 554 5.7.1" in relay.stdout
    server.configure(smtpd_helo_restrictions="reject_non_fqdn_helo_hostname")
    helo = subprocess.run(
        PY
        + [
            "send",
            "--server",
            f"127.0.0.1:{server.port}",
            "--from",
            "a@example.org",
            "--to",
            "b@lab.example.org",
            "--helo",
            "shortname",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert helo.returncode == 22 and "504 5.5.2" in helo.stdout
    refused = subprocess.run(
        PY
        + [
            "send",
            "--server",
            f"127.0.0.1:{free_port()}",
            "--from",
            "a@example.org",
            "--to",
            "b@lab.example.org",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert refused.returncode == 2 and "refused" in refused.stderr
    assert "Traceback" not in refused.stderr
    # Terminal advice in a terminal: no notebook words (server.port, cells, notebooks).
    assert "python -m labsmtp serve" in refused.stderr
    assert "server.port" not in refused.stderr and "notebook" not in refused.stderr


def test_talk_reads_lines_from_stdin(server):
    script = (
        "HELO t.example.org\nMAIL FROM:<a@example.org>\nRCPT TO:<b@lab.example.org>\nDATA\n"
        "Subject: talk\n\nhi\n.\nQUIT\n"
    )
    out = subprocess.run(
        PY + ["talk", f"127.0.0.1:{server.port}"],
        input=script,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("220 ")
    assert "354 End data" in out.stdout and "221 2.0.0" in out.stdout
    assert server.mailbox.last().subject == "talk"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["serve", "--port", "-1"], "a port is a number"),
        (["serve", "--persona", "nosuch"], "invalid choice"),
        (["serve", "--smtpd-helo-restrictions", "helo=yes"], "unknown restriction"),
        (["serve", "--set", "smtpd_delay_reject"], "NAME=VALUE"),
        (["serve", "--idle-timeout", "0"], "seconds above 0"),
        (["send", "--server", "nohostport", "--from", "a@b", "--to", "c@d"], "HOST:PORT"),
        (["talk"], "required"),
        ([], "required"),
    ],
)
def test_bad_arguments_give_usage_not_a_traceback(args, needle):
    out = subprocess.run(PY + args, capture_output=True, text=True, env=ENV, timeout=30)
    assert out.returncode == 2
    assert "usage:" in out.stderr and needle in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_on_a_taken_port_says_what_to_do():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        out = subprocess.run(
            PY + ["serve", "--port", str(port)], capture_output=True, text=True, env=ENV, timeout=30
        )
    assert out.returncode == 1 and "already in use" in out.stderr
    assert "Traceback" not in out.stderr
    # Terminal advice, not the notebook's ("Leave out port=", "stop_all()").
    assert (
        "Ctrl-C" in out.stderr and "--port 0" in out.stderr and f"--port {port + 1}" in out.stderr
    )
    assert "port=" not in out.stderr and "stop_all" not in out.stderr


def test_serve_sets_a_limit_under_the_programs_own_name(serve):
    # Exim's smtp_accept_max is the lab's max_connections; Exim's own 421 says so.
    p, port = serve("--persona", "exim", "--set", "smtp_accept_max=1")
    deadline = time.monotonic() + 10
    while True:  # the fixture's probe connection may hold the one place a moment longer
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        if held.makefile("rb").readline().startswith(b"220 ") or time.monotonic() > deadline:
            break
        held.close()
        time.sleep(0.05)
    with held:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as refused:
            assert refused.makefile("rb").readline() == (
                b"421 Too many concurrent SMTP connections; please try again later.\r\n"
            )
    p.terminate()
    text, _ = p.communicate(timeout=10)
    assert "limits: smtp_accept_max=1, smtp_accept_max_per_host=0" in text
    assert "Traceback" not in text


def test_serve_flags_and_settings_agree(serve):
    p, port = serve("--persona", "postfix", "--max-connections", "7", "--set", "smtpd_timeout=60")
    p.terminate()
    text, _ = p.communicate(timeout=10)
    assert "limits: default_process_limit=7, smtpd_client_connection_count_limit=50" in text
    assert "smtpd_timeout=60s" in text


def test_serve_help_names_each_programs_settings():
    out = subprocess.run(PY + ["serve", "--help"], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0
    for name in (
        "--max-connections",
        "--set NAME=VALUE",
        "smtp_accept_max",
        "default_process_limit",
    ):
        assert name in out.stdout


def test_serve_refuses_a_setting_the_persona_does_not_have():
    out = subprocess.run(
        PY + ["serve", "--persona", "exim", "--set", "smtpd_delay_reject_typo=no"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert out.returncode == 1 and "exim has no setting 'smtpd_delay_reject_typo'" in out.stderr
    assert "smtp_accept_max" in out.stderr and "Traceback" not in out.stderr
