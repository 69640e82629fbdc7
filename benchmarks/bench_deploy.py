#!/usr/bin/env python3
"""Measure the deployer on the real template tree against a local moto server (127.0.0.1).

    .venv/bin/python benchmarks/bench_deploy.py [--repeat N]

Each run is `deploy --env dev --dry-run --yes`: inputs and lint, packaging to the artifacts
bucket, the change set with nested change sets, the review table and the guard, then clean-up.
The first run uploads the templates; later runs find them by content hash. Prints best and
median wall time, and the process's peak RSS. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from karematch_cfn import cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"moto_server did not start on {url}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="dry runs to time (default 3)")
    args = p.parse_args()
    proc, url = _start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    runs = []
    try:
        for i in range(args.repeat):
            out, err = io.StringIO(), io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(["deploy", "--env", "dev", "--dry-run", "--poll-interval", "0.2"])
            runs.append(time.perf_counter() - start)
            if code != 0:
                print(err.getvalue()[-2000:], file=sys.stderr)
                raise SystemExit(f"dry run {i + 1} exited {code}")
    finally:
        proc.terminate()
    print(
        f"deploy --dry-run (real tree, moto): first {runs[0]:.2f}s  best {min(runs):.2f}s  "
        f"median {statistics.median(runs):.2f}s over {len(runs)} runs"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
