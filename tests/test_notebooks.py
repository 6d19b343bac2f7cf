"""Every lesson runs top to bottom in a fresh kernel with no error and no warning printed."""

from __future__ import annotations

import pathlib
import time

import nbformat
import pytest
from nbclient import NotebookClient

_TIMES: dict[str, float] = {}
NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_there_is_a_start_lesson():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00-")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_runs_clean(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit without outputs"
    )
    started = time.perf_counter()
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    elapsed = time.perf_counter() - started
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            if out.output_type == "stream" and out.name == "stderr":
                problems.append(f"cell {i} printed to stderr: {out.text[:200]}")
    _TIMES[path.name] = elapsed
    # Every lesson shows at least one picture (STYLE.md), and it must really
    # render: the inline backend ignores figures made without pyplot unless
    # they draw themselves.
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{path.name} shows no picture"
    assert not problems, problems
    assert elapsed < 15, f"{path.name} took {elapsed:.1f} s (limit 15 s)"


def test_whole_course_runs_within_a_minute():
    # Runs after the lessons (file order); measures what they took in this session.
    if not _TIMES:
        pytest.fail("run the lessons first (this test reads their times)")
    total = sum(_TIMES.values())
    print(" ".join(f"{k[:2]}={v:.1f}s" for k, v in sorted(_TIMES.items())), f"total={total:.1f}s")
    assert total <= 60, f"the course took {total:.1f} s (limit 60 s)"
