"""The two commands: ``deploy`` and ``package``.

``deploy()`` reads as its story: ``prepare`` (no AWS), then the phases ``plan_deploy``,
``package_templates``, ``review_change_set``, ``guard_changes``, ``confirm``, ``execute``,
``protect_prod`` and ``smoke_test``, each a function below taking the run's ``Context``. Options arrive frozen
(``options.py``), built once by ``cli.py``.

Order matters and is the point: everything that can be checked without AWS is checked first
(parameter file, lint, freshness, limits), then who we are, then the stack's state, and only
then is anything uploaded or created. A change set is executed only after the guard and a
confirmation; whatever the deploy left behind (a change set, an empty REVIEW_IN_PROGRESS stack,
a relaxed stack policy) is cleaned up or reported.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karematch_cfn import names, tree
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import (
    changeset,
    drift,
    events,
    guard,
    images,
    inputs,
    package,
    protect,
    quotas,
    smoke,
)
from karematch_cfn.deploy import triggers as triggersmod
from karematch_cfn.deploy.console import Console, table
from karematch_cfn.deploy.errors import (
    AccessProblem,
    BadInput,
    DeployError,
    DeployFailed,
    DriftFound,
    GuardRefused,
    Interrupted,
    LintError,
    ProtectionIncomplete,
    SmokeFailed,
)
from karematch_cfn.deploy.live import service as live_service
from karematch_cfn.deploy.options import DeployOptions, PackageOptions, Sources, Target

ECS_SERVICE = "AWS::ECS::Service"
NESTED_STACK = "AWS::CloudFormation::Stack"
# Service-linked roles a brand-new account may lack (the first ECS create then fails with "Unable to
# assume the service linked role"); created best-effort right before a CREATE change set is executed.
SERVICE_LINKED_ROLES = {
    ECS_SERVICE: "ecs.amazonaws.com",
    "AWS::ApplicationAutoScaling::ScalableTarget": "ecs.application-autoscaling.amazonaws.com",
}
MASK = "****"
PARAMETER_FILE = "parameters.json"  # what `package` writes next to the packaged root


def is_interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def ask(prompt: str) -> bool:
    return read_line(prompt).strip().lower() in ("y", "yes")


def read_line(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return ""


@dataclass
class Hooks:
    """What tests replace: the clients, the clock's sleep, the terminal."""

    aws: awsmod.Aws | None = None
    sleep: Callable[[float], None] = field(default=lambda seconds: time.sleep(seconds))
    interactive: Callable[[], bool] = field(default=lambda: is_interactive())
    confirm: Callable[[str], bool] = field(default=lambda prompt: ask(prompt))
    prompt: Callable[[str], str] = field(default=lambda prompt: read_line(prompt))  # a typed answer
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


def is_project_dir(directory: Path) -> bool:
    """Whether ``directory`` is the project's templates/ (however it was spelled)."""
    try:
        return directory.resolve() == tree.TEMPLATES_DIR.resolve()
    except OSError:
        return False


def prepare(
    target: Target,
    sources: Sources,
    console: Console,
    *,
    image_tag: str | None = None,
    desired_count: int | None = None,
) -> Prepared:
    """Parameter file, lint, freshness, limits: everything checked before touching AWS."""
    inputs.check_environment(target.env)
    directory = tree.TEMPLATES_DIR if sources.template_dir is None else sources.template_dir
    project = is_project_dir(directory)
    t = inputs.load_tree(directory)
    params = inputs.load_parameters(
        t,
        target.env,
        sources.parameter_file,
        inputs.parse_assignments(list(sources.assignments)),
        image_tag=image_tag,
        desired_count=desired_count,
    )
    console.say(f"parameters: {params.label} (environment {params.environment}) valid")
    if project:
        inputs.check_fresh(directory, use_cache=sources.use_cache)
        console.say(f"templates: {directory} is what the code renders")
    console.say(f"linting {len(t.files)} template(s) with cfn-lint...")
    findings = inputs.lint(t, use_cache=sources.use_cache, project=project)
    if findings:
        raise LintError(
            f"{len(findings)} cfn-lint finding(s) in {directory}; nothing was deployed", *findings
        )
    inputs.check_limits(t)
    return Prepared(t, params, inputs.capabilities(t), target.stack_name)


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
    found = live_service(
        aws, protect.live_tree(aws.cfn, stack_id), doing="reading the ECS service's live task count"
    )
    if found is None:
        return None
    return int(found["desiredCount"]), found.get("serviceName", found.get("serviceArn", ""))


def _clamp(value: int, spec: dict[str, Any]) -> int:
    if "MinValue" in spec:
        value = max(value, int(float(spec["MinValue"])))
    if "MaxValue" in spec:
        value = min(value, int(float(spec["MaxValue"])))
    return value


