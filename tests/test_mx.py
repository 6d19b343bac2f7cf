"""How mail finds its server: MX in the offline zone and an MTA that follows it.

The routing tests read the zone only (RFC 5321 §5.1, RFC 7505).  The delivery
tests run a LabNet: one real lab server per mail host on its own loopback
address, and LabMta talking to them over real sockets.
"""

from __future__ import annotations

import pytest

from labsmtp import LabMta, LabNet, LabServer, LabValueError, find_route, plots
from labsmtp.lab.dnszone import MAIL_ZONE, LabZone

SHOP = ["mx1.shop.example", "mx2.shop.example"]


@pytest.fixture
def net():
    n = LabNet(seed=7).start()
    yield n
    n.stop()


# --- routing: the zone alone ------------------------------------------------------


def test_mx_records_come_sorted_by_preference():
    route = find_route("shop.example", seed=1)
    assert route.kind == "mx"
    assert [(t.host, t.preference) for t in route.targets] == [
        ("mx1.shop.example", 10),
        ("mx2.shop.example", 20),
    ]
    assert route.hosts == SHOP
    assert route.usable[0].addresses == ("127.0.0.11",)


def test_equal_preferences_are_shuffled_reproducibly():
    orders = {tuple(find_route("twins.example", seed=s).hosts) for s in range(20)}
    assert orders == {tuple(SHOP), tuple(reversed(SHOP))}  # §5.1: MUST randomize
    for s in range(5):
        assert (
            find_route("twins.example", seed=s).hosts == find_route("twins.example", seed=s).hosts
        )


def test_a_domain_without_mx_has_an_implicit_mx():
    route = find_route("plain.example")
    assert route.kind == "implicit"
    (t,) = route.targets
    assert (t.host, t.preference, t.addresses, t.implicit) == (
        "plain.example",
        0,
        ("127.0.0.13",),
        True,
    )


def test_null_mx_means_no_mail_even_with_an_address_record():
    zone = LabZone(MAIL_ZONE)
    assert zone.addresses("nomail.example") == ["127.0.0.14"]  # a web site lives there
    route = find_route("nomail.example", zone)
    assert route.kind == "null" and not route.ok and route.usable == ()
    assert route.status == "5.1.10"  # RFC 7505 §4.1
    assert "556" in route.diagnostic


@pytest.mark.parametrize(
    "domain, kind, status",
    [
        ("nothing.example", "nxdomain", "5.4.4"),
        ("broken.example", "unusable", "5.4.4"),  # the MX host has no address
        ("literal.example", "unusable", "5.4.4"),  # the MX data is an address
    ],
)
def test_routes_that_lead_nowhere_are_errors(domain, kind, status):
    route = find_route(domain)
    assert (route.kind, route.status, route.ok) == (kind, status, False)
    assert route.diagnostic


def test_an_mx_naming_an_address_is_unusable_not_followed():
    route = find_route("literal.example")
    assert route.targets[0].host == "127.0.0.11"
    assert "MUST be a host name" in route.targets[0].problem


def test_a_relay_drops_itself_and_worse_mx_from_the_list():
    route = find_route("shop.example", local_names=["mx2.shop.example"])
    assert route.hosts == ["mx1.shop.example"]
    loop = find_route("shop.example", local_names=["mx1.shop.example"])
    assert loop.kind == "loop" and not loop.ok


def test_a_null_mx_mixed_with_others_is_ignored_with_a_note():
    zone = LabZone(MAIL_ZONE + "mixed.example. MX 0 .\nmixed.example. MX 10 mx1.shop.example.\n")
    route = find_route("mixed.example", zone)
    assert route.hosts == ["mx1.shop.example"]
    assert "RFC 7505" in route.notes[0]


@pytest.mark.parametrize("bad", ["shop", "", "bad_domain!.example", "[127.0.0.1]", None, 7])
def test_bad_domains_get_a_readable_error(bad):
    with pytest.raises(LabValueError) as exc:
        find_route(bad)
    assert "domain" in str(exc.value) or "address literal" in str(exc.value)


def test_route_explains_itself():
    text = find_route("nomail.example").explain()
    assert "null MX" in text and "5.1.10" in text


