"""The two commands: ``deploy`` (package, review, guard, execute, watch, protect) and ``package``.

Order matters and is the point: everything that can be checked without AWS is checked first
(parameter file, lint, freshness, limits), then who we are, then the stack's state, and only
then is anything uploaded or created. A change set is executed only after the guard and a
confirmation; whatever the deploy left behind (a change set, an empty REVIEW_IN_PROGRESS stack,
a relaxed stack policy) is cleaned up or reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from karematch_cfn import names, tree
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import changeset, events, guard, inputs, package, protect
from karematch_cfn.deploy.console import Console, table
from karematch_cfn.deploy.errors import (
    BadInput,
    DeployFailed,
    GuardRefused,
    Interrupted,
    LintError,
)

ECS_SERVICE = "AWS::ECS::Service"
ECS_CLUSTER = "AWS::ECS::Cluster"
NESTED_STACK = "AWS::CloudFormation::Stack"
# Service-linked roles a brand-new account may lack (pitfalls.md: "Unable to assume the service
# linked role"); created best-effort before a first create that needs them.
SERVICE_LINKED_ROLES = {
    ECS_SERVICE: "ecs.amazonaws.com",
    "AWS::ApplicationAutoScaling::ScalableTarget": "ecs.application-autoscaling.amazonaws.com",
}
MASK = "****"


def is_interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def ask(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


@dataclass
class Hooks:
    """What tests replace: the clients, the clock's sleep, the terminal."""

    aws: awsmod.Aws | None = None
    sleep: Callable[[float], None] = field(default=lambda seconds: time.sleep(seconds))
    interactive: Callable[[], bool] = field(default=lambda: is_interactive())
    confirm: Callable[[str], bool] = field(default=lambda prompt: ask(prompt))
    console: Console = field(default_factory=Console)


# ------------------------------------------------------------------------------------------
# Inputs (no AWS)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    tree: inputs.Tree
    params: inputs.Parameters
    capabilities: list[str]
    stack_name: str


def prepare(args: argparse.Namespace, console: Console) -> Prepared:
    """Parameter file, lint, freshness, limits: everything checked before touching AWS."""
    inputs.check_environment(args.env)
    project = args.template_dir is None
    directory = tree.TEMPLATES_DIR if project else args.template_dir
    t = inputs.load_tree(directory)
    params = inputs.load_parameters(
        t, args.env, args.parameters, inputs.parse_assignments(args.parameter),
        image_tag=getattr(args, "image_tag", None), desired_count=getattr(args, "desired_count", None),
    )  # fmt: skip
    console.say(f"parameters: {params.label} (environment {params.environment}) valid")
    if project:
        inputs.check_fresh(directory)
        console.say(f"templates: {directory} is what the code renders")
    console.say(f"linting {len(t.files)} template(s) with cfn-lint...")
    findings = inputs.lint(t)
    if findings:
        raise LintError(f"{len(findings)} cfn-lint finding(s) in {directory}; nothing was deployed",
                        *findings)  # fmt: skip
    inputs.check_limits(t)
    stack_name = getattr(args, "stack_name", None) or names.DEFAULT_STACK_NAME.format(env=args.env)
    return Prepared(t, params, inputs.capabilities(t), stack_name)


# ------------------------------------------------------------------------------------------
# Parameters sent to CloudFormation
# ------------------------------------------------------------------------------------------
@dataclass
class ParameterPlan:
    entries: list[dict[str, Any]]  # CreateChangeSet's Parameters
    rows: list[tuple[str, str, str]]  # (key, shown value, where from) for the review
    notes: list[str]


