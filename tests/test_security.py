"""STARTTLS, AUTH, the three modes, safe defaults and limits, over real sockets."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest
from conftest import require_tool

from labsmtp import LabConnectionError, LabServer, LabValueError, State
from labsmtp.errors import TLSFailed

USERS = {"alice": "wonderland"}


@pytest.fixture
def tls_server():
    """A generic lab server with STARTTLS, an implicit-TLS port and one lab user."""
    s = LabServer(name=f"test-tls-{id(object())}", users=USERS, implicit_tls=True).start()
    yield s
    s.stop()


def _eventually(check, timeout: float = 3.0) -> bool:
    """Poll ``check()`` until it is true (the server thread may lag on a busy machine)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _raw(port: int, payload: bytes, source: str = "127.0.0.1", wait: float = 2.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=wait, source_address=(source, 0))
    s.sendall(payload)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    s.close()
    return data


# --- STARTTLS (RFC 3207) ----------------------------------------------------


def test_starttls_is_offered_only_when_switched_on_and_only_before_tls(server, tls_server):
    assert "STARTTLS" not in server.client().ehlo().text
    assert server.client().raw("STARTTLS").code == 502
    c = tls_server.client()
    ehlo = c.ehlo()
    assert "STARTTLS" in ehlo.texts and not any(t.startswith("AUTH") for t in ehlo.texts)
    assert c.starttls().code == 220 and c.tls
    again = c.ehlo()
    assert "STARTTLS" not in again.texts and "AUTH PLAIN LOGIN" in again.texts
    assert c.raw("STARTTLS").code == 503  # already inside TLS
    assert tls_server._internal_errors == []


def test_after_starttls_the_session_starts_over_and_needs_a_fresh_ehlo(tls_server):
    c = tls_server.client()
    c.ehlo()
    c.starttls()
    assert c.state is State.CONNECTED  # the client's table agrees (RFC 3207 §4.2)
    assert c.mail("a@example.org").code == 503  # MAIL before the new EHLO
    assert c.ehlo().code == 250
    assert c.mail("a@example.org").code == 250


def test_starttls_with_an_argument_is_a_syntax_error(tls_server):
    c = tls_server.client()
    c.ehlo()
    assert c.raw("STARTTLS now").code == 501
    assert not c.tls


def test_transcript_marks_the_lines_that_travelled_inside_tls(tls_server):
    c = tls_server.client()
    c.ehlo()
    c.starttls()
    c.ehlo()
    c.mail("a@example.org")
    c.rcpt("postmaster@lab.example.org")
    c.data("Subject: inside\r\n\r\nsecret\r\n")
    c.quit()
    lines = [ln for ln in tls_server.transcript.lines() if ln.direction != "event"]
    starttls_reply = next(i for i, ln in enumerate(lines) if ln.command == "STARTTLS" and ln.reply)
    assert not any(ln.tls for ln in lines[: starttls_reply + 1])
    assert all(ln.tls for ln in lines[starttls_reply + 1 :])
    assert {ln.direction for ln in lines[starttls_reply + 1 :]} == {"client", "server"}
    # The client's own record agrees: the STARTTLS command itself went in the clear.
    assert [ex.tls for ex in c.history] == [False, False, False, True, True, True, True, True, True]


def test_plaintext_pipelined_after_starttls_is_discarded(tls_server):
    # RFC 3207 §4.2 / CVE-2011-0411: a man-in-the-middle may append commands to the
    # plaintext STARTTLS; the server must not run them inside TLS.
    raw = socket.create_connection(tls_server.address, timeout=5)
    raw.recv(1024)
    raw.sendall(b"EHLO a.example.org\r\n")
    time.sleep(0.1)
    raw.recv(4096)
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert raw.recv(1024).startswith(b"220")
    tls = tls_server.client_ssl_context().wrap_socket(raw, server_hostname=tls_server.hostname)
    tls.sendall(b"NOOP\r\n")
    assert tls.recv(1024).startswith(b"250")  # the NOOP's reply, not one for MAIL
    tls.close()
    time.sleep(0.1)
    assert not any(b"injected" in ln.raw for ln in tls_server.transcript.lines() if ln.tls)


