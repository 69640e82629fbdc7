"""``python -m karematch_cfn`` / ``karematch-cfn``: deploy and operate the KareMatch templates.

Subcommands: ``deploy`` (package, review, guard, execute and watch a change set), ``package``
(upload the templates, write the packaged root), ``status`` (live stacks, protection, image tag,
task counts), ``drift`` (changes made outside CloudFormation), ``smoke`` (``/health`` through the
ALB, the SPA through CloudFront), ``publish-frontend`` (upload a built SPA, index.html last, and
invalidate), ``destroy`` (delete an environment, listing what is kept) and ``cost`` (a monthly
estimate from the rendered templates, no AWS access).

``build_parser()`` returns the whole argparse parser (the CI workflow's tests parse its
commands with it); ``main(argv)`` runs a command and returns its exit code.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karematch_cfn import names
from karematch_cfn.deploy.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    BadInput,
    DeployError,
    exit_code_text,
)
from karematch_cfn.deploy.options import DeployOptions, PackageOptions, Sources, Target

if TYPE_CHECKING:
    from karematch_cfn.deploy import deployer

PROG = "karematch-cfn"
DESCRIPTION = (
    "Deploy the KareMatch CloudFormation templates through reviewed, data-guarded change sets "
    "(boto3), and operate an environment: its status, drift, a smoke test, publishing the SPA, "
    "teardown and a cost estimate. Works against AWS and, with AWS_ENDPOINT_URL, against a local "
    "emulator."
)
DEPLOY_DESCRIPTION = """\
Deploy the nested template tree as the stack karematch-ENV, in this order:
  1. load and validate parameters/ENV.json (the loader build.py uses) and the command line;
     lint the tree with cfn-lint; for the project's templates/ also check they are exactly
     what the code renders (build.py --check); enforce CloudFormation's limits;
  2. upload each child template to the artifacts bucket under a content-hash key (skipped
     when already there) and rewrite the root's TemplateURLs (a root over 51,200 bytes is
     uploaded too);
  3. create a CREATE or UPDATE change set with nested change sets and the capabilities the
     templates need; print the parameters and one table per stack that changes;
  4. no changes is success: the change set is deleted (a change set that changes only
     parameters, outputs or tags is executed);
  5. the data guard refuses (exit 3, change set kept) when a database, bucket, secret, log
     group, repository, KMS key or a whole child stack would be removed or replaced, or a
     secret's generated value regenerated;
  6. execute after confirmation, streaming stack events (nested stacks included) until a
     terminal status; on failure print the first failed resources and how to recover;
  7. after a prod deploy: stack policies denying Update:Replace/Update:Delete on the stateful
     resources, then termination protection on the root (exit 6 if either is not applied);
  8. the smoke test (see the smoke command; --no-smoke skips it; exit 10 if it fails).
Before an update of prod (or with --check-drift) a drifted stack is refused (exit 11) unless
--allow-drift. An update that touches the ECS service, task definition or load balancer of a
running service carries the service-health alarms as rollback triggers (--monitoring-minutes),
unless one is already in ALARM; the smoke test then runs inside the monitoring window and its
failure cancels the update, which rolls back.
On an update, ImageTag keeps its deployed value and DesiredCount the live task count of the
ECS service (autoscaling's) unless --image-tag / --desired-count are given. On a first create,
EnableDeletionProtection is false (a failed create can roll back); the next deploy turns it on.
"""
PACKAGE_DESCRIPTION = """\
Lint and check the tree like deploy, upload every template (the root too) to the artifacts
bucket under content-hash keys, and write the packaged root (TemplateURLs pointing at S3) to
OUT/karematch.yaml, and the parameter values (parameters/ENV.json and --parameter, never
NoEcho ones) to OUT/parameters.json. Prints the root's S3 URL for the CloudFormation console
and an `aws cloudformation create-stack --template-url ... --parameters file://...` command.
"""
ENVIRONMENT_HELP = (
    "environment: AWS_PROFILE, AWS_REGION/AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID/"
    "AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE and "
    "AWS_ENDPOINT_URL (a local emulator) are honoured as by the AWS CLI."
)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


MAX_POLL_SECONDS = 600.0  # a longer pause between polls hides a failure for longer than a deploy takes


def _poll_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= MAX_POLL_SECONDS:  # refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: more than 0, at most {MAX_POLL_SECONDS:g}")
    return value


def _monitoring_minutes(text: str) -> int:
    value = _non_negative_int(text)
    if value > 180:  # RollbackConfiguration.MonitoringTimeInMinutes: 0 to 180
        raise argparse.ArgumentTypeError(f"{text!r}: allowed: 0 to 180")
    return value


def _shown(text: str, limit: int = 64) -> str:
    """A user's input inside an error line, cut short when long."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


# CloudFormation's stack name: a letter, then letters, digits and hyphens, at most 128.
STACK_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9]{0,127}")


