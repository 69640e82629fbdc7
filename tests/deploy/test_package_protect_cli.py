"""Packaging (bucket settings, URL forms, content keys), protection documents, inputs, and the
command line's documented surface (options, exit codes)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from karematch_cfn import cli
from karematch_cfn.deploy import errors, inputs, package, protect
from karematch_cfn.deploy.aws import Aws
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import AccessProblem, BadInput, LintError

from .conftest import FIXTURES

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]


def s3_client(region: str):
    return boto3.client(
        "s3",
        region_name=region,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url=f"https://s3.{region}.amazonaws.com",
    )


def quiet() -> Console:
    return Console(io.StringIO(), io.StringIO())


# ------------------------------------------------------------------------------------------
# Packaging
# ------------------------------------------------------------------------------------------
def test_template_urls_use_s3s_own_forms_never_the_endpoint():
    assert package.template_url("b", "us-east-1", "k/x.yaml") == "https://b.s3.amazonaws.com/k/x.yaml"
    assert package.template_url("b", "eu-west-1", "k") == "https://b.s3.eu-west-1.amazonaws.com/k"
    assert package.template_url("a.b", "eu-west-1", "k") == "https://s3.eu-west-1.amazonaws.com/a.b/k"
    assert package.template_url("b", "cn-north-1", "k") == "https://b.s3.cn-north-1.amazonaws.com.cn/k"


def test_keys_are_content_hashes():
    assert package.content_key("network.yaml", b"x") == package.content_key("network.yaml", b"x")
    assert package.content_key("network.yaml", b"x") != package.content_key("network.yaml", b"y")
    assert re.fullmatch(r"templates/network-[0-9a-f]{64}\.yaml", package.content_key("network.yaml", b"x"))


def test_the_default_bucket_is_the_bootstrap_name_for_this_account_and_region():
    assert (
        package.default_bucket_name("111122223333", "eu-west-1")
        == "karematch-cfn-artifacts-111122223333-eu-west-1"
    )


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_a_missing_default_bucket_is_created_locked_down(region):
    s3 = s3_client(region)
    name = package.default_bucket_name("111122223333", region)
    own = {"Bucket": name, "ExpectedBucketOwner": "111122223333"}
    create = {"Bucket": name}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    requests: dict[str, dict] = {}
    s3.meta.events.register(
        "before-parameter-build.s3.*",
        lambda params, model, **_: requests.__setitem__(model.name, dict(params)),
    )
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "404", "Not Found", 404, expected_params=own)
        stub.add_response("create_bucket", {"Location": f"/{name}"}, create)
        for op in (
            "put_public_access_block",
            "put_bucket_encryption",
            "put_bucket_versioning",
            "put_bucket_policy",
            "put_bucket_lifecycle_configuration",
        ):
            stub.add_response(op, {}, {**own, **dict.fromkeys(_extra(op), ANY)})
        console = quiet()
        bucket = package.ensure_bucket(
            Aws(clients={"s3": s3, "cloudformation": _cfn(region)}), console, "111122223333", None
        )
        stub.assert_no_pending_responses()

    assert (bucket.name, bucket.region) == (name, region)
    assert console.out.getvalue().startswith(
        f"creating artifacts bucket {name} (public access blocked, "
        "encrypted, versioned, TLS only, old templates expire)"
    )
    assert all(requests["PutPublicAccessBlock"]["PublicAccessBlockConfiguration"].values())
    assert requests["PutBucketVersioning"]["VersioningConfiguration"] == {"Status": "Enabled"}
    rule = requests["PutBucketEncryption"]["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    (statement,) = json.loads(requests["PutBucketPolicy"]["Policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    assert f"arn:aws:s3:::{name}/*" in statement["Resource"]
    (lifecycle,) = requests["PutBucketLifecycleConfiguration"]["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Expiration"]["Days"] > package.REFRESH_DAYS  # a refreshed key outlives its use


def _extra(op: str) -> list[str]:
    return {
        "put_public_access_block": ["PublicAccessBlockConfiguration"],
        "put_bucket_encryption": ["ServerSideEncryptionConfiguration"],
        "put_bucket_versioning": ["VersioningConfiguration"],
        "put_bucket_policy": ["Policy"],
        "put_bucket_lifecycle_configuration": ["LifecycleConfiguration"],
    }[op]


def _cfn(region: str):
    return boto3.client(
        "cloudformation", region_name=region, aws_access_key_id="x", aws_secret_access_key="x"
    )


def _verify_stub(
    stub, name: str, own: dict, *, policy=None, lifecycle=None, encryption_denied=False, versioning="Enabled"
) -> None:
    stub.add_response("head_bucket", {}, own)
    stub.add_response(
        "get_public_access_block",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            }
        },
        own,
    )
    if encryption_denied:
        stub.add_client_error(
            "get_bucket_encryption", "AccessDenied", "Access Denied", 403, expected_params=own
        )
    else:
        stub.add_response(
            "get_bucket_encryption",
            {
                "ServerSideEncryptionConfiguration": {
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                }
            },
            own,
        )
    stub.add_response("get_bucket_versioning", {"Status": versioning} if versioning else {}, own)
    if policy is None:
        stub.add_client_error("get_bucket_policy", "NoSuchBucketPolicy", "none", 404, expected_params=own)
    else:
        stub.add_response("get_bucket_policy", {"Policy": policy}, own)
    if lifecycle is None:
        stub.add_client_error(
            "get_bucket_lifecycle_configuration",
            "NoSuchLifecycleConfiguration",
            "none",
            404,
            expected_params=own,
        )
    else:
        stub.add_response("get_bucket_lifecycle_configuration", {"Rules": lifecycle}, own)


def test_a_default_bucket_that_exists_is_verified_and_what_it_lacks_is_set_again():
    s3 = s3_client("us-east-1")
    name = package.default_bucket_name("111122223333", "us-east-1")
    own = {"Bucket": name, "ExpectedBucketOwner": "111122223333"}
    console = quiet()
    with Stubber(s3) as stub:
        _verify_stub(stub, name, own, versioning=None)  # versioning never enabled, no policy, no lifecycle
        stub.add_response(
            "put_bucket_versioning", {}, {**own, "VersioningConfiguration": {"Status": "Enabled"}}
        )
        stub.add_response("put_bucket_policy", {}, {**own, "Policy": ANY})
        stub.add_response("put_bucket_lifecycle_configuration", {}, {**own, "LifecycleConfiguration": ANY})
        package.ensure_bucket(
            Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")}), console, "111122223333", None
        )
        stub.assert_no_pending_responses()

    assert (
        f"warning: artifacts bucket {name} is not versioned, TLS only, old templates expire"
        in console.err.getvalue()
    )


def test_a_bucket_policy_or_lifecycle_of_its_own_is_reported_never_replaced_and_unreadable_settings_warn():
    s3 = s3_client("us-east-1")
    name = package.default_bucket_name("111122223333", "us-east-1")
    own = {"Bucket": name, "ExpectedBucketOwner": "111122223333"}
    theirs = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{name}/*",
                }
            ],
        }
    )
    keep_logs = [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 9}}
    ]
    console = quiet()
    with Stubber(s3) as stub:  # no put at all: the Stubber fails on any unexpected call
        _verify_stub(stub, name, own, policy=theirs, lifecycle=keep_logs, encryption_denied=True)
        package.ensure_bucket(
            Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")}), console, "111122223333", None
        )
        stub.assert_no_pending_responses()

    err = console.err.getvalue()
    assert "has a bucket policy that is not 'TLS only'; not replaced" in err
    assert "has a bucket lifecycle configuration that is not 'old templates expire'; not replaced" in err
    assert "could not verify encrypted (s3:GetEncryptionConfiguration: AccessDenied)" in err


def test_a_setting_that_cannot_be_repaired_stops_the_deploy():
    s3 = s3_client("us-east-1")
    name = package.default_bucket_name("111122223333", "us-east-1")
    own = {"Bucket": name, "ExpectedBucketOwner": "111122223333"}
    policy = package.bucket_policy(name, "aws")
    lifecycle = package.lifecycle_rules()["Rules"]
    with Stubber(s3) as stub:
        _verify_stub(stub, name, own, policy=policy, lifecycle=lifecycle, versioning="Suspended")
        stub.add_client_error("put_bucket_versioning", "AccessDenied", "Access Denied", 403)
        with pytest.raises(AccessProblem) as exc:
            package.ensure_bucket(
                Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")}), quiet(), "111122223333", None
            )
    assert exc.value.message == f"artifacts bucket {name}: enabling versioning is forbidden (AccessDenied)"
    assert "s3:PutBucketVersioning" in exc.value.hints[0]


def test_an_explicit_artifacts_bucket_is_used_as_it_is():
    s3 = s3_client("us-east-1")
    with Stubber(s3) as stub:  # head only: no verification, no repair of a bucket we do not own
        stub.add_response("head_bucket", {}, {"Bucket": "theirs", "ExpectedBucketOwner": "111122223333"})
        package.ensure_bucket(
            Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")}), quiet(), "111122223333", "theirs"
        )
        stub.assert_no_pending_responses()


def test_a_default_bucket_owned_by_another_account_is_an_access_problem():
    s3 = s3_client("us-east-1")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "403", "Forbidden", 403)
        with pytest.raises(AccessProblem) as exc:
            package.ensure_bucket(
                Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")}), quiet(), "111122223333", None
            )
    assert exc.value.code == errors.EXIT_AWS_ACCESS
    assert "belongs to another account" in exc.value.message


def test_a_bucket_name_taken_elsewhere_is_an_access_problem():
    s3 = s3_client("us-east-1")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "404", "Not Found", 404)
        stub.add_client_error("create_bucket", "BucketAlreadyExists", "taken", 409)
        with pytest.raises(AccessProblem, match="taken by another account"):
            package.ensure_bucket(
                Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")}), quiet(), "111122223333", None
            )


def test_an_object_already_there_is_skipped_unless_it_is_old():
    s3 = s3_client("us-east-1")
    bucket = package.Bucket("b", "us-east-1", "111122223333")
    now = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    key = package.content_key("x.yaml", b"body")
    aws = Aws(clients={"s3": s3})
    with Stubber(s3) as stub:
        stub.add_response(
            "head_object",
            {"LastModified": now - dt.timedelta(days=1)},
            {"Bucket": "b", "Key": key, "ExpectedBucketOwner": "111122223333"},
        )
        assert (
            package.upload(aws, quiet(), bucket, "x.yaml", b"body", now)
            == f"https://b.s3.amazonaws.com/{key}"
        )
        stub.add_response("head_object", {"LastModified": now - dt.timedelta(days=package.REFRESH_DAYS + 1)})
        stub.add_response(
            "put_object",
            {},
            {
                "Bucket": "b",
                "Key": key,
                "Body": b"body",
                "ContentType": ANY,
                "ExpectedBucketOwner": "111122223333",
            },
        )
        package.upload(aws, quiet(), bucket, "x.yaml", b"body", now)
        stub.assert_no_pending_responses()


def test_a_deferred_default_bucket_is_checked_only_before_an_upload():
    """A no-op deploy finds every template in the bucket: HeadObject (with the expected owner)
    is all it asks; the bucket is checked, and hardened, before the first upload only."""
    s3 = s3_client("us-east-1")
    account = "111122223333"
    name = package.default_bucket_name(account, "us-east-1")
    own = {"Bucket": name, "ExpectedBucketOwner": account}
    aws = Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")})
    t = inputs.load_tree(FIXTURES / "tree-v1")
    children = [tpl for path, tpl in t.files.items() if path != t.root.path]
    now = dt.datetime.now(dt.UTC)
    with Stubber(s3) as stub:  # the Stubber fails on any call not listed
        bucket = package.ensure_bucket(aws, quiet(), account, None, defer=True)
        for _ in children:
            stub.add_response("head_object", {"LastModified": now}, {**own, "Key": ANY})
        package.package(aws, quiet(), bucket, t)
        stub.assert_no_pending_responses()

        # A changed template: the bucket is verified (once), then the upload.
        stub.add_client_error("head_object", "404", "Not Found", 404)
        _verify_stub(
            stub,
            name,
            own,
            policy=package.bucket_policy(name, "aws"),
            lifecycle=package.lifecycle_rules()["Rules"],
        )
        stub.add_response("put_object", {}, {**own, "Key": ANY, "Body": ANY, "ContentType": ANY})
        stub.add_client_error("head_object", "404", "Not Found", 404)
        stub.add_response("put_object", {}, {**own, "Key": ANY, "Body": ANY, "ContentType": ANY})
        package.upload(aws, quiet(), bucket, "notify.yaml", b"new", now)
        package.upload(aws, quiet(), bucket, "data.yaml", b"new", now)
        stub.assert_no_pending_responses()


def test_a_deferred_default_bucket_of_another_account_is_an_access_problem():
    s3 = s3_client("us-east-1")
    aws = Aws(clients={"s3": s3, "cloudformation": _cfn("us-east-1")})
    with Stubber(s3) as stub:
        bucket = package.ensure_bucket(aws, quiet(), "111122223333", None, defer=True)
        stub.add_client_error("head_object", "403", "Forbidden", 403)
        with pytest.raises(AccessProblem, match="belongs to another account"):
            package.upload(aws, quiet(), bucket, "x.yaml", b"body")


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------
def test_the_tree_is_followed_through_relative_template_urls_and_short_form_tags_are_read():
    t = inputs.load_tree(FIXTURES / "tree-v1")

    assert sorted(p.name for p in t.files) == ["data.yaml", "karematch.yaml", "notify.yaml", "service.yaml"]
    assert list(t.files)[-1].name == "karematch.yaml"  # children before their parent
    data_stack = t.root.data["Resources"]["DataStack"]["Properties"]
    assert data_stack["Parameters"]["EnvironmentName"] == {"Ref": "EnvironmentName"}
    assert t.no_echo() == {"NotifyToken"}


def test_capabilities_follow_the_templates(tmp_path):
    (tmp_path / "karematch.yaml").write_text(
        "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./iam.yaml\n"
    )
    (tmp_path / "iam.yaml").write_text(
        "Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties:\n      RoleName: x\n"
        "      AssumeRolePolicyDocument: {}\n"
    )
    assert inputs.capabilities(inputs.load_tree(tmp_path)) == ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
    (tmp_path / "iam.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  R:\n    Type: AWS::SNS::Topic\n"
    )
    assert inputs.capabilities(inputs.load_tree(tmp_path)) == ["CAPABILITY_AUTO_EXPAND"]


def test_a_missing_child_or_root_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no root template"):
        inputs.load_tree(tmp_path)
    (tmp_path / "karematch.yaml").write_text(
        "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: ./gone.yaml\n"
    )
    with pytest.raises(BadInput, match=re.escape("TemplateURL ./gone.yaml: no such file")):
        inputs.load_tree(tmp_path)


def test_a_template_that_is_not_utf8_is_a_lint_error_naming_the_file(tmp_path):
    body = "Resources:\n  T:\n    Type: AWS::SNS::Topic  # café\n".encode("latin-1")
    (tmp_path / "karematch.yaml").write_bytes(body)
    at = body.index("é".encode("latin-1"))
    with pytest.raises(LintError) as exc:
        inputs.load_tree(tmp_path)
    assert exc.value.message == (
        f"{tmp_path.resolve() / 'karematch.yaml'}: not UTF-8 text (byte {at}: "
        "invalid continuation byte); CloudFormation templates are UTF-8"
    )


def test_cloudformation_limits_are_enforced_locally(tmp_path):
    many = "".join(f"  T{i}:\n    Type: AWS::SNS::Topic\n" for i in range(501))
    (tmp_path / "karematch.yaml").write_text("Resources:\n" + many)
    with pytest.raises(LintError, match="501 resources is over"):
        inputs.check_limits(inputs.load_tree(tmp_path))


# ------------------------------------------------------------------------------------------
# Protection documents
# ------------------------------------------------------------------------------------------
def test_relaxing_a_policy_removes_exactly_one_resource():
    body = protect.policy_document(["DatabaseInstance", "DatabaseLogGroup"])

    relaxed = json.loads(protect.relax(body, "DatabaseInstance"))

    (deny,) = [st for st in relaxed["Statement"] if st["Effect"] == "Deny"]
    assert deny["Resource"] == ["LogicalResourceId/DatabaseLogGroup"]
    assert protect.relax(body, "NotProtected") is None
    only = protect.policy_document(["DatabaseInstance"])
    assert [st["Effect"] for st in json.loads(protect.relax(only, "DatabaseInstance"))["Statement"]] == [
        "Allow"
    ]


# ------------------------------------------------------------------------------------------
# The command line's documented surface
# ------------------------------------------------------------------------------------------
def _subparser(name: str):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[name]


def _commands() -> list[str]:
    parser = cli.build_parser()
    return sorted(next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices)


@pytest.mark.parametrize("command", _commands())
def test_every_option_has_help(command):
    assert cli.HANDLERS[_subparser(command).get_default("handler")]  # registered and runnable
    if command != "cost":  # cost reads no AWS: its own codes are in its help and docs
        assert "exit codes:" in _subparser(command).format_help()
    for action in _subparser(command)._actions:
        assert action.help, f"{command} {action.option_strings} has no help"


def test_the_flags_the_ci_workflow_uses_parse():
    args = cli.build_parser().parse_args(
        [
            "deploy",
            "--env",
            "prod",
            "--yes",
            "--image-tag",
            "abc1234",
            "--parameter",
            "CertificateArn=arn:x",
            "--artifact-bucket",
            "ci-artifacts",
            "--cfn-role-arn",
            "arn:aws:iam::1:role/r",
            "--region",
            "eu-west-1",
            "--allow-replacement",
            "A/B",
            "--allow-replacement",
            "C/D",
        ]
    )
    assert (args.env, args.yes, args.image_tag, args.allow_replacement) == (
        "prod",
        True,
        "abc1234",
        ["A/B", "C/D"],
    )
    args = cli.build_parser().parse_args(
        ["package", "--env", "dev", "--artifact-bucket", "ci-artifacts", "--out", "o"]
    )
    assert (args.handler, args.out) == ("package", Path("o"))


def test_help_lists_every_exit_code_and_the_docs_table_matches():
    help_text = _subparser("deploy").format_help()
    for code, _text in errors.EXIT_CODES:
        assert re.search(rf"^\s+{code}\s+\S", help_text, re.M), code
    assert (REPO / "docs" / "exit-codes.md").read_text().strip().endswith(errors.exit_code_markdown())


def test_python_dash_m_runs_the_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "karematch_cfn", "deploy", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 0
    assert "--allow-replacement" in out.stdout and "exit codes:" in out.stdout


def test_an_unknown_option_is_exit_2(capsys):
    assert cli.main(["deploy", "--env", "dev", "--no-such-option"]) == errors.EXIT_BAD_INPUT
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "0.0", "nan", "x"])
def test_a_poll_interval_must_be_more_than_zero(capsys, value):
    assert cli.main(["deploy", "--env", "dev", "--poll-interval", value]) == errors.EXIT_BAD_INPUT
    assert "--poll-interval" in capsys.readouterr().err
    assert (
        cli.build_parser().parse_args(["deploy", "--env", "dev", "--poll-interval", "0.5"]).poll_interval
        == 0.5
    )


def test_the_explicit_project_template_dir_is_recognised_however_it_is_spelled():
    from karematch_cfn import tree
    from karematch_cfn.deploy import deployer

    assert deployer.is_project_dir(tree.TEMPLATES_DIR / ".." / tree.TEMPLATES_DIR.name)
    assert not deployer.is_project_dir(FIXTURES / "tree-v1")
