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


def build_parser() -> argparse.ArgumentParser:
    """The full parser: ``deploy`` and ``package`` with every option."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=f"{exit_code_text()}\n\n{ENVIRONMENT_HELP}\nSee docs/deploying.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    return parser


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
    handlers = {"deploy": deployer.deploy, "package": deployer.package_command}
    try:
        return handlers[args.handler](args, hooks)
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
