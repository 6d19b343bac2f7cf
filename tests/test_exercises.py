"""Every exercise's solution passes its own self-check, and no check ever raises."""

from __future__ import annotations

import contextlib
import io

import pytest

import labsmtp
from labsmtp import LabServer
from labsmtp.classroom.course import check, exercises, passes, solution

EXERCISES = exercises()


def _namespace(server):
    ns = {name: getattr(labsmtp, name) for name in labsmtp.__all__}
    ns["server"] = server
    return ns


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_solution_passes_its_check(ex):
    with LabServer(
        name=f"exercise-{ex.id}", smtpd_helo_restrictions="reject_non_fqdn_helo_hostname"
    ) as server:
        ns = _namespace(server)
        exec(ex.setup, ns)  # what the lesson does before the exercise
        exec(ex.solution_code, ns)
        answer = {n: ns[n] for n in ex.needs}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            check(ex.id, **answer)
        assert "✓" in out.getvalue(), out.getvalue()
        assert passes(ex.id, **answer)


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.id)
def test_unsolved_check_gives_a_hint_and_never_raises(ex):
    with LabServer(name=f"exercise-{ex.id}-unsolved") as server:
        junk = {n: None for n in ex.needs}
        if "server" in ex.needs:
            junk["server"] = server
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            check(ex.id, **junk)
        assert "Hint:" in out.getvalue()
        assert passes(ex.id, **junk) is False


def test_check_of_unknown_or_incomplete_exercise_explains(capsys):
    check("99.9")
    assert "no exercise" in capsys.readouterr().out
    check(EXERCISES[0].id)
    assert "pass" in capsys.readouterr().out
    assert passes("99.9") is False


def test_every_lesson_has_at_least_two_exercises():
    from make_index import lessons

    per_lesson = {}
    for ex in EXERCISES:
        per_lesson.setdefault(int(ex.id.split(".")[0]), []).append(ex)
    for name, _title, _ in lessons():
        number = int(name[:2])
        assert len(per_lesson.get(number, [])) >= 2, f"{name} needs two exercises"


def test_solution_shows_code():
    shown = solution(EXERCISES[0].id)
    assert shown == EXERCISES[0].solution_code
    assert shown._repr_markdown_().startswith("```python")
