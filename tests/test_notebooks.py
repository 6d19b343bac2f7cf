"""Every lesson runs top to bottom in a fresh kernel with no error and no warning printed.

Each lesson is run once per test session, by whichever test asks for it first
(``lesson_runs``): the per-lesson checks and the whole-course time read the
same runs, in any order, with ``-k``, ``--lf`` or alone.
"""

from __future__ import annotations

import pathlib
import time

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


class LessonRuns:
    """Run a lesson in a fresh kernel the first time it is asked for; remember the result."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self.tmp = tmp_path_factory
        self.runs: dict[str, tuple[nbformat.NotebookNode, float]] = {}

    def __call__(self, path: pathlib.Path) -> tuple[nbformat.NotebookNode, float]:
        if path.name not in self.runs:
            nb = nbformat.read(path, as_version=4)
            assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
                f"{path.name}: commit without outputs"
            )
            where = self.tmp.mktemp(path.stem)
            started = time.perf_counter()
            NotebookClient(
                nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(where)}}
            ).execute()
            self.runs[path.name] = (nb, time.perf_counter() - started)
        return self.runs[path.name]


@pytest.fixture(scope="session")
def lesson_runs(tmp_path_factory):
    return LessonRuns(tmp_path_factory)


def test_there_is_a_start_lesson():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00-")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_runs_clean(path, lesson_runs):
    nb, elapsed = lesson_runs(path)
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            if out.output_type == "stream" and out.name == "stderr":
                problems.append(f"cell {i} printed to stderr: {out.text[:200]}")
    # Every lesson shows at least one picture (STYLE.md), and it must really
    # render: the inline backend ignores figures made without pyplot unless
    # they draw themselves.
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{path.name} shows no picture"
    assert not problems, problems
    assert elapsed < 15, f"{path.name} took {elapsed:.1f} s (limit 15 s)"


def test_whole_course_runs_within_a_minute(lesson_runs):
    # The lessons' own runs if they ran already in this session; otherwise they run now.
    times = {path.name: lesson_runs(path)[1] for path in NOTEBOOKS}
    total = sum(times.values())
    print(" ".join(f"{k[:2]}={v:.1f}s" for k, v in sorted(times.items())), f"total={total:.1f}s")
    assert total <= 60, f"the course took {total:.1f} s (limit 60 s)"
