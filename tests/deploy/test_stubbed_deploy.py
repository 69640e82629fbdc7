"""The real deploy command with CloudFormation answered by botocore's Stubber, for what moto cannot
produce: the FAILED no-change change set, nested change sets with Replacement and Details,
rollbacks with per-resource failure events, failed stack states, termination protection and
stack policies. S3 and STS are the moto server's (packaging is real); every CloudFormation
request and response is checked against the service model by the Stubber.
"""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.stub import ANY, Stubber

from karematch_cfn import cli, names
from karematch_cfn.deploy import changeset, deployer, inputs, package
from karematch_cfn.deploy.aws import Aws
from karematch_cfn.deploy.console import Console

from . import shapes as s
from .conftest import FIXTURES, Result, tree_args

pytestmark = pytest.mark.deploy

BUCKET = "stub-artifacts"
LIVE = {"EnvironmentName": "dev", "ImageTag": "", "DesiredCount": "2", "NotifyToken": ""}
LOGS = "AWS::Logs::LogGroup"
TOPIC = "AWS::SNS::Topic"
NOTIFY_CS = s.change_set_arn("notify", 5)
DATA_CS = s.change_set_arn("data", 6)
NOTIFY_ID = s.nested_id("NotifyStack", 5)
DATA_ID = s.nested_id("DataStack", 6)


class Flow:
    """A stubbed CloudFormation client, the calls it expects in order, and the requests it got."""

    def __init__(self, moto) -> None:
        self.cfn = boto3.client(
            "cloudformation",
            region_name=s.REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.stub = Stubber(self.cfn)
        self.requests: dict[str, list[dict]] = {}
        self.cfn.meta.events.register("before-parameter-build.cloudformation.*", self._capture)
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        self.aws = Aws(
            clients={
                "cloudformation": self.cfn,
                "s3": s3,
                "sts": moto.client("sts"),
                "iam": moto.client("iam"),
                # The deployer tags the image it deployed (deploy/images.py); moto's ECR answers.
                "ecr": moto.client("ecr"),
            }
        )

    def _capture(self, params, model, **_kw):
        self.requests.setdefault(model.name, []).append(dict(params))

    def add(self, operation: str, response: dict, **expected) -> Flow:
        self.stub.add_response(operation, response, expected or None)
        return self

    def fail(self, operation: str, code: str, message: str, status: int = 400) -> Flow:
        self.stub.add_client_error(operation, code, message, status)
        return self

    # the usual steps -----------------------------------------------------------------------
    def existing(self, status: str = "UPDATE_COMPLETE", params: dict | None = None) -> Flow:
        return self.add("describe_stacks", s.stack(status, params=params or LIVE), StackName=s.STACK)

    def created(self) -> Flow:
        return self.add("create_change_set", {"Id": s.ROOT_CS, "StackId": s.ROOT_ID})

    def described(self, description: dict, cs_id: str = s.ROOT_CS) -> Flow:
        return self.add("describe_change_set", description, ChangeSetName=cs_id)

    def run(self, *extra: str, env: str = "dev") -> Result:
        args = cli.build_parser().parse_args(
            [
                "deploy",
                *tree_args("tree-v1", env),
                "--stack-name",
                s.STACK,
                "--artifact-bucket",
                BUCKET,
                *extra,
            ]
        )
        out, err = io.StringIO(), io.StringIO()
        hooks = deployer.Hooks(
            aws=self.aws, sleep=self.sleep, interactive=lambda: False, console=Console(out, err)
        )
        with self.stub:
            code = cli.run(args, hooks)
            self.stub.assert_no_pending_responses()
        return Result(code, out.getvalue(), err.getvalue())

    def sleep(self, _seconds: float) -> None:
        pass

    def packaged_root(self) -> str:
        """The root body this deploy sends (packaging is real: moto's S3, content-hash keys)."""
        bucket = package.Bucket(BUCKET, s.REGION, s.ACCOUNT)
        quiet = Console(io.StringIO(), io.StringIO())
        return package.package(self.aws, quiet, bucket, inputs.load_tree(FIXTURES / "tree-v1")).root_text

    def live_template(self, body: str) -> Flow:
        return self.add(
            "get_template", s.validated("get_template", {"TemplateBody": body}), StackName=s.ROOT_ID
        )


@pytest.fixture
def flow(moto) -> Flow:
    return Flow(moto)


def notify_change() -> dict:
    """The root's change set: NotifyStack modified, with a real change inside."""
    return s.change_set([s.nested("Modify", "NotifyStack", NOTIFY_CS, n=5)])


def notify_nested() -> dict:
    return s.change_set(
        [s.change("Modify", "AlarmTopic", TOPIC, replacement="False", details=[s.detail("DisplayName")])],
        cs_id=NOTIFY_CS,
        stack_id=NOTIFY_ID,
        stack_name=s.nested_name("NotifyStack"),
        parent=s.ROOT_CS,
    )


def executes(
    flow: Flow, root_events: list[dict], final: str, nested_events: list[dict] | None = None
) -> Flow:
    """Prime, execute, one poll with ``root_events`` (newest first), the terminal status, the
    last poll (the nested stack's events appear once the root's events named it)."""
    old = s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=-100, physical=s.ROOT_ID)
    flow.add("describe_stack_events", s.events(old), StackName=s.ROOT_ID)
    flow.add("execute_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stack_events", s.events(*root_events, old), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack(final), StackName=s.ROOT_ID)
    flow.add("describe_stack_events", s.events(*root_events, old), StackName=s.ROOT_ID)
    if nested_events is not None:
        flow.add("describe_stack_events", s.events(*nested_events), StackName=NOTIFY_ID)
    return flow