# --- delivery over real sockets ------------------------------------------------------


def test_the_net_maps_each_mail_host_to_its_address_and_a_port(net):
    ports = net.ports
    assert set(ports) == {
        "mx1.shop.example",
        "mx2.shop.example",
        "plain.example",
        "mx.home.example",
        "mx.innocent.example",
        "mx.acceptall.example",
    }
    assert ports["mx1.shop.example"][0] == "127.0.0.11"
    assert all(isinstance(port, int) and port > 0 for _, port in ports.values())
    assert "port 25" in net.table()


def test_first_mx_is_used_when_it_answers(net):
    d = net.send("ada@home.example", "bob@shop.example")
    assert d.hosts_tried == ["mx1.shop.example"]
    assert d.delivered == ["bob@shop.example"]
    assert len(net.server("mx1.shop.example").mailbox) == 1
    assert len(net.server("mx2.shop.example").mailbox) == 0


def test_a_421_greeting_sends_the_mta_to_the_next_mx(net):
    net.server("mx1.shop.example").faults.add("connect:421")
    d = net.send("ada@home.example", "bob@shop.example")
    first, second = d.attempts
    assert (first.host, first.outcome, first.stage, first.code) == (
        "mx1.shop.example",
        "next MX",
        "greeting",
        421,
    )
    assert (second.host, second.outcome, second.code) == ("mx2.shop.example", "delivered", 250)
    assert first.at == second.at == 0  # the same round: no waiting between MX hosts
    assert len(net.server("mx1.shop.example").mailbox) == 0
    (stored,) = net.server("mx2.shop.example").mailbox
    assert stored.rcpt_tos == ("bob@shop.example",)


def test_a_host_that_is_not_listening_sends_the_mta_to_the_next_mx(net):
    net.server("mx1.shop.example").stop()
    d = net.send("ada@home.example", "bob@shop.example")
    assert [(a.host, a.outcome) for a in d.attempts] == [
        ("mx1.shop.example", "no connection"),
        ("mx2.shop.example", "delivered"),
    ]
    assert "refused" in d.attempts[0].note


def test_implicit_mx_delivery(net):
    d = net.send("ada@home.example", "dan@plain.example")
    (a,) = d.attempts
    assert (a.host, a.address, a.preference, a.outcome) == (
        "plain.example",
        "127.0.0.13",
        None,
        "delivered",
    )
    assert net.mailbox("plain.example")[0].rcpt_tos == ("dan@plain.example",)


def test_null_mx_makes_no_connection_and_bounces_at_once(net):
    # A trap: a server on the null-MX domain's A address.  Nothing may reach it.
    trap = LabServer(host="127.0.0.14", name="trap-nomail").start()
    try:
        ports = dict(net.ports, trap=("127.0.0.14", trap.port))
        mta = LabMta(zone=net.zone, ports=ports, clock=net.clock, seed=1)
        d = mta.send("ada@home.example", "someone@nomail.example")
        assert trap.sessions == []
    finally:
        trap.stop()
    (a,) = d.attempts
    assert (a.outcome, a.stage, a.address) == ("not tried", "route", "")
    r = d.results["someone@nomail.example"]
    assert (r.action, r.status, r.at) == ("failed", "5.1.10", 0)
    assert d.bounce is not None and d.bounce.delivered == ["ada@home.example"]
    assert d.finished == 0  # no retries: RFC 7505 says fail at once


def test_a_5xx_to_rcpt_is_final_and_not_tried_elsewhere(net):
    d = net.send("ada@home.example", "nobody@shop.example")
    assert d.hosts_tried == ["mx1.shop.example"]  # not mx2: a 5xx is an answer
    r = d.results["nobody@shop.example"]
    assert (r.action, r.status, r.reply.code) == ("failed", "5.1.1", 550)


def test_4xx_is_retried_later_in_simulated_time_then_given_up(net):
    for host in SHOP:
        net.server(host).faults.add("rcpt:451")
    d = net.send("ada@home.example", "bob@shop.example")
    # The trials "mta" policy: 5 rounds, waits 60, 120, 240, 480 s.
    assert [a.at for a in d.attempts] == [0, 60, 180, 420, 900]
    assert {a.host for a in d.attempts} == {"mx1.shop.example"}  # 4xx: wait, not next MX
    r = d.results["bob@shop.example"]
    assert (r.action, r.status, r.rounds) == ("failed", "4.3.0", 5)
    assert d.bounce is not None
    assert any("gave up" in n for n in d.notes)


