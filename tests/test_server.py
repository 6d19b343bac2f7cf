"""The lab server and the step client, over real sockets on loopback."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time

import pytest
from helpers import HELO_RESTRICTIONS, OUT_OF_ORDER

from labsmtp import (
    ConnectFailed,
    LabServer,
    LabValueError,
    PortInUseError,
    ServerClosed,
    State,
    StepClient,
    dot_stuff,
    running_servers,
    show_wire,
    stop_all,
)


def _raw_session(port: int, payload: bytes, source: str = "127.0.0.1", wait: float = 2.0) -> bytes:
    """Send bytes in one burst, read until the server closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait, source_address=(source, 0))
    s.sendall(payload)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    s.close()
    return data


# --- lifecycle -------------------------------------------------------------


def test_no_port_given_picks_a_free_one_and_listens_on_loopback():
    with LabServer() as s:
        assert s.host == "127.0.0.1" and s.port > 0
        c = s.client()
        assert c.history[0].reply.code == 220
        c.quit()
    assert not s.running


def test_stop_is_idempotent_and_start_after_stop_works():
    s = LabServer()
    s.start()
    first = s.port
    s.stop()
    s.stop()
    s.start()  # a new loop and thread each start
    assert s.client().quit().code == 221
    s.stop()
    assert first > 0


# --- a stopped server used again (a lesson's last cell ran stop_all()) -------------------


def _finished_dialogue(c):
    c.helo("client.example.org")
    return c.quit().code


def test_stop_all_shows_what_it_stopped_and_is_still_the_count():
    from IPython.lib.pretty import pretty  # what a notebook cell ending in stop_all() shows

    stop_all()
    a = LabServer(name="stop-all-a").start()
    b = LabServer(name="stop-all-b").start()
    stopped = stop_all()
    assert stopped == 2 and stopped and stopped + 1 == 3 and f"{stopped} servers" == "2 servers"
    assert not a.running and not b.running
    shown = pretty(stopped)
    assert shown.startswith("Stopped 2 lab servers: ") and shown == repr(stopped)
    assert sorted(stopped.names) == ["stop-all-a", "stop-all-b"]
    assert all(name in shown for name in stopped.names)
    nothing = stop_all()
    assert nothing == 0 and not nothing and pretty(nothing) == "No lab server was running."
    many = [LabServer(name=f"a-rather-long-server-name-{n}").start() for n in range(8)]
    lines = pretty(stop_all()).splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= 88  # wrapped for the notebook column
    assert not any(s.running for s in many)


def test_client_of_a_stopped_server_starts_it_again_on_its_port_and_says_so(capsys):
    s = LabServer(name="run-all-then-exercise").start()
    port = s.port
    s.client().quit()
    stop_all()
    capsys.readouterr()
    assert _finished_dialogue(s.client()) == 221
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "had been stopped" in out and f":{port}" in out
    assert s.running and s.port == port and len(s.sessions) == 2  # transcript kept
    assert _finished_dialogue(s.client()) == 221
    assert capsys.readouterr().out == ""  # running: nothing to say
    s.stop()


def test_a_restart_moves_to_a_free_port_when_the_old_one_was_taken(capsys):
    s = LabServer(name="moved").start()
    port = s.port
    s.stop()
    with socket.socket() as squatter:
        # SO_REUSEADDR: the stop may leave TIME_WAIT connections on the port; a
        # listening socket still keeps every other listener off it.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        assert _finished_dialogue(s.client()) == 221
    assert s.port != port and f"old port {port} is taken" in capsys.readouterr().out
    s.stop()


def test_every_way_of_using_a_stopped_server_starts_it_again(capsys):
    from labsmtp import trials

    s = LabServer(name="every-entry").start()
    later = s.client(connect=False)  # made now, connected after the stop
    s.stop()
    assert later.connect().code == 220 and s.running
    later.quit()
    s.stop()
    r = trials.run_trials(s, 5, retry="none", seed=1)
    assert r.by_outcome()["delivered"] == 5 and s.running
    assert capsys.readouterr().out.count("had been stopped") == 2
    s.stop()


