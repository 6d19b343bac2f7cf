"""The README's lesson table and notebooks/index.ipynb are generated from the lessons' titles."""

from __future__ import annotations

import json
import re

import make_index as course  # tools/, put on sys.path by conftest.py


def test_readme_table_matches_the_lessons():
    text = (course.ROOT / "README.md").read_text()
    block = text.split("<!-- lessons:start -->")[1].split("<!-- lessons:end -->")[0].strip()
    assert block == course.readme_table(), "run: python tools/make_index.py"


def test_index_notebook_matches_the_lessons():
    committed = json.loads((course.NOTEBOOKS / "index.ipynb").read_text())
    assert committed["cells"][0]["source"] == course.index_notebook()["cells"][0]["source"], (
        "run: python tools/make_index.py"
    )


def test_every_lesson_opens_and_closes_the_same_way():
    for name, _title, summary in course.lessons():
        nb = json.loads((course.NOTEBOOKS / name).read_text())
        first = "".join(nb["cells"][0]["source"])
        assert re.match(r"# \d+\. ", first), f"{name}: title with its number"
        for part in ("**Time:**", "**Prerequisites:**", "**What you will learn**"):
            assert part in first, f"{name}: {part}"
        assert summary, f"{name}: objectives"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "import" in "".join(code[0]["source"]), f"{name}: first code cell imports"
        imports = [
            c
            for c in code[1:]
            if re.search(r"^(from labsmtp|import labsmtp)", "".join(c["source"]), re.M)
        ]
        assert not imports, f"{name}: one imports cell"
        last = "".join(nb["cells"][-1]["source"])
        assert "## Key points" in last, f"{name}: key points at the end"
        tail = "".join("".join(c["source"]) for c in code[-3:])
        assert "stop_all()" in tail, f"{name}: leaves no server running"
        number = int(name[:2])
        later = [n for n, _, _ in course.lessons() if int(n[:2]) == number + 1]
        if later:
            assert later[0] in last, f"{name}: link to the next lesson"
