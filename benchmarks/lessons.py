"""How long each lesson takes to run top to bottom in a fresh kernel (issue 12).

Every lesson must run with "Run All" within its time limit: 15 s per lesson
and 90 s for the whole course (fifteen lessons at about 6 s each; kernel
start-up is about 1.5 s of each).  Measured here, not in a timed unit test:
the machine is shared and noisy, so the figures come with the load average
and the kernel's own CPU seconds (which other programs do not inflate).

Usage: .venv/bin/python benchmarks/lessons.py [--rounds 1]   (make bench runs it)
Prints one table; exits 1 if a lesson or the course is over its limit.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON_LIMIT, COURSE_LIMIT = 15.0, 90.0


def run_lesson(path: pathlib.Path) -> tuple[float, float]:
    """(wall seconds, kernel CPU seconds) of one lesson's Run All in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as where:
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": where}}
        )
        started = time.perf_counter()
        with client.setup_kernel():
            pid = client.km.provisioner.process.pid  # the kernel's own process
            client.execute(cleanup_kc=False)
            cpu = psutil.Process(pid).cpu_times()
            wall = time.perf_counter() - started
    return wall, cpu.user + cpu.system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="best of N runs per lesson")
    args = ap.parse_args()
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    print(f"load average {os.getloadavg()[0]:.1f}; best of {args.rounds} run(s) per lesson")
    print(f"| Lesson | Run All (s) | kernel CPU (s) | limit {LESSON_LIMIT:.0f} s |")
    print("|---|---|---|---|")
    total, over = 0.0, []
    for path in lessons:
        runs = [run_lesson(path) for _ in range(args.rounds)]
        wall, cpu = min(runs)
        total += wall
        ok = wall <= LESSON_LIMIT
        over += [] if ok else [path.name]
        print(f"| {path.stem} | {wall:.1f} | {cpu:.1f} | {'ok' if ok else 'OVER'} |")
    print(
        f"| whole course | {total:.1f} | | limit {COURSE_LIMIT:.0f} s: "
        f"{'ok' if total <= COURSE_LIMIT else 'OVER'} |"
    )
    return 1 if over or total > COURSE_LIMIT else 0


if __name__ == "__main__":
    sys.exit(main())