@pytest.mark.parametrize(
    "kwargs, why",
    [
        ({"server_name": "wrong.example.net"}, "not valid for the name 'wrong.example.net'"),
        ({"trust": "system"}, "not signed by a certificate authority this client trusts"),
    ],
)
def test_a_failed_verification_is_a_clear_connection_error(tls_server, kwargs, why):
    c = tls_server.client()
    c.ehlo()
    with pytest.raises(LabConnectionError, match=why) as err:
        c.starttls(**kwargs)
    assert isinstance(err.value, TLSFailed) and err.value.phase == "TLS handshake"
    assert c.state is State.CLOSED
    assert _eventually(lambda: all(s.ended for s in tls_server.sessions))  # none left open
    events = [ln.note for ln in tls_server.transcript.lines() if ln.direction == "event"]
    assert any(e.startswith("TLS handshake failed") for e in events)
    assert tls_server._internal_errors == []
    assert tls_server.client().ehlo().code == 250  # and the server carries on


def test_starttls_without_verification_still_encrypts(tls_server):
    c = tls_server.client()
    c.ehlo()
    c.starttls(verify=False, server_name="anything.example.net")
    assert c.tls and c.ehlo().code == 250


def test_implicit_tls_port_speaks_tls_from_the_first_byte(tls_server):
    assert tls_server.tls_port and tls_server.tls_port != tls_server.port
    c = tls_server.client(implicit_tls=True)
    assert c.tls and c.history[0].reply.code == 220
    ehlo = c.ehlo()
    assert "STARTTLS" not in ehlo.texts and "AUTH PLAIN LOGIN" in ehlo.texts
    assert c.auth("alice", "wonderland").code == 235
    c.quit()
    sid = tls_server.sessions[-1].id
    assert all(ln.tls for ln in tls_server.transcript.lines(sid) if ln.direction != "event")


def test_tls_server_settings_get_clear_messages():
    with pytest.raises(LabValueError, match="only inside TLS"):
        LabServer(users=USERS, tls=False)
    with pytest.raises(LabValueError, match="implicit_tls"):
        LabServer(implicit_tls=-1)
    with pytest.raises(LabValueError, match="tls must be True or False"):
        LabServer(tls="yes")
    with pytest.raises(LabValueError, match="trust must be"):
        from labsmtp.lab.tls import client_context

        client_context(trust="nowhere")


# --- AUTH (RFC 4954) -----------------------------------------------------------


def _inside_tls(server):
    c = server.client()
    c.ehlo()
    c.starttls()
    c.ehlo()
    return c


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_succeeds_with_235_and_fails_with_535(tls_server, mechanism):
    c = _inside_tls(tls_server)
    bad = c.auth("alice", "looking-glass", mechanism)
    assert (bad.code, bad.enhanced) == (535, "5.7.8")
    good = c.auth("alice", "wonderland", mechanism)
    assert (good.code, good.enhanced) == (235, "2.7.0") and good.legal
    assert c.auth("alice", "wonderland", mechanism).code == 503  # only once per session


def test_auth_outside_tls_gets_538_encryption_required(tls_server):
    c = tls_server.client()
    c.ehlo()
    r = c.auth("alice", "wonderland")
    assert (r.code, r.enhanced) == (538, "5.7.11")


@pytest.mark.parametrize(
    "lines, code",
    [
        (["AUTH"], 501),
        (["AUTH CRAM-MD5"], 504),
        (["AUTH PLAIN !!notbase64"], 501),
        (["AUTH PLAIN", "*"], 501),  # the client cancels (RFC 4954 §4)
        (["AUTH LOGIN", "YWxpY2U=", "*"], 501),
        (["AUTH PLAIN", "AGFsaWNlAHdvbmRlcmxhbmQ="], 235),  # no initial response: 334 first
        (["AUTH PLAIN " + "A" * 400], 501),
    ],
)
def test_every_auth_line_gets_exactly_one_reply(tls_server, lines, code):
    c = _inside_tls(tls_server)
    replies = [c.raw(line) for line in lines]
    assert [r.code for r in replies[:-1]] == [334] * (len(lines) - 1)
    assert replies[-1].code == code
    assert c.noop().code == 250
    assert tls_server._internal_errors == []


def test_auth_needs_ehlo_not_helo_and_not_inside_a_transaction(tls_server):
    c = tls_server.client(implicit_tls=True)
    assert c.auth("alice", "wonderland").code == 503  # before any greeting
    c.helo()
    assert c.auth("alice", "wonderland").code == 503  # HELO is not enough (RFC 4954 §4)
    c.ehlo()
    c.mail("a@example.org")
    assert c.auth("alice", "wonderland").code == 503


