"""Replay the real programs' recordings against the personas, in memory (issue 11).

``memory_talk(persona)`` is a ``talk(dialogue)`` for ``tests/recordings/replay.py``:
it plays one recorded dialogue into a fresh ``SessionPair`` (the lab's session
core, no socket) through the recorder's *own* client logic (``record._Replay``),
so every rule of how the recordings were made holds here too: N replies read
per item, unasked replies kept with the item that caused them, a message sent
only after a 354, STARTTLS taking effect after its 220.  Only time differs: a
socket waits; memory does not.  A reply the session has not produced is "no
reply within the timeout" (``<timeout>``), which is what the recorder writes
when a real server says nothing (Exim waiting after ``<LF>.<LF>``, clamsmtpd
waiting on its backend).

    .venv/bin/python tests/persona_replay.py postfix            # figures and differences
    .venv/bin/python tests/persona_replay.py exim --show 50
    .venv/bin/python tests/persona_replay.py postfix --variant delay_reject_no
    .venv/bin/python tests/persona_replay.py postfix --variant beyond   # dialogues beyond the corpus

Used by tests/test_persona_replay.py and by benchmarks/README figures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
RECORDINGS = HERE / "recordings"
sys.path.insert(0, str(RECORDINGS))
import record  # noqa: E402  (the recorder's own client logic)
import replay  # noqa: E402

from labsmtp.lab.dnszone import LabZone, zone_hooks  # noqa: E402
from labsmtp.protocol.pair import SessionPair  # noqa: E402

PROGRAMS = ("postfix", "exim", "sendmail", "opensmtpd", "clamsmtpd")

POSTFIX_HELO_RESTRICTIONS = (
    "reject_invalid_helo_hostname",
    "reject_non_fqdn_helo_hostname",
    "reject_unknown_helo_hostname",
)
# The recordings' DNS: the lab zone (labdns.py served DEFAULT_ZONE), NXDOMAIN elsewhere.
ZONE = LabZone()

# The setting variants recorded by record_stock.sh (generated/variants/<program>-<variant>.json),
# as LabServer / SessionPair settings on top of the persona's stock configuration.
# The persona work fills this in: a variant missing here is replayed with no settings.
VARIANT_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "postfix": {
        "stock": {},
        "delay_reject_no": {"smtpd_delay_reject": False},
        "helo_required": {"smtpd_helo_required": True},
        "strict_rfc821": {"strict_rfc821_envelopes": True},
        "helo_restrictions": {"smtpd_helo_restrictions": POSTFIX_HELO_RESTRICTIONS},
        "helo_restrictions_no_delay": {
            "smtpd_helo_restrictions": POSTFIX_HELO_RESTRICTIONS,
            "smtpd_delay_reject": False,
            "smtpd_helo_required": True,
        },
        "limits": {"smtpd_recipient_limit": 3, "message_size_limit": 2000},
    },
    "exim": {
        "stock": {},
        "helo_verify": {"helo_verify_hosts": "*"},
        "helo_try_verify": {"helo_try_verify_hosts": "*"},
        # record_stock.sh's acl_check_helo, as a learner writes it (Exim's own syntax).
        "acl_helo": {
            "acl_smtp_helo": "deny message = HELO/EHLO argument must be a fully-qualified "
            "domain name\n  condition = ${if match{$sender_helo_name}{\\N\\.\\N}{no}{yes}}"
            "\naccept"
        },
    },
    "sendmail": {
        "stock": {},
        "privacy_goaway": {"PrivacyOptions": ("goaway",)},
        "privacy_authwarnings": {"PrivacyOptions": ("authwarnings",)},
    },
    "opensmtpd": {
        "stock": {},
        # record_stock.sh VARIANT=helo_filter: the lines it adds to /etc/smtpd.conf.
        "helo_filter": {
            "filters": (
                'table helo_bare { "^[^.]*$" }',
                'filter "helo_fqdn" phase helo match helo regex <helo_bare> reject '
                '"550 5.7.1 HELO name must be a fully-qualified domain name"',
                'filter "ehlo_fqdn" phase ehlo match helo regex <helo_bare> reject '
                '"550 5.7.1 EHLO name must be a fully-qualified domain name"',
                'filter "fqdn" chain { "helo_fqdn", "ehlo_fqdn" }',
                'listen on localhost filter "fqdn"',
            )
        },
    },
}


class MemoryConn(record.Conn):
    """record.Conn's reading logic over a SessionPair's replies instead of a socket."""

    def __init__(self, pair: SessionPair) -> None:
        super().__init__(sock=None)  # type: ignore[arg-type]
        self.pair = pair
        self.buf = b"".join(r.raw for r in [pair.greeting])
        self.eof = pair.closed
        self._wrote_after_eof = False

    def send(self, data: bytes) -> None:
        if self.eof:
            # TCP: the first write after the server's FIN still succeeds (the peer answers
            # it with RST), so a real client reads what the server said before closing,
            # e.g. Postfix's 421 right after the 20th error, as the reply to its next line.
            if self.buf and not self._wrote_after_eof:
                self._wrote_after_eof = True
                return
            raise record.Closed("the server has closed the connection")
        for reply in self.pair.send(data):
            self.buf += reply.raw
        self.eof = self.pair.closed

    def _fill(self, deadline: float) -> bool:
        # Everything the server will say is already in buf: more never comes.
        return self.eof

    def has_data(self, wait: float) -> bool:
        return bool(self.buf) or self.eof

    def starttls(self) -> str:
        return "TLSv1.3"  # the pair takes the handshake as done after the 220


def memory_talk(persona: str, **settings: Any) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """A talk() that replays one dialogue against ``persona`` in memory, with the
    lab zone as its DNS (as the recordings had: record_stock.sh's labdns.py)."""
    dns = zone_hooks(LabZone())

    def talk(dialogue: dict[str, Any]) -> list[dict[str, Any]]:
        client = dialogue.get("client", "127.0.0.1")
        pair = SessionPair(persona, client_ip=client, **dns, **settings)
        run = record._Replay(MemoryConn(pair), timeout=1.0, after_timeout=1.0, settle=0.0)
        run.reply(None)
        try:
            for item in dialogue["lines"]:
                if run.closed:
                    break
                run.item(item)
        except record.Closed as exc:
            run.exchanges.append(
                {"sent": None, "reply": None, "outcome": "closed", "detail": str(exc)}
            )
            run.closed = True
        run.finish()
        return run.exchanges

    return talk


def nondeterministic(program: str) -> set[str]:
    """Dialogues the real program did not answer the same way twice (left out of figures)."""
    data = json.loads((RECORDINGS / "generated" / "nondeterministic.json").read_text())
    return set(data["checked"].get(program, []))


# Dialogues outside the corpus (generated/beyond.json), recorded per program: a check
# on what nobody tuned a persona on.  Replayed in the stock configuration.
BEYOND = "beyond"


def recording_path(program: str, variant: str | None = None) -> pathlib.Path:
    if variant == BEYOND:
        return RECORDINGS / "generated" / BEYOND / f"{program}.json"
    if variant is None:
        return RECORDINGS / "generated" / f"{program}.json"
    return RECORDINGS / "generated" / "variants" / f"{program}-{variant}.json"


def run(
    program: str, variant: str | None = None, settings: Mapping[str, Any] | None = None
) -> replay.Report:
    """The persona against one recording of its real program, in memory."""
    if settings is None:
        stock = variant is None or variant == BEYOND
        settings = VARIANT_SETTINGS.get(program, {}).get("stock" if stock else variant, {})
    skip = nondeterministic(program)
    return replay.replay(
        recording_path(program, variant),
        memory_talk(program, **settings),
        only=lambda d: d["name"] not in skip,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("program", choices=PROGRAMS)
    ap.add_argument(
        "--variant", help=f"a setting variant, e.g. delay_reject_no; {BEYOND}: generated/beyond/"
    )
    ap.add_argument("--show", type=int, default=20, help="print this many differences")
    ap.add_argument("--codes", action="store_true", help="show only differences in reply codes")
    args = ap.parse_args(argv)
    report = run(args.program, args.variant)
    print(report.summary())
    diffs = [d for d in report.differences if d.code_differs or not args.codes]
    for d in diffs[: args.show]:
        print(d)
    if len(diffs) > args.show:
        print(f"... and {len(diffs) - args.show} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
