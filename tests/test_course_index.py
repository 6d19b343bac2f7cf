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
    # Numbers may skip (a lesson still to be written); links go to the next file.
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
        # Issue 12: a predict-then-run check in every lesson, self-checked by reveal().
        assert any("reveal(" in "".join(c["source"]) for c in code), f"{name}: predict-then-run"
        last = "".join(nb["cells"][-1]["source"])
        assert "## Key points" in last, f"{name}: key points at the end"
        # Issue 14: Run All, then the exercises. A lesson's servers stay up until the
        # kernel stops; the lesson may say how to stop them, but never does.
        calls = [c for c in code if re.search(r"^\s*stop_all\(\)", "".join(c["source"]), re.M)]
        assert not calls, f"{name}: stop_all() in a code cell kills the exercises"
        assert "until the kernel stops" in last, f"{name}: say that the servers stay up"
        names = [n for n, _, _ in course.lessons()]
        later = names[names.index(name) + 1 :]
        if later:
            assert later[0] in last, f"{name}: link to the next lesson"
            assert later[0] in first, f"{name}: link to the next lesson at the top"


def test_glossary_links_resolve_and_every_lesson_links_it():
    glossary = json.loads((course.NOTEBOOKS / "glossary.ipynb").read_text())
    text = "".join("".join(c["source"]) for c in glossary["cells"])
    # JupyterLab gives a heading the id of its text with spaces as '-'.
    anchors = {h.strip().replace(" ", "-") for h in re.findall(r"^## (.+)$", text, re.M)}
    for name, _, _ in course.lessons():
        nb = json.loads((course.NOTEBOOKS / name).read_text())
        md = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "glossary.ipynb" in md, f"{name}: no link to the glossary"
        for anchor in re.findall(r"glossary\.ipynb#([A-Za-z0-9-]+)", md):
            assert anchor in anchors, f"{name}: glossary has no entry {anchor!r}"
    for term in (
        "RFC",
        "MUST",
        "MUA",
        "MSA",
        "MTA",
        "MDA",
        "Envelope",
        "Header",
        "Relay",
        "Bounce",
        "NAT",
        "FQDN",
        "Address-literal",
        "PTR",
        "FCrDNS",
    ):
        assert term in anchors, f"the glossary lacks {term}"