# ------------------------------------------------------------------------------------------
# No changes
# ------------------------------------------------------------------------------------------
def test_aws_failed_no_change_change_set_is_success_and_is_deleted(flow):
    flow.existing().created()
    flow.described(s.change_set([], status="FAILED", reason=s.NO_CHANGES_REASON))
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--yes")

    assert r.code == 0, r.text
    assert "no changes" in r.out
    (request,) = flow.requests["CreateChangeSet"]
    assert request["ChangeSetType"] == "UPDATE" and request["IncludeNestedStacks"] is True
    assert {"ParameterKey": "ImageTag", "UsePreviousValue": True} in request["Parameters"]
    assert {"ParameterKey": "DesiredCount", "ParameterValue": "2"} in request["Parameters"]
    assert request["TemplateBody"].count(f"https://{BUCKET}.s3.amazonaws.com/templates/") == 3


def test_a_nested_stack_modified_with_nothing_inside_is_no_change(flow):
    flow.existing().created()
    flow.described(
        s.change_set(
            [s.nested("Modify", "NotifyStack", NOTIFY_CS, n=5), s.nested("Modify", "DataStack", DATA_CS, n=6)]
        )
    )
    flow.described(s.change_set([], cs_id=NOTIFY_CS, stack_id=NOTIFY_ID, parent=s.ROOT_CS), NOTIFY_CS)
    flow.described(
        s.change_set(
            [], cs_id=DATA_CS, stack_id=DATA_ID, parent=s.ROOT_CS, status="FAILED", reason=s.NO_CHANGES_REASON
        ),
        DATA_CS,
    )
    flow.live_template(flow.packaged_root())  # same root, same parameters: really nothing
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--yes")

    assert r.code == 0, r.text
    assert "no changes" in r.out and "Modify" not in r.out
    assert "ExecuteChangeSet" not in flow.requests