def test_auth_without_users_is_not_offered(server):
    c = server.client()
    c.ehlo()
    assert c.auth("alice", "wonderland").code == 503


# --- modes ----------------------------------------------------------------------


def test_submission_refuses_mail_with_530_until_authenticated():
    with LabServer(name="sub", mode="submission", users=USERS) as s:
        c = _inside_tls(s)
        r = c.mail("alice@example.org")
        assert (r.code, r.enhanced) == (530, "5.7.0")
        c.auth("alice", "wonderland")
        assert c.mail("alice@example.org").code == 250
        assert c.rcpt("someone@far-away.example.net").code == 250  # authenticated: may relay
        assert c.data("Subject: hi\r\n\r\nhello\r\n").code == 250
        assert s.mode_about.startswith("submission")


def test_mx_mode_refuses_relay_unless_authenticated(tls_server):
    c = tls_server.client(source="127.0.0.2")  # outside mynetworks
    c.ehlo()
    c.mail("a@example.org")
    assert c.rcpt("x@elsewhere.example.net").code == 554
    assert c.rcpt("postmaster@lab.example.org").code == 250  # its own domain is fine
    c = tls_server.client(source="127.0.0.2", implicit_tls=True)
    c.ehlo()
    c.auth("alice", "wonderland")
    c.mail("alice@example.org")
    assert c.rcpt("x@elsewhere.example.net").code == 250


def test_open_relay_accepts_everything_and_says_so():
    with LabServer(name="open", mode="open-relay") as s:
        assert "OPEN RELAY" in repr(s) and "DELIBERATELY MISCONFIGURED" in s.mode_about
        assert s.policy.open_relay
        c = s.client(source="127.0.0.2")
        c.ehlo()
        c.mail("spammer@example.com")
        assert c.rcpt("victim@elsewhere.example.net").code == 250
        assert c.data("Subject: buy now\r\n\r\n!\r\n").code == 250
        assert any("OPEN RELAY" in ln.note for ln in s.transcript.lines())
        s.configure(mode="mx")
        c = s.client(source="127.0.0.2")
        c.ehlo()
        c.mail("spammer@example.com")
        assert c.rcpt("victim@elsewhere.example.net").code == 554


def test_modes_get_clear_messages():
    with pytest.raises(LabValueError, match="mode must be one of"):
        LabServer(mode="relay")
    with pytest.raises(LabValueError, match="needs lab users"):
        LabServer(mode="submission")
    with pytest.raises(LabValueError, match="users must be a dict"):
        LabServer(users=["alice"])


# --- real clients ----------------------------------------------------------------


def test_smtplib_starttls_login_and_implicit_tls(tls_server):
    with smtplib.SMTP(tls_server.host, tls_server.port, local_hostname="py.example.org") as m:
        m.starttls(context=tls_server.client_ssl_context())
        m.login("alice", "wonderland")
        m.sendmail("alice@example.org", ["bob@far.example.net"], "Subject: a\r\n\r\nx\r\n")
    with smtplib.SMTP_SSL(
        tls_server.host,
        tls_server.tls_port,
        local_hostname="py.example.org",
        context=tls_server.client_ssl_context(),
    ) as m:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            m.login("alice", "wrong")
        m.login("alice", "wonderland")
        m.sendmail("alice@example.org", ["bob@far.example.net"], "Subject: b\r\n\r\nx\r\n")
    assert [m.subject for m in tls_server.mailbox] == ["a", "b"]