def _deletion_protection(
    specs: dict[str, Any],
    params: inputs.Parameters,
    kind: str,
    values: dict[str, str],
    source: dict[str, str],
    notes: list[str],
) -> None:
    """EnableDeletionProtection: off on a first create, stated explicitly on every update.

    Deletion protection during the very first create would leave a failed create unable to roll
    back (ROLLBACK_FAILED); the next deploy turns it on. On an update the file's value, or else
    the template Default, is always sent (never UsePreviousValue), so that next deploy does.
    """
    key = names.ENABLE_DELETION_PROTECTION
    if key not in specs or key in params.explicit:
        return
    if kind == changeset.CREATE:
        values[key] = "false"
        source[key] = "first create (the next deploy turns it on)"
        notes.append(
            f"{key}: false for this first create, so a failed create can roll back; "
            "deletion protection is turned on by the next deploy"
        )
    elif key not in values:
        values[key] = str(specs[key].get("Default", ""))
        source[key] = "template default"


@dataclass(frozen=True)
class Choice:
    """One parameter decision on an update: send ``value``, or with ``previous`` keep the
    stack's previous value (UsePreviousValue); ``None`` and not ``previous`` changes nothing
    and only says why."""

    value: str | None
    source: str
    note: str
    previous: bool = False


def live_image_tag(specs: dict[str, Any], params: inputs.Parameters, live: dict[str, Any]) -> Choice | None:
    """ImageTag on an update: the deployed tag unless --image-tag (or the command line) sets one."""
    key = names.IMAGE_TAG
    if key not in specs or key in params.explicit or key not in live:
        return None
    return Choice(
        None,
        "previous value (kept)",
        f"{key}: keeping the deployed tag {live[key]!r} (--image-tag TAG to deploy another)",
        previous=True,
    )


def live_desired_count(
    aws: awsmod.Aws,
    prep: Prepared,
    stack: dict[str, Any] | None,
    live: dict[str, Any],
) -> Choice | None:
    """DesiredCount on an update: autoscaling's live task count (within the template's range)
    unless --desired-count sets one; the file's value while the service has no image yet."""
    key = names.DESIRED_COUNT
    specs = prep.tree.parameter_specs()
    params = prep.params
    if key not in specs or key in params.explicit:
        return None
    had_image = names.IMAGE_TAG not in specs or bool(live.get(names.IMAGE_TAG))
    if not had_image:
        return Choice(
            None,
            params.label,
            f"{key}: {params.values.get(key, 'the template default')} from {params.label} (the "
            "service had no image yet, so its live count is not autoscaling's)",
        )
    found = _service_desired_count(aws, stack["StackId"]) if stack else None
    if found is not None:
        count, service = found
        kept = _clamp(count, specs[key])
        return Choice(
            str(kept),
            f"live count of {service}",
            f"{key}: keeping the live task count {count} of service {service}"
            + (f" (within the template's range: {kept})" if kept != count else "")
            + " (autoscaling owns it; --desired-count N to set it)",
        )
    if key in live:
        return Choice(
            None,
            "previous value (kept)",
            f"{key}: no single live ECS service found; keeping the stack's previous value {live[key]!r}",
            previous=True,
        )
    return None


def plan_parameters(
    aws: awsmod.Aws, prep: Prepared, stack: dict[str, Any] | None, kind: str
) -> ParameterPlan:
    """The file's values; EnableDeletionProtection false on a first create; on an update two
    decisions: the live image tag (``live_image_tag``) and the live task count
    (``live_desired_count``)."""
    specs = prep.tree.parameter_specs()
    params = prep.params
    values = dict(params.values)
    source = {k: ("command line" if k in params.explicit else params.label) for k in values}
    previous: set[str] = set()
    notes: list[str] = []
    live = {p["ParameterKey"]: p.get("ParameterValue") for p in (stack or {}).get("Parameters", [])}
    _deletion_protection(specs, params, kind, values, source, notes)
    if kind == changeset.UPDATE:
        decisions = {
            names.IMAGE_TAG: live_image_tag(specs, params, live),
            names.DESIRED_COUNT: live_desired_count(aws, prep, stack, live),
        }
        for key, choice in decisions.items():
            if choice is None:
                continue
            notes.append(choice.note)
            if choice.previous:
                values.pop(key, None)
                previous.add(key)
            elif choice.value is not None:
                values[key] = choice.value
                source[key] = choice.source
    elif names.IMAGE_TAG in specs and not values.get(
        names.IMAGE_TAG, specs[names.IMAGE_TAG].get("Default", "")
    ):
        notes.append(
            f"{names.IMAGE_TAG}: empty, so the service starts with 0 tasks; after CI pushes "
            "the image, deploy again with --image-tag TAG"
        )

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
    """Best effort, right before a CREATE is executed: ECS (and its autoscaling) service-linked
    roles. Never on a dry run or a declined change set: nothing in the account changes then."""
    types = {r.get("Type") for tpl in t.files.values() for r in tpl.resources.values() if isinstance(r, dict)}
    for rtype, service in SERVICE_LINKED_ROLES.items():
        if rtype not in types:
            continue
        try:
            aws.client("iam").create_service_linked_role(AWSServiceName=service)
            console.say(f"preflight: created the service-linked role for {service}")
        except Exception as exc:
            message = awsmod.error_message(exc)
            if "has been taken" in message or "already exists" in message:
                continue
            console.warn(
                f"could not ensure the service-linked role for {service} ({message}); if "
                "the deploy fails with 'Unable to assume the service linked role', run "
                f"once: aws iam create-service-linked-role --aws-service-name {service}"
            )