def _stack_name(text: str) -> str:
    if not STACK_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{_shown(text)}: allowed: a letter, then letters, digits and hyphens (at most 128)"
        )
    return text


# S3 general purpose bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and
# ending with a letter or digit, no "..", not an IP address, none of the reserved prefixes/suffixes.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BUCKET_RESERVED = (("xn--", "sthree-", "amzn-s3-demo-"), ("-s3alias", "--ol-s3", ".mrap", "--x-s3"))


def _bucket_name(text: str) -> str:
    if (
        not BUCKET_NAME.fullmatch(text)
        or ".." in text
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text)
        or text.startswith(BUCKET_RESERVED[0])
        or text.endswith(BUCKET_RESERVED[1])
    ):
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not an S3 bucket name; allowed: 3-63 lowercase letters, digits, "
            "dots and hyphens, starting and ending with a letter or digit"
        )
    return text


def check_endpoint_environment(environ: Mapping[str, str]) -> None:
    """AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), read by botocore, must be an http(s)
    URL with a host: refused here (exit 2) rather than failing as an AWS error later."""
    for name, value in sorted(environ.items()):
        if not name.startswith("AWS_ENDPOINT_URL") or not value:
            continue
        try:
            url = urllib.parse.urlsplit(value)
            url.port  # noqa: B018 -- raises ValueError on a port that is not a number
        except ValueError:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.hostname:
            raise BadInput(f"{name}={_shown(value)}: not a URL; allowed: http(s)://HOST[:PORT]")


def _common(p: argparse.ArgumentParser) -> None:
    """Options deploy and package share."""
    p.add_argument(
        "--env",
        required=True,
        metavar="ENV",
        help=f"environment to deploy: {', '.join(names.ENVIRONMENTS)} (selects "
        "parameters/ENV.json and the stack name karematch-ENV)",
    )
    p.add_argument(
        "--template-dir",
        type=Path,
        metavar="DIR",
        help="deploy this template tree as it is (root karematch.yaml plus the "
        "children its relative TemplateURLs name), after the lint; default: "
        "the project's templates/, which must also be exactly what the code "
        "renders",
    )
    p.add_argument(
        "--parameters",
        type=Path,
        metavar="FILE",
        help="parameter file in CloudFormation's format (default: parameters/ENV.json)",
    )
    p.add_argument(
        "--parameter",
        action="append",
        metavar="KEY=VALUE",
        help="set one root parameter over the file's value (repeatable); staging and "
        "prod need --parameter CertificateArn=arn:aws:acm:...",
    )
    p.add_argument(
        "--artifact-bucket",
        type=_bucket_name,
        metavar="BUCKET",
        help="S3 bucket for the packaged templates (default: "
        "karematch-cfn-artifacts-ACCOUNT-REGION, created once with encryption, "
        "public access block, versioning, a TLS-only policy and a lifecycle if "
        "missing, and those settings re-checked and repaired before every upload)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="render and lint again even when build.py (or an earlier deploy) already checked "
        "these exact templates with this toolchain today",
    )
    _where(p)


def _where(p: argparse.ArgumentParser, *, env_help: str | None = None) -> None:
    """Which stack and which AWS session: every subcommand has these (``--env`` too when
    ``env_help`` is given)."""
    if env_help is not None:
        p.add_argument("--env", required=True, metavar="ENV", help=env_help)
    p.add_argument(
        "--stack-name", type=_stack_name, metavar="NAME", help="root stack name (default: karematch-ENV)"
    )
    p.add_argument("--profile", metavar="NAME", help="AWS profile (default: AWS_PROFILE or default)")
    p.add_argument(
        "--region",
        metavar="REGION",
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)",
    )


def _env_help(verb: str) -> str:
    return f"environment to {verb}: {', '.join(names.ENVIRONMENTS)} (the stack karematch-ENV)"


def _aws(target: Target, hooks: deployer.Hooks) -> Any:
    """The environment checked, then the session (no AWS call yet)."""
    from karematch_cfn.deploy import aws as awsmod
    from karematch_cfn.deploy import inputs

    inputs.check_environment(target.env)
    return hooks.aws or awsmod.Aws.from_options(target.profile, target.region)


