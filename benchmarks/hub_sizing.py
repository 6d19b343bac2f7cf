"""Size a workshop on JupyterHub from measurement: memory per learner, CPU per lesson, time under load.

    sudo .venv/bin/python benchmarks/hub_sizing.py                 # 10 learners (root)
    sudo .venv/bin/python benchmarks/hub_sizing.py --learners 20
    .venv/bin/python benchmarks/hub_sizing.py --artifact test-artifacts/hub-sizing.json

The same room as tests/test_multiuser.py (tests/hub_process.py: JupyterHub from
PyPI, configurable-http-proxy from npm, one system user per learner, the
course handed out by nbgitpuller, every lesson driven through the hub's proxy
and the learner's own kernel). Phases:

1. alone: one learner runs lessons 0, 1 and the fault lab one after another,
   nothing else running (the baseline);
2. together: every learner runs the three lessons at the same time, each in a
   kernel of its own, while every learner's processes are sampled from /proc
   each second (PSS: shared library pages split between the processes that
   share them, so the sum over learners is what the machine holds; RSS too).

``--artifact`` tabulates the figures `make test` wrote instead (phase 2 only).
Prints the measured figures, then the sizing table for the README and
docs/instructors.md, and writes test-artifacts/hub-sizing-bench.json.
The machine's load average during the run is printed with the figures: on a
shared machine, wall times are only comparable within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import hub_process  # noqa: E402

OUT = os.path.join(ROOT, "test-artifacts", "hub-sizing-bench.json")
HEADROOM = 1.4  # TLJH's rule of thumb: the measured peak plus 20-40% for learners to play
BURST_S = 120  # "everyone presses Run All on the fault lab within two minutes"
LOGIN_S = 300  # "everyone logs in within five minutes"
VM_GB = (4, 8, 16, 32, 64, 128, 256, 512)
VM_CORES = (4, 8, 16, 32, 64)  # a hub VM smaller than 4 vCPU leaves nothing for the system
SYSTEM_GB = 0.5  # the operating system and TLJH's own services beside the hub


def measure(learners: int) -> dict:
    if os.geteuid() != 0:
        sys.exit("hub_sizing.py needs root: it creates system users (sudo .venv/bin/python ...)")
    lessons = hub_process.find_lessons()
    with hub_process.Classroom(learners) as room:
        pulls = asyncio.run(_gather(learner.pull_course(room.repo) for learner in room.learners))
        assert all(events[-1] == {"phase": "finished"} for events in pulls), pulls
        servers = {lr.name: hub_process.server_pid(lr) for lr in room.learners}
        startup_cpu = {n: hub_process.cpu_seconds(p) for n, p in servers.items()}

        first = room.learners[0]
        alone = []
        for label, notebook in lessons.items():
            run = asyncio.run(first.run_lesson(label, notebook, cell_timeout=300))
            assert not run.problems, run.problems
            alone.append(run)

        users = {lr.name: lr.uid for lr in room.learners}
        extra = {"hub": room.hub.proc.pid, "proxy": room.hub.proxy_pid()}
        before = {n: hub_process.cpu_seconds(p) for n, p in servers.items()}
        t = time.monotonic()
        with hub_process.Sampler(users, extra={k: v for k, v in extra.items() if v}) as sampler:
            runs = asyncio.run(hub_process.run_lessons(room.learners, lessons))
        together_s = time.monotonic() - t
        after = {n: hub_process.cpu_seconds(p) for n, p in servers.items()}
        problems = [f"{r.learner} {r.lesson}: {p}" for r in runs for p in r.problems]
        assert not problems, problems

        kinds: dict[str, list[int]] = {}
        for p in sampler.processes.values():
            kinds.setdefault(p.kind, []).append(p.pss_kb)
        return {
            "learners": learners,
            "lessons": lessons,
            "cores": os.cpu_count(),
            "when": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_during": [min(sampler.load), max(sampler.load)],
            "timings_s": {**room.timings, "lessons, all at once": together_s},
            "alone": [_run(r) for r in alone],
            "runs": [_run(r) for r in runs],
            "learner_peak_pss_kb": sampler.learner_peak_pss,
            "learner_peak_rss_kb": sampler.learner_peak_rss,
            "process_peak_pss_kb": kinds,
            "shared_peak_pss_kb": sampler.extra_peak_pss,
            "server_startup_cpu_s": startup_cpu,
            "server_cpu_during_lessons_s": {n: after[n] - before[n] for n in servers},
        }


async def _gather(coros):
    return await asyncio.gather(*coros)


def _run(r) -> dict:
    return {
        "learner": r.learner,
        "lesson": r.lesson,
        "cells": r.cells,
        "wall_s": round(r.wall_s, 2),
        "kernel_cpu_s": r.kernel_cpu_s,
    }


def _mb(kb: float) -> float:
    return kb / 1024


def _round_up(mb: float, step: int) -> int:
    return int(math.ceil(mb / step) * step)


def report(f: dict) -> str:
    lessons = sorted(f["lessons"], key=lambda label: (label == "fault lab", label))
    med = statistics.median
    out = []
    load = f.get("load_average_during")
    out.append(
        f"Measured {f['when']}: {f['learners']} learners on {f['cores']} cores"
        + (f", load average {load[0]:.1f} to {load[1]:.1f} during the run" if load else "")
        + f"; servers started in {f['timings_s'].get('servers start', 0):.0f} s, "
        f"all lessons at once took {f['timings_s'].get('lessons, all at once', 0):.0f} s."
    )
    out.append("")
    out.append(
        "| Lesson | kernel CPU s (median) | wall s alone | wall s, all at once (median / max) |"
    )
    out.append("|---|---|---|---|")
    alone = {r["lesson"]: r for r in f.get("alone", [])}
    cpu_by_lesson = {}
    for label in lessons:
        rs = [r for r in f["runs"] if r["lesson"] == label]
        cpu_by_lesson[label] = med(r["kernel_cpu_s"] for r in rs)
        walls = [r["wall_s"] for r in rs]
        a = alone.get(label)
        out.append(
            f"| {label} ({f['lessons'][label].split('/')[-1]}) | {cpu_by_lesson[label]:.1f} | "
            f"{a['wall_s']:.1f} | {med(walls):.1f} / {max(walls):.1f} |"
            if a
            else f"| {label} | {cpu_by_lesson[label]:.1f} | - | {med(walls):.1f} / {max(walls):.1f} |"
        )
    kinds = f["process_peak_pss_kb"]
    server_mb = _mb(max(kinds.get("server", [0])))
    kernel_mb = _mb(max(kinds.get("kernel", [0])))
    learner_mb = _mb(max(f["learner_peak_pss_kb"].values()))
    learner_rss = _mb(max(f["learner_peak_rss_kb"].values()))
    shared_mb = _mb(sum(f["shared_peak_pss_kb"].values()))
    server_cpu = f.get("server_cpu_during_lessons_s") or {}
    startup = f.get("server_startup_cpu_s") or {}
    out.append("")
    out.append(
        f"Memory (peak PSS): single-user server {server_mb:.0f} MB; a lesson's kernel with its "
        f"lab server up to {kernel_mb:.0f} MB; a learner with three lessons open "
        f"{learner_mb:.0f} MB ({learner_rss:.0f} MB RSS); hub + proxy {shared_mb:.0f} MB."
    )
    if server_cpu:
        out.append(
            f"CPU: a single-user server used {med(server_cpu.values()):.1f} s relaying the three "
            f"lessons; starting one (to ready, plus the course pull) took "
            f"{med(startup.values()):.1f} s."
        )
    # Sizing, from the figures above.
    guarantee = _round_up(server_mb + kernel_mb, 64)
    limit = _round_up(learner_mb * HEADROOM, 128)
    heaviest = max(cpu_by_lesson.values())
    relay = med(server_cpu.values()) / len(lessons) if server_cpu else 0.0
    start_cpu = med(startup.values()) if startup else 0.0
    out.append("")
    out.append(
        f"Per learner: memory guarantee {guarantee} MB (server + one lesson), limit {limit} MB "
        f"(three lessons open, +{HEADROOM - 1:.0%}); CPU guarantee 0.05, limit 1."
    )
    out.append("")
    out.append(
        "| Learners | RAM, measured peak (all with three lessons open) | RAM to provision "
        f"(at the {limit} MB limit, + hub and system) | CPU cores: all run the "
        f"fault lab within {BURST_S // 60} min / all log in within {LOGIN_S // 60} min | Where |"
    )
    out.append("|---|---|---|---|---|")
    for n in (30, 100, 300):
        peak_gb = (n * learner_mb + shared_mb) / 1024
        plan_gb = (n * limit + shared_mb) / 1024 + SYSTEM_GB
        vm = next((g for g in VM_GB if g >= plan_gb), None)
        burst = n * (heaviest + relay) / BURST_S * 1.2  # +20%: TLJH's overhead figure
        login = n * start_cpu / LOGIN_S * 1.2
        cores = next((c for c in VM_CORES if c >= max(burst, login)), None)
        where = (
            f"TLJH: one VM, {cores} vCPU / {vm} GB"
            if n <= 100 and vm and vm <= 64 and cores
            else f"Zero to JupyterHub: {math.ceil(plan_gb / 28)} nodes of 8 vCPU / 32 GB"
        )
        out.append(
            f"| {n} | {peak_gb:.1f} GB | {plan_gb:.0f} GB | {burst:.1f} / {login:.1f} | {where} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--learners", type=int, default=10)
    ap.add_argument(
        "--artifact", help="tabulate this JSON (written by make test) instead of measuring"
    )
    args = ap.parse_args()
    if args.artifact:
        with open(args.artifact) as fh:
            figures = json.load(fh)
    else:
        figures = measure(args.learners)
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        with open(OUT, "w") as fh:
            json.dump(figures, fh, indent=1)
    print(report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
