"""Mystery servers keep their symptoms after a lesson's last cell has stopped them."""

from __future__ import annotations

from labsmtp import mystery, stop_all


def test_a_stopped_mystery_server_starts_again_instead_of_looking_like_a_firewall(capsys):
    relay, firewall = mystery(6), mystery(4)
    port = relay.server.port
    stop_all()  # the troubleshooting lesson's last cell, after Run All
    capsys.readouterr()

    c = relay.attempt()
    out = capsys.readouterr().out
    assert "had been stopped" in out and "ConnectFailed" not in out
    assert relay.server.port == port
    rcpt = [ex.reply for ex in c.history if ex.sent.startswith(b"RCPT")]
    # its own symptom: relay access denied (554: reject_unauth_destination, as recorded)
    assert rcpt and rcpt[0].code == 554 and "Relay access denied" in rcpt[0].text

    firewall.attempt()
    out = capsys.readouterr().out
    assert "had been stopped" in out
    # Mystery 4's symptom is still its own: accepted, then closed without a greeting.
    assert "ServerClosed" in out and "ConnectFailed" not in out
    stop_all()


def test_a_mystery_client_starts_a_stopped_server_too(capsys):
    m = mystery(7)
    m.stop()
    c = m.client()
    assert c.history[0].reply.code == 220 and "had been stopped" in capsys.readouterr().out
    c.quit()
    m.stop()
