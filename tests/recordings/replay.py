"""Replay a recording against another server and say how alike they are.

    # the personas against the stock recordings (needs the lab's venv):
    .venv/bin/python tests/recordings/replay.py --persona postfix tests/recordings/generated/postfix.json
    # any server that listens somewhere:
    python3 tests/recordings/replay.py --server 127.0.0.1:10031 tests/recordings/generated/exim.json
    # two recordings of the same dialogues (e.g. the determinism check):
    python3 tests/recordings/replay.py --compare a.json b.json

From Python, ``replay(recording, talk)`` does the work: ``talk(dialogue)``
is supplied by the caller and returns the exchanges for one dialogue of the
corpus (the shape record.run_dialogue returns), so it can be a socket client
(``socket_talk``) or an in-memory session.  The result has, per recording:
the share of exchanges whose reply *code* is identical, the share whose
reply *text* is identical, and every differing exchange.

What is normalised before comparing, and nothing else (NORMALISERS):
- dates in replies (RFC 5322 form, as in Exim's and Sendmail's greetings):
  ``Mon, 30 Nov 2026 11:08:04 +0000`` -> ``<date>``;
- queue ids where a reply reports one: Postfix ``queued as 27B041720E7``,
  Exim ``OK id=1xXzEq-0000Az-0m``, Sendmail ``2.0.0 6AUBHE1m001126 Message
  accepted``, OpenSMTPD ``2.0.0 b84f8184 Message accepted`` -> ``<qid>``;
- SASL challenges: the text of a 334 reply whose base64 payload is 24
  characters or longer (CRAM-MD5 / DIGEST-MD5 nonces) -> ``<challenge>``.
Everything else (host names, addresses, wording, line structure, the order
of EHLO keywords, unasked replies, closes and timeouts) must match.

An exchange is: the reply (its lines), or, when no reply came, the outcome
(``<closed>``, ``<timeout>``, ``<skipped>``, ``<none expected>``), plus any
unasked replies kept with it.  Its code is the first three characters of the
reply's last line (or the outcome).  Exchanges are matched by position; an
exchange one side has and the other lacks counts as a difference.
Standard library only (the --persona mode imports labsmtp).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import record  # noqa: E402  (the same client that made the recordings)

_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
NORMALISERS: list[tuple[str, re.Pattern, str]] = [
    (
        "date",
        re.compile(
            rf"{_DAY}, \d{{1,2}} {_MON} \d{{4}} \d\d:\d\d:\d\d (?:[+-]\d{{4}}|[A-Z]{{1,5}})"
        ),
        "<date>",
    ),
    ("postfix queue id", re.compile(r"(queued as )[0-9A-Za-z]{6,20}\b"), r"\1<qid>"),
    (
        "exim message id",
        re.compile(r"(\bid=)[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}\b"),
        r"\1<qid>",
    ),
    (
        "sendmail/opensmtpd queue id",
        re.compile(r"^(25\d[ -](?:\d\.\d\.\d )?)[0-9A-Za-z]{8,14}( Message accepted for delivery)"),
        r"\1<qid>\2",
    ),
    ("sasl challenge", re.compile(r"^(334[ -])[A-Za-z0-9+/]{24,}={0,2}$"), r"\1<challenge>"),
]


def normalise(line: str) -> str:
    for _, rx, repl in NORMALISERS:
        line = rx.sub(repl, line)
    return line


def exchange_text(ex: dict) -> list[str]:
    """What an exchange says, normalised: reply lines or <outcome>, then unasked replies."""
    out = [normalise(ln) for ln in ex["reply"]] if ex.get("reply") else []
    if ex.get("outcome") and not (ex.get("reply") and ex["outcome"] == "unasked"):
        out.append(f"<{ex['outcome']}>")
    for extra in ex.get("extra", []):
        out += ["<unasked>"] + [normalise(ln) for ln in extra]
    if ex.get("extra_outcome"):
        out.append(f"<{ex['extra_outcome']}>")
    return out


def exchange_code(ex: dict) -> str:
    if ex.get("reply"):
        return ex["reply"][-1][:3]
    return f"<{ex.get('outcome') or 'nothing'}>"


@dataclass
class Difference:
    dialogue: str
    index: int
    sent: str | None
    want: list[str]
    got: list[str]
    code_differs: bool

    def __str__(self) -> str:
        return (
            f"{self.dialogue} #{self.index} {self.sent!r}\n"
            f"    want: {' / '.join(self.want) or '(nothing)'}\n"
            f"    got:  {' / '.join(self.got) or '(nothing)'}"
        )


@dataclass
class Report:
    software: str
    exchanges: int = 0
    codes_same: int = 0
    texts_same: int = 0
    dialogues: int = 0
    dialogues_same: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def code_pct(self) -> float:
        return 100.0 * self.codes_same / max(self.exchanges, 1)

    @property
    def text_pct(self) -> float:
        return 100.0 * self.texts_same / max(self.exchanges, 1)

    def summary(self) -> str:
        return (
            f"{self.software}: {self.exchanges} exchanges in {self.dialogues} dialogues; "
            f"reply codes identical {self.code_pct:.1f}%, reply texts identical "
            f"{self.text_pct:.1f}%, dialogues identical "
            f"{100.0 * self.dialogues_same / max(self.dialogues, 1):.1f}%"
        )


def compare_exchanges(name: str, want: list[dict], got: list[dict], report: Report) -> None:
    report.dialogues += 1
    same_dialogue = True
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        report.exchanges += 1
        wc = exchange_code(w) if w else "<missing>"
        gc = exchange_code(g) if g else "<missing>"
        wt = exchange_text(w) if w else ["<missing>"]
        gt = exchange_text(g) if g else ["<missing>"]
        report.codes_same += wc == gc
        report.texts_same += wt == gt
        if wt != gt:
            same_dialogue = False
            sent = (w or g).get("sent")
            report.differences.append(Difference(name, i, sent, wt, gt, wc != gc))
    report.dialogues_same += same_dialogue


def load(path) -> dict:
    return json.loads(pathlib.Path(path).read_text())


def corpus_for(recording: dict) -> dict:
    """The dialogues a recording was made from (by name), checked by their digest."""
    files = recording.get("dialogues_files") or (
        ["generated/corpus.json"] if recording.get("corpus") else ["dialogues.json"]
    )
    dialogues = [d for f in files for d in load(HERE / f)["dialogues"]]
    want = recording.get("dialogues_sha256")
    if want and record.dialogues_digest(dialogues) != want:
        raise SystemExit(
            f"{', '.join(files)} no longer hold the dialogues this recording was "
            f"made from (digest differs): regenerate them or re-record"
        )
    return {d["name"]: d for d in dialogues}


def replay(
    recording: dict | str | pathlib.Path,
    talk: Callable[[dict], list[dict]],
    dialogues: dict | None = None,
    only: Callable[[dict], bool] | None = None,
) -> Report:
    """Replay every recorded dialogue through ``talk`` and compare."""
    if not isinstance(recording, dict):
        recording = load(recording)
    by_name = dialogues or corpus_for(recording)
    report = Report(recording.get("software", "?"))
    for rec in recording["dialogues"]:
        dialogue = by_name[rec["name"]]
        if only and not only(dialogue):
            continue
        compare_exchanges(rec["name"], rec["exchanges"], talk(dialogue), report)
    return report


def compare_recordings(a: dict, b: dict) -> Report:
    """Two recordings of the same dialogues (b is compared against a)."""
    report = Report(f"{a.get('software')} vs {b.get('software')}")
    other = {d["name"]: d for d in b["dialogues"]}
    for rec in a["dialogues"]:
        compare_exchanges(rec["name"], rec["exchanges"], other[rec["name"]]["exchanges"], report)
    return report


def socket_talk(host: str, port: int, timeout: float = 8.0, **kw) -> Callable[[dict], list[dict]]:
    """A talk() that replays a dialogue over TCP with the recorder's own client."""

    def talk(dialogue: dict) -> list[dict]:
        return record.run_dialogue(host, port, dialogue, timeout, **kw)["exchanges"]

    return talk


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", type=pathlib.Path)
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--persona", help="start LabServer(persona=...) and replay against it")
    how.add_argument("--server", help="HOST:PORT of a running server")
    how.add_argument("--compare", type=pathlib.Path, help="another recording of the same dialogues")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--show", type=int, default=20, help="print this many differences")
    ap.add_argument("--json", type=pathlib.Path, help="write the figures and every difference here")
    args = ap.parse_args(argv)
    recording = load(args.recording)
    if args.compare:
        report = compare_recordings(recording, load(args.compare))
    elif args.server:
        host, _, port = args.server.rpartition(":")
        report = replay(recording, socket_talk(host, int(port), args.timeout))
    else:
        sys.path.insert(0, str(HERE.parent.parent))
        from labsmtp import LabServer

        with LabServer(
            persona=args.persona, hostname="mx.lab.example.org", name=f"replay-{args.persona}"
        ) as server:
            report = replay(recording, socket_talk("127.0.0.1", server.port, args.timeout))
    print(report.summary())
    for d in report.differences[: args.show]:
        print(d)
    if len(report.differences) > args.show:
        print(f"... and {len(report.differences) - args.show} more differences")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "summary": report.summary(),
                    "exchanges": report.exchanges,
                    "reply_codes_identical_pct": round(report.code_pct, 2),
                    "reply_texts_identical_pct": round(report.text_pct, 2),
                    "differences": [d.__dict__ for d in report.differences],
                },
                indent=1,
                ensure_ascii=False,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