def test_greylisting_passes_when_the_simulated_clock_has_moved(net):
    for host in SHOP:
        net.server(host).faults.add("rcpt:greylist=200s")
    d = net.send("ada@home.example", "bob@shop.example")
    assert [a.code for a in d.attempts][-1] == 250
    assert [a.at for a in d.attempts] == [0, 60, 180, 420]  # passes once 200 s have gone by
    assert d.results["bob@shop.example"].rounds == 4


def test_several_recipients_at_one_domain_share_one_transaction(net):
    d = net.send("ada@home.example", ["bob@shop.example", "alice@shop.example"])
    (a,) = d.attempts
    assert set(a.rcpt_replies) == {"bob@shop.example", "alice@shop.example"}
    (stored,) = net.server("mx1.shop.example").mailbox
    assert set(stored.rcpt_tos) == {"bob@shop.example", "alice@shop.example"}


def test_every_acknowledged_message_lands_in_exactly_one_mailbox(net):
    net.server("mx1.shop.example").faults.add("connect:421:0.5")
    net.server("mx2.shop.example").faults.add("rcpt:451:0.3")
    deliveries = []
    for i in range(12):
        rcpts = ["bob@shop.example", "tess@twins.example", "dan@plain.example"]
        if i % 3 == 0:
            rcpts.append("nobody@shop.example")
        deliveries.append(net.send("ada@home.example", rcpts, subject=f"message {i}"))
    for d in deliveries:
        copies = net.find(d.message_id)
        for rcpt, result in d.results.items():
            holding = [h for h, m in copies if rcpt in m.rcpt_tos]
            expected = 1 if result.action == "delivered" else 0
            assert len(holding) == expected, (d.message_id, rcpt, result.action, holding)
            if expected:
                assert holding == [result.host]


def test_the_helo_name_plays_no_part_in_routing(net):
    net.server("mx1.shop.example").faults.add("connect:421")
    paths = {}
    for helo in ["mta.home.example", "[127.0.0.20]", "mx.innocent.example", "lies.example"]:
        mta = net.mta(helo=helo, seed=3)
        d = mta.send("ada@home.example", ["bob@shop.example", "tess@twins.example"])
        paths[helo] = [(a.host, a.outcome) for a in d.attempts]
        assert {a.helo for a in d.attempts} == {helo}
    assert len(set(map(tuple, paths.values()))) == 1  # one route, whatever HELO said
    helos = {m.helo for m in net.server("mx2.shop.example").mailbox}
    assert helos == set(paths)  # the HELO name ends up with the message, and only there


def test_the_same_seed_gives_the_same_attempts():
    def run():
        with LabNet(seed=11) as n:
            n.server("mx1.shop.example").faults.add("rcpt:451:0.5")
            runs = [
                n.send("ada@home.example", ["tess@twins.example", "bob@shop.example"])
                for _ in range(4)
            ]
            return [
                (d.message_id, [(a.host, a.outcome, a.code, a.at) for a in d.attempts])
                for d in runs
            ]

    first, second = run(), run()
    assert first == second
    twins_first_hosts = {attempts[0][0] for _, attempts in first}
    assert twins_first_hosts <= set(SHOP)


@pytest.mark.parametrize(
    "sender, rcpt, words",
    [
        ("ada@home.example", "bob", "has no @"),
        ("ada@home.example", "bob@shop", "fully-qualified"),
        ("ada@home.example", "bob smith@shop.example", "plain address"),
        ("ada@home.example", "", "empty"),
        ("ada@home.example", [], "at least one recipient"),
        ("ada@home.example", None, "at least one recipient"),
        ("ada", "bob@shop.example", "has no @"),
        (None, "bob@shop.example", "sender"),
        ("ada@home.example", "bob@[127.0.0.11]", "address literal"),
    ],
)
def test_bad_addresses_get_readable_errors(net, sender, rcpt, words):
    with pytest.raises(LabValueError) as exc:
        net.send(sender, rcpt)
    assert words in str(exc.value)


