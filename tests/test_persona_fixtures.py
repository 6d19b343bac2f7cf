"""The postfix persona answers every recorded dialogue exactly as the real Postfix 3.7 did.

tests/recordings/postfix-3.7.json was recorded from a real Postfix on loopback by
tests/recordings/record_postfix.sh.  Only queue ids may differ.
"""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).parent / "recordings"
sys.path.insert(0, str(HERE))
import record  # noqa: E402  (the same replay code that recorded the real server)
from helpers import normalise  # noqa: E402  (queue ids masked)

POSTFIX = json.loads((HERE / "postfix-3.7.json").read_text())


@pytest.mark.parametrize("recorded", POSTFIX["dialogues"], ids=lambda d: d["name"])
def test_postfix_persona_matches_real_postfix(postfix_server, recorded):
    script = {"name": recorded["name"], "client": recorded["client"]}
    script["lines"] = next(
        d["lines"]
        for d in json.loads((HERE / "dialogues.json").read_text())["dialogues"]
        if d["name"] == recorded["name"]
    )
    lab = record.run_dialogue("127.0.0.1", postfix_server.port, script, timeout=10)
    got = [(e["sent"], normalise(e["reply"])) for e in lab["exchanges"]]
    want = [(e["sent"], normalise(e["reply"])) for e in recorded["exchanges"]]
    assert got == want


def test_fixture_covers_at_least_fifteen_dialogues():
    assert len(POSTFIX["dialogues"]) >= 15
    assert POSTFIX["software"].startswith("Postfix 3.7")
