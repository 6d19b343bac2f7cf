"""The offline DNS zone: HELO name checks and FCrDNS, standards vs strict policy."""

from __future__ import annotations

import pytest

from labsmtp import LabServer, LabValueError
from labsmtp.lab.dnszone import DEFAULT_ZONE, LabZone, use_zone

RCPT = "postmaster@lab.example.org"


def test_zone_answers_forward_and_reverse():
    z = LabZone()
    assert z.addresses("mail.good.example") == ["127.0.0.2"]
    assert z.resolves("client.example.org") and not z.resolves("nowhere.example")
    assert z.ptr("127.0.0.2") == ["mail.good.example"]
    assert z.ptr("127.0.0.4") == []


@pytest.mark.parametrize(
    "address, verdict",
    [
        ("127.0.0.1", "pass"),
        ("127.0.0.2", "pass"),
        ("127.0.0.3", "mismatch"),
        ("127.0.0.4", "no PTR"),
        ("127.0.0.5", "mismatch"),
    ],  # .5: the NAT case
)
def test_fcrdns_verdicts(address, verdict):
    assert LabZone().fcrdns(address).verdict == verdict


def test_a_lesson_can_edit_the_zone_text():
    z = LabZone(DEFAULT_ZONE + "4.0.0.127.in-addr.arpa. PTR mail.good.example.\n")
    assert z.fcrdns("127.0.0.4").verdict == "mismatch"  # PTR now, but A says 127.0.0.2


def test_a_broken_zone_is_explained():
    with pytest.raises(LabValueError) as exc:
        LabZone("mail.example. A not-an-address\n")
    assert "zone text" in str(exc.value)


@pytest.fixture
def unknown_helo_server():
    s = LabServer(
        persona="postfix",
        name=f"dns-{id(object())}",
        smtpd_helo_restrictions=("reject_unknown_helo_hostname",),
        smtpd_delay_reject=False,  # the verdict at HELO itself (stock: at RCPT)
    ).start()
    use_zone(s, identity="off")
    yield s
    s.stop()


def test_reject_unknown_helo_hostname_uses_the_offline_zone(unknown_helo_server):
    c = unknown_helo_server.client()
    r = c.helo("nowhere.example")
    assert str(r) == "450 4.7.1 <nowhere.example>: Helo command rejected: Host not found"
    assert c.helo("client.example.org").code == 250
    assert c.helo("[127.0.0.1]").code == 250  # an address literal needs no DNS


def test_an_mx_record_is_enough_for_reject_unknown_helo_hostname():
    # Postfix looks for A, AAAA, then MX (smtpd_check.c reject_unknown_hostname).
    zone = LabZone(DEFAULT_ZONE + "only-mx.example.  MX  10 mx.lab.example.org.\n")
    assert zone.resolves("only-mx.example") and not zone.resolves("nowhere.example")


def test_a_stock_postfix_says_host_not_found_at_rcpt():
    s = LabServer(
        persona="postfix", name="dns-stock", smtpd_helo_restrictions="reject_unknown_helo_hostname"
    )
    with s:
        use_zone(s, identity="off")
        c = s.client()
        assert c.helo("nowhere.example").code == 250
        c.mail("ada@example.org")
        r = c.rcpt("postmaster@lab.example.org")
        assert str(r) == "450 4.7.1 <nowhere.example>: Helo command rejected: Host not found"


def _deliver(server, source, helo):
    c = server.client(source=source)
    c.ehlo(helo)
    c.mail("ada@example.org")
    return c, c.rcpt(RCPT)


@pytest.mark.parametrize(
    "source, helo",
    [
        ("127.0.0.4", "client.example.org"),
        ("127.0.0.5", "mail.branch.example"),
        ("127.0.0.3", "mail.mismatch.example"),
    ],
)
def test_standards_policy_logs_but_never_refuses(server, source, helo):
    use_zone(server, identity="standards")
    c, reply = _deliver(server, source, helo)
    assert reply.code == 250  # RFC 5321 §4.1.4: MUST NOT refuse on that basis
    notes = [ln.note for ln in server.transcript.lines() if ln.direction == "event"]
    assert any("logged, not refused" in n for n in notes)


def test_strict_policy_refuses_a_client_without_ptr(server):
    use_zone(server, identity="strict")
    c, reply = _deliver(server, "127.0.0.4", "client.example.org")
    assert str(reply) == "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.4]"
    # A policy, not a fault: nothing is marked injected, and the transcript says which policy.
    assert not [ln for ln in server.transcript.lines() if ln.injected]
    notes = [ln.note for ln in server.transcript.lines() if ln.direction == "event"]
    assert any(n.startswith("identity check (strict): refused") for n in notes)


def test_strict_policy_refuses_the_nat_client(server):
    use_zone(server, identity="strict")
    c, reply = _deliver(server, "127.0.0.5", "mail.branch.example")
    assert reply.code == 450


def test_strict_policy_accepts_a_confirmed_client(server):
    use_zone(server, identity="strict")
    c, reply = _deliver(server, "127.0.0.2", "mail.good.example")
    assert reply.code == 250
    notes = [ln.note for ln in server.transcript.lines() if ln.direction == "event"]
    assert any("identity confirmed" in n for n in notes)


def test_identity_checks_survive_clearing_faults(server):
    use_zone(server, identity="strict")
    server.faults.clear()
    c, reply = _deliver(server, "127.0.0.4", "client.example.org")
    assert reply.code == 450
    with pytest.raises(LabValueError):
        use_zone(server, identity="paranoid")


def test_received_field_writes_the_helo_name_beside_what_the_server_found():
    # Lesson 4: the claimed name next to the reverse name the server looked up itself
    # (Postfix 3.7's format, as recorded: tests/recordings/trace/). "unknown" when the
    # address has no forward-confirmed reverse name.
    seen = []
    with LabServer(name="received-zone", persona="postfix", mynetworks="127.0.0.0/8") as s:
        use_zone(s, identity="off")
        for source, helo in (
            ("127.0.0.2", "mail.good.example"),
            ("127.0.0.2", "client.example.org"),
            ("127.0.0.4", "client.example.org"),
        ):
            c = s.client(source=source)
            c.ehlo(helo), c.mail("ada@example.org"), c.rcpt("postmaster@lab.example.org")
            assert c.data("Subject: where\r\n\r\nfrom\r\n").code == 250
            c.quit()
            seen.append(s.mailbox.last()["Received"].split(")")[0] + ")")
    assert seen == [
        "from mail.good.example (mail.good.example [127.0.0.2])",
        "from client.example.org (mail.good.example [127.0.0.2])",
        "from client.example.org (unknown [127.0.0.4])",
    ]
