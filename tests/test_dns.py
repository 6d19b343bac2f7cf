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
    injected = [ln for ln in server.transcript.lines() if ln.injected]
    assert injected and "strict" in injected[0].injected


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
