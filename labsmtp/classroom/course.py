"""Course plumbing: exercises with self-checks and solutions.

An exercise has an id ("1.2"), a self-check and a solution.  ``check(id,
**things)`` never raises: it prints a tick or a hint, so an unsolved lesson
still runs top to bottom.  ``solution(id)`` shows the solution's code; the
test suite runs every solution and asserts that its own check passes, so a
broken check cannot hide.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """One exercise: what to do, how to check it, and a solution that passes the check."""

    id: str
    task: str
    checker: Callable[..., str | None]  # returns None when solved, else a hint
    solution_code: str
    needs: tuple[str, ...] = ()  # the names the check and the solution use
    setup: str = ""  # what the lesson runs before the exercise (the tests run it too)


_EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, task: str, solution: str, needs: tuple[str, ...] = (), setup: str = ""):
    """Register a self-check: a function returning None when solved, else a hint."""

    def register(fn: Callable[..., str | None]) -> Callable[..., str | None]:
        if id in _EXERCISES:
            raise ValueError(f"exercise {id} is defined twice")
        _EXERCISES[id] = Exercise(
            id,
            task,
            fn,
            textwrap.dedent(solution).strip() + "\n",
            needs,
            textwrap.dedent(setup).strip(),
        )
        return fn

    return register


def exercises() -> list[Exercise]:
    """Every exercise of the course, in id order."""
    _load()
    return sorted(_EXERCISES.values(), key=lambda e: [int(p) for p in e.id.split(".")])


def _load() -> None:
    from . import exercises as _  # noqa: F401  (registers the course's exercises)


def _verdict(id: str, things: dict) -> tuple[bool, str]:
    """(solved, message) for exercise ``id``; never raises."""
    _load()
    ex = _EXERCISES.get(str(id))
    if ex is None:
        return (
            False,
            f"There is no exercise {id!r}; the lesson's exercises are numbered like '1.2'.",
        )
    missing = [n for n in ex.needs if n not in things]
    if missing:
        return False, f"Exercise {id}: pass {', '.join(f'{n}={n}' for n in missing)} to check()."
    try:
        hint = ex.checker(**things)
    except Exception as exc:  # a learner's half-built answer must not stop Run All
        hint = f"the check could not read your answer ({type(exc).__name__}: {exc})"
    if hint is None:
        return True, f"✓ Exercise {id} solved."
    return False, f"✗ Exercise {id} not solved yet. Hint: {hint}"


def check(id: str, **things) -> None:
    """Check exercise ``id`` and print a tick or a hint.  Never raises."""
    print(_verdict(id, things)[1])


def passes(id: str, **things) -> bool:
    """True if exercise ``id`` is solved (what ``check`` decides, without printing)."""
    return _verdict(id, things)[0]


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
