"""``drift`` and the drift check before a prod deploy, with CloudFormation stubbed (moto has no
drift detection), shaped like DetectStackDrift, DescribeStackDriftDetectionStatus and
DescribeStackResourceDrifts responses."""

from __future__ import annotations

import io

import pytest

from karematch_cfn import cli
from karematch_cfn.deploy import deployer
from karematch_cfn.deploy.console import Console

from . import shapes as s
from .conftest import Result
from .test_stubbed_deploy import DATA_ID, LOGS, Flow

pytestmark = pytest.mark.deploy

SERVICE = "AWS::ECS::Service"


@pytest.fixture
def flow(moto) -> Flow:
    return Flow(moto)


def run_drift(flow: Flow, *extra: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    sleeps: list[float] = []
    hooks = deployer.Hooks(aws=flow.aws, sleep=sleeps.append, console=Console(out, err))
    args = cli.build_parser().parse_args(["drift", "--env", "dev", *extra])
    with flow.stub:
        code = cli.run(args, hooks)
        flow.stub.assert_no_pending_responses()
    flow.sleeps = sleeps
    return Result(code, out.getvalue(), err.getvalue())


def status(
    detection: str, stack_id: str, drift: str, state: str = "DETECTION_COMPLETE", reason: str = ""
) -> dict:
    body = {
        "StackId": stack_id,
        "StackDriftDetectionId": detection,
        "DetectionStatus": state,
        "Timestamp": s.T0,
    }
    if drift:
        body["StackDriftStatus"] = drift
    if reason:
        body["DetectionStatusReason"] = reason
    return s.validated("describe_stack_drift_detection_status", body)


def resource_drift(logical_id: str, rtype: str, state: str, *diffs: tuple[str, str, str]) -> dict:
    return {
        "StackId": DATA_ID,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": f"{logical_id.lower()}-physical",
        "ResourceType": rtype,
        "StackResourceDriftStatus": state,
        "Timestamp": s.T0,
        "PropertyDifferences": [
            {"PropertyPath": p, "ExpectedValue": e, "ActualValue": a, "DifferenceType": "NOT_EQUAL"}
            for p, e, a in diffs
        ],
    }


def detection(
    flow: Flow, data: str, *, drifts: list[dict] | None = None, in_progress: bool = False, **kw
) -> Flow:
    """The tree (root + DataStack), detection started on both, polled, and DataStack's drifts."""
    flow.add(
        "list_stack_resources",
        s.resources(("AuditLogGroup", LOGS, "audit"), ("DataStack", "AWS::CloudFormation::Stack", DATA_ID)),
        StackName=s.ROOT_ID,
    )
    flow.add("list_stack_resources", s.resources(("AppLogGroup", LOGS, "app")), StackName=DATA_ID)
    flow.add("detect_stack_drift", {"StackDriftDetectionId": "d-root"}, StackName=s.ROOT_ID)
    flow.add("detect_stack_drift", {"StackDriftDetectionId": "d-data"}, StackName=DATA_ID)
    flow.add(
        "describe_stack_drift_detection_status",
        status("d-root", s.ROOT_ID, "IN_SYNC"),
        StackDriftDetectionId="d-root",
    )
    if in_progress:
        flow.add(
            "describe_stack_drift_detection_status",
            status("d-data", DATA_ID, "", "DETECTION_IN_PROGRESS"),
            StackDriftDetectionId="d-data",
        )
    flow.add(
        "describe_stack_drift_detection_status",
        status("d-data", DATA_ID, data, **kw),
        StackDriftDetectionId="d-data",
    )
    if drifts is not None:
        flow.add(
            "describe_stack_resource_drifts",
            s.validated("describe_stack_resource_drifts", {"StackResourceDrifts": drifts}),
            StackName=DATA_ID,
            StackResourceDriftStatusFilters=["MODIFIED", "DELETED"],
        )
    return flow


def test_drift_runs_on_every_nested_stack_and_prints_what_differs(flow):
    flow.existing()
    detection(
        flow,
        "DRIFTED",
        in_progress=True,
        drifts=[
            resource_drift("AppLogGroup", LOGS, "MODIFIED", ("/RetentionInDays", "30", "7")),
            resource_drift("Service", SERVICE, "MODIFIED", ("/DesiredCount", "2", "4")),
            resource_drift(
                "Database", "AWS::RDS::DBInstance", "MODIFIED", ("/MasterUserPassword", "a", "hunter2")
            ),
            resource_drift("Topic", "AWS::SNS::Topic", "DELETED"),
        ],
    )

    r = run_drift(flow)

    assert r.code == 11, r.text
    assert flow.sleeps == [5.0]  # DataStack's detection was still running once
    assert "drifted: DataStack/AppLogGroup (AWS::Logs::LogGroup) MODIFIED" in r.out
    assert "    /RetentionInDays: expected '30', actual '7' (NOT_EQUAL)" in r.out
    assert "DataStack/Service" not in r.out  # autoscaling's DesiredCount is expected drift
    assert "1 expected difference(s) left out" in r.out
    assert "/MasterUserPassword: expected '****', actual '****'" in r.out and "hunter2" not in r.out
    assert "drifted: DataStack/Topic (AWS::SNS::Topic) DELETED" in r.out
    assert r.err.startswith("error: karematch-dev: 3 resource(s) changed outside CloudFormation")


def test_only_expected_drift_is_no_drift(flow):
    flow.existing()
    detection(
        flow, "DRIFTED", drifts=[resource_drift("Service", SERVICE, "MODIFIED", ("/DesiredCount", "2", "3"))]
    )

    r = run_drift(flow)

    assert r.code == 0, r.text
    assert "drift: none found on 2 stack(s)" in r.out


def test_a_failed_detection_is_exit_4_with_its_reason(flow):
    flow.existing()
    detection(
        flow,
        "",
        drifts=[],
        state="DETECTION_FAILED",
        reason="Failed to detect drift on resource [AppLogGroup]: not authorized to perform logs:DescribeLogGroups",
    )

    r = run_drift(flow)

    assert r.code == 4, r.text
    assert "drift detection incomplete: DataStack: Failed to detect drift on resource [AppLogGroup]" in r.err


def test_a_drifted_stack_is_refused_before_any_change_set_and_allow_drift_skips_the_check(flow):
    flow.existing()
    detection(
        flow,
        "DRIFTED",
        drifts=[resource_drift("AppLogGroup", LOGS, "MODIFIED", ("/RetentionInDays", "30", "7"))],
    )

    r = flow.run("--yes", "--check-drift")

    assert r.code == 11, r.text
    assert "CreateChangeSet" not in flow.requests
    assert "nothing was deployed (the update would overwrite them)" in r.err
    assert "--allow-drift" in r.err


def test_allow_drift_deploys_without_detecting(flow):
    flow.existing().created().described(s.change_set([], status="FAILED", reason=s.NO_CHANGES_REASON))
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--yes", "--check-drift", "--allow-drift")

    assert r.code == 0, r.text
    assert "drift: not checked (--allow-drift)" in r.out
    assert "DetectStackDrift" not in flow.requests


def test_a_role_that_may_not_detect_drift_is_warned_not_blocked(flow):
    flow.existing()
    flow.add("list_stack_resources", s.resources(("AuditLogGroup", LOGS, "audit")), StackName=s.ROOT_ID)
    flow.fail(
        "detect_stack_drift",
        "AccessDenied",
        "not authorized to perform: cloudformation:DetectStackDrift",
        403,
    )
    flow.created().described(s.change_set([], status="FAILED", reason=s.NO_CHANGES_REASON))
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--yes", "--check-drift")

    assert r.code == 0, r.text
    assert "drift: not checked: starting drift detection on root: access denied (AccessDenied)" in r.err