def test_a_completed_change_set_without_changes_is_executed_when_the_live_template_differs(flow):
    # AWS: CREATE_COMPLETE with an empty list means only Outputs, parameters or tags change.
    flow.existing().created().described(s.change_set([]))
    flow.live_template(flow.packaged_root().replace("Deployer test fixture root", "An older root"))
    executes(
        flow,
        [s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=9, physical=s.ROOT_ID)],
        "UPDATE_COMPLETE",
    )
    flow.add("describe_stacks", s.stack("UPDATE_COMPLETE"), StackName=s.STACK)

    r = flow.run("--yes")

    assert r.code == 0, r.text
    assert "no changes" not in r.out
    assert "Stack karematch-dev: no resource changes (parameters/outputs/tags only)" in r.out
    assert "Parameters:" in r.out  # the review is printed as for any change
    assert len(flow.requests["ExecuteChangeSet"]) == 1


# ------------------------------------------------------------------------------------------
# The guard through the command
# ------------------------------------------------------------------------------------------
def test_a_nested_replacement_of_a_log_group_is_refused_and_the_change_set_kept(flow):
    flow.existing().created()
    flow.described(s.change_set([s.nested("Modify", "DataStack", DATA_CS, n=6)]))
    flow.described(
        s.change_set(
            [
                s.change(
                    "Modify",
                    "AppLogGroup",
                    LOGS,
                    replacement="True",
                    details=[s.detail("LogGroupName", recreation="Always")],
                )
            ],
            cs_id=DATA_CS,
            stack_id=DATA_ID,
            parent=s.ROOT_CS,
        ),
        DATA_CS,
    )

    r = flow.run("--yes")

    assert r.code == 3, r.text
    assert "DeleteChangeSet" not in flow.requests and "ExecuteChangeSet" not in flow.requests
    assert (
        "guard: DataStack/AppLogGroup (AWS::Logs::LogGroup): would be replaced (Replacement True) "
        "because of LogGroupName" in r.err
    )
    assert f"describe-change-set --change-set-name {s.ROOT_CS}" in r.err
    assert "--allow-replacement DataStack/AppLogGroup" in r.err
    assert "Stack karematch-dev / DataStack" in r.out  # the table was printed for review


def test_an_approved_replacement_relaxes_only_that_resource_and_restores_the_policy_after_a_failure(flow):
    original = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ["Update:Replace", "Update:Delete"],
                    "Resource": ["LogicalResourceId/AppLogGroup", "LogicalResourceId/FilesBucket"],
                },
            ]
        }
    )
    flow.existing().created()
    flow.described(s.change_set([s.nested("Modify", "DataStack", DATA_CS, n=6)]))
    flow.described(
        s.change_set(
            [
                s.change(
                    "Modify",
                    "AppLogGroup",
                    LOGS,
                    replacement="True",
                    details=[s.detail("LogGroupName", recreation="Always")],
                )
            ],
            cs_id=DATA_CS,
            stack_id=DATA_ID,
            parent=s.ROOT_CS,
        ),
        DATA_CS,
    )
    # relax: find the stack holding it, read its policy, set the relaxed one
    flow.add(
        "list_stack_resources",
        s.resources(("AuditLogGroup", LOGS, "audit"), ("DataStack", "AWS::CloudFormation::Stack", DATA_ID)),
        StackName=s.ROOT_ID,
    )
    data_resources = s.resources(
        ("AppLogGroup", LOGS, "/fixture/dev/app"), ("FilesBucket", "AWS::S3::Bucket", "files")
    )
    flow.add("list_stack_resources", data_resources, StackName=DATA_ID)
    flow.add("get_stack_policy", {"StackPolicyBody": original}, StackName=DATA_ID)
    flow.add("set_stack_policy", {}, StackName=DATA_ID, StackPolicyBody=ANY)
    executes(
        flow,
        [
            s.event(
                s.STACK,
                "AWS::CloudFormation::Stack",
                "UPDATE_ROLLBACK_COMPLETE",
                seconds=50,
                physical=s.ROOT_ID,
            )
        ],
        "UPDATE_ROLLBACK_COMPLETE",
    )
    flow.add("set_stack_policy", {}, StackName=DATA_ID, StackPolicyBody=original)  # restored

    r = flow.run("--yes", "--allow-replacement", "DataStack/AppLogGroup")

    assert r.code == 4, r.text
    relaxed, restored = (json.loads(x["StackPolicyBody"]) for x in flow.requests["SetStackPolicy"])
    denied = [st for st in relaxed["Statement"] if st["Effect"] == "Deny"]
    assert denied[0]["Resource"] == ["LogicalResourceId/FilesBucket"]
    assert restored == json.loads(original)
    assert "stack policy of DataStack restored" in r.out


