"""``destroy``: what goes, what stays (by physical id), the typed name, prod's protections lifted
first, the events, and what remains with the commands that remove it.

moto runs a dev destroy end to end (it keeps Retain resources); what moto cannot show
(termination protection, deletion protection lifted by an update, the final database snapshot,
DELETE_FAILED) is stubbed with CloudFormation's and RDS's documented response shapes.
"""

from __future__ import annotations

import io

import boto3
import pytest
from botocore.stub import ANY, Stubber

from karematch_cfn import cli
from karematch_cfn.deploy import deployer
from karematch_cfn.deploy.aws import Aws
from karematch_cfn.deploy.console import Console

from . import shapes as s
from .conftest import Result, tree_args

pytestmark = pytest.mark.deploy


def _run(argv: list[str], hooks: deployer.Hooks) -> Result:
    out, err = io.StringIO(), io.StringIO()
    hooks.console = Console(out, err)
    code = cli.run(cli.build_parser().parse_args(argv), hooks)
    return Result(code, out.getvalue(), err.getvalue())


def test_destroy_a_dev_environment_on_moto(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0
    bucket = f"fixture-dev-files-{s.ACCOUNT}"

    r = karematch("destroy", "--env", "dev", "--yes", "--poll-interval", "0.01")

    assert r.code == 0, r.text
    assert "will delete karematch-dev in us-east-1: 4 stack(s)" in r.out
    assert "  3 x AWS::CloudFormation::Stack" in r.out  # the nested stacks go (DeletionPolicy Delete)
    assert "  1 x AWS::SNS::Topic" in r.out
    kept = {line.split()[0] for line in r.out.split("will keep", 1)[1].splitlines()[2:6]}
    assert kept == {
        "AuditLogGroup",
        "DataStack/AppLogGroup",
        "DataStack/BackendRepository",
        "DataStack/FilesBucket",
    }
    assert "karematch-dev: DELETE_COMPLETE" in r.out
    assert "karematch-dev" not in {k for k, v in moto.stacks().items() if v != "DELETE_COMPLETE"}
    # what remains really remains (moto keeps Retain resources), named with its removal command
    assert moto.client("s3").head_bucket(Bucket=bucket)
    assert f"aws s3 rm s3://{bucket} --recursive" in r.out
    assert "aws ecr delete-repository --repository-name fixture-dev-backend --force" in r.out
    assert "aws logs delete-log-group --log-group-name /fixture/dev/app" in r.out
    # the audit log group is listed as kept, without a removal command
    audit = r.out.split("AuditLogGroup (AWS::Logs::LogGroup)", 1)[1].splitlines()[1]
    assert "audit log: kept for its retention" in audit and "--include-audit-logs" in audit
    assert r.out.count("delete-log-group") == 1


def test_destroy_refuses_without_a_terminal_or_prod_without_allow_prod_before_aws(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0

    r = karematch("destroy", "--env", "dev")  # no terminal under pytest, no --yes
    assert r.code == 2 and "pass --yes" in r.err

    r = karematch("destroy", "--env", "prod", "--yes")
    assert r.code == 2 and r.err.startswith("error: destroying prod needs --allow-prod")

    r = karematch("destroy", "--env", "staging", "--yes")
    assert r.code == 7 and "does not exist" in r.err
    assert moto.stacks()["karematch-dev"] == "CREATE_COMPLETE"


def test_destroy_deletes_only_after_the_stack_name_is_typed(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes").code == 0
    prompts: list[str] = []

    def typed(answer):
        def prompt(text):
            prompts.append(text)
            return answer

        return deployer.Hooks(interactive=lambda: True, prompt=prompt, sleep=lambda _s: None)

    r = _run(["destroy", "--env", "dev"], typed("karematch-prod"))
    assert r.code == 0 and "not deleted" in r.out
    assert moto.stacks()["karematch-dev"] == "CREATE_COMPLETE"
    assert prompts == ["Type the stack name (karematch-dev) to delete it: "]

    r = _run(["destroy", "--env", "dev"], typed("karematch-dev"))
    assert r.code == 0, r.text
    assert "karematch-dev" not in {k for k, v in moto.stacks().items() if v != "DELETE_COMPLETE"}


# ------------------------------------------------------------------------------------------
# Stubbed: prod (deletion and termination protection, the final snapshot), DELETE_FAILED
# ------------------------------------------------------------------------------------------
PROD = {"EnvironmentName": "prod", "EnableDeletionProtection": "true", "LogRetentionDays": "2192"}
TEMPLATE = """\
Resources:
  Database:
    Type: AWS::RDS::DBInstance
    DeletionPolicy: Snapshot
    UpdateReplacePolicy: Snapshot
  TrailLogGroup:
    Type: AWS::Logs::LogGroup
    DeletionPolicy: Retain
  Topic:
    Type: AWS::SNS::Topic
"""


class Stubs:
    def __init__(self) -> None:
        def client(service):
            return boto3.client(
                service, region_name=s.REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            )

        self.cfn, self.rds = client("cloudformation"), client("rds")
        self.stubs = {"cloudformation": Stubber(self.cfn), "rds": Stubber(self.rds)}
        self.aws = Aws(clients={"cloudformation": self.cfn, "rds": self.rds})

    def add(self, op: str, response: dict, service: str = "cloudformation", **expected) -> Stubs:
        self.stubs[service].add_response(op, response, expected or None)
        return self

    def run(self, *argv: str) -> Result:
        hooks = deployer.Hooks(aws=self.aws, sleep=lambda _s: None, interactive=lambda: False)
        for stub in self.stubs.values():
            stub.activate()
        try:
            r = _run(list(argv), hooks)
            for stub in self.stubs.values():
                stub.assert_no_pending_responses()
        finally:
            for stub in self.stubs.values():
                stub.deactivate()
        return r


def inventory(st: Stubs, *, protected: bool) -> None:
    root = s.stack("UPDATE_COMPLETE", params=PROD)
    root["Stacks"][0]["EnableTerminationProtection"] = protected
    st.add("describe_stacks", root, StackName=s.STACK)
    st.add(
        "list_stack_resources",
        s.resources(
            ("Database", "AWS::RDS::DBInstance", "karematch-prod-db"),
            ("TrailLogGroup", "AWS::Logs::LogGroup", "/aws/cloudtrail/karematch-prod"),
            ("Topic", "AWS::SNS::Topic", "arn:aws:sns:us-east-1:123456789012:t"),
        ),
        StackName=s.ROOT_ID,
    )
    st.add("get_template", s.validated("get_template", {"TemplateBody": TEMPLATE}), StackName=s.ROOT_ID)


def test_destroy_prod_lifts_both_protections_first_and_finds_the_final_snapshot():
    st = Stubs()
    inventory(st, protected=True)
    cs = s.change_set_arn("lift", 9)
    st.add(
        "create_change_set",
        {"Id": cs, "StackId": s.ROOT_ID},
        StackName=s.ROOT_ID,
        ChangeSetName=ANY,
        ChangeSetType="UPDATE",
        UsePreviousTemplate=True,
        Parameters=[
            {"ParameterKey": "EnableDeletionProtection", "ParameterValue": "false"},
            {"ParameterKey": "EnvironmentName", "UsePreviousValue": True},
            {"ParameterKey": "LogRetentionDays", "UsePreviousValue": True},
        ],
        Capabilities=ANY,
        IncludeNestedStacks=True,
        Description=ANY,
        RollbackConfiguration={"RollbackTriggers": [], "MonitoringTimeInMinutes": 0},
    )
    st.add("describe_change_set", s.change_set([], cs_id=cs), ChangeSetName=cs)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("execute_change_set", {}, ChangeSetName=cs)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("describe_stacks", s.stack("UPDATE_COMPLETE", params=PROD), StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add(
        "update_termination_protection",
        {"StackId": s.ROOT_ID},
        StackName=s.ROOT_ID,
        EnableTerminationProtection=False,
    )
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("delete_stack", {}, StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("describe_stacks", s.stack("DELETE_COMPLETE", params=PROD), StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    snapshot = {
        "DBSnapshots": [
            {"DBSnapshotIdentifier": "older", "SnapshotCreateTime": s.T0},
            {
                "DBSnapshotIdentifier": "karematch-prod-database-final",
                "SnapshotCreateTime": s.T0.replace(year=2025),
            },
        ]
    }
    st.add(
        "describe_db_snapshots",
        s.validated("describe_db_snapshots", snapshot, service="rds"),
        service="rds",
        DBInstanceIdentifier="karematch-prod-db",
        SnapshotType="manual",
    )

    r = st.run("destroy", "--env", "prod", "--stack-name", s.STACK, "--yes", "--allow-prod")

    assert r.code == 0, r.text
    out = r.out
    assert (
        out.index("deletion protection lifted")
        < out.index("termination protection lifted")
        < out.index("deleting karematch-dev")
    )
    rows = [
        line.split() for line in out.splitlines() if line.strip().startswith(("Database ", "TrailLogGroup "))
    ]
    assert rows[0][:5] == ["Database", "AWS::RDS::DBInstance", "karematch-prod-db", "final", "snapshot"]
    assert rows[1][-1] == "audit"
    assert "final snapshot karematch-prod-database-final of karematch-prod-db" in out
    assert "aws rds delete-db-snapshot --db-snapshot-identifier karematch-prod-database-final" in out
    assert "aws logs delete-log-group" not in out  # the CloudTrail log group is an audit log
    assert "LogRetentionDays 2192 days" in out


def test_destroy_prod_with_include_audit_logs_prints_their_command_with_a_warning():
    st = Stubs()
    root = s.stack("UPDATE_COMPLETE", params={**PROD, "EnableDeletionProtection": "false"})
    st.add("describe_stacks", root, StackName=s.STACK)
    st.add(
        "list_stack_resources",
        s.resources(("TrailLogGroup", "AWS::Logs::LogGroup", "/aws/cloudtrail/karematch-prod")),
        StackName=s.ROOT_ID,
    )
    st.add("get_template", s.validated("get_template", {"TemplateBody": TEMPLATE}), StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("delete_stack", {}, StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("describe_stacks", s.stack("DELETE_COMPLETE", params=PROD), StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)

    r = st.run(
        "destroy", "--env", "prod", "--stack-name", s.STACK, "--yes", "--allow-prod", "--include-audit-logs"
    )

    assert r.code == 0, r.text
    assert "aws logs delete-log-group --log-group-name /aws/cloudtrail/karematch-prod" in r.out
    assert "holds audit logs: removing them ends their retention" in r.err
    assert "CreateChangeSet" not in r.out  # protection already off: no update


def test_a_delete_that_fails_says_what_failed_and_how_to_finish():
    st = Stubs()
    st.add(
        "describe_stacks", s.stack("UPDATE_COMPLETE", params={"EnvironmentName": "dev"}), StackName=s.STACK
    )
    st.add(
        "list_stack_resources",
        s.resources(("Database", "AWS::RDS::DBInstance", "karematch-dev-db")),
        StackName=s.ROOT_ID,
    )
    st.add("get_template", s.validated("get_template", {"TemplateBody": TEMPLATE}), StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("delete_stack", {}, StackName=s.ROOT_ID)
    failed = s.event(
        "Database",
        "AWS::RDS::DBInstance",
        "DELETE_FAILED",
        seconds=5,
        reason="Cannot delete protected DB Instance, please disable deletion protection and try again.",
    )
    st.add("describe_stack_events", s.events(failed), StackName=s.ROOT_ID)
    st.add(
        "describe_stacks", s.stack("DELETE_FAILED", params={"EnvironmentName": "dev"}), StackName=s.ROOT_ID
    )
    st.add("describe_stack_events", s.events(failed), StackName=s.ROOT_ID)

    r = st.run("destroy", "--env", "dev", "--stack-name", s.STACK, "--yes")

    assert r.code == 4, r.text
    assert r.err.startswith("error: delete of karematch-dev ended DELETE_FAILED")
    assert "Cannot delete protected DB Instance" in r.err
    assert "--retain-resources" in r.err


def test_termination_protection_outside_prod_is_lifted_only_by_hand():
    st = Stubs()
    root = s.stack("UPDATE_COMPLETE", params={"EnvironmentName": "dev"})
    root["Stacks"][0]["EnableTerminationProtection"] = True
    st.add("describe_stacks", root, StackName=s.STACK)

    r = st.run("destroy", "--env", "dev", "--stack-name", s.STACK, "--yes")

    assert r.code == 2, r.text
    assert "update-termination-protection --no-enable-termination-protection" in r.err


def test_ctrl_c_while_deleting_says_the_state_and_that_cloudformation_carries_on():
    st = Stubs()
    st.add(
        "describe_stacks", s.stack("UPDATE_COMPLETE", params={"EnvironmentName": "dev"}), StackName=s.STACK
    )
    st.add("list_stack_resources", s.resources(("Topic", "AWS::SNS::Topic", "t")), StackName=s.ROOT_ID)
    st.add("get_template", s.validated("get_template", {"TemplateBody": TEMPLATE}), StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add("delete_stack", {}, StackName=s.ROOT_ID)
    st.add("describe_stack_events", s.events(), StackName=s.ROOT_ID)
    st.add(
        "describe_stacks",
        s.stack("DELETE_IN_PROGRESS", params={"EnvironmentName": "dev"}),
        StackName=s.ROOT_ID,
    )
    st.add(
        "describe_stacks",
        s.stack("DELETE_IN_PROGRESS", params={"EnvironmentName": "dev"}),
        StackName=s.ROOT_ID,
    )

    def interrupt(_seconds):
        raise KeyboardInterrupt

    hooks = deployer.Hooks(aws=st.aws, sleep=interrupt, interactive=lambda: False)
    for stub in st.stubs.values():
        stub.activate()
    r = _run(["destroy", "--env", "dev", "--stack-name", s.STACK, "--yes"], hooks)

    assert r.code == 130, r.text
    assert r.err.startswith("error: interrupted; stack karematch-dev is DELETE_IN_PROGRESS")
    assert "CloudFormation carries on without this tool" in r.err
