"""Write freshly resolved versions back into the exact pins of the requirement files.

    python tools/pins.py SCOPE FREEZE FILE...

``make pins`` installs the top-level names unpinned in a scratch venv (so pip
resolves the newest set that works together), writes its ``pip freeze`` to
FREEZE, then runs this. SCOPE ``all`` rewrites every unmarked pin and every pin
whose ``python_version`` marker is true for the running Python; ``marked``
rewrites only the marked ones that are true (``make pins PYTHON=python3.10
PINS_SCOPE=marked`` refreshes the Python 3.10 fallback lines).
"""

from __future__ import annotations

import re
import sys

from packaging.markers import Marker

PIN = re.compile(r"([A-Za-z0-9._-]+)==([^;\s]+)(\s*;\s*(.*))?$")


def key(name: str) -> str:
    """PEP 503 normalisation: jupyter_repo2docker == Jupyter-Repo2Docker."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str]) -> int:
    scope, freeze, *files = argv
    frozen = dict(pin.split("==", 1) for pin in open(freeze).read().split() if "==" in pin)
    frozen = {key(name): version for name, version in frozen.items()}
    for path in files:
        out = []
        for line in open(path).read().splitlines():
            m = PIN.match(line)
            if m and (Marker(m[4]).evaluate() if m[4] else scope == "all"):
                line = f"{m[1]}=={frozen[key(m[1])]}{m[3] or ''}"
            out.append(line)
        open(path, "w").write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