def test_bad_options_get_readable_errors(net):
    with pytest.raises(LabValueError, match="never repeats"):
        net.mta(retry="naive")
    with pytest.raises(LabValueError, match="NEVER"):
        net.send("ada@home.example", "bob@shop.example", notify="sometimes")
    with pytest.raises(LabValueError, match="FULL or 'HDRS'|'FULL' or 'HDRS'"):
        net.send("ada@home.example", "bob@shop.example", ret="PART")
    with pytest.raises(LabValueError, match="one word"):
        net.mta(helo="two words")
    with pytest.raises(LabValueError, match="no lab mail host or domain"):
        net.mailbox("nowhere.example")
    with pytest.raises(LabValueError, match="not running"):
        LabNet().ports


def test_an_unknown_domain_is_a_bounce_not_an_exception(net):
    d = net.send("ada@home.example", "someone@nothing.example")
    r = d.results["someone@nothing.example"]
    assert (r.action, r.status) == ("failed", "5.4.4")
    assert "does not exist" in r.diagnostic
    assert d.bounce.delivered == ["ada@home.example"]


def test_the_attempt_plot_shows_each_host_tried(net):
    net.server("mx1.shop.example").faults.add("connect:421")
    d = net.send("ada@home.example", ["bob@shop.example", "x@nomail.example"])
    fig = plots.mx_attempts(d)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [
        "mx1.shop.example (MX 10)",
        "mx2.shop.example (MX 20)",
        "nomail.example (not tried)",
        "bounce to mx.home.example (MX 10)",
    ]
    with pytest.raises(LabValueError):
        plots.mx_attempts("not a delivery")


def test_a_second_net_replaces_the_first(capsys):
    a = LabNet(seed=1).start()
    b = LabNet(seed=1).start()
    try:
        assert not a.running and b.running
        assert capsys.readouterr().out.count("stopped the earlier lab net") == 1
        assert b.send("ada@home.example", "bob@shop.example").delivered
    finally:
        b.stop()


def test_the_demo_script_runs():
    import pathlib
    import subprocess
    import sys

    demo = pathlib.Path(__file__).resolve().parent.parent / "docs" / "demo_mx_bounces.py"
    out = subprocess.run(
        [sys.executable, str(demo)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "next MX at greeting: 421" in out
    assert out.count("-> ['mx1.shop.example', 'mx2.shop.example']") == 3
    assert "never bounce a bounce" in out


@pytest.mark.parametrize(
    "fault, stage, code",
    [
        ("connect:421", "greeting", 421),  # §3.8: service not available, try later
        ("connect:554", "greeting", 554),  # §3.1: no SMTP service here (Postfix skips it too)
        ("connect:drop", "connect", None),  # hung up before any byte
        ("helo:421", "ehlo", 421),
        ("mail:421", "mail", 421),
    ],
)
def test_session_trouble_at_the_first_mx_moves_on_to_the_next(net, fault, stage, code):
    net.server("mx1.shop.example").faults.add(fault)
    d = net.send("ada@home.example", "bob@shop.example")
    first, second = d.attempts
    assert (first.host, first.outcome, first.stage, first.code) == (
        "mx1.shop.example",
        "next MX",
        stage,
        code,
    )
    assert (second.host, second.outcome) == ("mx2.shop.example", "delivered")


def test_a_lost_reply_to_the_final_dot_is_retried_later_not_at_the_next_mx(net):
    mx1 = net.server("mx1.shop.example")
    mx1.faults.add("dot:delay=1500ms:sessions=1")  # the first session's reply comes late
    d = net.mta(timeout=0.5).send("ada@home.example", "bob@shop.example")
    first, second = d.attempts
    assert (first.outcome, first.stage, second.outcome) == ("deferred", "dot", "delivered")
    # A real server may have stored the first copy: the retry can duplicate it (RFC 1047).
    assert "twice" in first.note
    assert second.at == 60 and second.host == "mx1.shop.example"  # later, from the best MX
    assert [h for h, _ in net.find(d.message_id)][-1] == "mx1.shop.example"