@dataclass
class Run:
    """What this deploy has created so far (for clean-up and for the interrupt message)."""

    stack_name: str
    stack_existed: bool
    change_set_id: str | None = None
    stack_id: str | None = None
    executing: bool = False
    smoked: bool = False  # the smoke test already ran (inside the monitoring window)
    smoke_failure: SmokeFailed | None = None  # ... and failed: the update was cancelled


def discard(aws: awsmod.Aws, console: Console, run: Run) -> list[str]:
    """Delete this deploy's change set and, on a first create, the empty stack it made.

    Returns what could not be deleted, each with the command that deletes it (also warned).
    """
    left: list[str] = []
    if run.change_set_id:
        try:
            changeset.delete(aws.cfn, run.change_set_id)
            console.say("change set deleted")
        except Exception as exc:
            console.warn(f"could not delete change set {run.change_set_id}: {awsmod.error_message(exc)}")
            left.append(
                f"change set {run.change_set_id}: aws cloudformation delete-change-set "
                f"--change-set-name {run.change_set_id}"
            )
        run.change_set_id = None
    if not run.stack_existed and run.stack_id:
        try:
            stack = changeset.describe_stack(aws.cfn, run.stack_id)
            if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
                aws.cfn.delete_stack(StackName=run.stack_id)
                console.say(f"empty stack {run.stack_name} (REVIEW_IN_PROGRESS) deleted")
        except Exception as exc:
            console.warn(f"could not delete the empty stack {run.stack_name}: {awsmod.error_message(exc)}")
            left.append(
                f"empty stack {run.stack_name} (REVIEW_IN_PROGRESS): aws cloudformation "
                f"delete-stack --stack-name {run.stack_name}"
            )
    return left


def stack_state(aws: awsmod.Aws, run: Run) -> str:
    """The root's status now, for a message (never raises)."""
    try:
        stack = changeset.describe_stack(aws.cfn, run.stack_id or run.stack_name)
    except Exception:
        return "unknown (could not read it)"
    return stack["StackStatus"] if stack else "gone"


def in_flight_hints(stack_name: str, *, creating: bool) -> list[str]:
    """What to do while CloudFormation carries on without this tool: a first create and an
    update differ (a create cannot be cancelled, and its rollback leaves a stack to delete)."""
    follow = (
        "CloudFormation carries on without this tool; follow it with: aws cloudformation "
        f"describe-stack-events --stack-name {stack_name}"
    )
    if creating:
        return [
            follow,
            "a first create cannot be cancelled (cancel-update-stack is for updates): it ends "
            "CREATE_COMPLETE, or fails and rolls itself back to ROLLBACK_COMPLETE",
            "on CREATE_COMPLETE the stack is deployed (deploy again for later changes); on "
            f"ROLLBACK_COMPLETE delete it (aws cloudformation delete-stack --stack-name {stack_name}), "
            "then deploy again",
        ]
    return [
        follow,
        f"to stop an update and roll back: aws cloudformation cancel-update-stack --stack-name {stack_name}",
        "deploy again once the stack is in a *_COMPLETE state",
    ]


def _interrupted(aws: awsmod.Aws, console: Console, run: Run) -> Interrupted:
    if not run.executing:
        discard(aws, console, run)
        return Interrupted(f"interrupted before executing; stack {run.stack_name} was not changed")
    return Interrupted(
        f"interrupted while CloudFormation deploys; stack {run.stack_name} is {stack_state(aws, run)}",
        *in_flight_hints(run.stack_name, creating=not run.stack_existed),
    )


def lost_sight(aws: awsmod.Aws, run: Run, exc: DeployError) -> DeployError:
    """A call failed while CloudFormation executes (reading events, say): the stack's state,
    what this run leaves, and the way on; the error keeps its exit code."""
    state = stack_state(aws, run)
    hints = [f"the change set was executed; stack {run.stack_name} is {state}"]
    if state.endswith("_IN_PROGRESS"):
        hints += in_flight_hints(run.stack_name, creating=not run.stack_existed)
    elif state in events.SUCCESS:
        hints.append(
            "it deployed, but this run stopped watching before its last steps (prod protection, "
            "Outputs): deploy again, it finds no changes and finishes them"
        )
    else:
        hints += changeset.recovery_hint(run.stack_name, state)
    if not run.stack_existed:
        hints.append(
            "nested stacks it created belong to the root: a failed create rolls them back, and "
            "deleting the root deletes them"
        )
    return type(exc)(f"{exc.message} (while the change set executes)", *hints, *exc.hints)


def _left_behind(aws: awsmod.Aws, console: Console, run: Run, dry_run: bool, exc: DeployError) -> None:
    """After a failure before the execution (a wait timeout, an access error while reading the
    change sets or live values): delete what this run created when it was a dry run or a new
    empty stack; otherwise say exactly what is left and how to delete it."""
    if isinstance(exc, GuardRefused) or run.executing or not run.change_set_id:
        return  # a refusal keeps its change set on purpose; an executed one is CloudFormation's
    if dry_run or not run.stack_existed:
        made = "change set" if run.stack_existed else "change set and empty stack"
        left = discard(aws, console, run)
        if left:
            exc.hints += [f"left behind: {x}" for x in left]
        else:
            exc.hints.append(
                f"nothing was executed; this run's {made} {'was' if run.stack_existed else 'were'} deleted"
            )
        return
    exc.hints.append(
        f"nothing was executed; left behind: change set {run.change_set_id} on stack "
        f"{run.stack_name} (not executed); delete it: aws cloudformation delete-change-set "
        f"--change-set-name {run.change_set_id}"
    )


