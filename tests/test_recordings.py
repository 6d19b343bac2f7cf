"""The stock recordings stay what they claim to be (issue 11).

The generated corpus must come out of generate.py byte for byte (so anyone can
regenerate it), every recording must have been made from exactly that corpus,
and the comparator's normalisation must touch dates and queue ids and nothing
else. The replay of the personas against these recordings belongs to the
persona work; here the recorder and comparator are checked against the lab
server so that the socket path the later tests will use keeps working.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).parent / "recordings"
sys.path.insert(0, str(HERE))
import generate  # noqa: E402
import labdns  # noqa: E402
import record  # noqa: E402
import replay  # noqa: E402

PROGRAMS = {
    "postfix": "Postfix 3.7.11",
    "exim": "Exim 4.96",
    "sendmail": "Sendmail 8.17.1.9",
    "opensmtpd": "OpenSMTPD 6.8.0p2",
    "clamsmtpd": "clamsmtpd 1.10",
}
CORPUS = json.loads((HERE / "generated" / "corpus.json").read_text())


def test_corpus_is_what_the_generator_makes():
    made = generate.generate(CORPUS["generator"]["seed"], CORPUS["generator"]["count"])
    assert made == CORPUS


def test_corpus_exercises_every_area_and_both_clients():
    areas = {d["area"] for d in CORPUS["dialogues"]}
    assert areas == set(generate.AREAS)
    clients = {d["client"] for d in CORPUS["dialogues"]}
    assert clients == {"127.0.0.1", "127.0.0.2"}
    assert len(CORPUS["dialogues"]) >= 500


@pytest.mark.parametrize("program", PROGRAMS)
def test_recording_was_made_from_this_corpus(program):
    rec = json.loads((HERE / "generated" / f"{program}.json").read_text())
    assert rec["software"].startswith(PROGRAMS[program])
    assert rec["dialogues_sha256"] == record.dialogues_digest(CORPUS["dialogues"])
    assert [d["name"] for d in rec["dialogues"]] == [d["name"] for d in CORPUS["dialogues"]]
    # the settings are the committed snapshot, verbatim
    assert rec["settings"] == (HERE / "stock" / f"{program}.conf").read_text().rstrip("\n")


@pytest.mark.parametrize("program", PROGRAMS)
def test_recordings_saw_the_current_lab_zone(program):
    """A changed DEFAULT_ZONE makes the recordings stale: record them again."""
    snapshot = (HERE / "stock" / f"{program}.conf").read_text()
    seen = snapshot.split("\n## DNS:", 1)[1].split("\n", 1)[1].strip().splitlines()
    zone = labdns.default_zone_text().splitlines()
    now = [ln for ln in zone if ln.strip() and not ln.startswith(";")]
    assert seen == now


def test_beyond_recordings_were_made_from_the_beyond_dialogues():
    """generated/beyond.json: dialogues outside the corpus, recorded against stock programs."""
    beyond = json.loads((HERE / "generated" / "beyond.json").read_text())["dialogues"]
    files = sorted((HERE / "generated" / "beyond").glob("*.json"))
    assert files and {f.stem for f in files} <= set(PROGRAMS)
    for f in files:
        rec = json.loads(f.read_text())
        assert rec["software"].startswith(PROGRAMS[f.stem])
        assert rec["dialogues_sha256"] == record.dialogues_digest(beyond)
        assert rec["settings"] == (HERE / "stock" / f"{f.stem}.conf").read_text().rstrip("\n")


def test_variant_recordings_name_their_variant():
    files = sorted((HERE / "generated" / "variants").glob("*.json"))
    assert {f.name.split("-")[0] for f in files} == set(PROGRAMS) - {"clamsmtpd"}
    for f in files:
        rec = json.loads(f.read_text())
        variant = f.stem.split("-", 1)[1]
        if variant != "stock":
            assert "variant: " in rec["settings"], f.name


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (
            "220 mx.lab.example.org ESMTP Exim 4.96 Mon, 30 Nov 2026 11:08:04 +0000",
            "220 mx.lab.example.org ESMTP Exim 4.96 <date>",
        ),
        ("250 2.0.0 Ok: queued as 27B041720E7", "250 2.0.0 Ok: queued as <qid>"),
        ("250 OK id=1xXzEq-0000Az-0m", "250 OK id=<qid>"),
        (
            "250 2.0.0 6AUBHE1m001126 Message accepted for delivery",
            "250 2.0.0 <qid> Message accepted for delivery",
        ),
        (
            "250 2.0.0 b84f8184 Message accepted for delivery",
            "250 2.0.0 <qid> Message accepted for delivery",
        ),
        ("334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", "334 <challenge>"),
        # not normalised: a short 334 prompt, addresses, host names
        ("334 VXNlcm5hbWU6", "334 VXNlcm5hbWU6"),
        (
            "550 5.1.1 <b84f8184@lab.example.org>: Recipient address rejected",
            "550 5.1.1 <b84f8184@lab.example.org>: Recipient address rejected",
        ),
    ],
)
def test_normalise_touches_dates_queue_ids_and_challenges_only(line, want):
    assert replay.normalise(line) == want


def test_replay_against_the_lab_server_counts_codes_and_texts(postfix_server):
    """The socket talk() works end to end and a recording compares with itself."""
    dialogues = [d for d in CORPUS["dialogues"] if d["area"] in ("pipeline", "raw", "bdat")][:6]
    talk = replay.socket_talk("127.0.0.1", postfix_server.port, timeout=5)
    recorded = {
        "software": "lab",
        "dialogues": [{"name": d["name"], "exchanges": talk(d)} for d in dialogues],
    }
    by_name = {d["name"]: d for d in dialogues}
    report = replay.replay(recorded, talk, dialogues=by_name)
    assert report.dialogues == len(dialogues)
    assert report.code_pct == 100.0 and report.text_pct == 100.0, report.differences[:3]
    # and a changed reply is counted as a difference of text and code
    changed = json.loads(json.dumps(recorded))
    changed["dialogues"][0]["exchanges"][0]["reply"] = ["554 go away"]
    other = replay.compare_recordings(recorded, changed)
    assert other.codes_same == other.exchanges - 1
    assert other.differences[0].code_differs