def _service_desired_count(aws: awsmod.Aws, stack_id: str) -> tuple[int, str] | None:
    """The live desiredCount of the one ECS service in the stack tree (None if not exactly one)."""
    live = protect.live_tree(aws.cfn, stack_id)
    found: list[tuple[str, str | None]] = []
    for stack in live.walk():
        clusters = [r.get("PhysicalResourceId") for r in stack.resources if r.get("ResourceType") == ECS_CLUSTER]
        for r in stack.resources:
            if r.get("ResourceType") == ECS_SERVICE and r.get("PhysicalResourceId"):
                found.append((r["PhysicalResourceId"], clusters[0] if clusters else None))
    if len(found) != 1:
        return None
    arn, cluster = found[0]
    parts = arn.split(":", 5)[-1].split("/")  # service/cluster/name (or the old service/name)
    if len(parts) == 3:
        cluster = parts[1]
    kwargs: dict[str, Any] = {"services": [arn]}
    if cluster:
        kwargs["cluster"] = cluster
    out = awsmod.call("reading the ECS service's live task count", aws.client("ecs").describe_services, **kwargs)
    services = [s for s in out.get("services", []) if s.get("status") == "ACTIVE"]
    if not services:
        return None
    return int(services[0]["desiredCount"]), services[0].get("serviceName", arn)


def _clamp(value: int, spec: dict[str, Any]) -> int:
    if "MinValue" in spec:
        value = max(value, int(float(spec["MinValue"])))
    if "MaxValue" in spec:
        value = min(value, int(float(spec["MaxValue"])))
    return value


def plan_parameters(aws: awsmod.Aws, prep: Prepared, stack: dict[str, Any] | None, kind: str) -> ParameterPlan:
    """The file's values; on an update, the live ImageTag and task count unless given."""
    specs = prep.tree.parameter_specs()
    params = prep.params
    values = dict(params.values)
    source = {k: ("command line" if k in params.explicit else params.label) for k in values}
    previous: set[str] = set()
    notes: list[str] = []
    live = {p["ParameterKey"]: p.get("ParameterValue") for p in (stack or {}).get("Parameters", [])}
    if kind == changeset.UPDATE:
        if names.IMAGE_TAG in specs and names.IMAGE_TAG not in params.explicit and names.IMAGE_TAG in live:
            values.pop(names.IMAGE_TAG, None)
            previous.add(names.IMAGE_TAG)
            notes.append(f"{names.IMAGE_TAG}: keeping the deployed tag {live[names.IMAGE_TAG]!r} "
                         "(--image-tag TAG to deploy another)")  # fmt: skip
        if names.DESIRED_COUNT in specs and names.DESIRED_COUNT not in params.explicit:
            had_image = names.IMAGE_TAG not in specs or bool(live.get(names.IMAGE_TAG))
            if not had_image:
                notes.append(f"{names.DESIRED_COUNT}: {values.get(names.DESIRED_COUNT, 'the template default')} "
                             f"from {params.label} (the service had no image yet, so its live count "
                             "is not autoscaling's)")  # fmt: skip
            else:
                found = _service_desired_count(aws, stack["StackId"]) if stack else None
                if found is not None:
                    count, service = found
                    kept = _clamp(count, specs[names.DESIRED_COUNT])
                    values[names.DESIRED_COUNT] = str(kept)
                    source[names.DESIRED_COUNT] = f"live count of {service}"
                    notes.append(f"{names.DESIRED_COUNT}: keeping the live task count {count} of "
                                 f"service {service}" + (f" (within the template's range: {kept})"
                                                         if kept != count else "")
                                 + " (autoscaling owns it; --desired-count N to set it)")  # fmt: skip
                elif names.DESIRED_COUNT in live:
                    values.pop(names.DESIRED_COUNT, None)
                    previous.add(names.DESIRED_COUNT)
                    notes.append(f"{names.DESIRED_COUNT}: no single live ECS service found; keeping "
                                 f"the stack's previous value {live[names.DESIRED_COUNT]!r}")  # fmt: skip
    elif names.IMAGE_TAG in specs and not values.get(names.IMAGE_TAG, specs[names.IMAGE_TAG].get("Default", "")):
        notes.append(f"{names.IMAGE_TAG}: empty, so the service starts with 0 tasks; after CI pushes "
                     "the image, deploy again with --image-tag TAG")  # fmt: skip

    no_echo = prep.tree.no_echo()
    entries: list[dict[str, Any]] = []
    rows: list[tuple[str, str, str]] = []
    for key in sorted(specs):
        if key in previous:
            entries.append({"ParameterKey": key, "UsePreviousValue": True})
            shown = MASK if key in no_echo else str(live.get(key, ""))
            rows.append((key, shown, "previous value (kept)"))
        elif key in values:
            entries.append({"ParameterKey": key, "ParameterValue": values[key]})
            rows.append((key, MASK if key in no_echo else values[key], source[key]))
        else:
            default = specs[key].get("Default", "")
            rows.append((key, MASK if key in no_echo else str(default), "template default"))
    return ParameterPlan(entries, rows, notes)


