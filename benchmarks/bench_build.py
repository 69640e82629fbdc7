#!/usr/bin/env python3
"""Measure the build: render time, lint time and peak memory (never asserted in tests).

    .venv/bin/python benchmarks/bench_build.py [--repeat N]

Prints one line per phase: best and median wall time over N runs, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from karematch_cfn import lint, tree


def _time(fn, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per phase (default 5)")
    args = p.parse_args()

    best, med = _time(tree.render_all, args.repeat)
    print(f"render   {len(tree.render_all())} templates: best {best:.3f}s  median {med:.3f}s")
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    tree.write(tree.render_all(), scratch)
    best, med = _time(lambda: lint.lint_dir(scratch), max(1, args.repeat // 2))
    print(f"cfn-lint whole tree, one run: best {best:.3f}s  median {med:.3f}s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
