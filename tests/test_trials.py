"""Trials: many real dialogues under a retry policy, and their summaries."""

from __future__ import annotations

import json

import pytest

from labsmtp import LabValueError
from labsmtp.lab.trials import OUTCOMES, POLICIES, get_policy, run_trials


def codes_of(results):
    return [[a.codes for a in t.attempts] for t in results.trials]


def test_no_retry_with_a_random_rcpt_fault(server):
    r = run_trials(server, 200, retry="none", seed=5, faults=["rcpt:451:0.3"])
    out = r.by_outcome()
    assert list(out) == list(OUTCOMES) and sum(out.values()) == 200
    assert 40 <= out["deferred"] <= 80 and out["delivered"] == 200 - out["deferred"]
    assert all(len(t.attempts) == 1 for t in r.trials)
    stage = r.by_stage_code()
    assert stage["rcpt"]["451"] == out["deferred"]
    assert "rset" not in stage  # the none policy just says QUIT
    assert stage["dot"] == {"250": out["delivered"]}
    assert len(server.mailbox) == out["delivered"]


def test_mta_retries_greylisting_until_delivered(server):
    r = run_trials(server, 20, retry="mta", seed=1, faults=["rcpt:greylist=300s"])
    assert r.by_outcome()["delivered"] == 20
    # Waits 60, 120, 240 s: the 4th attempt comes after 420 s, past the 300 s delay.
    assert {len(t.attempts) for t in r.trials} == {4}
    assert all(t.time >= 420 for t in r.trials)
    assert r.by_attempt()[1] == {"delivered": 0, "deferred": 20, "bounced": 0, "connection lost": 0}
    assert r.by_stage_code()["rset"] == {"250": 60}  # RSET after each refused transaction


def test_no_retry_gives_up_on_greylisting(server):
    r = run_trials(server, 10, retry="none", faults=["rcpt:greylist=300s"])
    assert r.by_outcome()["deferred"] == 10


def test_mta_never_retries_a_permanent_failure(server):
    r = run_trials(server, 10, retry="mta", faults=["rcpt:550"])
    assert r.by_outcome()["bounced"] == 10
    assert all(len(t.attempts) == 1 for t in r.trials)


def test_naive_retries_even_a_permanent_failure(server):
    r = run_trials(server, 10, retry="naive", faults=["rcpt:550"])
    assert r.by_outcome()["bounced"] == 10
    assert all(len(t.attempts) == POLICIES["naive"].max_attempts for t in r.trials)
    assert "rset" not in r.by_stage_code()


def test_a_hang_up_is_a_lost_connection_and_mta_retries_it(server):
    r = run_trials(server, 40, retry="mta", seed=3, faults=["data:drop:0.5"])
    lost = [a for t in r.trials for a in t.attempts if a.outcome == "connection lost"]
    assert lost and all(a.failed_stage == "data" for a in lost)
    assert r.by_stage_code()["data"]["none"] == len(lost)
    for t in r.trials:  # every lost attempt but a last one was retried
        assert all(a.outcome == "connection lost" for a in t.attempts[:-1])
    assert r.by_outcome()["delivered"] >= 35
    none = run_trials(server, 40, retry="none", seed=3, faults=["data:drop:0.5"])
    assert none.by_outcome()["connection lost"] >= 10


def test_421_is_a_deferral(server):
    r = run_trials(server, 5, retry="none", faults=["mail:421"])
    assert r.by_outcome()["deferred"] == 5
    assert r.by_stage_code()["mail"] == {"421": 5}


def test_malformed_reply_counts_as_a_lost_connection(server):
    r = run_trials(server, 5, retry="none", faults=["rcpt:malformed"])
    assert r.by_outcome()["connection lost"] == 5


def test_same_seed_same_results_whatever_the_concurrency(server):
    faults = ["rcpt:451:0.3", "mail:554:0.05", "helo:drop:0.05"]
    a = run_trials(server, 150, retry="mta", seed=42, faults=faults, workers=1)
    b = run_trials(server, 150, retry="mta", seed=42, faults=faults, workers=4)
    assert codes_of(a) == codes_of(b)
    assert a.by_outcome() == b.by_outcome()
    c = run_trials(server, 150, retry="mta", seed=43, faults=faults, workers=2)
    assert codes_of(c) != codes_of(a)


def test_summary_and_json(server):
    r = run_trials(server, 30, retry="mta", seed=2, faults=["rcpt:451:0.3"])
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["trials"] == 30 and d["retry"] == "mta" and d["faults"] == ["rcpt:451:0.3"]
    assert set(d["by_outcome"]) == set(OUTCOMES)
    text = r.summary()
    assert "outcome:" in text and "rcpt" in text and "mta" in text
    assert len(r.latencies()) == d["attempts"]


def test_progress_is_reported(server):
    seen = []
    run_trials(server, 20, retry="none", progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 20) and seen[-1] == (20, 20)


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 0}, {"n": "ten"}, {"retry": "sometimes"}, {"workers": 0}, {"faults": ["rcpt:maybe"]}],
)
def test_bad_arguments_are_explained(server, kwargs):
    kwargs = {"n": 5, **kwargs}
    with pytest.raises(LabValueError):
        run_trials(server, **kwargs)


def test_policy_waits_grow():
    mta = get_policy("mta")
    assert [mta.wait(k) for k in (1, 2, 3)] == [60, 120, 240]
    assert mta.retries("deferred") and not mta.retries("bounced")