def test_a_client_of_a_stopped_server_says_what_happened():
    s = LabServer(name="told").start()
    c = s.client()
    s.stop()
    c.helo("client.example.org")  # the shutdown 421 the stop sent
    with pytest.raises(ServerClosed, match="was stopped after this client connected"):
        c.noop()
    s.stop()


def test_a_replaced_server_is_not_started_again(capsys):
    old = LabServer(name="replaced").start()
    new = LabServer(name="replaced").start()  # the cell was run again
    with pytest.raises(LabValueError, match="replaced"):
        old.client()
    assert new.running and not old.running
    stop_all()
    with pytest.raises(LabValueError, match="replaced"):
        old.client()  # even with both stopped: the newer one owns the name
    assert _finished_dialogue(new.client()) == 221
    new.stop()


def test_a_server_never_started_is_not_started_behind_the_learners_back():
    with pytest.raises(LabValueError, match="not been started"):
        LabServer(name="never").client()


def test_rerunning_a_cell_replaces_the_server_with_the_same_name(capsys):
    a = LabServer(name="lesson").start()
    b = LabServer(name="lesson").start()  # what re-running the cell does
    assert not a.running and b.running
    assert "stopped the earlier server named 'lesson'" in capsys.readouterr().out
    assert [s for s in running_servers() if s.name == "lesson"] == [b]
    b.stop()


def test_rerunning_a_cell_with_a_fixed_port_never_says_address_in_use():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for _ in range(3):
        s = LabServer(port).start()  # same name ("port N") each time
    assert s.port == port and s.client().quit().code == 221
    s.stop()


def test_a_taken_port_fails_within_a_second_with_advice():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        t = time.perf_counter()
        with pytest.raises(PortInUseError) as err:
            LabServer(port, name="taken").start()
        assert time.perf_counter() - t < 1.0
        assert "already in use" in str(err.value) and "port=" in str(err.value)


def _fds() -> int:
    gc.collect()  # sockets of earlier tests close when collected; count only live ones
    return len(os.listdir("/proc/self/fd"))


def test_fifty_restarts_leak_no_thread_or_socket():
    s = LabServer(name="restarts")
    s.start(), s.stop()  # warm up lazy imports
    threads, fds = threading.active_count(), _fds()
    for _ in range(50):
        s.start()
        s.client().quit()
        s.stop()
    assert threading.active_count() == threads
    assert _fds() <= fds


@pytest.mark.parametrize("bad", [-1, 70000, "2525", 25.5, True])
def test_bad_ports_get_a_clear_message(bad):
    with pytest.raises(LabValueError, match="port"):
        LabServer(bad)


def test_non_loopback_needs_an_explicit_opt_in():
    with pytest.raises(LabValueError, match="loopback"):
        LabServer(host="0.0.0.0")


def test_the_self_test_connection_is_not_in_the_transcript(server):
    assert server.transcript.sessions() == [] and len(server.transcript) == 0
    server.client().quit()
    assert len(server.sessions) == 1


# --- the dialogue ------------------------------------------------------------


def test_full_dialogue_stores_message_with_envelope(server):
    c = server.client()
    assert c.helo("client.example.org").code == 250
    assert c.mail("ada@example.org").code == 250
    assert c.rcpt("postmaster@lab.example.org").code == 250
    assert c.rcpt("bob@lab.example.org").code == 250
    final = c.data("Subject: hi\r\n\r\nhello\r\n")
    assert final.code == 250 and final.command == "."
    assert c.quit().code == 221
    m = server.mailbox.last()
    assert m.helo == "client.example.org" and m.mail_from == "ada@example.org"
    assert m.rcpt_tos == ("postmaster@lab.example.org", "bob@lab.example.org")
    assert m.client == "127.0.0.1" and m.sent == b"Subject: hi\r\n\r\nhello\r\n"
    assert m.subject == "hi" and m.queue_id in final.text
    # RFC 5321 §4.4: the server's Received: field on top (HELO name, address, reverse
    # name, server, protocol, id; "for" only with one recipient), Return-Path at delivery.
    head, _, rest = m.content.partition(b"\r\n\r\n")
    assert m.content.endswith(m.sent) and m.size > len(m.sent)
    assert m["Return-Path"] == "<ada@example.org>"
    received = m["Received"]
    assert received.startswith("from client.example.org (localhost [127.0.0.1])")
    assert f"by mx.lab.example.org with SMTP id {m.queue_id};" in " ".join(received.split())
    assert " for " not in received  # two recipients
    shown = m.field("Received").splitlines()  # as stored: folded, continuation lines indented
    assert shown[0] == "Received: from client.example.org (localhost [127.0.0.1])"
    assert len(shown) > 1 and all(line.startswith("\t") for line in shown[1:])
    assert m.field("X-Not-There") is None