def test_swaks_starttls_and_auth(tls_server):
    swaks = require_tool("swaks")
    base = [
        swaks,
        "--server",
        f"{tls_server.host}:{tls_server.port}",
        "--helo",
        "swaks.example.org",
        "--from",
        "alice@example.org",
        "--to",
        "bob@far.example.net",
        "--tls",
        "--tls-verify",
        "--tls-ca-path",
        tls_server.ca_file,
        "--tls-sni",
        tls_server.hostname,
    ]
    out = subprocess.run(
        base + ["-a", "PLAIN", "--auth-user", "alice", "--auth-password", "wonderland"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 2.7.0" in out.stdout
    bad = subprocess.run(
        base + ["-a", "LOGIN", "--auth-user", "alice", "--auth-password", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 28 and "535 5.7.8" in bad.stdout  # swaks: 28 = AUTH failed
    assert len(tls_server.mailbox) == 1


@pytest.mark.parametrize("implicit", [False, True])
def test_curl_verifies_the_lab_ca_and_logs_in(tls_server, tmp_path, implicit):
    curl = require_tool("curl")
    msg = tmp_path / "m.eml"
    msg.write_bytes(b"Subject: from curl\r\n\r\nhi\r\n")
    url = (
        f"smtps://127.0.0.1:{tls_server.tls_port}"
        if implicit
        else f"smtp://127.0.0.1:{tls_server.port}"
    )
    out = subprocess.run(
        [
            curl,
            "-sS",
            url,
            "--ssl-reqd",
            "--cacert",
            tls_server.ca_file,
            "--user",
            "alice:wonderland",
            "--mail-from",
            "alice@example.org",
            "--mail-rcpt",
            "bob@far.example.net",
            "--upload-file",
            str(msg),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert tls_server.mailbox.last().subject == "from curl"
    # Without the lab CA, curl refuses the certificate (exit 60: peer certificate).
    untrusted = subprocess.run(
        [
            curl,
            "-sS",
            url,
            "--ssl-reqd",
            "--mail-from",
            "a@example.org",
            "--mail-rcpt",
            "b@lab.example.org",
            "--upload-file",
            str(msg),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert untrusted.returncode == 60, untrusted.stderr


# --- safe by default -----------------------------------------------------------


def test_non_loopback_needs_opt_in_and_then_warns():
    with pytest.raises(LabValueError, match="allow_non_loopback=True"):
        LabServer(host="0.0.0.0")
    with pytest.warns(UserWarning, match="other machines may reach"):
        s = LabServer(host="0.0.0.0", allow_non_loopback=True)
    assert not s.running  # constructing it binds nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LabServer(host="127.0.0.5")  # any loopback address is fine, silently


_AUDIT: list | None = None


def _audit(event, args):
    if _AUDIT is not None and event in (
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
    ):
        _AUDIT.append(
            (
                event,
                args[1] if event == "socket.connect" else args[0],
                threading.current_thread() is threading.main_thread(),
            )
        )


def test_a_full_run_never_opens_an_outbound_connection():
    """Every connect in a whole server run, in any thread, goes to the lab server itself."""
    global _AUDIT
    if not getattr(sys, "_labsmtp_audit", False):
        sys.addaudithook(_audit)  # audit hooks cannot be removed: this one is inert when off
        sys._labsmtp_audit = True
    _AUDIT = []
    try:
        with LabServer(name="audit", mode="open-relay", users=USERS, implicit_tls=True) as s:
            ports = {s.port, s.tls_port}
            with smtplib.SMTP(s.host, s.port, local_hostname="c.example.org") as m:
                m.starttls(context=s.client_ssl_context())
                m.login("alice", "wonderland")
                # Foreign recipients: an MTA would look up their MX and connect out.
                m.sendmail(
                    "a@example.org",
                    ["x@gmail.com", "y@example.net"],
                    "Subject: relay me\r\n\r\nx\r\n",
                )
            c = s.client(source="127.0.0.2", implicit_tls=True)
            c.ehlo()
            c.mail("a@example.org")
            c.rcpt("z@outlook.com")
            c.data("Subject: and me\r\n\r\nx\r\n")
            c.quit()
            time.sleep(0.2)
        assert len(s.mailbox) == 2
    finally:
        events, _AUDIT = _AUDIT, None
    connects = [(addr, main) for ev, addr, main in events if ev == "socket.connect"]
    assert connects, "the audit hook saw nothing: is it installed?"
    assert all(addr[0] == "127.0.0.1" and addr[1] in ports for addr, _ in connects), connects
    # The server thread never resolves a name (no MX lookup, no getfqdn).
    lookups = [(ev, host) for ev, host, main in events if ev != "socket.connect" and not main]
    assert lookups == []


# --- limits with proper replies ----------------------------------------------------


def test_max_recipients_gets_452_4_5_3():
    with LabServer(name="rcpt-limit", max_recipients=2) as s:
        c = s.client()
        c.ehlo()
        c.mail("a@example.org")
        assert [c.rcpt(f"u{i}@lab.example.org").code for i in range(3)] == [250, 250, 452]
        assert c.history[-1].reply.enhanced == "4.5.3"
        assert c.data("Subject: two\r\n\r\nx\r\n").code == 250
        assert s.mailbox.last().rcpt_tos == ("u0@lab.example.org", "u1@lab.example.org")


def test_command_line_limit_is_512_octets_with_crlf(server):
    c = server.client()
    c.ehlo()
    ok = "NOOP " + "x" * (512 - len("NOOP ") - 2)
    assert c.raw(ok).code == 250
    assert c.raw(ok + "x").code == 500
    assert c.raw("NOOP " + "x" * 100_000).code == 500  # far past the read buffer too
    assert c.noop().code == 250


def test_text_line_limit_is_1000_octets_with_crlf(server):
    c = server.client()
    c.ehlo()
    for length, code in ((998, 250), (999, 500)):
        c.mail("a@example.org")
        c.rcpt("postmaster@lab.example.org")
        r = c.data(b"Subject: long\r\n\r\n" + b"y" * length + b"\r\n")
        assert r.code == code, length
    assert len(server.mailbox) == 1


def test_message_size_limit_gets_552_5_3_4():
    with LabServer(name="size", message_size_limit=1000) as s:
        c = s.client()
        c.ehlo()
        c.mail("a@example.org")
        c.rcpt("postmaster@lab.example.org")
        r = c.data(b"Subject: big\r\n\r\n" + b"z" * 990 + b"\r\n")
        assert (r.code, r.enhanced) == (552, "5.3.4")
        assert c.noop().code == 250 and len(s.mailbox) == 0


def test_one_connection_too_many_gets_421_on_connect():
    with LabServer(name="full", max_connections=2) as s:
        held = [s.client(), s.client()]
        extra = s.client()
        assert extra.history[0].reply.code == 421
        for c in held:
            c.quit()
        assert _eventually(lambda: len(s._active) == 0)
        assert s.client().history[0].reply.code == 220


def test_errors_below_the_limit_keep_the_session_and_the_limit_closes_it():
    with LabServer(name="errors", hard_error_limit=5) as s:
        c = s.client()
        for _ in range(4):
            assert c.raw("XYZZY").code == 500
        assert c.noop().code == 250  # four errors: still served (RFC 5321 §3.8)
        c.raw("XYZZY")
        r = c.noop()
        assert (r.code, r.enhanced) == (421, "4.7.0")
        assert c.state is State.CLOSED


def test_idle_timeout_sends_421_4_4_2_then_closes():
    with LabServer(name="idle", idle_timeout=0.3) as s:
        data = _raw(s.port, b"EHLO a.example.org\r\n", wait=2.0)
        assert data.rstrip().endswith(
            b"421 4.4.2 mx.lab.example.org Timeout exceeded, closing connection"
        )


def test_idle_timeout_also_applies_inside_tls():
    with LabServer(name="idle-tls", idle_timeout=0.5, tls=True) as s:
        c = s.client()
        c.ehlo()
        c.starttls()
        time.sleep(1.0)
        assert c.sock.recv(1024).startswith(b"421 4.4.2")
        assert s._internal_errors == []


def test_mail_after_starttls_needs_a_fresh_ehlo_even_where_helo_is_optional():
    # RFC 3207 §4.2: after TLS the server forgets the EHLO; Postfix's default
    # smtpd_helo_required = no must not let MAIL through before a new EHLO.
    with LabServer(name="starttls-postfix", persona="postfix", tls=True) as s:
        c = s.client()
        c.ehlo("client.example.org")
        assert c.starttls().code == 220
        assert c.mail("a@example.org").code == 503
        c.ehlo("client.example.org")
        assert c.mail("a@example.org").code == 250


def test_auth_lines_may_be_longer_than_the_command_limit():
    # RFC 4954 §4: an AUTH command line (with its initial response) may be up
    # to 12,288 octets, far beyond RFC 5321's 512 for other commands.
    password = "p" * 6000  # base64 of "\0alice\0" + this is about 8 kB
    with LabServer(name="long-auth", users={"alice": password}) as s:
        c = s.client()
        c.ehlo("client.example.org")
        c.starttls()
        c.ehlo("client.example.org")
        assert c.auth("alice", password).code == 235
        assert c.raw("NOOP " + "x" * 600).code == 500  # other commands keep the 512 limit