# ------------------------------------------------------------------------------------------
# AWS steps
# ------------------------------------------------------------------------------------------
def ensure_service_linked_roles(aws: awsmod.Aws, console: Console, t: inputs.Tree) -> None:
    """Best effort, first create only: ECS (and its autoscaling) service-linked roles."""
    types = {r.get("Type") for tpl in t.files.values() for r in tpl.resources.values() if isinstance(r, dict)}
    for rtype, service in SERVICE_LINKED_ROLES.items():
        if rtype not in types:
            continue
        try:
            aws.client("iam").create_service_linked_role(AWSServiceName=service)
            console.say(f"preflight: created the service-linked role for {service}")
        except Exception as exc:  # noqa: BLE001 - never fails the deploy
            message = awsmod.error_message(exc)
            if "has been taken" in message or "already exists" in message:
                continue
            console.warn(f"could not ensure the service-linked role for {service} ({message}); if "
                         "the deploy fails with 'Unable to assume the service linked role', run "
                         f"once: aws iam create-service-linked-role --aws-service-name {service}")  # fmt: skip


@dataclass
class Run:
    """What this deploy has created so far (for clean-up and for the interrupt message)."""

    stack_name: str
    stack_existed: bool
    change_set_id: str | None = None
    stack_id: str | None = None
    executing: bool = False


def discard(aws: awsmod.Aws, console: Console, run: Run) -> None:
    """Delete this deploy's change set and, on a first create, the empty stack it made."""
    if run.change_set_id:
        try:
            changeset.delete(aws.cfn, run.change_set_id)
            console.say("change set deleted")
        except Exception as exc:  # noqa: BLE001
            console.warn(f"could not delete change set {run.change_set_id}: {exc}")
        run.change_set_id = None
    if not run.stack_existed and run.stack_id:
        try:
            stack = changeset.describe_stack(aws.cfn, run.stack_id)
            if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
                aws.cfn.delete_stack(StackName=run.stack_id)
                console.say(f"empty stack {run.stack_name} (REVIEW_IN_PROGRESS) deleted")
        except Exception as exc:  # noqa: BLE001
            console.warn(f"could not delete the empty stack {run.stack_name}: {exc}")


def _interrupted(aws: awsmod.Aws, console: Console, run: Run) -> Interrupted:
    if not run.executing:
        discard(aws, console, run)
        return Interrupted(f"interrupted before executing; stack {run.stack_name} was not changed")
    try:
        status = changeset.describe_stack(aws.cfn, run.stack_id or run.stack_name)
        state = status["StackStatus"] if status else "gone"
    except Exception:  # noqa: BLE001
        state = "unknown (could not read it)"
    return Interrupted(
        f"interrupted while CloudFormation deploys; stack {run.stack_name} is {state}",
        "CloudFormation carries on without this tool; follow it with: aws cloudformation "
        f"describe-stack-events --stack-name {run.stack_name}",
        f"to stop an update and roll back: aws cloudformation cancel-update-stack --stack-name "
        f"{run.stack_name}",
        "deploy again once the stack is in a *_COMPLETE state",
    )


