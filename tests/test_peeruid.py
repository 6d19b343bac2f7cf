"""Learners kept apart on a shared host: who opened a connection, and the lab server's refusal.

The parser reads real /proc/net/tcp and tcp6 text of real sockets opened here,
and the kernel's sock_diag answer (what the server asks) must agree with it;
the refusal is checked with clients nobody here wrote (swaks, smtplib) run as
another system user (``nobody``, through runuser), which needs root: skipped
locally without it, a failure in CI (which runs as root).
"""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import time

import pytest
from conftest import require_root, require_tool

from labsmtp import LabServer, LabValueError
from labsmtp.lab import peeruid

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net")

NOBODY = 65534  # Debian's nobody


def _pair(family: int, host: str):
    """A listening socket, a client connected to it and the accepted end (all real)."""
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen()
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(listener.getsockname()[:2])
    accepted, _ = listener.accept()
    return listener, client, accepted


def _read(name: str) -> str:
    with open(f"/proc/net/{name}") as f:
        return f.read()


def _eventually(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while (value := check()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


# --- the parser on real /proc data ------------------------------------------------------


def test_an_address_decodes_in_this_machines_byte_order():
    word = int.from_bytes(socket.inet_aton("127.0.0.1"), sys.byteorder)
    assert peeruid.parse_address(f"{word:08X}:1F90") == ("127.0.0.1", 8080)
    with pytest.raises(ValueError):
        peeruid.parse_address("7F00:0019")


def test_a_loopback_connection_is_found_with_its_owner_in_proc_net_tcp():
    listener, client, accepted = _pair(socket.AF_INET, "127.0.0.1")
    with listener, client, accepted:
        sockets = peeruid.parse_table(_read("tcp"))
        server, peer = accepted.getsockname(), accepted.getpeername()
        assert peer == client.getsockname()
        # The client's line: local = the peer the server sees, remote = the server.
        assert peeruid.owner_uid(sockets, server, peer) == os.geteuid()
        line = next(s for s in sockets if s.local == peer)
        assert line.remote == server and line.state == 0x01  # ESTABLISHED
        assert line.inode == os.fstat(client.fileno()).st_ino  # the very same socket
        # The server's own end, and a peer that does not exist, are told apart.
        assert peeruid.owner_uid(sockets, peer, server) == os.geteuid()
        assert peeruid.owner_uid(sockets, server, ("127.0.0.1", 1)) is None
        # The kernel's sock_diag answer for the one socket agrees.
        assert peeruid.netlink_owner_uid(server, peer) == os.geteuid()
        assert peeruid.netlink_owner_uid(server, ("127.0.0.1", 1)) is None


def test_ipv6_and_ipv4_mapped_connections_are_found_in_proc_net_tcp6():
    if not socket.has_ipv6 or not os.path.exists("/proc/net/tcp6"):
        pytest.skip("no IPv6 on this kernel")
    listener, client, accepted = _pair(socket.AF_INET6, "::1")
    with listener, client, accepted:
        sockets = peeruid.parse_table(_read("tcp6"))
        server, peer = accepted.getsockname(), accepted.getpeername()
        assert peeruid.owner_uid(sockets, server, peer) == os.geteuid()
        assert peeruid.netlink_owner_uid(server, peer) == os.geteuid()
    # A dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1.
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", 0))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]))
    accepted, peer = listener.accept()
    with listener, client, accepted:
        assert peer[0] == "::ffff:127.0.0.1"
        sockets = peeruid.read_sockets()
        assert peeruid.owner_uid(sockets, accepted.getsockname(), peer) == os.geteuid()
        assert peeruid.netlink_owner_uid(accepted.getsockname(), peer) == os.geteuid()


def test_a_closed_connections_time_wait_line_names_nobody():
    listener, client, accepted = _pair(socket.AF_INET, "127.0.0.1")
    server, peer = accepted.getsockname(), accepted.getpeername()
    client.close()  # the side that closes first keeps TIME_WAIT
    time.sleep(0.05)
    accepted.close()
    listener.close()

    def time_wait():
        lines = [s for s in peeruid.parse_table(_read("tcp")) if s.local == peer]
        return lines if lines and lines[0].state == peeruid.TIME_WAIT else None

    lines = _eventually(time_wait)
    assert lines, "the closed client's socket never showed TIME_WAIT"
    assert lines[0].uid == 0 and lines[0].inode == 0  # the kernel's leftover, nobody's
    assert peeruid.owner_uid(lines, server, peer) is None
    assert peeruid.netlink_owner_uid(server, peer) is None


def test_another_users_socket_shows_that_users_uid():
    require_root("a socket owned by another user (runuser -u nobody)")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    code = f"import socket,time; s=socket.create_connection(('127.0.0.1',{port})); time.sleep(30)"
    proc = subprocess.Popen(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code])
    try:
        listener.settimeout(20)
        accepted, peer = listener.accept()
        with accepted:
            assert peeruid.owner_uid(peeruid.read_sockets(), accepted.getsockname(), peer) == NOBODY
            assert peeruid.netlink_owner_uid(accepted.getsockname(), peer) == NOBODY
            why = peeruid.check(accepted.getsockname(), peer)
            assert "nobody (uid 65534)" in why and f"uid {os.geteuid()}" in why
    finally:
        proc.kill()
        proc.wait()
        listener.close()


def test_a_server_under_connection_churn_checks_each_peer_quickly():
    # Thousands of TIME_WAIT lines must not slow the check (reading /proc/net/tcp
    # costs milliseconds per connection on a busy host; the sock_diag lookup does not).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    for _ in range(500):  # leave 500 TIME_WAIT lines behind
        c = socket.create_connection(listener.getsockname())
        a, _ = listener.accept()
        c.close()
        a.close()
    listener, client, accepted = _pair(socket.AF_INET, "127.0.0.1")
    with listener, client, accepted:
        server, peer = accepted.getsockname(), accepted.getpeername()
        lines = len(_read("tcp").splitlines())
        started = time.process_time()
        for _ in range(50):
            assert peeruid.check(server, peer) is None
        per_check = (time.process_time() - started) / 50
        started = time.process_time()
        for _ in range(5):
            peeruid.owner_uid(peeruid.read_sockets(), server, peer)
        per_proc_read = (time.process_time() - started) / 5
    # A ratio in one run, not a wall-clock limit: the check must not scale with the table.
    assert per_check * 5 < per_proc_read, (lines, per_check, per_proc_read)


# --- the lab server's switch -----------------------------------------------------------


def test_owner_only_is_on_under_jupyterhub_and_can_be_switched(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    assert LabServer(name="t-owner-1").owner_only is False
    monkeypatch.setenv("JUPYTERHUB_USER", "ada")
    assert LabServer(name="t-owner-2").owner_only is True
    assert LabServer(name="t-owner-3", owner_only=False).owner_only is False
    with pytest.raises(LabValueError, match="owner_only must be True, False"):
        LabServer(owner_only="yes")


def test_the_owners_own_connections_are_served():
    with LabServer(name="t-owner-own", owner_only=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
            smtp.sendmail(
                "ada@example.org", ["postmaster@lab.example.org"], "Subject: x\r\n\r\nhi\r\n"
            )
        assert len(server.mailbox) == 1


# --- another user's client against it: refused, logged, nothing delivered --------------


def _as_nobody(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *cmd], capture_output=True, text=True, timeout=timeout
    )


def test_another_users_swaks_is_refused_with_554_and_logged():
    require_root("a client run as another user (runuser -u nobody)")
    swaks = require_tool("swaks")
    with LabServer(name="t-owner-swaks", owner_only=True) as server:
        run = _as_nobody(
            swaks,
            "--server",
            f"127.0.0.1:{server.port}",
            "--from",
            "eve@example.org",
            "--to",
            "postmaster@lab.example.org",
        )
        assert run.returncode == 21, run.stdout  # swaks: the greeting failed
        refusal = next(ln for ln in run.stdout.splitlines() if ln.startswith("<** 554 "))
        assert refusal.startswith("<** 554 5.7.1 Service unavailable; client [127.0.0.1] ")
        assert f"belongs to {peeruid.user_name(os.geteuid())}" in refusal
        assert "comes from nobody (uid 65534)" in refusal
        assert len(server.mailbox) == 0
        events = [ln.note for ln in server.transcript.lines() if ln.direction == "event"]
        assert any(
            e.startswith("connection refused: ") and "nobody (uid 65534)" in e for e in events
        ), events
        # The owner is still served.
        with smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
            smtp.sendmail(
                "ada@example.org", ["postmaster@lab.example.org"], "Subject: x\r\n\r\nhi\r\n"
            )
        assert len(server.mailbox) == 1


def test_the_refusal_is_in_the_personas_words_then_the_reason():
    # Postfix refusing a client at connect time says "554 5.7.1 <name[addr]>: Client
    # host rejected: " and an access(5) rule's text; the reason goes where that text does.
    # name is the client's forward-confirmed reverse name (localhost), else "unknown".
    require_root("a client run as another user (runuser -u nobody)")
    with LabServer(name="t-owner-postfix", persona="postfix", owner_only=True) as server:
        code = f"""
import socket
s = socket.create_connection(("127.0.0.1", {server.port}), 10)
f = s.makefile("rb")
print(f.readline().decode().strip())
s.sendall(b"EHLO x.example.org\\r\\n")  # RFC 5321 §3.1: 503 to all but QUIT
print(f.readline().decode().strip())
s.sendall(b"QUIT\\r\\n")
print(f.readline().decode().strip())
print(repr(f.readline()))  # then the server closes
"""
        run = _as_nobody("/usr/bin/python3", "-c", code)
        lines = run.stdout.splitlines()
        assert lines[0].startswith(
            "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied: "
            "this lab server belongs to "
        ), lines
        # As Postfix with smtpd_client_restrictions = reject: only QUIT is served.
        assert lines[1:] == [
            "503 5.7.0 Error: access denied for localhost[127.0.0.1]",
            "221 2.0.0 Bye",
            "b''",
        ], lines
        assert len(server.mailbox) == 0


@pytest.mark.parametrize("flag, refused", [([], True), (["--no-owner-only"], False)])
def test_serve_under_jupyterhub_refuses_other_users_unless_switched_off(flag, refused):
    require_root("a client run as another user (runuser -u nobody)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONUNBUFFERED="1", JUPYTERHUB_USER="ada")
    proc = subprocess.Popen(
        [sys.executable, "-m", "labsmtp", "serve", "--port", str(port), *flag],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
        code = f"import smtplib; print(smtplib.SMTP('127.0.0.1', {port}, timeout=10).noop()[0])"
        run = _as_nobody("/usr/bin/python3", "-c", code)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    if refused:
        assert "SMTPConnectError: (554, b'5.7.1 Service unavailable" in run.stderr
        assert "connections from other users of this machine get 554 5.7.1" in out
        assert "connection refused: this lab server belongs to" in out  # the live transcript
    else:
        assert run.stdout.strip() == "250", run.stderr
        assert "554 5.7.1" not in out and "connection refused" not in out  # (a port may hold 554)