# ------------------------------------------------------------------------------------------
# Execution, events, failures
# ------------------------------------------------------------------------------------------
def test_a_rolled_back_update_prints_the_first_failure_and_how_to_recover(flow):
    flow.existing().created().described(notify_change()).described(notify_nested(), NOTIFY_CS)
    stack_type = "AWS::CloudFormation::Stack"
    root_events = [
        s.event(s.STACK, stack_type, "UPDATE_ROLLBACK_COMPLETE", seconds=90, physical=s.ROOT_ID),
        s.event(
            s.STACK,
            stack_type,
            "UPDATE_ROLLBACK_IN_PROGRESS",
            seconds=40,
            physical=s.ROOT_ID,
            reason="The following resource(s) failed to update: [NotifyStack].",
        ),
        s.event(
            "NotifyStack",
            stack_type,
            "UPDATE_FAILED",
            seconds=35,
            physical=NOTIFY_ID,
            reason="Embedded stack " + NOTIFY_ID + " was not successfully updated. Currently in "
            "UPDATE_ROLLBACK_IN_PROGRESS with reason: The following resource(s) failed to "
            "update: [AlarmTopic].",
        ),
        s.event("NotifyStack", stack_type, "UPDATE_IN_PROGRESS", seconds=2, physical=NOTIFY_ID),
        s.event(
            s.STACK, stack_type, "UPDATE_IN_PROGRESS", seconds=1, physical=s.ROOT_ID, reason="User Initiated"
        ),
    ]
    nested_name = s.nested_name("NotifyStack")
    nested_events = [
        s.event(
            "AlarmTopic",
            TOPIC,
            "UPDATE_FAILED",
            seconds=30,
            stack_id=NOTIFY_ID,
            stack_name=nested_name,
            reason='Resource handler returned message: "Invalid parameter: DisplayName"',
        ),
        s.event(
            "AlarmTopic", TOPIC, "UPDATE_IN_PROGRESS", seconds=20, stack_id=NOTIFY_ID, stack_name=nested_name
        ),
        s.event(
            nested_name,
            stack_type,
            "UPDATE_IN_PROGRESS",
            seconds=3,
            stack_id=NOTIFY_ID,
            stack_name=nested_name,
            physical=NOTIFY_ID,
        ),
        s.event(
            "AlarmTopic", TOPIC, "CREATE_COMPLETE", seconds=-500, stack_id=NOTIFY_ID, stack_name=nested_name
        ),
    ]
    executes(flow, root_events, "UPDATE_ROLLBACK_COMPLETE", nested_events)

    r = flow.run("--yes")

    assert r.code == 4, r.text
    assert "deploy of karematch-dev failed: the stack is UPDATE_ROLLBACK_COMPLETE" in r.err
    failures = r.err[r.err.index("first failures:") :].splitlines()
    assert failures[1].strip() == (
        "NotifyStack/AlarmTopic (AWS::SNS::Topic) UPDATE_FAILED: Resource handler "
        'returned message: "Invalid parameter: DisplayName"'
    )
    assert "NotifyStack (AWS::CloudFormation::Stack) UPDATE_FAILED: Embedded stack" in failures[2]
    assert "back on its previous template" in r.err
    streamed = [line for line in r.out.splitlines() if line.startswith("[")]
    assert any("NotifyStack/AlarmTopic" in x and "UPDATE_FAILED" in x for x in streamed)
    assert not any("CREATE_COMPLETE" in x for x in streamed)  # history from before this deploy