def check_stack_environment(stack: dict[str, Any] | None, env: str, stack_name: str) -> None:
    """Refuse a live stack deployed for another environment (``--env dev --stack-name
    karematch-prod`` would otherwise skip prod's protection)."""
    live = {p["ParameterKey"]: p.get("ParameterValue") for p in (stack or {}).get("Parameters", []) or []}
    deployed = live.get(names.ENVIRONMENT_NAME)
    if deployed is not None and deployed != env:
        raise BadInput(
            f"stack {stack_name} is environment {deployed!r} (its {names.ENVIRONMENT_NAME} "
            f"parameter) but --env is {env!r}; nothing was changed",
            f"deploy it with --env {deployed}, or choose another --stack-name",
        )


# ------------------------------------------------------------------------------------------
# deploy: plan, package, review, guard, confirm, execute, protect
# ------------------------------------------------------------------------------------------
@dataclass
class Context:
    """What every phase of one deploy reads: the options, the test seams, the clients, the
    checked inputs, and what this run has created so far."""

    opts: DeployOptions
    hooks: Hooks
    aws: awsmod.Aws
    prep: Prepared
    run: Run

    @property
    def console(self) -> Console:
        return self.hooks.console


@dataclass(frozen=True)
class Plan:
    """The plan phase's answer: who we are, the live stack (None before the first create),
    CREATE or UPDATE, and the parameters to send."""

    who: awsmod.Identity
    stack: dict[str, Any] | None
    kind: str
    parameters: ParameterPlan
    triggers: triggersmod.Triggers | None  # None: not read (the image does not change)


# An update always states its rollback configuration (a stack keeps its last one otherwise):
# with no alarm read, an empty one.
NOT_READ = triggersmod.Triggers((), (), 0, "")


@dataclass(frozen=True)
class Review:
    """The change set the user reviews: its id, its tree of nested change sets, and whether
    it carries the rollback triggers."""

    change_set_id: str
    root: changeset.Node
    armed: bool = False


def deploy(opts: DeployOptions, hooks: Hooks | None = None) -> int:
    """The deploy, phase by phase; everything AWS-free is checked before the first AWS call."""
    hooks = hooks or Hooks()
    check_deploy_options(opts, hooks)
    prep = prepare(
        opts.target, opts.sources, hooks.console, image_tag=opts.image_tag, desired_count=opts.desired_count
    )
    aws = hooks.aws or awsmod.Aws.from_options(opts.target.profile, opts.target.region)
    run = Run(prep.stack_name, stack_existed=True)  # until we know: never delete what we did not make
    ctx = Context(opts, hooks, aws, prep, run)
    try:
        plan = plan_deploy(ctx)
        packaged = package_templates(ctx, plan)
        review = review_change_set(ctx, plan, packaged)
        if review is None:
            return no_changes(ctx)
        lifted = guard_changes(ctx, plan, review)
        if not confirm(ctx):
            return 0
        status = execute(ctx, plan, review, lifted)
        live = protect_prod(ctx, status)
        return smoke_test(ctx, plan, live)
    except KeyboardInterrupt:
        raise _interrupted(aws, hooks.console, run) from None
    except DeployError as exc:
        _left_behind(aws, hooks.console, run, opts.dry_run, exc)
        raise


def check_deploy_options(opts: DeployOptions, hooks: Hooks) -> None:
    """What the options alone can refuse (exit 2), before any file is read."""
    if not (opts.yes or opts.dry_run) and not hooks.interactive():
        raise BadInput(
            "no terminal to confirm the change set; pass --yes to execute without "
            "asking (CI) or --dry-run to only review it"
        )
    for name in opts.allow_replacement:
        if not name or name.startswith("/") or name.endswith("/") or "//" in name:
            raise BadInput(f"--allow-replacement {name!r}: expected ChildStack/LogicalId")


def plan_deploy(ctx: Context) -> Plan:
    """Plan: who we are, the live stack (of this environment), CREATE or UPDATE, the parameters."""
    aws, prep, run = ctx.aws, ctx.prep, ctx.run
    who = awsmod.identity(aws)
    ctx.console.say(f"account {who.account} as {who.arn}; region {aws.region}; stack {prep.stack_name}")
    stack = changeset.describe_stack(aws.cfn, prep.stack_name)
    check_stack_environment(stack, ctx.opts.target.env, prep.stack_name)
    kind = changeset.plan(stack, prep.stack_name)
    run.stack_existed = stack is not None
    run.stack_id = stack["StackId"] if stack else None
    if kind == changeset.UPDATE:
        check_drift(ctx, stack["StackId"])
    with protect.read_once():  # task count, quota preflight and triggers share one read of the live tree
        parameters = plan_parameters(aws, prep, stack, kind)
        # Elastic IPs, VPCs, NAT gateways: refuse what the account's quotas cannot hold, before any upload.
        quotas.preflight(aws, ctx.console, tree=prep.tree, entries=parameters.entries, stack=stack)
        # The alarms are read up front only when the image changes (the usual way a deploy touches
        # the service); otherwise only if the change set turns out to touch it, so a no-op or a
        # settings-only deploy makes no call for them.
        changes_image = image_changes(stack, parameters.entries)
        triggers = read_triggers(ctx, stack, kind, who.account) if changes_image else None
    return Plan(who, stack, kind, parameters, triggers)