def _target(args: argparse.Namespace) -> Target:
    return Target(
        env=args.env,
        stack_name=args.stack_name or names.DEFAULT_STACK_NAME.format(env=args.env),
        profile=args.profile,
        region=args.region,
    )


def _sources(args: argparse.Namespace) -> Sources:
    return Sources(
        template_dir=args.template_dir,
        parameter_file=args.parameters,
        assignments=tuple(args.parameter or ()),
        artifact_bucket=args.artifact_bucket,
        use_cache=not args.no_cache,
    )


def build_parser() -> argparse.ArgumentParser:
    """The full parser: every subcommand with every option (one ``_add_*`` block each)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=f"{exit_code_text()}\n\n{ENVIRONMENT_HELP}\nSee docs/deploying.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_deploy(sub)
    _add_package(sub)
    _add_status(sub)
    _add_destroy(sub)
    _add_publish_frontend(sub)
    _add_smoke(sub)
    _add_drift(sub)
    _add_cost(sub)
    return parser


# ------------------------------------------------------------------------------------------
# deploy
# ------------------------------------------------------------------------------------------


def _aws_command(sub: argparse._SubParsersAction, name: str, *, help: str, description: str):
    """A subcommand that talks to AWS: its description as written, the exit codes and the AWS
    environment variables in its epilog."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=f"{exit_code_text()}\n\n{ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _poll_interval(p: argparse.ArgumentParser, *, polled: str, more: str = "") -> None:
    p.add_argument(
        "--poll-interval",
        type=_poll_seconds,
        default=5.0,
        metavar="SECONDS",
        help=f"seconds between polls of {polled} (default: 5; more than 0, at most {MAX_POLL_SECONDS:g}){more}",
    )


def _add_deploy(sub: argparse._SubParsersAction) -> None:
    d = _aws_command(
        sub,
        "deploy",
        help="package, review, guard, execute and watch a change set",
        description=DEPLOY_DESCRIPTION,
    )
    _common(d)
    d.add_argument(
        "--image-tag",
        metavar="TAG",
        help="backend image tag to deploy (sets ImageTag); on an update without it "
        "the deployed tag is kept; never 'latest'",
    )
    d.add_argument(
        "--desired-count",
        type=_non_negative_int,
        metavar="N",
        help="backend task count (sets DesiredCount); on an update without it the "
        "live count autoscaling set is kept",
    )
    d.add_argument(
        "--allow-replacement",
        action="append",
        metavar="CHILD/LOGICAL_ID",
        help="lift the data guard for one resource named as the guard names it, "
        "e.g. DatabaseStack/DatabaseInstance (repeatable; the stack policy "
        "protecting it is relaxed during the deploy and restored after)",
    )
    d.add_argument(
        "--cfn-role-arn",
        metavar="ARN",
        help="IAM role CloudFormation assumes to make the changes (RoleARN), e.g. the "
        "execution role bootstrap.yaml creates for CI",
    )
    d.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="execute without asking (CI); without it and without a terminal the "
        "deploy stops (exit 2) instead of waiting",
    )
    d.add_argument(
        "--dry-run",
        action="store_true",
        help="stop after the review table and the guard; delete the change set and "
        "any empty stack it created (the artifacts bucket and the uploaded "
        "templates stay)",
    )
    _poll_interval(
        d,
        polled="the stack events while executing",
        more="; the change set is polled every SECONDS or 2 seconds, whichever is shorter",
    )
    d.add_argument(
        "--no-smoke",
        action="store_true",
        help="skip the smoke test after a successful deploy (see the smoke command)",
    )
    d.add_argument(
        "--smoke-deadline",
        type=_poll_seconds,
        default=120.0,
        metavar="SECONDS",
        help=f"how long the smoke test retries a failing check (default: 120; at most {MAX_POLL_SECONDS:g})",
    )
    d.add_argument(
        "--monitoring-minutes",
        type=_monitoring_minutes,
        default=10,
        metavar="MINUTES",
        help="rollback triggers' monitoring period after an update that touches the service, "
        "task definition or load balancer (default: 10; 0 to 180; 0 never arms them)",
    )
    d.add_argument(
        "--check-drift",
        action="store_true",
        help="detect drift before an update outside prod too (prod always does) and refuse a "
        "drifted stack (exit 11)",
    )
    d.add_argument(
        "--allow-drift",
        action="store_true",
        help="deploy without the drift check, overwriting changes made outside CloudFormation",
    )
    d.set_defaults(handler="deploy")


