"""Course plumbing: exercises with self-checks and solutions, and the lesson index.

An exercise has an id ("1.2"), a self-check and a solution.  ``check(id,
**things)`` never raises: it prints a tick or a hint, so an unsolved lesson
still runs top to bottom.  ``solution(id)`` shows the solution's code; the
test suite runs every solution and asserts that its own check passes, so a
broken check cannot hide.

The lesson index (README table and ``notebooks/index.ipynb``) is generated
from the lessons' own titles by ``python -m labsmtp.course``; a test fails
when the committed index drifts from the lessons.
"""

from __future__ import annotations

import json
import pathlib
import re
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
            id, task, fn, textwrap.dedent(solution).strip() + "\n", needs,
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
        return False, f"There is no exercise {id!r}; the lesson's exercises are numbered like '1.2'."
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


# --- the lesson index ----------------------------------------------------------

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
_MARK_START, _MARK_END = "<!-- lessons:start -->", "<!-- lessons:end -->"


def lessons(folder: pathlib.Path = NOTEBOOKS) -> list[tuple[str, str, str]]:
    """(file name, title, one-line summary) of every numbered lesson, in order."""
    out = []
    for path in sorted(folder.glob("[0-9][0-9]-*.ipynb")):
        nb = json.loads(path.read_text())
        first = "".join(nb["cells"][0]["source"])
        title = first.splitlines()[0].lstrip("# ").strip()
        m = re.search(r"\*\*What you will learn\*\*\s*\n-\s*(.+)", first)
        summary = m.group(1).strip().rstrip(";.") if m else ""
        out.append((path.name, title, summary))
    return out


def readme_table(folder: pathlib.Path = NOTEBOOKS) -> str:
    rows = ["| Lesson | You will learn |", "|---|---|"]
    for name, title, summary in lessons(folder):
        rows.append(f"| [{title}](notebooks/{name}) | {summary} |")
    return "\n".join(rows)


def index_notebook(folder: pathlib.Path = NOTEBOOKS) -> dict:
    items = "\n".join(f"- [{title}]({name})" for name, title, _ in lessons(folder))
    text = (
        "# Contents\n\nThe course, in order. Each lesson starts its own lab server and "
        "stops it at the end, so you can open any of them.\n\n" + items + "\n\n"
        "*Generated by `python -m labsmtp.course` from the lessons' titles.*"
    )
    return {
        "cells": [{"cell_type": "markdown", "id": "contents", "metadata": {}, "source": text.splitlines(True)}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_index(root: pathlib.Path = ROOT) -> None:
    """Regenerate notebooks/index.ipynb and the README's lesson table."""
    folder = root / "notebooks"
    (folder / "index.ipynb").write_text(json.dumps(index_notebook(folder), indent=1) + "\n")
    readme = root / "README.md"
    text = readme.read_text()
    start, end = text.index(_MARK_START), text.index(_MARK_END)
    text = text[: start + len(_MARK_START)] + "\n" + readme_table(folder) + "\n" + text[end:]
    readme.write_text(text)


if __name__ == "__main__":
    write_index()
    print("wrote notebooks/index.ipynb and the README's lesson table")
