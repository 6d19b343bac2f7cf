"""Course plumbing: exercises with fair self-checks, solutions, and predictions.

An exercise has an id ("1.2"), a self-check and a solution.  ``check(id,
**things)`` never raises: it prints a tick or a hint, so an unsolved lesson
still runs top to bottom.  The check is fair:

- with the answer still at its placeholder (``None``) it says "not attempted
  yet" and reveals nothing, so *Run All* gives nothing away;
- it judges only what the learner's own answer produced (their client, their
  function, their value), never what earlier cells of the lesson did;
- its hints grow with wrong attempts: a nudge first, the specific hint later,
  and the pointer to ``solution(id)`` last.

The task text lives in the lesson's exercise box only (tests/test_exercises.py
checks that every registered exercise has exactly one box, and every box an
exercise).  ``solution(id)`` shows the solution's code; the tests run every
solution and assert that its own check passes.

``reveal(prediction, actual, why)`` is the predict-then-run check: a lesson
asks for a prediction before a cell runs the real thing, and shows the real
answer only once a prediction was made.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

Hint = str | tuple[str, ...]  # one hint, or hints from gentle to specific
Checker = Callable[..., Hint | None]  # returns None when solved, else a hint


@dataclass(frozen=True)
class Exercise:
    """One exercise: how to check it, and a solution that passes the check."""

    id: str
    checker: Checker
    solution_code: str
    needs: tuple[str, ...] = ()  # the learner's answer names (placeholder: None)
    given: tuple[str, ...] = ()  # what the lesson passes in (a server, a zone, ...)
    setup: str = ""  # what the lesson runs before the exercise (the tests run it too)
    solved_note: str = ""  # said once solved: the "why" behind the answer


_EXERCISES: dict[str, Exercise] = {}
_ATTEMPTS: dict[str, int] = {}  # wrong attempts per exercise, in this kernel


def exercise(
    id: str,
    solution: str,
    needs: tuple[str, ...] = (),
    given: tuple[str, ...] = (),
    setup: str = "",
    solved: str = "",
):
    """Register a self-check: a function returning None when solved, else a hint."""

    def register(fn: Checker) -> Checker:
        if id in _EXERCISES:
            raise ValueError(f"exercise {id} is defined twice")
        _EXERCISES[id] = Exercise(
            id,
            fn,
            textwrap.dedent(solution).strip() + "\n",
            needs,
            given,
            textwrap.dedent(setup).strip(),
            solved,
        )
        return fn

    return register


def exercises() -> list[Exercise]:
    """Every exercise of the course, in id order."""
    _load()
    return sorted(_EXERCISES.values(), key=lambda e: [int(p) for p in e.id.split(".")])


def _load() -> None:
    from . import exercises as _  # noqa: F401  (registers the course's exercises)


def _untouched(value) -> bool:
    """True for a placeholder: None, or a dict/list whose every value is None."""
    if value is None:
        return True
    if isinstance(value, dict) and value:
        return all(v is None for v in value.values())
    return False


def _levels(hint: Hint) -> tuple[str, ...]:
    return (hint,) if isinstance(hint, str) else tuple(hint)


def _verdict(id: str, things: dict, count: bool = True) -> tuple[bool, str]:
    """(solved, message) for exercise ``id``; never raises."""
    _load()
    ex = _EXERCISES.get(str(id))
    if ex is None:
        return (
            False,
            f"There is no exercise {id!r}; the lesson's exercises are numbered like '1.2'.",
        )
    missing = [n for n in ex.needs + ex.given if n not in things]
    if missing:
        return False, f"Exercise {id}: pass {', '.join(f'{n}={n}' for n in missing)} to check()."
    if ex.needs and all(_untouched(things[n]) for n in ex.needs):
        names = " and ".join(f"`{n}`" for n in ex.needs)
        return False, (
            f"Exercise {id}: not attempted yet. Replace the None in {names} with your "
            f"answer, then run this cell again."
        )
    try:
        hint = ex.checker(**{n: things[n] for n in ex.needs + ex.given})
    except Exception as exc:  # a learner's half-built answer must not stop Run All
        hint = f"the check could not read your answer ({type(exc).__name__}: {exc})"
    if hint is None:
        if count:
            _ATTEMPTS.pop(ex.id, None)
        note = f" {ex.solved_note}" if ex.solved_note else ""
        return True, f"✓ Exercise {id} solved.{note}"
    levels = _levels(hint)
    tries = _ATTEMPTS.get(ex.id, 0) + 1
    if count:
        _ATTEMPTS[ex.id] = tries
    text = levels[min(tries, len(levels)) - 1]
    if tries > len(levels):
        text += f" (Still stuck? solution({id!r}) shows one way.)"
    return False, f"✗ Exercise {id} not solved yet. Hint: {text}"


def check(id: str, **things) -> None:
    """Check exercise ``id`` and print a tick or a hint.  Never raises."""
    print(_verdict(id, things)[1])


def passes(id: str, **things) -> bool:
    """True if exercise ``id`` is solved (what ``check`` decides, without counting an attempt)."""
    return _verdict(id, things, count=False)[0]


def reset_attempts() -> None:
    """Forget the wrong attempts (hints start gentle again)."""
    _ATTEMPTS.clear()


class Solution(str):
    """A solution's code; shows as a highlighted block in a notebook, as text elsewhere."""

    def _repr_markdown_(self) -> str:
        return f"```python\n{self}```"


def solution(id: str) -> Solution:
    """The solution of exercise ``id`` (shown as code; copy it into a cell)."""
    _load()
    ex = _EXERCISES.get(str(id))
    if ex is None:
        return Solution(f"# There is no exercise {id!r}.\n")
    return Solution(ex.solution_code)


# --- predict, then run ------------------------------------------------------


def _same(prediction, actual) -> bool:
    if isinstance(actual, bool) or isinstance(prediction, bool):
        return prediction is actual or prediction == actual
    if isinstance(actual, (set, frozenset, list, tuple)):
        try:
            return {_norm(p) for p in prediction} == {_norm(a) for a in actual}
        except TypeError:
            return False
    return _norm(prediction) == _norm(actual)


def _norm(value):
    if isinstance(value, str):
        text = value.strip().lower()
        return int(text) if text.isdigit() else text
    return value


def reveal(prediction, actual, why: str = "") -> None:
    """Compare a prediction with what really happened; shows ``actual`` only after a guess.

    Prints whether the prediction was right, then ``why``.  Never raises.
    """
    if _untouched(prediction):
        print(
            "Make your prediction first: replace the None above, then run this cell again. "
            "(What really happened stays hidden until you do.)"
        )
        return
    right = _same(prediction, actual)
    shown = sorted(actual) if isinstance(actual, (set, frozenset)) else actual
    mark = "✓ Right" if right else "✗ Not quite"
    print(f"{mark}: you predicted {prediction!r}; the lab says {shown!r}.")
    if why:
        print(textwrap.fill(why, width=88))