def _deploy_options(args: argparse.Namespace) -> DeployOptions:
    return DeployOptions(
        target=_target(args),
        sources=_sources(args),
        image_tag=args.image_tag,
        desired_count=args.desired_count,
        allow_replacement=tuple(args.allow_replacement or ()),
        cfn_role_arn=args.cfn_role_arn,
        yes=args.yes,
        dry_run=args.dry_run,
        poll_interval=args.poll_interval,
        smoke=not args.no_smoke,
        smoke_deadline=args.smoke_deadline,
        monitoring_minutes=args.monitoring_minutes,
        check_drift=args.check_drift,
        allow_drift=args.allow_drift,
    )


def _run_deploy(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import deployer

    return deployer.deploy(_deploy_options(args), hooks)


# ------------------------------------------------------------------------------------------
# package
# ------------------------------------------------------------------------------------------
def _add_package(sub: argparse._SubParsersAction) -> None:
    p = _aws_command(
        sub,
        "package",
        help="upload the templates and write the packaged root",
        description=PACKAGE_DESCRIPTION,
    )
    _common(p)
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory to write the packaged root karematch.yaml and parameters.json into",
    )
    p.set_defaults(handler="package")


def _run_package(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import deployer

    return deployer.package_command(
        PackageOptions(target=_target(args), sources=_sources(args), out=args.out), hooks
    )


# ------------------------------------------------------------------------------------------
# status
# ------------------------------------------------------------------------------------------
STATUS_DESCRIPTION = """\
Show a live environment without deploying: the root and every nested stack with its status,
last update and stack policy; termination protection; the deployed image tag and the ECS
service's desired/running/pending task counts; the root's Outputs. Reads only.
The exit code is the verdict: 0 every stack stable and healthy (a service still starting
tasks is said, not failed); 7 no such stack; 4 a stack failed (ROLLBACK_COMPLETE, *_FAILED);
8 busy (an operation in progress); 9 stable but the last deploy rolled back
(UPDATE_ROLLBACK_COMPLETE).
"""


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = _aws_command(
        sub,
        "status",
        help="show the live stacks, protection, image tag and task counts",
        description=STATUS_DESCRIPTION,
    )
    _where(p, env_help=_env_help("show"))
    p.set_defaults(handler="status")


def _run_status(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import status

    target = _target(args)
    return status.status_command(target, _aws(target, hooks), hooks.console)


# ------------------------------------------------------------------------------------------
# destroy
# ------------------------------------------------------------------------------------------
DESTROY_DESCRIPTION = """\
Delete the environment's root stack and its nested stacks. First it lists what will be deleted
and what will be kept: every resource whose DeletionPolicy retains it (buckets, log groups,
secrets, the repository, KMS keys) or snapshots it (the database's final snapshot), by physical
id. Then it asks you to type the stack name (or --yes; without a terminal and without --yes it
stops, exit 2). Prod also needs --allow-prod: only then does it lift the database's and load
balancer's deletion protection (an update with EnableDeletionProtection=false and the previous
template) and the root's termination protection itself. It streams the delete's events and
ends with what remains and the commands that remove it for good; audit logs (CloudTrail, flow
and access logs) get no such command unless --include-audit-logs (HIPAA keeps them six years).
"""


def _add_destroy(sub: argparse._SubParsersAction) -> None:
    p = _aws_command(
        sub,
        "destroy",
        help="delete an environment, listing what is kept and how to remove it",
        description=DESTROY_DESCRIPTION,
    )
    _where(p, env_help=_env_help("delete"))
    p.add_argument(
        "-y", "--yes", action="store_true", help="delete without asking for the stack name (CI, scripts)"
    )
    p.add_argument(
        "--allow-prod",
        action="store_true",
        help="required to destroy prod: lifts deletion and termination protection itself",
    )
    p.add_argument(
        "--include-audit-logs",
        action="store_true",
        help="also print the commands that remove the audit logs for good (by default they are "
        "listed as kept: HIPAA's six-year retention)",
    )
    _poll_interval(p, polled="the stack events")
    p.set_defaults(handler="destroy")


def _run_destroy(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import destroy

    target = _target(args)
    opts = destroy.DestroyOptions(
        target=target,
        yes=args.yes,
        allow_prod=args.allow_prod,
        include_audit_logs=args.include_audit_logs,
        poll_interval=args.poll_interval,
    )
    return destroy.destroy_command(
        opts,
        lambda: _aws(target, hooks),
        hooks.console,
        interactive=hooks.interactive,
        prompt=hooks.prompt,
        sleep=hooks.sleep,
    )


# ------------------------------------------------------------------------------------------
# publish-frontend
# ------------------------------------------------------------------------------------------
PUBLISH_DESCRIPTION = """\
Upload a built SPA (DIST holds index.html, hashed files under assets/) to the environment's
frontend bucket (the stack's FrontendBucketName Output):
  - Content-Type from a fixed table by extension; Cache-Control: files under assets/ are
    hashed build output, "public, max-age=31536000, immutable"; everything else (index.html,
    JSON, manifests, un-hashed files) "no-cache, max-age=0";
  - assets first (a key already there is skipped), index.html last, so no visitor ever gets
    an index.html naming files that are not there yet; progress for files over 8 MB;
  - the previous release's assets stay (open tabs keep loading them) and older ones are
    deleted (a release manifest object, .karematch/releases.json, records each release);
  - one CloudFront invalidation of the un-hashed paths uploaded (/ and /index.html included).
--dry-run prints all of that and changes nothing.
"""


def _add_publish_frontend(sub: argparse._SubParsersAction) -> None:
    p = _aws_command(
        sub,
        "publish-frontend",
        help="upload a built SPA with the right headers, index.html last, and invalidate",
        description=PUBLISH_DESCRIPTION,
    )
    _where(p, env_help=_env_help("publish to"))
    p.add_argument(
        "--dir", required=True, type=Path, metavar="DIST", help="the built SPA (contains index.html)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be uploaded, deleted and invalidated"
    )
    p.set_defaults(handler="publish-frontend")


def _run_publish_frontend(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import publish

    target = _target(args)
    opts = publish.PublishOptions(target=target, directory=args.dir, dry_run=args.dry_run)
    return publish.publish_command(opts, lambda: _aws(target, hooks), hooks.console)


# ------------------------------------------------------------------------------------------
# smoke
# ------------------------------------------------------------------------------------------
SMOKE_DESCRIPTION = """\
Check that the environment answers, from its root stack's Outputs, one line per check:
  - API: GET /health through the load balancer answers 200 (HTTPS when the stack has a
    CertificateArn; the certificate names the app's domain, so its host name is not checked);
  - SPA: a deep client-side route through CloudFront answers 200 text/html;
  - a missing hashed asset (/assets/...) does not come back as HTML with a one-year cache header.
Each check is retried every 5 seconds until the deadline. Checks that cannot apply yet are
skipped and say why (no image deployed, an empty frontend bucket, a missing Output). deploy runs
it at the end of every successful deploy unless --no-smoke. Exit 10 when a check fails.
"""


def _add_smoke(sub: argparse._SubParsersAction) -> None:
    p = _aws_command(
        sub,
        "smoke",
        help="check /health through the ALB and the SPA through CloudFront",
        description=SMOKE_DESCRIPTION,
    )
    _where(p, env_help=_env_help("check"))
    p.add_argument(
        "--deadline",
        type=_poll_seconds,
        default=120.0,
        metavar="SECONDS",
        help=f"retry failing checks until this many seconds have passed (default: 120; at most {MAX_POLL_SECONDS:g})",
    )
    p.add_argument(
        "--api-url", type=_http_url, metavar="URL", help="check this API base URL instead of the ALB's"
    )
    p.add_argument(
        "--frontend-url",
        type=_http_url,
        metavar="URL",
        help="check this site URL (e.g. the custom domain) instead of the CloudFront domain",
    )
    p.set_defaults(handler="smoke")


def _http_url(text: str) -> str:
    url = urllib.parse.urlsplit(text)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise argparse.ArgumentTypeError(f"{_shown(text)}: allowed: http(s)://HOST[:PORT][/PATH]")
    return text


def _live_stack(aws: Any, target: Target) -> dict[str, Any]:
    """The environment's live root stack, for the commands that only read and check it: exit 7
    when it does not exist, exit 2 when it belongs to another environment."""
    from karematch_cfn.deploy import changeset
    from karematch_cfn.deploy.deployer import check_stack_environment
    from karematch_cfn.deploy.errors import StackMissing

    stack = changeset.describe_stack(aws.cfn, target.stack_name)
    if stack is None:
        raise StackMissing(f"stack {target.stack_name} does not exist in {aws.region}; nothing to check")
    check_stack_environment(stack, target.env, target.stack_name)
    return stack


def _run_smoke(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import smoke

    target = _target(args)
    aws = _aws(target, hooks)
    stack = _live_stack(aws, target)
    found = smoke.checks(aws, stack, api_url=args.api_url, frontend_url=args.frontend_url)
    smoke.run(found, hooks.console, deadline=args.deadline, sleep=hooks.sleep)
    return 0


# ------------------------------------------------------------------------------------------
# drift
# ------------------------------------------------------------------------------------------
DRIFT_DESCRIPTION = """\
Detect drift (changes made outside CloudFormation) on the root stack and on every nested stack:
detection does not descend into nested stacks, so it is started on each, all at once, and
waited for. Each drifted resource is printed (Child/LogicalId, type, MODIFIED or DELETED) with
the properties that differ, expected and actual values (values of password, secret, token or
credential properties masked). Expected drift is left out and counted: the ECS service's
DesiredCount, which autoscaling moves. Exit 0 no drift; 11 drift found; 4 when a detection
failed (its reason is printed) and nothing drifted. deploy runs the same check before every
prod update (--check-drift elsewhere) and refuses a drifted stack unless --allow-drift.
"""


def _add_drift(sub: argparse._SubParsersAction) -> None:
    p = _aws_command(
        sub,
        "drift",
        help="detect changes made outside CloudFormation, nested stacks included",
        description=DRIFT_DESCRIPTION,
    )
    _where(p, env_help=_env_help("check"))
    _poll_interval(p, polled="the detections")
    p.set_defaults(handler="drift")


def _run_drift(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import drift
    from karematch_cfn.deploy.errors import DeployFailed, DriftFound

    target = _target(args)
    aws = _aws(target, hooks)
    stack = _live_stack(aws, target)
    report = drift.detect(
        aws, hooks.console, stack["StackId"], interval=args.poll_interval, sleep=hooks.sleep
    )
    drift.show(report, hooks.console)
    if report.drifted:
        raise DriftFound(
            f"{target.stack_name}: {len(report.drifted)} resource(s) changed outside CloudFormation",
            "bring each change into the templates or undo it; a deploy would overwrite it",
        )
    if report.problems:
        raise DeployFailed(f"drift detection failed on {len(report.problems)} stack(s); see the warnings")
    return 0


# ------------------------------------------------------------------------------------------
# cost: the monthly estimate (karematch_cfn/cost.py); no AWS access
# ------------------------------------------------------------------------------------------
COST_DESCRIPTION = """\
Estimate the monthly cost of one environment from the templates as that environment creates
them: NAT gateways and their public IPv4 addresses, the load balancer (hours, a baseline of
capacity units, its public IPv4 addresses), database hours and gp3 storage (twice for
Multi-AZ), Fargate vCPU and memory at the desired count, KMS keys, secrets, alarms, dashboard,
trail, WAF when present, Container Insights, backups; usage-based items (data transfer, NAT
data, logs, CloudFront) rest on karematch_cfn/pricing/usage.yaml. Prices: karematch_cfn/
pricing/prices.yaml (region and the date they were read). No AWS access.
"""


def _add_cost(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "cost",
        help="estimate the monthly cost of an environment (no AWS access)",
        description=COST_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument(
        "--env", required=True, metavar="ENV", help=f"environment: {', '.join(names.ENVIRONMENTS)}"
    )
    c.add_argument(
        "--json", action="store_true", help='print {"monthly_usd": ..., "items": [...]} instead of a table'
    )
    c.set_defaults(handler="cost")


def _run_cost(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn import cost

    return cost.command(args.env, json_output=args.json)


# ------------------------------------------------------------------------------------------
# running a command
# ------------------------------------------------------------------------------------------
HANDLERS = {
    "deploy": _run_deploy,
    "package": _run_package,
    "status": _run_status,
    "destroy": _run_destroy,
    "publish-frontend": _run_publish_frontend,
    "smoke": _run_smoke,
    "drift": _run_drift,
    "cost": _run_cost,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an option error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT

    return run(args)


def run(args: argparse.Namespace, hooks: deployer.Hooks | None = None) -> int:
    """Run a parsed command; an expected failure is one ``error:`` line and its exit code."""
    from karematch_cfn.deploy import deployer

    hooks = hooks or deployer.Hooks()
    console = hooks.console
    try:
        check_endpoint_environment(os.environ)
        return HANDLERS[args.handler](args, hooks)
    except DeployError as exc:
        console.error(exc.message)
        for hint in exc.hints:
            console.hint(hint)
        return exc.code
    except KeyboardInterrupt:
        console.error("interrupted before anything was changed")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
