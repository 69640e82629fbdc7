"""``drift``: has anyone changed the environment by hand?

DetectStackDrift does not descend into nested stacks, so detection is started on the root and
on every nested stack at once, and each is polled to its end. Each drifted resource is printed
with the properties that differ, leaving out expected drift (autoscaling moves the ECS
service's DesiredCount). ``deploy`` runs it before a prod deploy and refuses a drifted stack
unless --allow-drift: an update would silently overwrite the hand fixes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import protect
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import DeployFailed

# Drift that is not a hand change: (resource type, property path) -> why.
EXPECTED_DRIFT = {("AWS::ECS::Service", "/DesiredCount"): "autoscaling sets the task count"}
SENSITIVE = ("password", "secret", "token", "credential")  # values of such properties are masked
SHOWN = 80  # characters of an expected or actual value shown
TIMEOUT_SECONDS = 15 * 60
DRIFTED_STATUSES = ["MODIFIED", "DELETED"]


@dataclass(frozen=True)
class Difference:
    path: str
    expected: str
    actual: str
    kind: str  # ADD, REMOVE, NOT_EQUAL


@dataclass(frozen=True)
class Drifted:
    name: str  # LogicalId at the root, Child/LogicalId below
    resource_type: str
    status: str  # MODIFIED or DELETED
    differences: tuple[Difference, ...]


@dataclass(frozen=True)
class Report:
    drifted: list[Drifted]
    checked: int  # stacks
    problems: list[str]  # detections that failed, with their reasons
    expected: int  # differences left out as expected


def _value(path: str, value: Any) -> str:
    if any(word in path.lower() for word in SENSITIVE):
        return "****"
    text = str(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


def resource_drifts(aws: awsmod.Aws, stack_id: str, label: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"StackName": stack_id, "StackResourceDriftStatusFilters": DRIFTED_STATUSES}
        if token:
            kwargs["NextToken"] = token
        page = awsmod.call(
            f"reading the drifted resources of {label}", aws.cfn.describe_stack_resource_drifts, **kwargs
        )
        found += page.get("StackResourceDrifts", [])
        token = page.get("NextToken")
        if not token:
            return found


def unexpected(drift: dict[str, Any]) -> tuple[list[Difference], int]:
    """The differences of one resource that are not expected drift, and how many were."""
    rtype = drift.get("ResourceType", "")
    kept: list[Difference] = []
    expected = 0
    for d in drift.get("PropertyDifferences", []) or []:
        path = d.get("PropertyPath", "")
        if (rtype, path) in EXPECTED_DRIFT:
            expected += 1
            continue
        kept.append(
            Difference(
                path,
                _value(path, d.get("ExpectedValue", "")),
                _value(path, d.get("ActualValue", "")),
                d.get("DifferenceType", ""),
            )
        )
    return kept, expected


def detect(
    aws: awsmod.Aws,
    console: Console,
    stack_id: str,
    *,
    interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Detect drift on the root and every nested stack (started together), then read the results."""
    tree = protect.live_tree(aws.cfn, stack_id)
    started: dict[str, tuple[tuple[str, ...], str, str]] = {}
    for node in tree.walk():
        label = "/".join(node.path) or "root"
        out = awsmod.call(
            f"starting drift detection on {label}", aws.cfn.detect_stack_drift, StackName=node.stack_id
        )
        started[label] = (node.path, node.stack_id, out["StackDriftDetectionId"])
    console.say(f"drift: detecting on {len(started)} stack(s) (nested stacks each on their own)...")
    pending = dict(started)
    results: dict[str, dict[str, Any]] = {}
    end = clock() + TIMEOUT_SECONDS
    while True:
        for label, (_path, _sid, detection) in list(pending.items()):
            status = awsmod.call(
                f"reading drift detection on {label}",
                aws.cfn.describe_stack_drift_detection_status,
                StackDriftDetectionId=detection,
            )
            if status.get("DetectionStatus") != "DETECTION_IN_PROGRESS":
                results[label] = status
                del pending[label]
        if not pending:
            break
        if clock() > end:
            raise DeployFailed(
                f"drift detection still running after {TIMEOUT_SECONDS // 60} minutes on: {', '.join(pending)}"
            )
        sleep(interval)

    drifted: list[Drifted] = []
    problems: list[str] = []
    expected = 0
    for label, status in results.items():
        path, sid, _ = started[label]
        if status.get("DetectionStatus") == "DETECTION_FAILED":
            problems.append(f"{label}: {status.get('DetectionStatusReason') or 'detection failed'}")
        if (
            status.get("StackDriftStatus") not in ("DRIFTED",)
            and status.get("DetectionStatus") != "DETECTION_FAILED"
        ):
            continue
        for d in resource_drifts(aws, sid, label):
            diffs, known = unexpected(d)
            expected += known
            if diffs or d.get("StackResourceDriftStatus") == "DELETED":
                name = "/".join((*path, d["LogicalResourceId"]))
                drifted.append(
                    Drifted(name, d.get("ResourceType", ""), d["StackResourceDriftStatus"], tuple(diffs))
                )
    return Report(sorted(drifted, key=lambda x: x.name), len(started), problems, expected)


def show(report: Report, console: Console) -> None:
    for problem in report.problems:
        console.warn(f"drift detection incomplete: {problem}")
    for d in report.drifted:
        console.say(f"drifted: {d.name} ({d.resource_type}) {d.status}")
        for diff in d.differences:
            console.say(f"    {diff.path}: expected {diff.expected!r}, actual {diff.actual!r} ({diff.kind})")
    if report.expected:
        reasons = "; ".join(sorted({f"{t} {p}: {why}" for (t, p), why in EXPECTED_DRIFT.items()}))
        console.say(f"drift: {report.expected} expected difference(s) left out ({reasons})")
    if not report.drifted:
        console.say(f"drift: none found on {report.checked} stack(s)")
