"""The course's exercises: one self-check and one solution each, numbered by lesson.

A check returns None when the exercise is solved, or hints from gentle to
specific.  It looks only at what the learner's own answer produced: the step
client they used (its ``history`` holds every command it sent and every reply
it got), the function they wrote (the check runs it against servers of its
own), or the value they computed.  So no earlier cell of a lesson, and no
press of the stepper, can solve an exercise.  The task text is in the
lesson's exercise box, nowhere else.  tests/test_exercises.py runs every
solution, two or more other correct answers and a wrong one per exercise.

- ``definitions``: the exercises as data (answer names, setup, solution, the
  note shown once solved).
- ``reading``: what a learner's step client did, for the checks.
- ``checks_dialogue`` (lessons 0 to 4), ``checks_network`` (5 to 9),
  ``checks_practice`` (10 to 14): the checks.

``labsmtp.classroom.course`` judges with them (``check``, ``solution``, the
fair "not attempted yet" and the hints that grow); importing this package
registers every exercise there.
"""

from __future__ import annotations

import inspect

from ..course import exercise
from . import checks_dialogue, checks_network, checks_practice
from .definitions import DEFINITIONS


def _register() -> None:
    """Join each definition to its check; a definition without a check fails at import."""
    tables = (checks_dialogue.CHECKS, checks_network.CHECKS, checks_practice.CHECKS)
    checks = {id: check for table in tables for id, check in table.items()}
    ids = {d.id for d in DEFINITIONS}
    if set(checks) != ids or len(checks) != sum(len(t) for t in tables):
        raise ValueError(f"exercises and checks do not pair up: {sorted(ids ^ set(checks))}")
    for d in DEFINITIONS:
        check = checks[d.id]
        # course calls a check with the answer names and what the lesson passes in
        params = set(inspect.signature(check).parameters)
        if params != set(d.needs + d.given):
            raise ValueError(f"the check of {d.id} takes {sorted(params)}, not {d.needs + d.given}")
        exercise(d.id, d.solution, d.needs, d.given, d.setup, d.solved)(check)


_register()