def deploy(args: argparse.Namespace, hooks: Hooks | None = None) -> int:
    hooks = hooks or Hooks()
    console = hooks.console
    if not (args.yes or args.dry_run) and not hooks.interactive():
        raise BadInput("no terminal to confirm the change set; pass --yes to execute without "
                       "asking (CI) or --dry-run to only review it")  # fmt: skip
    for name in args.allow_replacement or []:
        if not name or name.startswith("/") or name.endswith("/") or "//" in name:
            raise BadInput(f"--allow-replacement {name!r}: expected ChildStack/LogicalId")
    prep = prepare(args, console)
    aws = hooks.aws or awsmod.Aws.from_options(args.profile, args.region)
    run = Run(prep.stack_name, stack_existed=True)  # until we know: never delete what we did not make
    try:
        who = awsmod.identity(aws)
        console.say(f"account {who.account} as {who.arn}; region {aws.region}; stack {prep.stack_name}")
        stack = changeset.describe_stack(aws.cfn, prep.stack_name)
        kind = changeset.plan(stack, prep.stack_name)
        run.stack_existed = stack is not None
        run.stack_id = stack["StackId"] if stack else None
        return _deploy(args, hooks, aws, who, prep, stack, kind, run)
    except KeyboardInterrupt:
        raise _interrupted(aws, console, run) from None


def _deploy(args: argparse.Namespace, hooks: Hooks, aws: awsmod.Aws, who: awsmod.Identity,
            prep: Prepared, stack: dict[str, Any] | None, kind: str, run: Run) -> int:  # fmt: skip
    console = hooks.console
    pplan = plan_parameters(aws, prep, stack, kind)
    if kind == changeset.CREATE and stack is None and not args.dry_run:
        ensure_service_linked_roles(aws, console, prep.tree)
    bucket = package.ensure_bucket(aws, console, who.account, args.artifact_bucket)
    packaged = package.package(aws, console, bucket, prep.tree)

    article = "an" if kind == changeset.UPDATE else "a"
    console.say(f"creating {article} {kind} change set for {prep.stack_name} "
                f"(capabilities: {', '.join(prep.capabilities) or 'none'})")  # fmt: skip
    cs_id, stack_id = changeset.create(
        aws.cfn, stack_name=prep.stack_name, change_set_type=kind,
        template=packaged.template_argument(), parameters=pplan.entries,
        capabilities=prep.capabilities, name=changeset.change_set_name(),
        description=f"karematch-cfn deploy --env {args.env}", role_arn=args.cfn_role_arn,
    )  # fmt: skip
    if cs_id == changeset.NO_CHANGES:
        return _no_changes(args, aws, console, prep, run)
    run.change_set_id = cs_id
    run.stack_id = stack_id or run.stack_id
    first = changeset.wait(aws.cfn, console, cs_id, min(args.poll_interval, 2.0), hooks.sleep)
    run.stack_id = first.get("StackId") or run.stack_id
    if first["Status"] == "FAILED":
        reason = first.get("StatusReason") or "no reason given"
        if changeset.is_no_change_reason(reason):
            return _no_changes(args, aws, console, prep, run)
        discard(aws, console, run)
        raise DeployFailed(f"the change set failed: {reason}")

    root = changeset.fetch_tree(lambda i: changeset.describe_all(aws.cfn, i),
                                changeset.describe_all(aws.cfn, cs_id, first))  # fmt: skip
    if not changeset.has_changes(root):
        return _no_changes(args, aws, console, prep, run)

    console.say("", "Parameters:")
    console.say(*("  " + x for x in table(pplan.rows, ("Parameter", "Value", "From"))))
    for note in pplan.notes:
        console.say(f"  note: {note}")
    console.say(*changeset.table_lines(root, prep.stack_name))
    console.say("")

    live = {p["ParameterKey"]: p for p in (stack or {}).get("Parameters", [])}
    new = {p["ParameterKey"]: p for p in pplan.entries}
    refusals = guard.check(root, guard.LiveResolver(aws.cfn, new, live))
    refused, lifted, unused = guard.split_allowed(refusals, args.allow_replacement or [])
    for name in unused:
        console.warn(f"--allow-replacement {name}: no such refusal in this change set")
    for r in lifted:
        console.say(f"guard: allowed by --allow-replacement: {r}")
    if refused:
        for r in refused:
            console.error(f"guard: {r}")
        if args.dry_run:  # a dry run leaves nothing behind, even when refused
            discard(aws, console, run)
            kept = "the change set was deleted (dry run)"
        else:
            kept = ("the change set is kept for review: aws cloudformation describe-change-set "
                    f"--change-set-name {cs_id}")  # fmt: skip
        raise GuardRefused(
            f"the data guard refused {len(refused)} change(s) to stateful resources; nothing was "
            "executed",
            kept,
            "if a replacement is intended (data migrated or disposable), deploy again with "
            + " ".join(f"--allow-replacement {r.name}" for r in refused),
        )

    if args.dry_run:
        console.say("dry run: nothing executed")
        discard(aws, console, run)
        return 0
    if not args.yes and not hooks.confirm(f"Execute this change set on {prep.stack_name}? [y/N] "):
        console.say("not executed")
        discard(aws, console, run)
        return 0

    watcher = events.Watcher(aws.cfn, console, run.stack_id or prep.stack_name, prep.stack_name,
                             interval=args.poll_interval, sleep=hooks.sleep)  # fmt: skip
    with protect.relaxed(aws.cfn, console, run.stack_id or prep.stack_name, [r.name for r in lifted]):
        watcher.prime()
        run.executing = True
        console.say(f"executing change set {cs_id}")
        awsmod.call("executing the change set", aws.cfn.execute_change_set, ChangeSetName=cs_id)
        run.change_set_id = None  # executed: CloudFormation owns it now
        status = watcher.run()
    if status not in events.SUCCESS:
        lines = watcher.failure_lines()
        raise DeployFailed(
            f"deploy of {prep.stack_name} failed: the stack is {status}",
            *(["first failures:"] + [f"  {x}" for x in lines] if lines else []),
            *changeset.recovery_hint(prep.stack_name, status),
        )
    console.say(f"{prep.stack_name}: {status} ({int(console.elapsed())}s)")
    if prep.params.environment == names.PRODUCTION:
        protect.apply(aws.cfn, console, run.stack_id or prep.stack_name, prep.stack_name)
    _print_outputs(aws, console, prep.stack_name)
    return 0


