"""``status``: the live environment, read only; the exit code is the verdict.

moto shows a deployed tree (nested stacks, the service's counts); the states moto never reaches
(rolled back, busy, failed, termination protection on, stack policies) are stubbed.
"""

from __future__ import annotations

import pytest

from . import shapes as s
from .conftest import tree_args
from .test_stubbed_deploy import DATA_ID, LOGS, Flow

pytestmark = pytest.mark.deploy


def test_status_of_a_deployed_environment_on_moto(moto, karematch):
    assert karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "abc123").code == 0

    r = karematch("status", "--env", "dev")

    assert r.code == 0, r.text
    lines = r.out.splitlines()
    for child in ("DataStack", "NotifyStack", "ServiceStack"):
        assert any(line.split()[:2] == [child, "CREATE_COMPLETE"] for line in [x.strip() for x in lines]), (
            r.out
        )
    assert "termination protection: off" in r.out
    assert "image tag: abc123" in r.out
    ecs = moto.client("ecs")
    arn = ecs.list_services(cluster=ecs.list_clusters()["clusterArns"][0])["serviceArns"][0]
    desired = ecs.describe_services(cluster=ecs.list_clusters()["clusterArns"][0], services=[arn])[
        "services"
    ][0]["desiredCount"]
    assert f"desired {desired}," in r.out
    assert r.out.rstrip().endswith("every stack is stable") or "tasks (starting" in r.out


def test_status_of_a_missing_stack_is_exit_7(moto, karematch):
    r = karematch("status", "--env", "dev")

    assert r.code == 7, r.text
    assert r.err.startswith("error: stack karematch-dev does not exist")
    assert "karematch-cfn deploy --env dev" in r.err


def test_status_refuses_bad_input_before_aws(moto, karematch):
    assert karematch("status", "--env", "qa").code == 2
    assert karematch("status", "--env", "dev", "--stack-name", "bad_name").code == 2


class StatusFlow(Flow):
    def run_status(self):
        import io

        from karematch_cfn import cli
        from karematch_cfn.deploy import deployer
        from karematch_cfn.deploy.console import Console

        from .conftest import Result

        args = cli.build_parser().parse_args(["status", "--env", "dev"])
        out, err = io.StringIO(), io.StringIO()
        hooks = deployer.Hooks(
            aws=self.aws, sleep=self.sleep, interactive=lambda: False, console=Console(out, err)
        )
        with self.stub:
            code = cli.run(args, hooks)
            self.stub.assert_no_pending_responses()
        return Result(code, out.getvalue(), err.getvalue())


def live(flow: StatusFlow, root_status: str, data_status: str, *, protected: bool = False) -> None:
    root = s.stack(
        root_status,
        params={"EnvironmentName": "dev", "ImageTag": ""},
        outputs={"LoadBalancerDnsName": "alb-123.us-east-1.elb.amazonaws.com"},
    )
    root["Stacks"][0]["EnableTerminationProtection"] = protected
    flow.add("describe_stacks", root, StackName=s.STACK)
    flow.add(
        "list_stack_resources",
        s.resources(("AuditLogGroup", LOGS, "audit"), ("DataStack", "AWS::CloudFormation::Stack", DATA_ID)),
        StackName=s.ROOT_ID,
    )
    flow.add("list_stack_resources", s.resources(("AppLogGroup", LOGS, "app")), StackName=DATA_ID)
    flow.add(
        "get_stack_policy", {"StackPolicyBody": '{"Statement": []}'} if protected else {}, StackName=s.ROOT_ID
    )
    data = s.stack(data_status, name=s.nested_name("DataStack"), stack_id=DATA_ID)
    if data_status.endswith("FAILED"):
        data["Stacks"][0]["StackStatusReason"] = "Resource AppLogGroup failed: already exists"
    flow.add("describe_stacks", data, StackName=DATA_ID)
    flow.add(
        "get_stack_policy", {"StackPolicyBody": '{"Statement": []}'} if protected else {}, StackName=DATA_ID
    )


@pytest.fixture
def flow(moto) -> StatusFlow:
    return StatusFlow(moto)


@pytest.mark.parametrize(
    ("root_status", "data_status", "code", "first_line"),
    [
        ("UPDATE_COMPLETE", "UPDATE_COMPLETE", 0, None),
        ("UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", 9, "error: rolled back: karematch-dev"),
        ("UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", 8, "error: busy: karematch-dev UPDATE_IN_PROGRESS"),
        ("UPDATE_COMPLETE", "UPDATE_FAILED", 4, "error: failed: DataStack UPDATE_FAILED"),
        ("ROLLBACK_COMPLETE", "DELETE_COMPLETE", 4, "error: failed: karematch-dev ROLLBACK_COMPLETE"),
    ],
)
def test_status_verdicts_are_distinct_exit_codes(flow, root_status, data_status, code, first_line):
    if data_status == "DELETE_COMPLETE":  # a rolled-back create: the child is gone
        root = s.stack(root_status, params={"EnvironmentName": "dev"})
        flow.add("describe_stacks", root, StackName=s.STACK)
        flow.add("list_stack_resources", s.resources(), StackName=s.ROOT_ID)
        flow.add("get_stack_policy", {}, StackName=s.ROOT_ID)
    else:
        live(flow, root_status, data_status)

    r = flow.run_status()

    assert r.code == code, r.text
    if first_line is None:
        assert r.out.rstrip().endswith("healthy: every stack is stable")
        assert r.err == ""
    else:
        assert r.err.startswith(first_line), r.err
    if data_status == "UPDATE_FAILED":
        assert "DataStack: Resource AppLogGroup failed: already exists" in r.err


def test_status_shows_protection_and_stack_policies(flow):
    live(flow, "UPDATE_COMPLETE", "UPDATE_COMPLETE", protected=True)

    r = flow.run_status()

    assert r.code == 0, r.text
    assert "termination protection: on" in r.out
    rows = [
        line.split()
        for line in r.out.splitlines()
        if line.strip().startswith(("karematch-dev ", "DataStack"))
    ]
    assert [row[-1] for row in rows] == ["set", "set"]
    assert "image tag: none yet" in r.out
    outputs = r.out.split("Outputs:", 1)[1].split()
    assert outputs[outputs.index("LoadBalancerDnsName") + 1] == "alb-123.us-east-1.elb.amazonaws.com"


def test_status_of_a_never_executed_stack_is_missing(moto, karematch):
    moto.client("cloudformation").create_change_set(
        StackName="karematch-dev",
        ChangeSetName="never-executed",
        ChangeSetType="CREATE",
        TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}',
    )

    r = karematch("status", "--env", "dev")

    assert r.code == 7, r.text
    assert "empty REVIEW_IN_PROGRESS stack" in r.err
