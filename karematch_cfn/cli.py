"""``python -m karematch_cfn`` / ``karematch-cfn``: deploy and package the KareMatch templates.

``build_parser()`` returns the whole argparse parser (the CI workflow's tests parse its
commands with it); ``main(argv)`` runs a command and returns its exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from karematch_cfn import names
from karematch_cfn.deploy.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    DeployError,
    exit_code_text,
)
from karematch_cfn.deploy.options import DeployOptions, PackageOptions, Sources, Target

if TYPE_CHECKING:
    from karematch_cfn.deploy import deployer

PROG = "karematch-cfn"
DESCRIPTION = (
    "Deploy the KareMatch CloudFormation templates through reviewed, data-guarded change sets "
    "(boto3). Works against AWS and, with AWS_ENDPOINT_URL, against a local emulator."
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
     resources, then termination protection on the root (exit 6 if either is not applied).
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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not more than 0")
    return value


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
        metavar="BUCKET",
        help="S3 bucket for the packaged templates (default: "
        "karematch-cfn-artifacts-ACCOUNT-REGION, created once with encryption, "
        "public access block, versioning, a TLS-only policy and a lifecycle if "
        "missing, and those settings re-checked and repaired on every use)",
    )
    p.add_argument("--stack-name", metavar="NAME", help="root stack name (default: karematch-ENV)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="render and lint again even when build.py (or an earlier deploy) already checked "
        "these exact templates with this toolchain today",
    )
    p.add_argument("--profile", metavar="NAME", help="AWS profile (default: AWS_PROFILE or default)")
    p.add_argument(
        "--region",
        metavar="REGION",
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)",
    )


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
    _add_cost(sub)
    return parser


# ------------------------------------------------------------------------------------------
# deploy
# ------------------------------------------------------------------------------------------
def _add_deploy(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "deploy",
        help="package, review, guard, execute and watch a change set",
        description=DEPLOY_DESCRIPTION,
        epilog=f"{exit_code_text()}\n\n{ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    d.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between polls of the stack events while executing (default: "
        "5; more than 0); the change set is polled every SECONDS or 2 seconds, "
        "whichever is shorter",
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
    )


def _run_deploy(args: argparse.Namespace, hooks: deployer.Hooks) -> int:
    from karematch_cfn.deploy import deployer

    return deployer.deploy(_deploy_options(args), hooks)


# ------------------------------------------------------------------------------------------
# package
# ------------------------------------------------------------------------------------------
def _add_package(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "package",
        help="upload the templates and write the packaged root",
        description=PACKAGE_DESCRIPTION,
        epilog=f"{exit_code_text()}\n\n{ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        return HANDLERS[args.handler](args, hooks)
    except DeployError as exc:
        console.error(exc.message)
        for hint in exc.hints:
            console.hint(hint)
        return exc.code
    except KeyboardInterrupt:
        console.error("interrupted before anything was deployed")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
