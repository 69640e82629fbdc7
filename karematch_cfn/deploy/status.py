"""``status``: a live environment without deploying.

The root and every nested stack with its status, last update and stack policy; the root's
Outputs, termination protection, the deployed image tag and the service's task counts. The exit
code is the verdict: 0 stable and healthy, 7 missing, 4 failed, 8 busy, 9 stable but the last
deploy rolled back (UPDATE_ROLLBACK_COMPLETE is a stable state, yet the deploy failed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from karematch_cfn import names
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import changeset, protect
from karematch_cfn.deploy.console import Console, table
from karematch_cfn.deploy.deployer import check_stack_environment
from karematch_cfn.deploy.errors import DeployFailed, RolledBack, StackBusy, StackMissing
from karematch_cfn.deploy.live import service as live_service
from karematch_cfn.deploy.options import Target

HEALTHY = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
ROLLED_BACK = frozenset({"UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"})
# Worst first: the verdict is the worst state found in the tree.
FAILED, BUSY, ROLLED, OK = "failed", "busy", "rolled back", "healthy"
SEVERITY = (FAILED, BUSY, ROLLED, OK)


def classify(status: str) -> str:
    if status in HEALTHY:
        return OK
    if status in ROLLED_BACK:
        return ROLLED
    if status.endswith("_IN_PROGRESS"):
        return BUSY
    return FAILED  # ROLLBACK_COMPLETE (a failed first create) and every *_FAILED


@dataclass(frozen=True)
class StackRow:
    label: str
    status: str
    updated: str
    policy: str
    reason: str


def _when(stack: dict[str, Any]) -> str:
    stamp = stack.get("LastUpdatedTime") or stack.get("CreationTime")
    if isinstance(stamp, dt.datetime):
        return stamp.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(stamp or "")


def _policy(aws: awsmod.Aws, stack_id: str, label: str) -> str:
    out = awsmod.call(f"reading the stack policy of {label}", aws.cfn.get_stack_policy, StackName=stack_id)
    return "set" if out.get("StackPolicyBody") else "none"


def stack_rows(
    aws: awsmod.Aws, root: dict[str, Any], tree: protect.LiveStack, stack_name: str
) -> list[StackRow]:
    rows: list[StackRow] = []
    for node in tree.walk():
        label = "/".join(node.path) or stack_name
        stack = root if not node.path else changeset.describe_stack(aws.cfn, node.stack_id)
        if stack is None:
            continue
        rows.append(
            StackRow(
                label,
                stack["StackStatus"],
                _when(stack),
                _policy(aws, node.stack_id, label),
                stack.get("StackStatusReason", ""),
            )
        )
    return rows


def status_command(target: Target, aws: awsmod.Aws, console: Console) -> int:
    stack = changeset.describe_stack(aws.cfn, target.stack_name)
    if stack is None:
        raise StackMissing(
            f"stack {target.stack_name} does not exist in {aws.region}",
            f"deploy it: karematch-cfn deploy --env {target.env}",
        )
    if stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        raise StackMissing(
            f"stack {target.stack_name} is an empty REVIEW_IN_PROGRESS stack (a change set was "
            "created but never executed): nothing is deployed",
            f"deploy it: karematch-cfn deploy --env {target.env} (it creates into that stack)",
        )
    check_stack_environment(stack, target.env, target.stack_name)
    console.say(f"stack {target.stack_name} in {aws.region}")
    busy_root = stack["StackStatus"].endswith("_IN_PROGRESS")
    tree = protect.live_tree(aws.cfn, stack["StackId"])
    rows = stack_rows(aws, stack, tree, target.stack_name)
    console.say(
        *(
            "  " + x
            for x in table(
                [(r.label, r.status, r.updated, r.policy) for r in rows],
                ("Stack", "Status", "Last update", "Stack policy"),
            )
        )
    )
    protection = "on" if stack.get("EnableTerminationProtection") else "off"
    console.say(f"termination protection: {protection}")
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", []) or []}
    if names.IMAGE_TAG in params:
        tag = params[names.IMAGE_TAG]
        console.say(f"image tag: {tag}" if tag else "image tag: none yet (the service runs 0 tasks)")
    service = None if busy_root else live_service(aws, tree, doing="reading the ECS service")
    if service is not None:
        console.say(
            f"service {service.get('serviceName', '')}: desired {service.get('desiredCount', 0)}, "
            f"running {service.get('runningCount', 0)}, pending {service.get('pendingCount', 0)}"
        )
    outputs = stack.get("Outputs") or []
    if outputs:
        console.say("Outputs:")
        console.say(
            *(
                "  " + x
                for x in table(
                    [(o["OutputKey"], o.get("OutputValue", "")) for o in outputs], ("Output", "Value")
                )
            )
        )
    return verdict(target, rows, service, console)


def verdict(target: Target, rows: list[StackRow], service: dict[str, Any] | None, console: Console) -> int:
    """0 when every stack is stable and healthy; otherwise the error of the worst state."""
    worst = min((classify(r.status) for r in rows), key=SEVERITY.index, default=OK)
    culprits = [r for r in rows if classify(r.status) == worst]
    named = ", ".join(f"{r.label} {r.status}" for r in culprits)
    if worst == FAILED:
        reasons = [f"{r.label}: {r.reason}" for r in culprits if r.reason]
        raise DeployFailed(
            f"failed: {named}",
            *reasons[:3],
            *changeset.recovery_hint(target.stack_name, rows[0].status if rows else ""),
        )
    if worst == BUSY:
        raise StackBusy(
            f"busy: {named}",
            "an operation is in progress; follow it with: aws cloudformation describe-stack-events "
            f"--stack-name {target.stack_name}",
        )
    if worst == ROLLED:
        raise RolledBack(
            f"rolled back: {named}: the last deploy failed and the previous version runs",
            f"see why: aws cloudformation describe-stack-events --stack-name {target.stack_name}",
            f"fix the cause and deploy again: karematch-cfn deploy --env {target.env}",
        )
    running, desired = (service or {}).get("runningCount", 0), (service or {}).get("desiredCount", 0)
    if running < desired:  # a note, not a failure: tasks start (or restart) within minutes
        console.say(
            f"stable: every stack is stable; the service runs {running} of {desired} tasks "
            "(starting, or failing to start: see the service's events)"
        )
    else:
        console.say("healthy: every stack is stable")
    return 0