def test_received_field_follows_the_persona_and_the_protocol():
    with LabServer(name="received-postfix", persona="postfix").start() as server:
        c = server.client()
        (
            c.ehlo("client.example.org"),
            c.mail("ada@example.org"),
            c.rcpt("postmaster@lab.example.org"),
        )
        c.data("Subject: hi\r\n\r\nhello\r\n")
        c.quit()
        m = server.mailbox.last()
    # Postfix 3.7, as recorded (tests/recordings/trace/): ESMTP after EHLO, "for" one recipient.
    assert " ".join(m["Received"].split()).startswith(
        "from client.example.org (localhost [127.0.0.1]) by mx.lab.example.org (Postfix) "
        f"with ESMTP id {m.queue_id} for <postmaster@lab.example.org>;"
    )
    assert m.content.startswith(b"Return-Path: <ada@example.org>\r\n")


def test_every_reply_is_legal_for_its_command_in_a_normal_dialogue(server):
    c = server.client()
    replies = [
        c.history[0].reply,
        c.ehlo(),
        c.mail("a@example.org"),
        c.rcpt("x@lab.example.org"),
        c.data(),
        c.send_message("x"),
        c.rset(),
        c.noop(),
        c.vrfy("postmaster"),
        c.quit(),
    ]
    assert [r.command for r in replies] == [
        "CONNECT",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        ".",
        "RSET",
        "NOOP",
        "VRFY",
        "QUIT",
    ]
    assert all(r.legal for r in replies), [str(r) for r in replies if not r.legal]


@pytest.mark.parametrize("setup,command,state", OUT_OF_ORDER)
def test_out_of_order_commands_get_503_and_keep_the_state(server, setup, command, state):
    c = server.client()
    steps = {
        "helo": lambda: c.helo(),
        "mail": lambda: c.mail("a@example.org"),
        "rcpt": lambda: c.rcpt("x@lab.example.org"),
        "data": lambda: c.data(),
    }
    for step in setup:
        assert steps[step]().ok
    reply = steps[command]()
    assert reply.code == 503 and reply.enhanced == "5.5.1"
    assert c.state is state
    assert server.sessions[-1].states[-1] == state.value
    # ... and the session goes on normally afterwards.
    assert c.noop().code == 250


def test_pipelined_burst_gets_exactly_one_reply_per_command(server):
    burst = (
        b"EHLO a.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@lab.example.org>\r\n"
        b"RCPT TO:<c@lab.example.org>\r\nNOOP\r\nFOO\r\nRSET\r\nVRFY x\r\nQUIT\r\n"
    )
    data = _raw_session(server.port, burst)
    finals = [ln for ln in data.split(b"\r\n") if len(ln) > 3 and ln[3:4] == b" "]
    assert len(finals) == 1 + 9  # greeting + one reply per command
    assert finals[-1].startswith(b"221")
    lines = server.transcript.session()
    assert len([ln for ln in lines if ln.direction == "client"]) == 9
    assert len([ln for ln in lines if ln.direction == "server"]) == 10


def test_dot_stuffing_round_trip(server):
    body = "line one\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n"
    wire = dot_stuff(body)
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\r\n" in wire
    assert wire.endswith(b"end\r\n.\r\n")
    c = server.client()
    c.helo(), c.mail("a@example.org"), c.rcpt("b@lab.example.org")
    assert c.data(body).code == 250
    assert server.mailbox.last().sent == body.encode()
    assert "<CR><LF>" in show_wire(b"HELO x\r\n")