def read_triggers(
    ctx: Context, stack: dict[str, Any] | None, kind: str, account: str
) -> triggersmod.Triggers:
    return triggersmod.available(
        ctx.aws, stack=stack, kind=kind, account=account, minutes=ctx.opts.monitoring_minutes
    )


def image_changes(stack: dict[str, Any] | None, entries: list[dict[str, Any]]) -> bool:
    """Whether this deploy sends another ImageTag than the live one (the task definition changes)."""
    live = {p["ParameterKey"]: p.get("ParameterValue") for p in (stack or {}).get("Parameters", [])}
    sent = {e["ParameterKey"]: e for e in entries}.get(names.IMAGE_TAG)
    return (
        sent is not None and "ParameterValue" in sent and sent["ParameterValue"] != live.get(names.IMAGE_TAG)
    )


def check_drift(ctx: Context, stack_id: str) -> None:
    """Before a prod update (or with --check-drift): refuse a drifted stack (exit 11) unless
    --allow-drift, since the update would silently overwrite the hand changes."""
    opts = ctx.opts
    if not (opts.check_drift or ctx.prep.params.environment == names.PRODUCTION):
        return
    if opts.allow_drift:
        ctx.console.say("drift: not checked (--allow-drift)")
        return
    try:
        report = drift.detect(
            ctx.aws, ctx.console, stack_id, interval=opts.poll_interval, sleep=ctx.hooks.sleep
        )
    except AccessProblem as exc:  # a role without the drift calls: say so, do not block the deploy
        ctx.console.warn(f"drift: not checked: {exc.message}")
        return
    drift.show(report, ctx.console)
    if report.drifted:
        raise DriftFound(
            f"{ctx.prep.stack_name} has {len(report.drifted)} resource(s) changed outside CloudFormation; "
            "nothing was deployed (the update would overwrite them)",
            "bring the change into the templates, or undo it by hand, then deploy again; or deploy "
            "with --allow-drift to overwrite it",
        )


def package_templates(ctx: Context, plan: Plan) -> package.Packaged:
    """Package: the artifacts bucket, then every child template under its content-hash key."""
    bucket = package.ensure_bucket(
        ctx.aws, ctx.console, plan.who.account, ctx.opts.sources.artifact_bucket, defer=True
    )
    return package.package(ctx.aws, ctx.console, bucket, ctx.prep.tree)


def review_change_set(ctx: Context, plan: Plan, packaged: package.Packaged) -> Review | None:
    """Review: create the change set, wait for it, read every nested change set and print the
    parameters and the tables. None when nothing would change."""
    aws, console, prep, run = ctx.aws, ctx.console, ctx.prep, ctx.run
    article = "an" if plan.kind == changeset.UPDATE else "a"
    console.say(
        f"creating {article} {plan.kind} change set for {prep.stack_name} "
        f"(capabilities: {', '.join(prep.capabilities) or 'none'})"
    )
    # Read only when the image changes: armed then, the usual case; checked below.
    triggers = plan.triggers or NOT_READ
    armed = bool(triggers.alarm_arns)
    created = _create_change_set(ctx, plan, packaged, triggers.configuration(armed))
    if created is None:
        return None
    cs_id, root = created
    if plan.kind == changeset.UPDATE and triggersmod.touches_service(root) != armed and plan.triggers is None:
        triggers = read_triggers(ctx, plan.stack, plan.kind, plan.who.account)
    if plan.kind == changeset.UPDATE and triggers.alarm_arns and triggersmod.touches_service(root) != armed:
        armed = not armed
        console.say(
            "re-creating the change set "
            + ("with" if armed else "without")
            + " rollback triggers: it "
            + ("touches" if armed else "does not touch")
            + " the service, task definition or load balancer"
        )
        discard(aws, console, run)
        created = _create_change_set(ctx, plan, packaged, triggers.configuration(armed))
        if created is None:
            return None
        cs_id, root = created
    settings_only = not changeset.has_changes(root)
    if (
        settings_only
        and plan.kind == changeset.UPDATE
        and plan.stack is not None
        and unchanged_from_live(aws, prep, packaged, plan.parameters, plan.stack)
    ):
        return None

    console.say("", "Parameters:")
    console.say(*("  " + x for x in table(plan.parameters.rows, ("Parameter", "Value", "From"))))
    for note in plan.parameters.notes:
        console.say(f"  note: {note}")
    console.say(*changeset.table_lines(root, prep.stack_name))
    if settings_only:
        console.say("", f"Stack {prep.stack_name}: no resource changes (parameters/outputs/tags only)")
    if plan.kind == changeset.UPDATE:
        console.say("", triggers.line(armed))
    console.say("")
    return Review(cs_id, root, armed)