@pytest.mark.parametrize(
    "status, hint",
    [
        ("ROLLBACK_COMPLETE", "aws cloudformation delete-stack --stack-name karematch-dev"),
        ("UPDATE_ROLLBACK_FAILED", "aws cloudformation continue-update-rollback --stack-name karematch-dev"),
        ("UPDATE_IN_PROGRESS", "wait for it to finish"),
    ],
)
def test_a_stack_in_a_failed_or_busy_state_is_refused_with_how_to_recover(flow, status, hint):
    flow.existing(status)

    r = flow.run("--yes")

    assert r.code == 4, r.text
    assert set(flow.requests) == {"DescribeStacks"}  # nothing created, nothing executed
    assert "stack karematch-dev is " in r.err and f"({status}); nothing was changed" in r.err
    assert hint in r.err


def test_a_change_set_failed_for_a_real_reason_is_a_failed_deploy_and_the_empty_stack_goes(flow):
    flow.fail("describe_stacks", "ValidationError", "Stack with id karematch-dev does not exist")
    flow.created()
    flow.described(s.change_set([], status="FAILED", reason="Parameters: [Foo] do not exist in the template"))
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stacks", s.stack("REVIEW_IN_PROGRESS"), StackName=s.ROOT_ID)
    flow.add("delete_stack", {}, StackName=s.ROOT_ID)

    r = flow.run("--yes")

    assert r.code == 4, r.text
    assert "the change set failed: Parameters: [Foo] do not exist in the template" in r.err
    assert flow.requests["CreateChangeSet"][0]["ChangeSetType"] == "CREATE"
    assert "empty stack karematch-dev (REVIEW_IN_PROGRESS) deleted" in r.out


def test_access_denied_from_cloudformation_exits_5(flow):
    flow.existing()
    flow.fail(
        "create_change_set",
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/ci is not "
        "authorized to perform: cloudformation:CreateChangeSet",
        403,
    )

    r = flow.run("--yes")

    assert r.code == 5, r.text
    assert r.err.startswith("error: creating change set for karematch-dev: access denied (AccessDenied)")


def test_ctrl_c_during_an_update_says_it_carries_on_and_how_to_stop_it(flow):
    flow.existing().created().described(notify_change()).described(notify_nested(), NOTIFY_CS)
    old = s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=-100, physical=s.ROOT_ID)
    flow.add("describe_stack_events", s.events(old), StackName=s.ROOT_ID)
    flow.add("execute_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stack_events", s.events(old), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack("UPDATE_IN_PROGRESS"), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack("UPDATE_IN_PROGRESS"), StackName=s.ROOT_ID)  # for the message

    def interrupt(_seconds):
        raise KeyboardInterrupt

    flow.sleep = interrupt
    r = flow.run("--yes")

    assert r.code == 130, r.text
    assert "stack karematch-dev is UPDATE_IN_PROGRESS" in r.err
    assert "aws cloudformation cancel-update-stack --stack-name karematch-dev" in r.err


# ------------------------------------------------------------------------------------------
# Protection after a prod deploy
# ------------------------------------------------------------------------------------------
def no_drift(flow: Flow) -> Flow:
    """The drift check before a prod update: one stack (no nested ones here), in sync."""
    flow.add("list_stack_resources", s.resources(("AuditLogGroup", LOGS, "audit")), StackName=s.ROOT_ID)
    flow.add("detect_stack_drift", {"StackDriftDetectionId": "drift-1"}, StackName=s.ROOT_ID)
    status = {
        "StackId": s.ROOT_ID,
        "StackDriftDetectionId": "drift-1",
        "StackDriftStatus": "IN_SYNC",
        "DetectionStatus": "DETECTION_COMPLETE",
        "Timestamp": s.T0,
    }
    flow.add(
        "describe_stack_drift_detection_status",
        s.validated("describe_stack_drift_detection_status", status),
        StackDriftDetectionId="drift-1",
    )
    return flow


