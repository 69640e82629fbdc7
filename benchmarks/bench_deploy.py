#!/usr/bin/env python3
"""Our deploy next to AWS CLI ``package`` + ``deploy`` on a two-template tree, on a fresh local
moto server (127.0.0.1). Never asserted in tests.

    .venv/bin/python benchmarks/bench_deploy.py [--repeat N]

A root (one parameter, one nested stack) and its child (an SNS topic) are written to a scratch
directory; each tool creates its own stack from it once, then, alternating which tool goes
first, each runs N no-op deploys (nothing changed) and N update deploys (the child's topic
display name changes). Ours runs with its defaults (rollback triggers on: it reads the alarms
only when the image changes or the change set touches the service, which neither run does).
Every run is a fresh process, as a user would start it. Prints the median
wall time, the API calls counted from moto's request recorder, ratios, and each command's peak
RSS. The AWS CLI (v1, from PyPI) is installed into its own virtual environment
(``.bench-awscli/``, created on first use), so the project's pins stay the project's.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
AWSCLI_VENV = REPO / ".bench-awscli"
BUCKET = "karematch-cfn-artifacts-123456789012-us-east-1"  # our default name in moto's account
ROOT = """\
AWSTemplateFormatVersion: '2010-09-09'
Description: Benchmark root with one nested child
Parameters:
  EnvironmentName:
    Type: String
    AllowedValues: [dev, staging, prod]
    Description: Environment name
Resources:
  NotifyStack:
    Type: AWS::CloudFormation::Stack
    DeletionPolicy: Delete
    UpdateReplacePolicy: Delete
    Properties:
      TemplateURL: ./notify.yaml
      Parameters:
        EnvironmentName: !Ref EnvironmentName
"""
CHILD = """\
AWSTemplateFormatVersion: '2010-09-09'
Description: Benchmark child with an SNS topic
Parameters:
  EnvironmentName:
    Type: String
    AllowedValues: [dev, staging, prod]
    Description: Environment name
