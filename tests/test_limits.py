"""Connection limits over real sockets: a burst of clients, and who is served.

A server at its limit answers 421 and closes (RFC 5321 §3.8); that refused
connection must not count against the limit, or a burst locks out clients the
server has room for.  ``max_connections`` (Postfix's process limit) counts the
sessions being served; the per-client limit (Postfix's
smtpd_client_connection_count_limit) counts one client address's.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from labsmtp import LabServer

BURST = 200
LIMIT = 100


async def _burst(port: int, clients: int, source: str = "127.0.0.1") -> list[str]:
    """``clients`` connections at once; each reads its first reply, then the ones served
    hold their session until every client has its answer, and say QUIT."""
    everyone_answered = asyncio.Event()
    answered = 0

    async def one() -> str:
        nonlocal answered
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
        except OSError as exc:
            return f"connect failed: {exc}"
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            answered += 1
            if answered == clients:
                everyone_answered.set()
            if line.startswith(b"220"):
                await asyncio.wait_for(everyone_answered.wait(), 60)
                writer.write(b"QUIT\r\n")
                await writer.drain()
                await asyncio.wait_for(reader.readline(), 30)
            return line.decode(errors="replace")[:3] or "closed"
        finally:
            writer.close()

    return await asyncio.gather(*(one() for _ in range(clients)))


def test_a_burst_is_served_up_to_the_limit_and_the_rest_told_421():
    with LabServer(name="test-burst", max_connections=LIMIT) as server:
        codes = asyncio.run(_burst(server.port, BURST))
        served, refused = codes.count("220"), codes.count("421")
        print(f"\n{BURST} clients at once, limit {LIMIT}: {served} served, {refused} told 421")
        assert served + refused == BURST, sorted(set(codes))
        assert served == LIMIT  # all held their session: room for exactly LIMIT
        # Once every client has gone, nothing stays counted: the server is empty again.
        deadline = time.monotonic() + 10
        while server.active_sessions and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.active_sessions == 0
        c = server.client(connect=False)
        assert c.connect().code == 220
        c.quit()


def test_refused_connections_free_their_place_at_once():
    # Waves of clients against a small limit: each wave's refusals never keep the next
    # wave out while the served clients have left.
    with LabServer(name="test-waves", max_connections=5) as server:
        for _ in range(3):
            codes = asyncio.run(_burst(server.port, 20))
            assert codes.count("220") == 5 and codes.count("421") == 15


@pytest.mark.parametrize("persona", ["postfix", "generic"])
def test_the_per_client_limit_spares_trusted_clients(persona):
    # Postfix's smtpd_client_connection_count_limit (50 by default) does not apply to
    # smtpd_client_event_limit_exceptions, which is $mynetworks: 127.0.0.1 here.
    with LabServer(name="test-per-client", persona=persona, max_connections_per_client=3) as server:
        codes = asyncio.run(_burst(server.port, 6, source="127.0.0.2"))
        assert codes.count("220") == 3 and codes.count("421") == 3
        trusted = asyncio.run(_burst(server.port, 6, source="127.0.0.1"))
        assert trusted.count("220") == 6


def test_a_full_postfix_leaves_the_next_client_waiting_unanswered():
    # Postfix has no "full" reply: at the process limit master(8) lets the connection
    # wait in the queue until an smtpd is free, and the client then gets its 220.
    with LabServer(name="test-postfix-full", persona="postfix", default_process_limit=2) as s:
        assert s.policy.max_connections == 2
        first, second = s.client(), s.client()
        with socket.create_connection((s.host, s.port), timeout=10) as waiting:
            waiting.settimeout(0.5)
            with pytest.raises(TimeoutError):  # no greeting while the server is full
                waiting.recv(100)
            first.quit()
            waiting.settimeout(10)
            assert waiting.recv(100).startswith(b"220 ")  # a place came free
        second.quit()


def test_exim_says_so_under_its_own_limit_name():
    with LabServer(name="test-exim-full", persona="exim", smtp_accept_max=1) as s:
        assert s.policy.max_connections == 1
        held = s.client()
        refused = s.client(connect=False)
        reply = refused.connect()
        assert str(reply) == "421 Too many concurrent SMTP connections; please try again later."
        held.quit()


def test_exims_per_host_limit_spares_no_one():
    # smtp_accept_max_per_host applies to every host, the local one too (daemon.c),
    # unlike Postfix's limit, which spares $mynetworks.
    with LabServer(name="test-exim-per-host", persona="exim", smtp_accept_max_per_host=2) as s:
        assert s.policy.is_trusted("127.0.0.1")
        codes = asyncio.run(_burst(s.port, 4, source="127.0.0.1"))
        assert codes.count("220") == 2 and codes.count("421") == 2
        held = [s.client(), s.client()]
        reply = s.client(connect=False).connect()
        assert str(reply) == (
            "421 Too many concurrent SMTP connections from this IP address; please try again later."
        )
        for c in held:
            c.quit()


def test_the_server_limit_is_checked_before_the_clients():
    # Exim's daemon tests smtp_accept_max first: a full server says so, whoever calls.
    with LabServer(
        name="test-exim-order", persona="exim", smtp_accept_max=1, smtp_accept_max_per_host=1
    ) as s:
        held = s.client()
        reply = s.client(connect=False).connect()
        assert str(reply) == "421 Too many concurrent SMTP connections; please try again later."
        held.quit()


def test_sendmail_per_client_limit_in_conncontrols_words():
    # Debian's access map: ClientConn: 10 for everyone, ClientConn:127 0 (loopback
    # unlimited); the lab's loopback server uses mynetworks for that exemption.
    with LabServer(name="test-sendmail-conn", persona="sendmail", ClientConn=1) as s:
        assert s.policy.max_connections_per_client == 1
        codes = asyncio.run(_burst(s.port, 3, source="127.0.0.2"))
        assert codes.count("220") == 1 and codes.count("421") == 2
        held = socket.create_connection(
            (s.host, s.port), timeout=10, source_address=("127.0.0.2", 0)
        )
        with held:
            assert held.makefile("rb").readline().startswith(b"220")
            with socket.create_connection(
                (s.host, s.port), timeout=10, source_address=("127.0.0.2", 0)
            ) as refused:
                line = refused.makefile("rb").readline()
        assert line == b"421 4.3.2 Too many open connections.\r\n"


@pytest.mark.parametrize("persona", ["opensmtpd", "postfix"])
def test_a_burst_against_a_waiting_server_is_served_in_turn(persona):
    # Neither Postfix nor OpenSMTPD answers 421 when full: every client of the burst
    # is served, those past the limit once a place is free.
    with LabServer(name=f"test-{persona}-turns", persona=persona, max_connections=5) as s:
        codes = asyncio.run(_quick_burst(s.port, 20))
        assert codes.count("221") == 20, sorted(set(codes))


async def _quick_burst(port: int, clients: int) -> list[str]:
    """``clients`` connections at once, each greeted, then QUIT at once."""

    async def one() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            greeting = await asyncio.wait_for(reader.readline(), 30)
            if not greeting.startswith(b"220"):
                return greeting.decode()[:3]
            writer.write(b"QUIT\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 30)).decode()[:3]
        finally:
            writer.close()

    return await asyncio.gather(*(one() for _ in range(clients)))


def test_clamsmtpd_is_busy_in_its_own_words():
    with LabServer(name="test-clamsmtpd-full", persona="clamsmtpd", MaxConnections=1) as s:
        held = s.client()
        assert str(s.client(connect=False).connect()) == "421 Server busy, too many connections"
        held.quit()