def live_resources(flow: Flow) -> None:
    """ListStackResources of the root and its children, as protect.apply reads them."""
    stack_type = "AWS::CloudFormation::Stack"
    root_resources = s.resources(
        ("AuditLogGroup", LOGS, "audit"),
        ("DataStack", stack_type, DATA_ID),
        ("NotifyStack", stack_type, NOTIFY_ID),
    )
    data_resources = s.resources(
        ("AppLogGroup", LOGS, "/fixture/prod/app"),
        ("BackendRepository", "AWS::ECR::Repository", "repo"),
        ("FilesBucket", "AWS::S3::Bucket", "files"),
    )
    flow.add("list_stack_resources", root_resources, StackName=s.ROOT_ID)
    flow.add("list_stack_resources", data_resources, StackName=DATA_ID)
    flow.add(
        "list_stack_resources",
        s.resources(("AlarmTopic", TOPIC, "arn:aws:sns:us-east-1:123456789012:t")),
        StackName=NOTIFY_ID,
    )


def test_a_prod_deploy_ends_with_termination_protection_and_stack_policies(flow):
    prod = {**LIVE, "EnvironmentName": "prod", "ImageTag": ""}
    no_drift(flow.existing(params=prod)).created().described(notify_change()).described(
        notify_nested(), NOTIFY_CS
    )
    executes(
        flow,
        [s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=60, physical=s.ROOT_ID)],
        "UPDATE_COMPLETE",
    )
    live_resources(flow)
    flow.add("set_stack_policy", {}, StackName=s.ROOT_ID, StackPolicyBody=ANY)
    flow.add("set_stack_policy", {}, StackName=DATA_ID, StackPolicyBody=ANY)
    flow.add(
        "update_termination_protection",
        {"StackId": s.ROOT_ID},
        EnableTerminationProtection=True,
        StackName=s.ROOT_ID,
    )
    flow.add(
        "describe_stacks",
        s.stack("UPDATE_COMPLETE", outputs={"RepositoryUri": "123456789012.dkr.ecr/x"}),
        StackName=s.STACK,
    )

    r = flow.run("--yes", env="prod")

    assert r.code == 0, r.text
    root_policy, data_policy = (json.loads(x["StackPolicyBody"]) for x in flow.requests["SetStackPolicy"])

    def denied(policy: dict) -> set[str]:
        out = set()
        for st in policy["Statement"]:
            if st["Effect"] == "Deny":
                assert set(st["Action"]) == {"Update:Replace", "Update:Delete"}
                out |= set(st["Resource"])
        return out

    assert denied(root_policy) == {"LogicalResourceId/AuditLogGroup", "LogicalResourceId/DataStack"}
    assert denied(data_policy) == {
        "LogicalResourceId/AppLogGroup",
        "LogicalResourceId/BackendRepository",
        "LogicalResourceId/FilesBucket",
    }
    assert {"Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"} in root_policy[
        "Statement"
    ]
    assert "termination protection on karematch-dev" in r.out
    assert "RepositoryUri" in r.out


def test_the_cfn_role_and_capabilities_are_passed(flow):
    flow.existing().created().described(s.change_set([], status="FAILED", reason=s.NO_CHANGES_REASON))
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--yes", "--cfn-role-arn", "arn:aws:iam::123456789012:role/karematch-cfn-execution")

    assert r.code == 0, r.text
    (request,) = flow.requests["CreateChangeSet"]
    assert request["RoleARN"] == "arn:aws:iam::123456789012:role/karematch-cfn-execution"
    assert request["Capabilities"] == []  # the fixture tree has no IAM resources