def _create_change_set(
    ctx: Context, plan: Plan, packaged: package.Packaged, rollback: dict[str, Any]
) -> tuple[str, changeset.Node] | None:
    """Create the change set (an update always states its rollback configuration: a stack keeps
    its last one otherwise), wait for it and read its tree; None when nothing would change."""
    aws, console, prep, run = ctx.aws, ctx.console, ctx.prep, ctx.run
    cs_id, stack_id = changeset.create(
        aws.cfn,
        stack_name=prep.stack_name,
        change_set_type=plan.kind,
        template=packaged.template_argument(),
        parameters=plan.parameters.entries,
        capabilities=prep.capabilities,
        name=changeset.change_set_name(),
        description=f"karematch-cfn deploy --env {ctx.opts.target.env}",
        role_arn=ctx.opts.cfn_role_arn,
        rollback=rollback if plan.kind == changeset.UPDATE else None,
    )
    if cs_id == changeset.NO_CHANGES:
        return None
    run.change_set_id = cs_id
    run.stack_id = stack_id or run.stack_id
    poll = min(ctx.opts.poll_interval, changeset.MAX_POLL)
    first = changeset.wait(aws.cfn, console, cs_id, poll, ctx.hooks.sleep)
    run.stack_id = first.get("StackId") or run.stack_id
    if first["Status"] == "FAILED":
        reason = first.get("StatusReason") or "no reason given"
        if changeset.is_no_change_reason(reason):
            return None
        discard(aws, console, run)
        raise DeployFailed(f"the change set failed: {reason}")
    root = changeset.fetch_tree(
        lambda i: changeset.describe_all(aws.cfn, i), changeset.describe_all(aws.cfn, cs_id, first)
    )
    return cs_id, root


def guard_changes(ctx: Context, plan: Plan, review: Review) -> list[guard.Refusal]:
    """Guard: refuse (exit 3) to lose a stateful resource unless --allow-replacement names it.
    Returns the refusals the user lifted (their stack policies are relaxed while executing)."""
    console = ctx.console
    live = {p["ParameterKey"]: p for p in (plan.stack or {}).get("Parameters", [])}
    new = {p["ParameterKey"]: p for p in plan.parameters.entries}
    refusals = guard.check(review.root, guard.LiveResolver(ctx.aws.cfn, new, live))
    refused, lifted, unused = guard.split_allowed(refusals, list(ctx.opts.allow_replacement))
    for name in unused:
        console.warn(f"--allow-replacement {name}: no such refusal in this change set")
    for r in lifted:
        console.say(f"guard: allowed by --allow-replacement: {r}")
    if not refused:
        return lifted
    for r in refused:
        console.error(f"guard: {r}")
    if ctx.opts.dry_run:  # a dry run deletes its change set, even when refused
        discard(ctx.aws, console, ctx.run)
        kept = "the change set was deleted (dry run)"
    else:
        kept = (
            "the change set is kept for review: aws cloudformation describe-change-set "
            f"--change-set-name {review.change_set_id}"
        )
    raise GuardRefused(
        f"the data guard refused {len(refused)} change(s) to stateful resources; nothing was executed",
        kept,
        "if a replacement is intended (data migrated or disposable), deploy again with "
        + " ".join(f"--allow-replacement {r.name}" for r in refused),
    )


def confirm(ctx: Context) -> bool:
    """Confirm: a dry run stops here; otherwise --yes or the user's answer. A change set that
    is not executed is deleted."""
    if ctx.opts.dry_run:
        ctx.console.say("dry run: nothing executed")
        discard(ctx.aws, ctx.console, ctx.run)
        return False
    if ctx.opts.yes or ctx.hooks.confirm(f"Execute this change set on {ctx.prep.stack_name}? [y/N] "):
        return True
    ctx.console.say("not executed")
    discard(ctx.aws, ctx.console, ctx.run)
    return False


def execute(ctx: Context, plan: Plan, review: Review, lifted: list[guard.Refusal]) -> str:
    """Execute: run the change set and stream the stack's events until a terminal status;
    raise with the first failures and the way back unless it succeeded."""
    aws, console, prep, run = ctx.aws, ctx.console, ctx.prep, ctx.run
    if plan.kind == changeset.CREATE:
        ensure_service_linked_roles(aws, console, prep.tree)
    watcher = events.Watcher(
        aws.cfn,
        console,
        run.stack_id or prep.stack_name,
        prep.stack_name,
        interval=ctx.opts.poll_interval,
        sleep=ctx.hooks.sleep,
    )
    if review.armed and ctx.opts.smoke:
        watcher.on_poll = smoke_in_window(ctx, review, watcher)
    with protect.relaxed(aws.cfn, console, run.stack_id or prep.stack_name, [r.name for r in lifted]):
        watcher.prime()
        run.executing = True
        console.say(f"executing change set {review.change_set_id}")
        try:
            awsmod.call(
                "executing the change set", aws.cfn.execute_change_set, ChangeSetName=review.change_set_id
            )
        except DeployError as exc:
            state = stack_state(aws, run)
            if state.endswith("_IN_PROGRESS") and state != "REVIEW_IN_PROGRESS":
                run.change_set_id = None  # it did start: CloudFormation owns it now
                raise lost_sight(aws, run, exc) from None
            run.executing = False  # not executed: deploy() deletes or names what is left
            exc.hints.append(f"stack {run.stack_name} is {state}; fix the cause and deploy again")
            raise
        run.change_set_id = None  # executed: CloudFormation owns it now
        try:
            status = watcher.run()
        except DeployError as exc:
            raise lost_sight(aws, run, exc) from None
    if run.smoke_failure is not None:
        raise SmokeFailed(
            f"{run.smoke_failure.message}; the update was cancelled inside the monitoring window "
            f"and {prep.stack_name} is {status}",
            "the previous version runs again; fix the cause and deploy again",
        )
    if status not in events.SUCCESS:
        lines = watcher.failure_lines()
        raise DeployFailed(
            f"deploy of {prep.stack_name} failed: the stack is {status}",
            *(["first failures:"] + [f"  {x}" for x in lines] if lines else []),
            *changeset.recovery_hint(prep.stack_name, status),
        )
    # Keep the image now running (and the one before it) safe from ECR's lifecycle policy.
    image_tag = images.deployed_tag(plan.parameters.entries, plan.stack)
    images.after_deploy(aws, console, env=ctx.opts.target.env, image_tag=image_tag)
    return status