Resources:
  AlarmTopic:
    Type: AWS::SNS::Topic
    Properties:
      DisplayName: !Sub karematch ${{EnvironmentName}} alarms {version}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _awscli() -> Path:
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        print(f"installing the AWS CLI v1 into {AWSCLI_VENV} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "--quiet", "awscli"], check=True)
    return aws


class Moto:
    """A fresh moto server recording every request it answers."""

    def __init__(self, scratch: Path) -> None:
        self.recording = scratch / "moto-recording.jsonl"
        port = _free_port()
        env = {**os.environ, "MOTO_ENABLE_RECORDING": "1", "MOTO_RECORDER_FILEPATH": str(self.recording)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise SystemExit(f"moto_server did not start on {self.url}")

    def reset(self) -> None:
        self.recording.write_text("")

    def calls(self) -> list[str]:
        """What each recorded request asked for: the query/JSON action, or S3's method and
        sub-resource."""
        out = []
        for line in self.recording.read_text().splitlines():
            entry = json.loads(line)
            headers = {k.lower(): v for k, v in entry["headers"].items()}
            url = urllib.parse.urlsplit(entry["url"])
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            if "x-amz-target" in headers:
                out.append(headers["x-amz-target"].split(".")[-1])
            elif body.startswith("Action=") or "&Action=" in body:
                out.append(urllib.parse.parse_qs(body)["Action"][0])
            else:
                query = url.query.split("=")[0] or ("object" if url.path.count("/") > 1 else "bucket")
                out.append(f"S3 {entry['method']} {query}")
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# moto refuses a change set without changes at CreateChangeSet ("No updates are to be
# performed"), where AWS creates it and marks it FAILED; the AWS CLI's --no-fail-on-empty-changeset
# only knows the latter, so on moto its no-op exits 255 with this message: counted as a no-op.
MOTO_NO_UPDATES = "No updates are to be performed"
# What each call of ours that the AWS CLI does not make checks (printed under the figures).
WHY = {
    "GetCallerIdentity": "the account: the default bucket's name and the expected owner of every S3 call",
    "S3 HEAD bucket": "the default bucket exists (else it is created), before the first upload only",
    "S3 GET encryption": "the bucket's hardening read back before an upload (repaired if missing)",
    "S3 GET publicAccessBlock": "the bucket's hardening read back before an upload",
    "S3 GET versioning": "the bucket's hardening read back before an upload",
    "S3 GET lifecycle": "the bucket's hardening read back before an upload",
    "DescribeStackEvents": "the progress shown while CloudFormation works, and the first failures",
    "DescribeStacks": "the stack's state before the change set, and while it is executed",
    "ListStackResources": "the live tree: the task count, the quota preflight, the rollback-trigger alarms",
}


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int]:
    """Wall time and the command's peak RSS in KB (its largest process, as wait4 reports it)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0 and MOTO_NO_UPDATES not in stderr:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{stdout[-1500:]}\n{stderr[-1500:]}")
    return took, usage.ru_maxrss


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="runs per tool and kind (default 5)")
    args = p.parse_args()
    aws = _awscli()
    scratch = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    tree = scratch / "tree"
    tree.mkdir()
    (tree / "karematch.yaml").write_text(ROOT)
    params = scratch / "dev.json"
    params.write_text(json.dumps([{"ParameterKey": "EnvironmentName", "ParameterValue": "dev"}]))
    moto = Moto(scratch)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "KAREMATCH_CFN_CACHE_DIR": str(scratch / "cache"),
    }
    ours = [
        sys.executable,
        "-m",
        "karematch_cfn",
        "deploy",
        "--env",
        "dev",
        "--template-dir",
        str(tree),
        "--parameters",
        str(params),
        "--yes",
        "--poll-interval",
        "0.2",
    ]
    packaged = scratch / "packaged.yaml"
    cli = [
        # package + deploy, as `aws cloudformation` users run them; one shell, two processes
        "sh",
        "-ec",
        f"{aws} cloudformation package --template-file {tree / 'karematch.yaml'} --s3-bucket {BUCKET} "
        f"--output-template-file {packaged} >/dev/null && "
        # moto reads a TemplateURL on its own endpoint as bucket "127": the S3 URL AWS would give
        f"sed -i 's#{moto.url}/{BUCKET}/#https://{BUCKET}.s3.amazonaws.com/#' {packaged} && "
        f"{aws} cloudformation deploy "
        f"--template-file {packaged} --stack-name awscli-dev --parameter-overrides EnvironmentName=dev "
        "--no-fail-on-empty-changeset >/dev/null",
    ]
    tools = {"ours": ours, "aws cli": cli}
    results: dict[tuple[str, str], list[float]] = {}
    calls: dict[tuple[str, str], Counter] = {}
    rss: dict[tuple[str, str], int] = {}
    try:
        (tree / "notify.yaml").write_text(CHILD.format(version="v0"))
        for name in ("ours", "aws cli"):  # the first deploy creates each tool's stack
            _run(tools[name], env, REPO)
        for i in range(args.repeat):
            order = ["ours", "aws cli"] if i % 2 == 0 else ["aws cli", "ours"]
            for kind in ("no-op", "update"):
                if kind == "update":
                    (tree / "notify.yaml").write_text(CHILD.format(version=f"v{i + 1}"))
                for name in order:
                    moto.reset()
                    took, peak = _run(tools[name], env, REPO)
                    results.setdefault((name, kind), []).append(took)
                    calls[(name, kind)] = Counter(moto.calls())
                    rss[(name, kind)] = max(rss.get((name, kind), 0), peak)
    finally:
        moto.stop()
    print(f"two-template tree on moto, medians of {args.repeat} alternating runs (fresh process each):")
    for kind in ("no-op", "update"):
        mine, theirs = (statistics.median(results[(n, kind)]) for n in ("ours", "aws cli"))
        n_mine, n_theirs = (sum(calls[(n, kind)].values()) for n in ("ours", "aws cli"))
        print(
            f"  {kind:6}  ours {mine:.2f}s {n_mine} calls {rss[('ours', kind)] / 1024:.0f} MB | "
            f"aws cli package+deploy {theirs:.2f}s {n_theirs} calls "
            f"{rss[('aws cli', kind)] / 1024:.0f} MB | time ratio {mine / theirs:.2f}"
        )
        for n in ("ours", "aws cli"):
            listed = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(calls[(n, kind)].items()))
            print(f"          {n}: {listed}")
    print("  (MB: peak RSS of the largest process of the command)")
    extra = sorted(
        {c for kind in ("no-op", "update") for c in calls[("ours", kind)]}
        - {c for kind in ("no-op", "update") for c in calls[("aws cli", kind)]}
        | {
            c
            for kind in ("no-op", "update")
            for c, n in calls[("ours", kind)].items()
            if n > calls[("aws cli", kind)].get(c, 0)
        }
    )
    if extra:
        print("  calls ours makes (or makes more often) that the AWS CLI does not, and what they check:")
        for c in extra:
            print(f"    {c}: {WHY.get(c, 'see docs/deploying.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
