"""Real clients nobody here wrote: smtplib, curl, swaks and Postfix's smtp-source."""

from __future__ import annotations

import smtplib
import subprocess

import pytest
from conftest import require_tool


def test_smtplib_sendmail_lands_with_the_right_envelope(server):
    with smtplib.SMTP(server.host, server.port, local_hostname="py.example.org") as smtp:
        refused = smtp.sendmail(
            "ada@example.org",
            ["b@lab.example.org", "c@lab.example.org"],
            "Subject: from smtplib\r\n\r\nhello\r\n",
        )
    assert refused == {}
    m = server.mailbox.last()
    assert (m.helo, m.mail_from, m.rcpt_tos) == (
        "py.example.org",
        "ada@example.org",
        ("b@lab.example.org", "c@lab.example.org"),
    )
    assert m.subject == "from smtplib"


def test_smtplib_sees_refused_recipients_and_sequence_errors(server):
    with smtplib.SMTP(server.host, server.port, source_address=("127.0.0.2", 0)) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            smtp.sendmail("a@example.org", ["x@elsewhere.example.net"], "Subject: x\r\n\r\n")
        code, text = err.value.recipients["x@elsewhere.example.net"]
        assert code == 554 and b"Relay access denied" in text
        assert smtp.docmd("DATA")[0] == 503
    assert len(server.mailbox) == 0


def test_smtplib_reads_the_ehlo_extensions(postfix_server):
    with smtplib.SMTP(postfix_server.host, postfix_server.port) as smtp:
        smtp.ehlo("client.example.org")
        assert smtp.has_extn("pipelining") and smtp.has_extn("8bitmime")
        assert smtp.esmtp_features["size"] == "1048576"


def test_curl_sends_a_message(server, tmp_path):
    curl = require_tool("curl")
    msg = tmp_path / "msg.txt"
    msg.write_text("From: <c@example.org>\r\nSubject: from curl\r\n\r\nhello from curl\r\n")
    out = subprocess.run(
        [
            curl,
            "-sS",
            f"smtp://{server.host}:{server.port}/curl.example.org",
            "--mail-from",
            "c@example.org",
            "--mail-rcpt",
            "postmaster@lab.example.org",
            "--upload-file",
            str(msg),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    m = server.mailbox.last()
    assert (m.helo, m.mail_from, m.rcpt_tos) == (
        "curl.example.org",
        "c@example.org",
        ("postmaster@lab.example.org",),
    )
    assert m.subject == "from curl"


def test_swaks_sends_a_message_and_reports_relay_denied(server):
    swaks = require_tool("swaks")
    ok = subprocess.run(
        [
            swaks,
            "--server",
            f"{server.host}:{server.port}",
            "--helo",
            "swaks.example.org",
            "--from",
            "s@example.org",
            "--to",
            "postmaster@lab.example.org",
            "--header",
            "Subject: from swaks",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    m = server.mailbox.last()
    assert (m.helo, m.mail_from, m.rcpt_tos) == (
        "swaks.example.org",
        "s@example.org",
        ("postmaster@lab.example.org",),
    )
    assert m.subject == "from swaks"
    # From an untrusted loopback address, relaying is refused; swaks exits 24 (RCPT).
    denied = subprocess.run(
        [
            swaks,
            "--server",
            f"{server.host}:{server.port}",
            "--local-interface",
            "127.0.0.2",
            "--from",
            "s@example.org",
            "--to",
            "x@elsewhere.example.net",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert denied.returncode == 24
    assert "554 5.7.1 <x@elsewhere.example.net>: Relay access denied" in denied.stdout
    assert len(server.mailbox) == 1


def test_postfix_smtp_source_delivers_every_message(server):
    smtp_source = require_tool("smtp-source", "/usr/sbin/smtp-source")
    out = subprocess.run(
        [
            smtp_source,
            "-s",
            "5",
            "-m",
            "50",
            "-f",
            "load@example.org",
            "-t",
            "sink@lab.example.org",
            "-S",
            "smtp-source test",
            f"{server.host}:{server.port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(server.mailbox) == 50
    assert {m.mail_from for m in server.mailbox} == {"load@example.org"}
    assert all(m.rcpt_tos == ("sink@lab.example.org",) for m in server.mailbox)
    assert len({m.queue_id for m in server.mailbox}) == 50