def test_bare_lf_dot_does_not_end_the_message(server):
    # RFC 5321 §4.1.1.4: only <CRLF>.<CRLF> ends DATA; "\n.\n" is message text.
    c = server.client()
    c.helo(), c.mail("a@example.org"), c.rcpt("b@lab.example.org"), c.data()
    c.raw(b"Subject: x\r\n\r\nbefore\n.\nsmuggled\r\n", expect_reply=False)
    reply = c.send_message("after")
    assert reply.code == 250
    assert b"before\n.\nsmuggled" in server.mailbox.last().sent
    assert len(server.mailbox) == 1


def test_unknown_commands_do_not_close_the_connection(server):
    # aiosmtpd hangs up after 5 unknown commands; RFC 5321 §3.8 forbids that.
    c = server.client()
    for _ in range(8):
        assert c.raw("XYZZY").code == 500
    assert c.noop().code == 250


def test_too_many_errors_get_421_and_close():
    with LabServer(hard_error_limit=3) as s:
        c = s.client()
        for _ in range(3):
            c.raw("FOO")
        # The 421 comes unasked (§3.8); the client reads it as the next reply.
        r = c.noop()
        assert (r.code, r.enhanced) == (421, "4.7.0") and c.state is State.CLOSED
        with pytest.raises(ServerClosed):
            c.noop()


def test_idle_timeout_sends_421_before_closing():
    with LabServer(idle_timeout=0.3) as s:
        c = s.client()
        time.sleep(0.8)
        data = c.sock.recv(1024)
        assert data.startswith(b"421 4.4.2")


def test_connection_problems_raise_errors_that_name_the_phase():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed) as err:
        StepClient("127.0.0.1", port).connect()
    assert err.value.phase == "connect" and "refused" in str(err.value)


def test_client_can_connect_from_another_loopback_address(server):
    c = server.client(source="127.0.0.2")
    c.helo()
    c.mail("a@example.org")
    r = c.rcpt("someone@elsewhere.example.net")
    assert r.code == 554 and "Relay access denied" in r.text
    assert server.sessions[-1].client.startswith("127.0.0.2:")


def test_trusted_client_may_relay_by_default(server):
    c = server.client()
    c.helo(), c.mail("a@example.org")
    assert c.rcpt("someone@elsewhere.example.net").code == 250


def test_client_rejects_bad_addresses_with_a_message(server):
    c = server.client()
    with pytest.raises(LabValueError, match="no @"):
        c.mail("not-an-address")
    with pytest.raises(LabValueError, match="angle brackets"):
        c.rcpt("<x@y.org>")
    assert c.rcpt("postmaster").code == 503  # legal address, wrong moment


def test_allowed_follows_the_state_table(server):
    c = server.client()
    assert "MAIL" not in c.allowed() and "HELO" in c.allowed()
    c.helo()
    assert "MAIL" in c.allowed() and "DATA" not in c.allowed()


# --- policies --------------------------------------------------------------


def test_helo_required_switch():
    with LabServer(persona="postfix") as s:  # Postfix's default: smtpd_helo_required = no
        c = s.client()
        assert c.mail("a@example.org").code == 250
    with LabServer(persona="postfix", smtpd_helo_required=True) as s:
        r = s.client().mail("a@example.org")
        assert (r.code, r.text) == (503, "Error: send HELO/EHLO first")


@pytest.mark.parametrize("name,restrictions,code", HELO_RESTRICTIONS)
def test_helo_restrictions_switch_on_and_off(name, restrictions, code):
    # smtpd_delay_reject = no: the verdict is HELO's own reply (stock: at RCPT, test_session).
    with LabServer(
        persona="postfix", smtpd_helo_restrictions=restrictions, smtpd_delay_reject=False
    ) as s:
        assert s.client().helo(name).code == code


def test_policy_can_change_while_running(server):
    assert server.client().helo("client").code == 250
    server.configure(smtpd_helo_restrictions="reject_non_fqdn_helo_hostname")
    assert server.client().helo("client").code == 504
    with pytest.raises(LabValueError, match="unknown HELO restriction"):
        server.configure(smtpd_helo_restrictions="helo=yes")


