"""An instructor's rehearsal in JupyterLab never breaks `make test`.

JupyterLab autosaves outputs into the lessons while an instructor rehearses.
`make test` checks the lessons as git will commit them (tools/verify_stripped.py),
so saved outputs in the working copy only earn a note; staged or untracked
lessons with outputs fail, with the advice `make strip`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import require_tool
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "verify_stripped.py"


def _lesson(path: Path, with_outputs: bool) -> None:
    nb = new_notebook(cells=[new_code_cell("1 + 1", id="c1")])
    if with_outputs:  # what JupyterLab's autosave leaves after a rehearsal
        nb.cells[0].execution_count = 1
        nb.cells[0].outputs = [new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _verify(repo: Path) -> subprocess.CompletedProcess:
    lessons = sorted(str(p.relative_to(repo)) for p in (repo / "notebooks").glob("*.ipynb"))
    return subprocess.run(
        [sys.executable, str(TOOL), *lessons], cwd=repo, capture_output=True, text=True
    )


class Repo:
    """A git repository holding one committed, stripped lesson."""

    def __init__(self, path: Path):
        self.path, self.git_path = path, require_tool("git")
        self.git("init", "-q")
        self.git("config", "user.email", "instructor@example.org")
        self.git("config", "user.name", "Instructor")
        _lesson(path / "notebooks" / "00-start.ipynb", with_outputs=False)
        self.git("add", ".")
        self.git("commit", "-qm", "lessons")

    def git(self, *args: str) -> None:
        subprocess.run([self.git_path, *args], cwd=self.path, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path) -> Path:
    return Repo(tmp_path)


def test_outputs_saved_by_a_rehearsal_do_not_fail_but_are_mentioned(repo):
    _lesson(repo.path / "notebooks" / "00-start.ipynb", with_outputs=True)
    checked = _verify(repo.path)
    assert checked.returncode == 0, checked.stderr
    assert "has outputs saved by JupyterLab" in checked.stdout and "make strip" in checked.stdout


def test_outputs_staged_for_commit_fail_with_advice(repo):
    _lesson(repo.path / "notebooks" / "00-start.ipynb", with_outputs=True)
    repo.git("add", "notebooks/00-start.ipynb")
    checked = _verify(repo.path)
    assert checked.returncode == 1
    assert "carries outputs as staged for commit" in checked.stderr
    assert "make strip" in checked.stderr


def test_a_new_lesson_git_does_not_track_yet_is_checked_on_disk(repo):
    _lesson(repo.path / "notebooks" / "01-new.ipynb", with_outputs=True)
    checked = _verify(repo.path)
    assert checked.returncode == 1 and "01-new.ipynb: carries outputs on disk" in checked.stderr
    _lesson(repo.path / "notebooks" / "01-new.ipynb", with_outputs=False)
    assert _verify(repo.path).returncode == 0


def test_without_git_the_lessons_on_disk_are_checked(tmp_path):
    _lesson(tmp_path / "notebooks" / "00-start.ipynb", with_outputs=True)
    assert _verify(tmp_path).returncode == 1
    _lesson(tmp_path / "notebooks" / "00-start.ipynb", with_outputs=False)
    assert _verify(tmp_path).returncode == 0


def test_make_strip_removes_outputs_and_keeps_edits(tmp_path):
    make = require_tool("make")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    lesson = tmp_path / "notebooks" / "00-start.ipynb"
    _lesson(lesson, with_outputs=True)
    venv = Path(sys.prefix)
    done = subprocess.run(
        [make, "strip", f"VENV={venv}", "-o", f"{venv}/.stamp-dev"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(lesson, as_version=4)
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
    assert nb.cells[0].source == "1 + 1"
