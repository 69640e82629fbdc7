"""``destroy``: delete an environment's stacks, saying first what goes and what stays.

Order: inputs (a terminal or --yes; prod also --allow-prod) before any AWS call; then the
inventory: every resource of the root and its nested stacks, those a DeletionPolicy keeps
(Retain, RetainExceptOnCreate: after a successful create they stay) or snapshots (Snapshot: the
final database snapshot) listed by physical id; then the typed stack name; in prod, an update
lifting the database's and load balancer's deletion protection (else the delete ends
DELETE_FAILED) and then termination protection; the delete, with events; and last what remains
with the commands that remove it for good. Audit logs get no such command unless
--include-audit-logs: HIPAA keeps them six years.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karematch_cfn import names
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import changeset, events, inputs, protect
from karematch_cfn.deploy.console import Console, table
from karematch_cfn.deploy.errors import BadInput, DeployFailed, Interrupted, StackMissing
from karematch_cfn.deploy.options import Target

NESTED_STACK = "AWS::CloudFormation::Stack"
KEEPING_POLICIES = ("Retain", "RetainExceptOnCreate", "Snapshot")
# Audit stores of an environment (physical-name patterns; the account is any).
AUDIT_NAMES = (names.TRAIL_BUCKET, names.TRAIL_LOG_GROUP, names.FLOW_LOG_GROUP, names.ALB_LOG_BUCKET)
AUDIT_LOGICAL_HINTS = ("Audit", "Trail", "FlowLog", "AccessLog")


@dataclass(frozen=True)
class DestroyOptions:
    target: Target
    yes: bool = False
    allow_prod: bool = False
    include_audit_logs: bool = False
    poll_interval: float = 5.0


@dataclass(frozen=True)
class Kept:
    """A resource the delete leaves behind (or, for Snapshot, leaves a snapshot of)."""

    label: str  # Child/LogicalId
    resource_type: str
    physical_id: str
    policy: str
    audit: bool


def _template(aws: awsmod.Aws, stack_id: str, label: str) -> dict[str, Any]:
    out = awsmod.call(f"reading the template of {label}", aws.cfn.get_template, StackName=stack_id)
    body = out.get("TemplateBody")
    return body if isinstance(body, dict) else inputs.parse_template(body or "{}", f"the template of {label}")


def is_audit(env: str, logical_id: str, physical_id: str) -> bool:
    patterns = [p.replace(names.ENV, env).replace("${AWS::AccountId}", "*") for p in AUDIT_NAMES]
    return any(fnmatch.fnmatchcase(physical_id, p) for p in patterns) or any(
        hint in logical_id for hint in AUDIT_LOGICAL_HINTS
    )


def inventory(aws: awsmod.Aws, tree: protect.LiveStack, env: str) -> tuple[list[Kept], dict[str, int]]:
    """(what stays, how many resources of each type go): each live resource with its
    template's DeletionPolicy.

    A DeletionPolicy given by a condition (Fn::If) counts as kept: the list errs on the side of
    what may remain."""
    kept: list[Kept] = []
    deleted: dict[str, int] = {}
    for node in tree.walk():
        label = "/".join(node.path)
        if not node.resources:  # e.g. an empty REVIEW_IN_PROGRESS stack: no template to read
            continue
        resources = _template(aws, node.stack_id, label or "the root").get("Resources", {})
        for r in node.resources:
            lid, rtype, physical = (
                r["LogicalResourceId"],
                r.get("ResourceType", ""),
                r.get("PhysicalResourceId"),
            )
            if not physical or r.get("ResourceStatus") == "DELETE_COMPLETE":
                continue
            policy = (resources.get(lid) or {}).get("DeletionPolicy", "Delete")
            if isinstance(policy, dict):
                policy = "conditional"
            if policy in KEEPING_POLICIES or policy == "conditional":
                name = f"{label}/{lid}" if label else lid
                kept.append(Kept(name, rtype, physical, policy, is_audit(env, lid, physical)))
            else:
                deleted[rtype] = deleted.get(rtype, 0) + 1
    return kept, deleted


def removal_command(k: Kept, snapshot: str | None = None) -> str:
    """The command that removes ``k`` for good (or says how)."""
    p = k.physical_id
    if k.resource_type == "AWS::RDS::DBInstance":
        if snapshot:
            return f"aws rds delete-db-snapshot --db-snapshot-identifier {snapshot}"
        return f"aws rds describe-db-snapshots --db-instance-identifier {p} (then delete-db-snapshot)"
    commands: dict[str, str] = {
        "AWS::S3::Bucket": f"aws s3 rm s3://{p} --recursive && aws s3api delete-bucket --bucket {p} "
        "(a versioned bucket: delete its object versions first)",
        "AWS::Logs::LogGroup": f"aws logs delete-log-group --log-group-name {p}",
        "AWS::SecretsManager::Secret": f"aws secretsmanager delete-secret --secret-id {p} "
        "--force-delete-without-recovery",
        "AWS::ECR::Repository": f"aws ecr delete-repository --repository-name {p} --force",
        "AWS::KMS::Key": f"aws kms schedule-key-deletion --key-id {p} --pending-window-in-days 30 "
        "(a key can only be scheduled for deletion)",
    }
    return commands.get(k.resource_type, f"delete {k.resource_type} {p} in the console")


def kept_table(kept: list[Kept]) -> list[str]:
    why = {
        "Retain": "DeletionPolicy Retain",
        "RetainExceptOnCreate": "DeletionPolicy RetainExceptOnCreate",
        "Snapshot": "final snapshot",
        "conditional": "conditional DeletionPolicy",
    }
    rows = [
        (k.label, k.resource_type, k.physical_id, why[k.policy] + (", audit" if k.audit else ""))
        for k in kept
    ]
    return ["  " + x for x in table(rows, ("Resource", "Type", "Physical id", "Kept because"))]


def destroy_command(
    opts: DestroyOptions,
    aws_factory: Callable[[], awsmod.Aws],
    console: Console,
    *,
    interactive: Callable[[], bool],
    prompt: Callable[[str], str],
    sleep: Callable[[float], None],
) -> int:
    target = opts.target
    inputs.check_environment(target.env)
    prod = target.env == names.PRODUCTION
    if prod and not opts.allow_prod:
        raise BadInput(
            "destroying prod needs --allow-prod as well; nothing was deleted",
            "it lifts termination protection and the database's and load balancer's deletion "
            "protection, then deletes the environment",
        )
    if not opts.yes and not interactive():
        raise BadInput("no terminal to type the stack name; pass --yes to delete without asking")
    aws = aws_factory()
    stack = changeset.describe_stack(aws.cfn, target.stack_name)
    if stack is None:
        raise StackMissing(f"stack {target.stack_name} does not exist in {aws.region}; nothing to delete")
    from karematch_cfn.deploy.deployer import check_stack_environment

    check_stack_environment(stack, target.env, target.stack_name)
    status = stack["StackStatus"]
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployFailed(
            f"stack {target.stack_name} is busy ({status}); nothing was deleted",
            *changeset.recovery_hint(target.stack_name, status),
        )
    if stack.get("EnableTerminationProtection") and not prod:
        raise BadInput(
            f"stack {target.stack_name} has termination protection; nothing was deleted",
            "lift it on purpose first: aws cloudformation update-termination-protection "
            f"--no-enable-termination-protection --stack-name {target.stack_name}",
        )

    tree = protect.live_tree(aws.cfn, stack["StackId"])
    kept, deleted = inventory(aws, tree, target.env)
    stacks = sum(1 for _ in tree.walk())
    console.say(
        f"will delete {target.stack_name} in {aws.region}: {stacks} stack(s), "
        f"{sum(deleted.values())} resource(s)",
        *(f"  {count} x {rtype}" for rtype, count in sorted(deleted.items())),
    )
    if kept:
        console.say(f"will keep {len(kept)} resource(s) (or their final snapshot):", *kept_table(kept))
    else:
        console.say("will keep nothing")
    if not opts.yes:
        typed = prompt(f"Type the stack name ({target.stack_name}) to delete it: ").strip()
        if typed != target.stack_name:
            console.say("not deleted (the name typed does not match)")
            return 0

    try:
        _delete(aws, console, stack, opts, prod=prod, sleep=sleep)
    except KeyboardInterrupt:
        state = changeset.describe_stack(aws.cfn, stack["StackId"])
        status = state["StackStatus"] if state else "gone"
        raise Interrupted(
            f"interrupted; stack {target.stack_name} is {status}",
            "CloudFormation carries on without this tool; follow it: aws cloudformation "
            f"describe-stack-events --stack-name {stack['StackId']}",
            "a delete in progress ends DELETE_COMPLETE by itself (what stays was listed above); "
            "otherwise run destroy again once the stack is in a *_COMPLETE state",
        ) from None
    console.say(f"{target.stack_name}: DELETE_COMPLETE ({int(console.elapsed())}s)")
    remains(aws, console, kept, stack, include_audit=opts.include_audit_logs)
    return 0


def _delete(
    aws: awsmod.Aws,
    console: Console,
    stack: dict[str, Any],
    opts: DestroyOptions,
    *,
    prod: bool,
    sleep: Callable[[float], None],
) -> None:
    """Prod's protections lifted (only with --allow-prod, checked before), then the delete,
    watched to DELETE_COMPLETE (anything else raises)."""
    if prod:
        lift_deletion_protection(aws, console, stack, opts.poll_interval, sleep)
        if stack.get("EnableTerminationProtection"):
            awsmod.call(
                "lifting termination protection",
                aws.cfn.update_termination_protection,
                StackName=stack["StackId"],
                EnableTerminationProtection=False,
            )
            console.say("termination protection lifted (--allow-prod)")
    name = stack["StackName"]
    watcher = events.Watcher(
        aws.cfn, console, stack["StackId"], name, interval=opts.poll_interval, sleep=sleep
    )
    watcher.prime()
    console.say(f"deleting {name}")
    awsmod.call(f"deleting {name}", aws.cfn.delete_stack, StackName=stack["StackId"])
    final = watcher.run()
    if final != "DELETE_COMPLETE":
        lines = watcher.failure_lines()
        raise DeployFailed(
            f"delete of {name} ended {final}",
            *(["first failures:"] + [f"  {x}" for x in lines] if lines else []),
            f"fix the cause and run destroy again, or keep what cannot be deleted: aws cloudformation "
            f"delete-stack --stack-name {stack['StackId']} --retain-resources LOGICAL_ID ...",
        )


def lift_deletion_protection(
    aws: awsmod.Aws, console: Console, stack: dict[str, Any], interval: float, sleep: Callable[[float], None]
) -> None:
    """An update with the previous template and EnableDeletionProtection=false: a protected
    database or load balancer would otherwise end the delete in DELETE_FAILED."""
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", []) or []}
    key = names.ENABLE_DELETION_PROTECTION
    if params.get(key) != "true":
        return
    entries = [
        {"ParameterKey": k, "ParameterValue": "false"}
        if k == key
        else {"ParameterKey": k, "UsePreviousValue": True}
        for k in sorted(params)
    ]
    console.say(f"lifting deletion protection: an update with {key}=false and the previous template")
    cs_id, _ = changeset.create(
        aws.cfn,
        stack_name=stack["StackId"],
        change_set_type=changeset.UPDATE,
        template={"UsePreviousTemplate": True},
        parameters=entries,
        capabilities=list(stack.get("Capabilities") or []),
        name=changeset.change_set_name(),
        description="karematch-cfn destroy: lift deletion protection",
        # An update naming no rollback configuration keeps the last deploy's triggers and would
        # wait out their monitoring period: none here.
        rollback={"RollbackTriggers": [], "MonitoringTimeInMinutes": 0},
    )
    failed_hint = (
        "nothing was deleted; lift it with a deploy instead: karematch-cfn deploy --env prod "
        f"--parameter {key}=false ..., then run destroy again"
    )
    if cs_id != changeset.NO_CHANGES:
        desc = changeset.wait(aws.cfn, console, cs_id, min(interval, changeset.MAX_POLL), sleep)
        if desc["Status"] == "FAILED" and not changeset.is_no_change_reason(desc.get("StatusReason")):
            raise DeployFailed(f"lifting deletion protection: {desc.get('StatusReason')}", failed_hint)
        if desc["Status"] != "FAILED":
            watcher = events.Watcher(
                aws.cfn, console, stack["StackId"], stack["StackName"], interval=interval, sleep=sleep
            )
            watcher.prime()
            awsmod.call("lifting deletion protection", aws.cfn.execute_change_set, ChangeSetName=cs_id)
            final = watcher.run()
            if final not in events.SUCCESS:
                raise DeployFailed(f"lifting deletion protection ended {final}", failed_hint)
    console.say("deletion protection lifted")


def final_snapshot(aws: awsmod.Aws, instance_id: str) -> str | None:
    """The newest manual snapshot of ``instance_id``: CloudFormation's final one, which exists
    only after the delete."""
    out = awsmod.call(
        f"finding the final snapshot of {instance_id}",
        aws.client("rds").describe_db_snapshots,
        DBInstanceIdentifier=instance_id,
        SnapshotType="manual",
    )
    snaps = sorted(
        out.get("DBSnapshots", []),
        key=lambda s: s.get("SnapshotCreateTime") or dt.datetime.min.replace(tzinfo=dt.UTC),
    )
    return snaps[-1]["DBSnapshotIdentifier"] if snaps else None


def remains(
    aws: awsmod.Aws, console: Console, kept: list[Kept], stack: dict[str, Any], *, include_audit: bool
) -> None:
    """What is left, with the commands that remove it for good (audit logs only on request)."""
    if not kept:
        console.say("nothing remains")
        return
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", []) or []}
    days = params.get(names.LOG_RETENTION_DAYS) or ""
    until = (
        f", until {(dt.datetime.now(dt.UTC) + dt.timedelta(days=int(days))).date()} for what was written today"
        if days.isdigit()
        else ""
    )
    console.say("what remains (each blocks re-creating the environment under the same name until removed):")
    for k in kept:
        snapshot = None
        if k.resource_type == "AWS::RDS::DBInstance":
            try:
                snapshot = final_snapshot(aws, k.physical_id)
            except Exception as exc:  # the list still helps without it
                console.warn(f"could not look up the final snapshot of {k.physical_id}: {exc}")
        what = f"final snapshot {snapshot} of {k.physical_id}" if snapshot else k.physical_id
        console.say(f"  {k.label} ({k.resource_type}): {what}")
        if k.audit and not include_audit:
            console.say(
                f"    audit log: kept for its retention ({names.LOG_RETENTION_DAYS} {days or '?'} days{until}; "
                "HIPAA: six years); destroy prints its removal command only with --include-audit-logs"
            )
        else:
            if k.audit:
                console.warn(f"{k.physical_id} holds audit logs: removing them ends their retention")
            console.say(f"    remove: {removal_command(k, snapshot)}")