def smoke_in_window(ctx: Context, review: Review, watcher: events.Watcher) -> Callable[[str], None]:
    """With rollback triggers armed: once every root-level resource the change set adds or
    modifies is complete while the stack is still UPDATE_IN_PROGRESS (the monitoring window),
    run the smoke test once; a failure cancels the update, so CloudFormation rolls it back."""
    aws, console, run = ctx.aws, ctx.console, ctx.run
    changed = {
        rc["LogicalResourceId"]
        for rc in changeset.effective_changes(review.root)
        if rc.get("Action") in ("Add", "Modify")
    }

    def on_poll(status: str) -> None:
        if run.smoked or status != "UPDATE_IN_PROGRESS" or not changed <= watcher.settled:
            return
        run.smoked = True
        console.say("smoke: the update is deployed; checking inside the monitoring window")
        live = changeset.describe_stack(aws.cfn, run.stack_id or run.stack_name)
        try:
            smoke.run(
                smoke.checks(aws, live or {}),
                console,
                deadline=ctx.opts.smoke_deadline,
                sleep=ctx.hooks.sleep,
            )
        except SmokeFailed as exc:
            run.smoke_failure = exc
            console.error(f"{exc.message}: cancelling the update so it rolls back")
            awsmod.call(
                "cancelling the update", aws.cfn.cancel_update_stack, StackName=run.stack_id or run.stack_name
            )

    return on_poll


def protect_prod(ctx: Context, status: str) -> dict[str, Any] | None:
    """Protect: after a prod deploy, stack policies and termination protection (exit 6 if
    either is missing); then the root's Outputs. Returns the stack as it is now."""
    aws, console, prep = ctx.aws, ctx.console, ctx.prep
    console.say(f"{prep.stack_name}: {status} ({int(console.elapsed())}s)")
    missing: list[tuple[str, str]] = []
    if prep.params.environment == names.PRODUCTION:
        missing = protect.apply(aws.cfn, console, ctx.run.stack_id or prep.stack_name, prep.stack_name)
    live = _print_outputs(aws, console, prep.stack_name)
    _protection_outcome(missing, prep.stack_name, f"deployed ({status})")
    return live


def smoke_test(ctx: Context, plan: Plan, live: dict[str, Any] | None) -> int:
    """Smoke: the API's /health, a deep SPA route and a missing asset (``smoke.py``), unless
    --no-smoke. A failure is exit 10: deployed, and how to go back to the previous image."""
    if not ctx.opts.smoke or live is None or ctx.run.smoked:
        return 0
    try:
        smoke.run(
            smoke.checks(ctx.aws, live), ctx.console, deadline=ctx.opts.smoke_deadline, sleep=ctx.hooks.sleep
        )
    except SmokeFailed as exc:
        previous = {
            p["ParameterKey"]: p.get("ParameterValue") for p in (plan.stack or {}).get("Parameters", [])
        }
        exc.hints.append(f"{ctx.prep.stack_name} is deployed; the smoke test ran after it")
        if previous.get(names.IMAGE_TAG):
            exc.hints.append(
                f"to go back to the previous image: karematch-cfn deploy --env {ctx.opts.target.env} "
                f"--image-tag {previous[names.IMAGE_TAG]}"
            )
        exc.hints.append(f"run it again: karematch-cfn smoke --env {ctx.opts.target.env}")
        raise
    return 0