def test_protection_steps_are_independent_and_a_failure_says_the_stack_is_deployed(flow):
    prod = {**LIVE, "EnvironmentName": "prod", "ImageTag": ""}
    no_drift(flow.existing(params=prod)).created().described(notify_change()).described(
        notify_nested(), NOTIFY_CS
    )
    executes(
        flow,
        [s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=60, physical=s.ROOT_ID)],
        "UPDATE_COMPLETE",
    )
    live_resources(flow)
    denied = "User: arn:aws:sts::123456789012:assumed-role/ci is not authorized"
    flow.fail("set_stack_policy", "AccessDenied", denied, 403)  # the root's
    flow.add("set_stack_policy", {}, StackName=DATA_ID, StackPolicyBody=ANY)  # still attempted
    flow.fail("update_termination_protection", "AccessDenied", denied, 403)  # still attempted
    flow.add(
        "describe_stacks",
        s.stack("UPDATE_COMPLETE", outputs={"RepositoryUri": "123456789012.dkr.ecr/x"}),
        StackName=s.STACK,
    )

    r = flow.run("--yes", env="prod")

    assert r.code == 6, r.text
    first = r.err.splitlines()[0]
    assert first.startswith(
        "error: karematch-dev deployed (UPDATE_COMPLETE); protection NOT applied: "
        "stack policy of karematch-dev (setting the stack policy of karematch-dev: access "
        "denied (AccessDenied)"
    )
    assert "termination protection (enabling termination protection on karematch-dev: access denied" in first
    assert "protection: stack policy on DataStack denies" in r.out  # the data stack's policy is set
    assert "RepositoryUri" in r.out  # the deploy's result is still shown
    root_policy = json.loads(flow.requests["SetStackPolicy"][0]["StackPolicyBody"])
    command = next(line.strip() for line in r.err.splitlines() if "set-stack-policy" in line)
    assert command.startswith(
        f"aws cloudformation set-stack-policy --stack-name {s.ROOT_ID} --stack-policy-body '"
    )
    assert json.loads(command.split("--stack-policy-body ", 1)[1].strip("'")) == root_policy
    assert (
        "aws cloudformation update-termination-protection --enable-termination-protection "
        "--stack-name karematch-dev"
    ) in r.err


def test_protection_after_a_prod_deploy_with_no_changes_reports_what_is_missing(flow):
    prod = {**LIVE, "EnvironmentName": "prod", "ImageTag": ""}
    no_drift(flow.existing(params=prod)).created().described(
        s.change_set([], status="FAILED", reason=s.NO_CHANGES_REASON)
    )
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stacks", s.stack("UPDATE_COMPLETE", params=prod), StackName=s.STACK)
    flow.fail("list_stack_resources", "AccessDenied", "not authorized", 403)
    flow.add(
        "update_termination_protection",
        {"StackId": s.ROOT_ID},
        EnableTerminationProtection=True,
        StackName=s.ROOT_ID,
    )

    r = flow.run("--yes", env="prod")

    assert r.code == 6, r.text
    assert "no changes" in r.out and "protection: termination protection on karematch-dev" in r.out
    assert r.err.startswith("error: karematch-dev has no changes; protection NOT applied: stack policies")
    assert "run the same deploy again" in r.err


# ------------------------------------------------------------------------------------------
# Failures after the change set exists
# ------------------------------------------------------------------------------------------
def test_an_access_error_after_the_change_set_exists_says_what_is_left_on_an_existing_stack(flow):
    flow.existing().created()
    flow.fail(
        "describe_change_set",
        "AccessDenied",
        "not authorized to perform: cloudformation:DescribeChangeSet",
        403,
    )

    r = flow.run("--yes")

    assert r.code == 5, r.text
    assert "DeleteChangeSet" not in flow.requests  # not a dry run, and the stack was there before
    assert (
        f"nothing was executed; left behind: change set {s.ROOT_CS} on stack karematch-dev (not "
        f"executed); delete it: aws cloudformation delete-change-set --change-set-name {s.ROOT_CS}"
    ) in r.err


