"""End to end: the real deploy command against a moto server on 127.0.0.1 (AWS_ENDPOINT_URL).

What moto cannot show (nested change sets, Replacement and Details, the FAILED no-change change
set, rollbacks, per-resource failure events, termination protection) is in test_stubbed_*.py;
docs/testing.md lists each behaviour and where it is tested.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from karematch_cfn import tree
from karematch_cfn.deploy import deployer, events, package

from .conftest import ACCOUNT, FIXTURES, REGION, isolate_aws_environment, tree_args

pytestmark = pytest.mark.deploy

BUCKET = package.default_bucket_name(ACCOUNT, REGION)
SECRET = "do-not-print-this-7f3a"  # a NoEcho parameter value


def test_first_create_packages_nested_templates_and_creates_every_stack(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--parameter", f"NotifyToken={SECRET}")

    assert r.code == 0, r.text
    stacks = moto.stacks()
    assert stacks.pop("karematch-dev") == "CREATE_COMPLETE"
    assert sorted(name.split("-")[2] for name in stacks) == ["DataStack", "NotifyStack", "ServiceStack"]
    assert set(stacks.values()) == {"CREATE_COMPLETE"}
    # The root CloudFormation got points at the content-hash keys, in S3's own URL form.
    cfn, s3 = moto.client("cloudformation"), moto.client("s3")
    root = yaml.safe_load(cfn.get_template(StackName="karematch-dev")["TemplateBody"])
    for logical_id, filename in (
        ("DataStack", "data.yaml"),
        ("NotifyStack", "notify.yaml"),
        ("ServiceStack", "service.yaml"),
    ):
        body = (FIXTURES / "tree-v1" / filename).read_bytes()
        key = f"templates/{Path(filename).stem}-{hashlib.sha256(body).hexdigest()}.yaml"
        url = root["Resources"][logical_id]["Properties"]["TemplateURL"]
        assert url == f"https://{BUCKET}.s3.amazonaws.com/{key}"
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    # The default bucket, created once: encrypted, versioned, public access blocked, expiring.
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"][0]["Expiration"]["Days"] > 0
    created = next(line for line in r.out.splitlines() if line.startswith("creating artifacts bucket"))
    assert "encrypted" in created and "TLS only" not in created  # plain-HTTP moto: no TLS-only policy
    assert "TLS-only bucket policy is not set" in r.err
    # Executing a CREATE: the ECS service-linked role was ensured first.
    roles = moto.client("iam").list_roles(PathPrefix="/aws-service-role/")["Roles"]
    assert any(role["Path"] == "/aws-service-role/ecs.amazonaws.com/" for role in roles)
    # No image yet: the service exists with 0 tasks, and the output says what to do next.
    service = moto.client("ecs").describe_services(
        cluster="fixture-dev-cluster", services=["fixture-dev-backend-service"]
    )["services"][0]
    assert service["desiredCount"] == 0
    assert "--image-tag" in r.out
    assert "CREATE_COMPLETE" in r.out
    assert SECRET not in r.text
    assert "NotifyToken" in r.out and "****" in r.out


def test_second_deploy_with_no_changes_succeeds_and_leaves_no_change_set(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    assert r.code == 0, r.text
    assert "no changes" in r.out
    assert "unchanged, already at" in r.out  # content-hash keys: nothing uploaded again
    assert "uploading" not in r.out
    assert moto.pending_change_sets("karematch-dev") == []
    assert moto.stacks()["karematch-dev"] == "CREATE_COMPLETE"


def test_a_new_image_tag_with_an_identical_template_is_executed(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "abc123")

    assert r.code == 0, r.text
    assert "no changes" not in r.out
    assert "no resource changes (parameters/outputs/tags only)" in r.out
    assert "executing change set" in r.out
    assert moto.parameters("karematch-dev")["ImageTag"] == "abc123"
    assert moto.stacks()["karematch-dev"] == "UPDATE_COMPLETE"

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "abc123")  # nothing new

    assert r.code == 0, r.text
    assert "no changes" in r.out and "executing" not in r.out
    assert moto.pending_change_sets("karematch-dev") == []


def test_deletion_protection_is_off_on_the_first_create_and_on_from_the_next_deploy(moto, karematch):
    args = [
        "--env",
        "dev",
        "--template-dir",
        FIXTURES / "tree-protect",
        "--parameters",
        FIXTURES / "params" / "protect-dev.json",
        "--yes",
    ]

    r = karematch("deploy", *args)

    assert r.code == 0, r.text
    assert moto.parameters("karematch-dev")["EnableDeletionProtection"] == "false"
    row = next(line for line in r.out.splitlines() if line.strip().startswith("EnableDeletionProtection"))
    assert row.split()[1] == "false" and "first create" in row
    assert "deletion protection is turned on by the next deploy" in r.out

    r = karematch("deploy", *args)  # same files: only the parameter (and an Output) change

    assert r.code == 0, r.text
    assert "executing change set" in r.out
    assert moto.parameters("karematch-dev")["EnableDeletionProtection"] == "true"
    row = next(line for line in r.out.splitlines() if line.strip().startswith("EnableDeletionProtection"))
    assert row.split()[1] == "true" and "template default" in row
    # (An explicit --parameter EnableDeletionProtection=... is in test_stubbed_deploy.py: moto
    # compares a change set's parameters with the stack's creation ones, not its current ones.)


def test_update_changes_only_the_child_that_changed(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0

    r = karematch("deploy", *tree_args("tree-v2"), "--yes")

    assert r.code == 0, r.text
    assert moto.stacks()["karematch-dev"] == "UPDATE_COMPLETE"
    table = r.out[r.out.index("Stack karematch-dev") : r.out.index("executing")]
    assert "Modify" in table and "NotifyStack" in table
    assert "DataStack" not in table and "ServiceStack" not in table
    assert "notify.yaml: uploading" in r.out and "data.yaml: unchanged" in r.out
    sns = moto.client("sns")
    names = [
        sns.get_topic_attributes(TopicArn=t["TopicArn"])["Attributes"]["DisplayName"]
        for t in sns.list_topics()["Topics"]
    ]
    assert "KareMatch dev alarms (v2)" in names


def test_update_keeps_the_live_task_count_and_the_deployed_image(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "abc123").code == 0
    # Autoscaling moved the service to 3 tasks; the file says 2.
    moto.client("ecs").update_service(
        cluster="fixture-dev-cluster", service="fixture-dev-backend-service", desiredCount=3
    )

    r = karematch("deploy", *tree_args("tree-v2"), "--yes")

    assert r.code == 0, r.text
    params = moto.parameters("karematch-dev")
    assert params["DesiredCount"] == "3"
    assert params["ImageTag"] == "abc123"
    assert "keeping the live task count 3" in r.out
    assert "keeping the deployed tag 'abc123'" in r.out

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--desired-count", "1", "--image-tag", "def456")

    assert r.code == 0, r.text
    params = moto.parameters("karematch-dev")
    assert (params["DesiredCount"], params["ImageTag"]) == ("1", "def456")


def test_package_writes_a_root_that_create_stack_accepts_by_url(moto, karematch, tmp_path, monkeypatch):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="my-artifacts")
    monkeypatch.chdir(tmp_path)  # --out relative: the printed command must not depend on the directory

    r = karematch(
        "package",
        *tree_args("tree-v1"),
        "--artifact-bucket",
        "my-artifacts",
        "--out",
        "out",
        "--parameter",
        "DesiredCount=3",
        "--parameter",
        f"NotifyToken={SECRET}",
    )

    assert r.code == 0, r.text
    packaged = yaml.safe_load((tmp_path / "out" / "karematch.yaml").read_text())
    urls = [
        res["Properties"]["TemplateURL"]
        for res in packaged["Resources"].values()
        if res["Type"] == "AWS::CloudFormation::Stack"
    ]
    assert len(urls) == 3
    for url in urls:
        assert url.startswith("https://my-artifacts.s3.amazonaws.com/templates/")
        key = url.split(".amazonaws.com/", 1)[1]
        body = s3.get_object(Bucket="my-artifacts", Key=key)["Body"].read()
        assert key.endswith(f"-{hashlib.sha256(body).hexdigest()}.yaml")
    root_url = next(
        line.split(": ", 1)[1] for line in r.out.splitlines() if line.startswith("root template URL")
    )
    command = shlex.split(
        next(line for line in r.out.splitlines() if "aws cloudformation create-stack" in line)
    )
    option = dict(zip(command[3::2], command[4::2], strict=False))
    assert option["--template-url"] == root_url
    assert option["--parameters"].startswith("file:///")  # absolute: works from any directory
    written = Path(option["--parameters"][len("file://") :])
    assert written == (tmp_path / "out" / "parameters.json").resolve()
    parameters = json.loads(written.read_text())
    # The file's values merged with --parameter; never a NoEcho value, which the output names.
    assert parameters == [
        {"ParameterKey": "DesiredCount", "ParameterValue": "3"},
        {"ParameterKey": "EnvironmentName", "ParameterValue": "dev"},
    ]
    assert SECRET not in r.text and "NotifyToken is NoEcho" in r.out
    cfn = moto.client("cloudformation")
    cfn.create_stack(
        StackName=option["--stack-name"], TemplateURL=option["--template-url"], Parameters=parameters
    )
    stack = cfn.describe_stacks(StackName="karematch-dev")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["DesiredCount"] == "3"
    assert sum(1 for name in moto.stacks() if name.startswith("karematch-dev-")) == 3


def test_package_writes_deletion_protection_off_for_the_create_it_prints(moto, karematch, tmp_path):
    moto.client("s3").create_bucket(Bucket="my-artifacts")

    r = karematch(
        "package",
        "--env",
        "dev",
        "--template-dir",
        FIXTURES / "tree-protect",
        "--parameters",
        FIXTURES / "params" / "protect-dev.json",
        "--artifact-bucket",
        "my-artifacts",
        "--out",
        tmp_path,
    )

    assert r.code == 0, r.text
    assert json.loads((tmp_path / "parameters.json").read_text()) == [
        {"ParameterKey": "EnableDeletionProtection", "ParameterValue": "false"},
        {"ParameterKey": "EnvironmentName", "ParameterValue": "dev"},
    ]
    assert "deletion protection is turned on by the next deploy" in r.out


def test_a_root_over_the_inline_limit_is_uploaded_too(moto, karematch, tmp_path):
    big = tmp_path / "big"
    shutil.copytree(FIXTURES / "tree-v1", big)
    root = (big / "karematch.yaml").read_text()
    padding = "".join(f"  Note{i:04d}: {'x' * 90}\n" for i in range(600))
    (big / "karematch.yaml").write_text(
        root.replace("Parameters:\n", "Metadata:\n" + padding + "Parameters:\n", 1)
    )
    assert (big / "karematch.yaml").stat().st_size > tree.MAX_BODY_INLINE

    r = karematch(
        "deploy",
        "--env",
        "dev",
        "--template-dir",
        big,
        "--parameters",
        FIXTURES / "params" / "dev.json",
        "--yes",
    )

    assert r.code == 0, r.text
    assert "over the 51,200-byte inline limit; uploading it too" in r.out
    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("templates/karematch-") for k in keys)
    assert moto.stacks()["karematch-dev"] == "CREATE_COMPLETE"


def test_dry_run_on_a_new_stack_removes_the_change_set_and_the_empty_stack(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"), "--dry-run")

    assert r.code == 0, r.text
    assert "Add" in r.out and "DataStack" in r.out
    assert "dry run: nothing executed" in r.out
    assert moto.stacks() == {}


def test_guard_refuses_a_renamed_stateful_resource_and_keeps_the_change_set(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0

    r = karematch("deploy", *tree_args("tree-v3"), "--yes")

    assert r.code == 3, r.text
    assert "AuditLogGroup (AWS::Logs::LogGroup)" in r.err and "removed" in r.err
    assert "--allow-replacement AuditLogGroup" in r.err
    assert len(moto.pending_change_sets("karematch-dev")) == 1  # kept for review
    assert moto.stacks()["karematch-dev"] == "CREATE_COMPLETE"  # not executed

    r = karematch("deploy", *tree_args("tree-v3"), "--dry-run")  # refused too, but leaves nothing

    assert r.code == 3, r.text
    assert "the change set was deleted (dry run)" in r.err
    assert len(moto.pending_change_sets("karematch-dev")) == 1  # only the first one, kept

    r = karematch("deploy", *tree_args("tree-v3"), "--yes", "--allow-replacement", "AuditLogGroup")

    assert r.code == 0, r.text
    assert "allowed by --allow-replacement: AuditLogGroup" in r.out
    assert moto.stacks()["karematch-dev"] == "UPDATE_COMPLETE"


def test_without_a_terminal_and_without_yes_it_stops_before_touching_aws(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"))

    assert r.code == 2
    assert "no terminal" in r.err and "--yes" in r.err
    assert moto.stacks() == {}
    assert moto.client("s3").list_buckets()["Buckets"] == []


def test_declining_at_the_prompt_executes_nothing(moto, karematch, monkeypatch):
    monkeypatch.setattr(deployer, "is_interactive", lambda: True)
    monkeypatch.setattr(deployer, "ask", lambda prompt: False)

    r = karematch("deploy", *tree_args("tree-v1"))

    assert r.code == 0, r.text
    assert "not executed" in r.out
    assert moto.stacks() == {}
    # The service-linked roles are only ensured right before a CREATE is executed.
    assert moto.client("iam").list_roles(PathPrefix="/aws-service-role/")["Roles"] == []
    assert karematch("deploy", *tree_args("tree-v1"), "--dry-run").code == 0
    assert moto.client("iam").list_roles(PathPrefix="/aws-service-role/")["Roles"] == []


def test_ctrl_c_at_the_prompt_cleans_up_and_exits_130(moto, karematch, monkeypatch):
    def interrupt(prompt):
        raise KeyboardInterrupt

    monkeypatch.setattr(deployer, "is_interactive", lambda: True)
    monkeypatch.setattr(deployer, "ask", interrupt)

    r = karematch("deploy", *tree_args("tree-v1"))

    assert r.code == 130
    assert "interrupted before executing; stack karematch-dev was not changed" in r.err
    assert moto.stacks() == {}


def test_ctrl_c_while_watching_says_where_the_stack_is_and_how_to_continue(moto, karematch, monkeypatch):
    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(events.Watcher, "run", interrupt)

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    assert r.code == 130
    assert "interrupted while CloudFormation deploys; stack karematch-dev is CREATE_COMPLETE" in r.err
    assert "describe-stack-events --stack-name karematch-dev" in r.err
    assert "cancel-update-stack" in r.err


# ------------------------------------------------------------------------------------------
# Bad input and refusals: one clear message, a non-zero exit, nothing executed
# ------------------------------------------------------------------------------------------
def _nothing_deployed(moto) -> None:
    assert moto.stacks() == {}


def test_unknown_environment(moto, karematch):
    r = karematch("deploy", "--env", "qa", "--yes")

    assert r.code == 2
    assert r.err.strip().splitlines()[0] == "error: unknown environment 'qa'; allowed: dev, staging, prod"
    _nothing_deployed(moto)


def test_bad_parameter_file_and_options(moto, karematch, tmp_path):
    missing = tmp_path / "dev.json"
    r = karematch("deploy", *tree_args("tree-v1", params=missing), "--yes")
    assert r.code == 2 and "no such parameter file" in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--parameter", "DesiredCount=9")
    assert r.code == 2 and "--parameter DesiredCount: '9' is out of range" in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--parameter", "NoEquals")
    assert r.code == 2 and "expected KEY=VALUE" in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "latest")
    assert r.code == 2 and r.err.startswith("error: --image-tag: 'latest' is not allowed")
    assert "--parameter" not in r.err and "fix the file" not in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--desired-count", "9")
    assert r.code == 2 and r.err.startswith("error: --desired-count: '9' is out of range")
    assert "--parameter" not in r.err and "fix the file" not in r.err

    for interval in ("0", "-1", "nan"):
        r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--poll-interval", interval)
        assert r.code == 2 and "--poll-interval" in r.err, interval

    r = karematch(
        "deploy",
        *tree_args("tree-v1", env="staging"),
        "--parameters",
        FIXTURES / "params" / "dev.json",
        "--yes",
    )
    assert r.code == 2 and "--env is 'staging'" in r.err

    r = karematch("deploy", "--env", "dev", "--template-dir", tmp_path / "nowhere", "--yes")
    assert r.code == 2 and "no such template directory" in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--desired-count", "-1")
    assert r.code == 2 and "negative" in r.err

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--allow-replacement", "Data/")
    assert r.code == 2 and "expected ChildStack/LogicalId" in r.err
    _nothing_deployed(moto)


def test_prod_without_a_certificate_is_refused_before_any_aws_call(moto, karematch):
    r = karematch("deploy", "--env", "prod", "--yes")

    assert r.code == 2
    assert "staging and prod need CertificateArn" in r.err
    assert "--parameter" in r.err
    _nothing_deployed(moto)


def test_missing_credentials_exit_5_without_leaving_the_machine(moto, karematch, monkeypatch, tmp_path):
    isolate_aws_environment(monkeypatch, tmp_path)  # no keys, empty files, no metadata service
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)  # anything that slipped through stays local
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    assert r.code == 5
    assert r.err.splitlines()[0] == (
        "error: checking AWS credentials (sts:GetCallerIdentity): no AWS credentials found"
    )
    _nothing_deployed(moto)


def test_an_unknown_profile_is_an_access_problem(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--profile", "no-such-profile")

    assert r.code == 5 and "no-such-profile" in r.err.splitlines()[0]
    _nothing_deployed(moto)


def test_aws_profile_naming_a_missing_profile_is_one_line_and_exit_5(moto, tmp_path):
    # A subprocess: in-process, the service models are already loaded and the failing lookup
    # (botocore reads the profile while creating its loader) never happens again.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    env.update(
        AWS_PROFILE="nosuch",
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL=moto.url,
        AWS_DEFAULT_REGION=REGION,
    )

    protect = [
        "--env",
        "dev",
        "--template-dir",
        FIXTURES / "tree-protect",
        "--parameters",
        FIXTURES / "params" / "protect-dev.json",
    ]  # one small template: a quick lint
    out = subprocess.run(
        [sys.executable, "-m", "karematch_cfn", "deploy", *map(str, protect), "--yes"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree.REPO,
        timeout=120,
        check=False,
    )

    assert out.returncode == 5, out.stderr
    assert out.stderr.splitlines() == [
        (
            "error: AWS_PROFILE: The config profile (nosuch) could not be found "
            "(aws configure list-profiles lists them)"
        )
    ]
    assert "Traceback" not in out.stderr
    _nothing_deployed(moto)


def test_missing_region_is_bad_input(moto, karematch, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    assert r.code == 2 and "no AWS region" in r.err
    _nothing_deployed(moto)


def test_an_artifacts_bucket_without_permission_exits_5(moto, karematch):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="locked-artifacts")
    s3.put_bucket_policy(
        Bucket="locked-artifacts",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": ["arn:aws:s3:::locked-artifacts", "arn:aws:s3:::locked-artifacts/*"],
                    }
                ],
            }
        ),
    )

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--artifact-bucket", "locked-artifacts")

    assert r.code == 5
    assert r.err.startswith("error: artifacts bucket locked-artifacts: ")
    assert "forbidden" in r.err.splitlines()[0]
    _nothing_deployed(moto)


def test_a_default_bucket_whose_creation_stopped_halfway_is_repaired(moto, karematch):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)  # created, then the hardening failed (or someone else made it)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    assert r.code == 0, r.text
    warning = next(line for line in r.err.splitlines() if "is not" in line and BUCKET in line)
    for label in ("public access blocked", "encrypted", "versioned", "old templates expire"):
        assert label in warning
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"][0]["Expiration"]["Days"] > 0

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")  # hardened now: nothing to say

    assert r.code == 0, r.text
    assert BUCKET not in r.err


def test_an_artifacts_bucket_that_does_not_exist_is_bad_input(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--artifact-bucket", "no-such-bucket-here")

    assert r.code == 2 and "no such bucket" in r.err
    _nothing_deployed(moto)


def test_a_live_stack_of_another_environment_is_refused(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes", "--stack-name", "karematch-prod").code == 0

    r = karematch("deploy", *tree_args("tree-v1", env="staging"), "--yes", "--stack-name", "karematch-prod")

    assert r.code == 2, r.text
    assert r.err.splitlines()[0] == (
        "error: stack karematch-prod is environment 'dev' (its EnvironmentName "
        "parameter) but --env is 'staging'; nothing was changed"
    )
    assert moto.pending_change_sets("karematch-prod") == []
    assert moto.stacks()["karematch-prod"] == "CREATE_COMPLETE"


def test_a_busy_stack_is_not_touched(moto, karematch):
    cfn = moto.client("cloudformation")
    # moto leaves a stack CREATE_IN_PROGRESS when its create fails inside moto.
    broken = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "Nowhere"}}}}
    }
    with contextlib.suppress(Exception):
        cfn.create_stack(StackName="karematch-dev", TemplateBody=json.dumps(broken))
    assert moto.stacks() == {"karematch-dev": "CREATE_IN_PROGRESS"}

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")

    assert r.code == 4
    assert "stack karematch-dev is busy (CREATE_IN_PROGRESS); nothing was changed" in r.err
    assert moto.pending_change_sets("karematch-dev") == []
    assert moto.client("s3").list_buckets()["Buckets"] == []


def test_lint_findings_stop_the_deploy_before_aws(moto, karematch, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(FIXTURES / "tree-v1", bad)
    data = (bad / "data.yaml").read_text()
    (bad / "data.yaml").write_text(data.replace("    DeletionPolicy: Retain\n", "", 1))

    r = karematch(
        "deploy",
        "--env",
        "dev",
        "--template-dir",
        bad,
        "--parameters",
        FIXTURES / "params" / "dev.json",
        "--yes",
    )

    assert r.code == 1
    assert "E9101" in r.err and "cfn-lint finding" in r.err
    _nothing_deployed(moto)
    assert moto.client("s3").list_buckets()["Buckets"] == []


def test_a_template_that_is_not_utf8_is_one_line_and_exit_1(moto, karematch, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(FIXTURES / "tree-v1", bad)
    text = (bad / "notify.yaml").read_text()
    (bad / "notify.yaml").write_bytes(text.replace("alarms", "alarmes \u00e9").encode("latin-1"))

    r = karematch(
        "deploy",
        "--env",
        "dev",
        "--template-dir",
        bad,
        "--parameters",
        FIXTURES / "params" / "dev.json",
        "--yes",
    )

    assert r.code == 1, r.text
    at = text.index("alarms") + len("alarmes ")
    assert r.err.splitlines() == [
        (
            f"error: {(bad / 'notify.yaml').resolve()}: not UTF-8 text (byte {at}: "
            "invalid continuation byte); CloudFormation templates are UTF-8"
        )
    ]
    _nothing_deployed(moto)


def test_stale_project_templates_are_refused(moto, karematch, monkeypatch, tmp_path):
    rendered = {p.name: p.read_text() for p in (FIXTURES / "tree-v1").glob("*.yaml")}
    stale = tmp_path / "templates"
    shutil.copytree(FIXTURES / "tree-v1", stale)
    (stale / "notify.yaml").write_text(rendered["notify.yaml"].replace("alarms", "alerts"))
    monkeypatch.setattr(tree, "render_all", lambda: dict(rendered))
    monkeypatch.setattr(tree, "TEMPLATES_DIR", stale)
    monkeypatch.setattr(tree, "PARAMETERS_DIR", FIXTURES / "params")

    r = karematch("deploy", "--env", "dev", "--yes")

    assert r.code == 1
    assert "is not what the code renders" in r.err and "notify.yaml: differs" in r.err
    _nothing_deployed(moto)

    # Naming the project's templates/ explicitly (however spelled) is still checked.
    monkeypatch.chdir(tmp_path)
    r = karematch("deploy", "--env", "dev", "--template-dir", "./templates/../templates", "--yes")

    assert r.code == 1
    assert "is not what the code renders" in r.err
    _nothing_deployed(moto)

    (stale / "notify.yaml").write_text(rendered["notify.yaml"])  # fresh again: it deploys
    assert karematch("deploy", "--env", "dev", "--yes").code == 0
