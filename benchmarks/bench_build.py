#!/usr/bin/env python3
"""Measure build.py: cold, warm (nothing changed) and no-op ``--check`` (never asserted in tests).

    .venv/bin/python benchmarks/bench_build.py [--repeat N] [--baseline REF]

Each run is a fresh ``build.py`` process writing to a scratch directory with its own cache
(``KAREMATCH_CFN_CACHE_DIR``): cold is ``--no-cache`` (render, validate, lint everything), warm is
a rebuild with nothing changed, no-op check is ``--check`` with nothing changed. The kinds
alternate within each round (the machine's load drifts); prints medians, ratios to the cold
build, each kind's CPU time (all its processes) and peak RSS. ``--baseline REF`` also times that commit's ``build.py`` (taken
with ``git archive``, run with this virtual environment) cold, in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, float]:
    """Wall time, peak RSS in KB of the largest process and CPU seconds of all of them (as wait4
    reports them: the process and every child it waited for)."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err.read()[-2000:]}")
    return took, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def _checkout(ref: str, into: Path) -> Path:
    archive = into / "baseline.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "archive", ref], cwd=REPO, stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "baseline", filter="data")
    return into / "baseline"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="rounds (default 5; at least 3)")
    p.add_argument("--baseline", metavar="REF", help="also time this commit's build.py, cold")
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-build-"))
    out = scratch / "templates"
    env = {**os.environ, "KAREMATCH_CFN_CACHE_DIR": str(scratch / "cache")}
    build = [sys.executable, str(REPO / "build.py"), "-q", "--out", str(out)]
    kinds = {
        "cold": [*build, "--no-cache"],
        "warm (nothing changed)": build,
        "--check (nothing changed)": [*build, "--check"],
    }
    cwd = dict.fromkeys(kinds, REPO)
    if args.baseline:
        base = _checkout(args.baseline, scratch)
        kinds[f"baseline {args.baseline} cold"] = [
            sys.executable,
            str(base / "build.py"),
            "-q",
            "--out",
            str(scratch / "baseline-out"),
        ]
        cwd[f"baseline {args.baseline} cold"] = base
    _run(build, env, REPO)  # fills the cache the warm kinds use
    times: dict[str, list[float]] = {k: [] for k in kinds}
    rss: dict[str, int] = dict.fromkeys(kinds, 0)
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    names = list(kinds)
    for i in range(max(3, args.repeat)):
        order = names[i % len(names) :] + names[: i % len(names)]  # rotate who goes first
        for name in order:
            took, peak, used = _run(kinds[name], env, cwd[name])
            times[name].append(took)
            cpu[name].append(used)
            rss[name] = max(rss[name], peak)
    cold = statistics.median(times["cold"])
    print(f"build.py, medians of {len(times['cold'])} rotating rounds ({os.cpu_count()} CPUs):")
    for name in names:
        med = statistics.median(times[name])
        print(
            f"  {name:28} {med:6.2f}s  ({med / cold:5.0%} of cold)  CPU {statistics.median(cpu[name]):5.2f}s  "
            f"peak RSS {rss[name] / 1024:4.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
