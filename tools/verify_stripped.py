"""Check that the lessons git will commit carry no outputs (what `make test` runs).

Rehearsing a lesson in JupyterLab autosaves its outputs into the working copy;
that must not fail `make test`.  So the check reads each lesson as git's index
holds it (what the next commit will contain) and runs `nbstripout --verify` on
that; a lesson git does not track yet is checked as it is on disk.  Lessons whose
working copy carries saved outputs are only mentioned: `make strip` removes them
and keeps any edits.

Usage: python tools/verify_stripped.py notebooks/*.ipynb   (exit 1 if any fails)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def _from_index(path: Path) -> bytes | None:
    """The file as git's index holds it; None outside git or if git does not track it."""
    try:
        # ":./path": the index's copy, the path taken relative to the current directory
        got = subprocess.run(["git", "show", f":./{path.as_posix()}"], capture_output=True)
    except OSError:  # no git at all (a downloaded zip)
        return None
    return got.stdout if got.returncode == 0 else None


def _has_outputs(raw: bytes) -> bool:
    try:
        nb = json.loads(raw)
    except ValueError:
        return False
    return any(
        c.get("outputs") or c.get("execution_count") is not None
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code"
    )


def main(paths: list[str]) -> int:
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in paths:
            path = Path(name)
            staged = _from_index(path)
            on_disk = path.read_bytes()
            raw = staged if staged is not None else on_disk
            copy = Path(tmp) / path.name
            copy.write_bytes(raw)
            check = subprocess.run(
                [sys.executable, "-m", "nbstripout", "--verify", "--keep-id", str(copy)],
                capture_output=True,
                text=True,
            )
            if check.returncode != 0:
                failed += 1
                where = "as staged for commit" if staged is not None else "on disk"
                print(
                    f"{name}: carries outputs {where}. `make strip` removes them (your edits "
                    f"stay)" + (", then `git add` it again." if staged is not None else "."),
                    file=sys.stderr,
                )
            elif staged is not None and _has_outputs(on_disk):
                print(
                    f"note: {name} has outputs saved by JupyterLab (a rehearsal?); they are not "
                    f"staged, so this passes. `make strip` removes them."
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