def _no_changes(args: argparse.Namespace, aws: awsmod.Aws, console: Console, prep: Prepared,
                run: Run) -> int:  # fmt: skip
    console.say(f"no changes: {prep.stack_name} already matches the templates and parameters")
    if run.change_set_id:
        discard(aws, console, run)
    if prep.params.environment == names.PRODUCTION and not args.dry_run:
        stack = changeset.describe_stack(aws.cfn, prep.stack_name)
        if stack is not None:
            protect.apply(aws.cfn, console, stack["StackId"], prep.stack_name)
    return 0


def _print_outputs(aws: awsmod.Aws, console: Console, stack_name: str) -> None:
    """The root's Outputs, when the service returns them (moto drops them after a change set)."""
    stack = changeset.describe_stack(aws.cfn, stack_name)
    outputs = (stack or {}).get("Outputs") or []
    if outputs:
        console.say("Outputs:")
        console.say(*("  " + x for x in table([(o["OutputKey"], o.get("OutputValue", ""))
                                               for o in outputs], ("Output", "Value"))))  # fmt: skip


# ------------------------------------------------------------------------------------------
# package
# ------------------------------------------------------------------------------------------
def package_command(args: argparse.Namespace, hooks: Hooks | None = None) -> int:
    hooks = hooks or Hooks()
    console = hooks.console
    prep = prepare(args, console)
    aws = hooks.aws or awsmod.Aws.from_options(args.profile, args.region)
    who = awsmod.identity(aws)
    console.say(f"account {who.account} as {who.arn}; region {aws.region}")
    bucket = package.ensure_bucket(aws, console, who.account, args.artifact_bucket)
    packaged = package.package(aws, console, bucket, prep.tree, upload_root=True)
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        target = out / prep.tree.root.name
        target.write_text(packaged.root_text, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write: {exc.strerror}") from None
    caps = " ".join(prep.capabilities)
    console.say(
        f"wrote {target} (the packaged root; its children are in s3://{bucket.name}/{package.KEY_PREFIX}/)",
        f"root template URL: {packaged.root_url}",
        "create the stack from it (or paste the URL into the CloudFormation console):",
        f"  aws cloudformation create-stack --stack-name {prep.stack_name} --template-url "
        f"{packaged.root_url} --parameters file://{prep.params.label}"
        + (f" --capabilities {caps}" if caps else ""),
    )
    return 0