@pytest.mark.parametrize("first_create", [True, False])
def test_an_access_error_after_the_change_set_exists_deletes_it_on_a_dry_run_or_a_new_stack(
    flow, first_create
):
    if first_create:
        flow.fail("describe_stacks", "ValidationError", "Stack with id karematch-dev does not exist")
    else:
        flow.existing()
    flow.created()
    flow.fail(
        "describe_change_set",
        "AccessDenied",
        "not authorized to perform: cloudformation:DescribeChangeSet",
        403,
    )
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)
    if first_create:
        flow.add("describe_stacks", s.stack("REVIEW_IN_PROGRESS"), StackName=s.ROOT_ID)
        flow.add("delete_stack", {}, StackName=s.ROOT_ID)

    r = flow.run("--yes") if first_create else flow.run("--dry-run")

    assert r.code == 5, r.text
    assert "change set deleted" in r.out
    assert ("empty stack karematch-dev (REVIEW_IN_PROGRESS) deleted" in r.out) is first_create
    made = "change set and empty stack were" if first_create else "change set was"
    assert f"nothing was executed; this run's {made} deleted" in r.err


# ------------------------------------------------------------------------------------------
# EnableDeletionProtection (plan_parameters on a root that declares it)
# ------------------------------------------------------------------------------------------
def protect_plan(
    kind: str, assignments: dict[str, str] | None = None, file_value: str | None = None, tmp_path=None
) -> deployer.ParameterPlan:
    t = inputs.load_tree(FIXTURES / "tree-protect")
    path = FIXTURES / "params" / "protect-dev.json"
    if file_value is not None:
        path = tmp_path / "protect-dev.json"
        path.write_text(
            json.dumps(
                [
                    {"ParameterKey": "EnvironmentName", "ParameterValue": "dev"},
                    {"ParameterKey": names.ENABLE_DELETION_PROTECTION, "ParameterValue": file_value},
                ]
            )
        )
    params = inputs.load_parameters(t, "dev", path, assignments or {})
    prep = deployer.Prepared(t, params, [], s.STACK)
    live = s.stack(
        "UPDATE_COMPLETE", params={"EnvironmentName": "dev", names.ENABLE_DELETION_PROTECTION: "false"}
    )
    stack = live["Stacks"][0] if kind == changeset.UPDATE else None
    return deployer.plan_parameters(None, prep, stack, kind)  # no AWS call for this root


def sent(plan: deployer.ParameterPlan) -> dict:
    return next(e for e in plan.entries if e["ParameterKey"] == names.ENABLE_DELETION_PROTECTION)


def source(plan: deployer.ParameterPlan) -> str:
    return next(row[2] for row in plan.rows if row[0] == names.ENABLE_DELETION_PROTECTION)


def test_deletion_protection_is_off_on_a_first_create_unless_given_on_the_command_line(tmp_path):
    plan = protect_plan(changeset.CREATE, file_value="true", tmp_path=tmp_path)
    assert sent(plan) == {"ParameterKey": "EnableDeletionProtection", "ParameterValue": "false"}
    assert "first create" in source(plan)
    assert any("turned on by the next deploy" in note for note in plan.notes)

    plan = protect_plan(changeset.CREATE, {"EnableDeletionProtection": "true"})
    assert sent(plan)["ParameterValue"] == "true" and source(plan) == "command line"
    assert not any("EnableDeletionProtection" in note for note in plan.notes)


def test_deletion_protection_is_stated_explicitly_on_every_update(tmp_path):
    plan = protect_plan(changeset.UPDATE)  # the file does not set it: the template Default
    assert sent(plan) == {"ParameterKey": "EnableDeletionProtection", "ParameterValue": "true"}
    assert source(plan) == "template default"

    plan = protect_plan(changeset.UPDATE, file_value="false", tmp_path=tmp_path)
    assert sent(plan)["ParameterValue"] == "false" and source(plan).endswith("protect-dev.json")

    plan = protect_plan(changeset.UPDATE, {"EnableDeletionProtection": "false"})
    assert sent(plan)["ParameterValue"] == "false" and source(plan) == "command line"
    assert all("UsePreviousValue" not in e for e in plan.entries)