def test_narrowing_mynetworks_refuses_relay_from_127_0_0_1():
    with LabServer(mynetworks=()) as s:
        c = s.client()
        c.helo(), c.mail("a@example.org")
        assert c.rcpt("x@elsewhere.example.net").code == 554
        assert c.rcpt("x@lab.example.org").code == 250


def test_message_size_limit_on_size_parameter_and_on_data():
    with LabServer(message_size_limit=1000) as s:
        c = s.client()
        c.ehlo()
        assert c.mail("a@example.org", size=5000).code == 552
        assert c.mail("a@example.org", size=500).code == 250
        c.rcpt("b@lab.example.org")
        r = c.data("x" * 70 + "\r\n" * 1 + ("y" * 70 + "\r\n") * 30)
        assert (r.code, r.enhanced) == (552, "5.3.4")
        assert len(s.mailbox) == 0
        assert c.noop().code == 250  # the session survives


# --- bounded records --------------------------------------------------------


def test_mailbox_is_bounded_and_counts_evictions():
    with LabServer(max_messages=3) as s:
        c = s.client()
        c.helo()
        for i in range(5):
            c.mail("a@example.org"), c.rcpt("b@lab.example.org")
            assert c.data(f"Subject: {i}\r\n\r\nx\r\n").code == 250
        assert len(s.mailbox) == 3 and s.mailbox.evicted == 2
        assert [m.subject for m in s.mailbox] == ["2", "3", "4"]


def test_transcript_is_bounded_and_counts_drops():
    with LabServer(max_lines=20) as s:
        c = s.client()
        for _ in range(30):
            c.noop()
        assert len(s.transcript) == 20 and s.transcript.dropped > 0
        assert s.transcript.dropped + 20 == 1 + 1 + 60  # event + greeting + 30 pairs


def test_transcript_records_both_directions_with_parsed_replies(server):
    c = server.client(source="127.0.0.3")
    c.ehlo()
    c.quit()
    lines = server.transcript.session()
    kinds = [ln.direction for ln in lines]
    assert kinds[0] == "event" and "client" in kinds and "server" in kinds
    ehlo = next(ln for ln in lines if ln.direction == "server" and ln.command == "EHLO")
    assert ehlo.reply.multiline and ehlo.reply.code == 250 and ehlo.raw.endswith(b"\r\n")
    assert all(ln.client.startswith("127.0.0.3:") for ln in lines)
    assert "-> EHLO" in server.transcript.to_text()
    assert '"direction": "server"' in server.transcript.to_jsonl()
    assert "<table" in server.transcript._repr_html_()


def test_mailbox_exports_an_mbox_that_the_stdlib_reads(server, tmp_path):
    import mailbox as stdlib

    c = server.client()
    c.helo(), c.mail("a@example.org"), c.rcpt("b@lab.example.org")
    c.data("Subject: exported\r\n\r\nbody\r\n")
    path = server.mailbox.to_mbox(tmp_path / "lab.mbox")
    box = stdlib.mbox(path)
    assert [m["Subject"] for m in box] == ["exported"]


def test_the_admission_hook_refuses_a_connection_in_the_personas_words():
    # The one check per accepted connection (JupyterHub's: whose connection is this?).
    with LabServer(name="admission", persona="postfix") as s:
        s.admission = lambda ip, port: "not this user's" if ip == "127.0.0.2" else None
        refused = s.client(source="127.0.0.2")
        r = refused.history[0].reply
        assert (r.code, r.enhanced) == (554, "5.7.1") and "Client host rejected" in r.text
        assert refused.state is State.REFUSED
        # RFC 5321 §3.1: the server waits for QUIT and answers anything else with 503.
        assert refused.noop().lines == ("503 5.7.0 Error: access denied for unknown[127.0.0.2]",)
        assert refused.quit().code == 221
        with pytest.raises(ServerClosed):
            refused.noop()
        notes = [ln.note for ln in s.transcript.session() if ln.direction == "event"]
        assert "connection refused: not this user's" in notes
        assert s.client(source="127.0.0.3").history[0].reply.code == 220