def unchanged_from_live(
    aws: awsmod.Aws, prep: Prepared, packaged: package.Packaged, pplan: ParameterPlan, stack: dict[str, Any]
) -> bool:
    """Whether a change set without changes really changes nothing: every parameter sent (or
    defaulted) equals the live value, and the packaged root is the live template.

    AWS reports a real no-change as a FAILED change set; CREATE_COMPLETE with an empty list
    means only Outputs, parameters or tags change. moto answers CREATE_COMPLETE with no changes
    for both, hence the comparison. A NoEcho value reads as ``****``: never equal, so executed.
    """
    live = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", []) or []}
    sent = {e["ParameterKey"]: e for e in pplan.entries}
    specs = prep.tree.parameter_specs()
    if set(live) != set(specs):
        return False
    for key, spec in specs.items():
        entry = sent.get(key)
        if entry is not None and entry.get("UsePreviousValue"):
            continue
        wanted = entry["ParameterValue"] if entry is not None else str(spec.get("Default", ""))
        if live[key] != wanted:
            return False
    out = awsmod.call(
        f"reading the live template of {prep.stack_name}", aws.cfn.get_template, StackName=stack["StackId"]
    )
    body = out.get("TemplateBody")
    if isinstance(body, str):
        return body == packaged.root_text
    # botocore decodes a JSON template body into a dict
    return body == inputs.parse_template(packaged.root_text, "the packaged root")


def _protection_outcome(missing: list[tuple[str, str]], stack_name: str, done: str) -> None:
    """Exit 6 when prod protection is incomplete: say the stack is deployed and how to protect it."""
    if not missing:
        return
    raise ProtectionIncomplete(
        f"{stack_name} {done}; protection NOT applied: " + "; ".join(what for what, _ in missing),
        "apply it by hand:",
        *(f"  {command}" for _, command in missing),
        "or run the same deploy again once the cause is fixed: a prod deploy with no changes "
        "only applies protection",
    )


def no_changes(ctx: Context) -> int:
    """Nothing to change: delete the change set; a prod stack still gets its protection."""
    aws, console, prep = ctx.aws, ctx.console, ctx.prep
    console.say(f"no changes: {prep.stack_name} already matches the templates and parameters")
    if ctx.run.change_set_id:
        discard(aws, console, ctx.run)
    if prep.params.environment == names.PRODUCTION and not ctx.opts.dry_run:
        stack = changeset.describe_stack(aws.cfn, prep.stack_name)
        if stack is not None:
            missing = protect.apply(aws.cfn, console, stack["StackId"], prep.stack_name)
            _protection_outcome(missing, prep.stack_name, "has no changes")
    return 0


def _print_outputs(aws: awsmod.Aws, console: Console, stack_name: str) -> dict[str, Any] | None:
    """The root's Outputs, when the service returns them (moto drops them after a change set);
    returns the stack."""
    stack = changeset.describe_stack(aws.cfn, stack_name)
    outputs = (stack or {}).get("Outputs") or []
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
    return stack


# ------------------------------------------------------------------------------------------
# package
# ------------------------------------------------------------------------------------------
def write_parameter_file(path: Path, prep: Prepared, notes: list[str]) -> list[str]:
    """The merged parameter values (file, then --parameter) in CloudFormation's format, for
    ``create-stack --parameters file://``: a first create, so EnableDeletionProtection is false
    as in ``deploy``. NoEcho values are never written; their keys are returned so the command
    can say to add them."""
    no_echo = prep.tree.no_echo()
    values = dict(prep.params.values)
    _deletion_protection(prep.tree.parameter_specs(), prep.params, changeset.CREATE, values, {}, notes)
    entries = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(values.items()) if k not in no_echo
    ]
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return sorted(k for k in values if k in no_echo)


def package_command(opts: PackageOptions, hooks: Hooks | None = None) -> int:
    hooks = hooks or Hooks()
    console = hooks.console
    problem = tree.output_dir_problem(opts.out)
    if problem:  # before the lint and before the artifacts bucket is made or anything uploaded
        raise BadInput(f"--out {opts.out}: {problem}")
    prep = prepare(opts.target, opts.sources, console)
    aws = hooks.aws or awsmod.Aws.from_options(opts.target.profile, opts.target.region)
    who = awsmod.identity(aws)
    console.say(f"account {who.account} as {who.arn}; region {aws.region}")
    bucket = package.ensure_bucket(aws, console, who.account, opts.sources.artifact_bucket)
    packaged = package.package(aws, console, bucket, prep.tree, upload_root=True)
    out = opts.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        target = out / prep.tree.root.name
        target.write_text(packaged.root_text, encoding="utf-8")
        param_file = (out / PARAMETER_FILE).resolve()
        notes: list[str] = []
        withheld = write_parameter_file(param_file, prep, notes)
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write: {exc.strerror}") from None
    caps = " ".join(prep.capabilities)
    command = (
        f"  aws cloudformation create-stack --stack-name {shlex.quote(prep.stack_name)} "
        f"--template-url {packaged.root_url} --parameters {shlex.quote(f'file://{param_file}')}"
        + (f" --capabilities {caps}" if caps else "")
    )
    console.say(
        f"wrote {target} (the packaged root; its children are in s3://{bucket.name}/{package.KEY_PREFIX}/)",
        f"wrote {param_file} (the parameter values: {prep.params.label} and --parameter)",
        f"root template URL: {packaged.root_url}",
        "create the stack from it (or paste the URL into the CloudFormation console):",
        command,
    )
    for key in withheld:
        console.say(
            f"  note: {key} is NoEcho and was not written to {PARAMETER_FILE}; add "
            f"ParameterKey={key},ParameterValue=... to the command yourself"
        )
    for note in notes:
        console.say(f"  note: {note}")
    return 0
