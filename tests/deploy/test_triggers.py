"""Rollback triggers (moto accepts RollbackConfiguration and ignores it, so CloudFormation and
CloudWatch are stubbed): armed only on updates of a running service whose alarms are calm and
that touch the service; always stated; the smoke test inside the monitoring window cancels a
sick update."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from . import shapes as s
from .test_smoke import Site
from .test_stubbed_deploy import LIVE, LOGS, Flow

pytestmark = pytest.mark.deploy

RUNNING = {**LIVE, "ImageTag": "v1"}
ALARMS = ("karematch-dev-alb-5xx-errors", "karematch-dev-alb-healthy-hosts", "karematch-dev-running-tasks")
ALARM_IDS = ("LoadBalancer5xxAlarm", "LoadBalancerHealthyHostsAlarm", "ServiceRunningTasksAlarm")
TASK_DEFINITION = "AWS::ECS::TaskDefinition"


class TriggerFlow(Flow):
    def __init__(self, moto) -> None:
        super().__init__(moto)
        import boto3

        self.cw = boto3.client(
            "cloudwatch", region_name=s.REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.cw_stub = Stubber(self.cw)
        self.aws.clients["cloudwatch"] = self.cw

    def run(self, *extra: str, env: str = "dev"):
        with self.cw_stub:
            r = super().run(*extra, env=env)
            self.cw_stub.assert_no_pending_responses()
        return r

    def live(self, *, firing: str | None = None) -> TriggerFlow:
        """The running stack, its tree listed once (shared by the task count and the alarms),
        the alarms' state."""
        self.add("describe_stacks", s.stack("UPDATE_COMPLETE", params=RUNNING), StackName=s.STACK)
        self.add("list_stack_resources", self.tree(), StackName=s.ROOT_ID)
        return self.alarms(firing=firing)

    @staticmethod
    def tree() -> dict:
        return s.resources(
            ("AuditLogGroup", LOGS, "audit"),
            *zip(ALARM_IDS, ["AWS::CloudWatch::Alarm"] * 3, ALARMS, strict=True),
        )

    def alarms(self, *, firing: str | None = None) -> TriggerFlow:
        """The alarms' state (DescribeAlarms)."""
        alarms = [
            {
                "AlarmName": n,
                "AlarmArn": f"arn:aws:cloudwatch:{s.REGION}:{s.ACCOUNT}:alarm:{n}",
                "StateValue": "ALARM" if n == firing else "OK",
            }
            for n in ALARMS
        ]
        self.cw_stub.add_response(
            "describe_alarms",
            s.validated("describe_alarms", {"MetricAlarms": alarms}, service="cloudwatch"),
            {"AlarmNames": sorted(ALARMS)},
        )
        return self


def task_definition_change() -> dict:
    return s.change_set(
        [
            s.change(
                "Modify",
                "TaskDefinition",
                TASK_DEFINITION,
                replacement="True",
                details=[s.detail("ContainerDefinitions")],
            )
        ]
    )


@pytest.fixture
def flow(moto) -> TriggerFlow:
    return TriggerFlow(moto)


@pytest.fixture
def site():
    server = Site()
    yield server
    server.server.shutdown()
    server.server.server_close()


def armed_request(flow: TriggerFlow, n: int = 0) -> dict:
    return flow.requests["CreateChangeSet"][n]["RollbackConfiguration"]


def execute_with_window(flow: TriggerFlow, site: Site, final: str, *, cancel: bool) -> None:
    """Prime, execute; a poll shows the task definition complete while the stack is still
    UPDATE_IN_PROGRESS (the monitoring window): the smoke test reads the stack, then (on a
    failure) cancels; the next poll reaches ``final``."""
    old = s.event(s.STACK, "AWS::CloudFormation::Stack", "UPDATE_COMPLETE", seconds=-100, physical=s.ROOT_ID)
    done = s.event("TaskDefinition", TASK_DEFINITION, "UPDATE_COMPLETE", seconds=30)
    flow.add("describe_stack_events", s.events(old), StackName=s.ROOT_ID)
    flow.add("execute_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("describe_stack_events", s.events(done, old), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack("UPDATE_IN_PROGRESS", params=RUNNING), StackName=s.ROOT_ID)
    deployed = s.stack(
        "UPDATE_IN_PROGRESS", params={**RUNNING, "ImageTag": "v2"}, outputs={"LoadBalancerDnsName": site.url}
    )
    flow.add("describe_stacks", deployed, StackName=s.ROOT_ID)
    if cancel:
        flow.add("cancel_update_stack", {}, StackName=s.ROOT_ID)
    flow.add("describe_stack_events", s.events(done, old), StackName=s.ROOT_ID)
    flow.add("describe_stacks", s.stack(final, params=RUNNING), StackName=s.ROOT_ID)
    flow.add("describe_stack_events", s.events(done, old), StackName=s.ROOT_ID)


def test_an_image_deploy_arms_the_triggers_and_smokes_inside_the_window(flow, site):
    flow.live().created().described(task_definition_change())
    execute_with_window(flow, site, "UPDATE_COMPLETE", cancel=False)
    flow.add(
        "describe_stacks", s.stack("UPDATE_COMPLETE", params={**RUNNING, "ImageTag": "v2"}), StackName=s.STACK
    )

    r = flow.run("--yes", "--image-tag", "v2")

    assert r.code == 0, r.text
    assert armed_request(flow) == {
        "RollbackTriggers": [
            {"Arn": f"arn:aws:cloudwatch:{s.REGION}:{s.ACCOUNT}:alarm:{n}", "Type": "AWS::CloudWatch::Alarm"}
            for n in sorted(ALARMS)
        ],
        "MonitoringTimeInMinutes": 10,
    }
    assert "Rollback triggers: armed: karematch-dev-alb-5xx-errors" in r.out
    assert r.out.count("smoke: ok    API /health") == 1  # inside the window, not again after
    assert r.out.index("checking inside the monitoring window") < r.out.index(
        "karematch-dev: UPDATE_COMPLETE"
    )


def test_a_smoke_failure_inside_the_window_cancels_the_update(flow, site):
    site.health = [500]
    flow.live().created().described(task_definition_change())
    execute_with_window(flow, site, "UPDATE_ROLLBACK_COMPLETE", cancel=True)

    r = flow.run("--yes", "--image-tag", "v2", "--smoke-deadline", "0.1", "--monitoring-minutes", "15")

    assert r.code == 10, r.text
    assert armed_request(flow)["MonitoringTimeInMinutes"] == 15
    assert flow.requests["CancelUpdateStack"] == [{"StackName": s.ROOT_ID}]
    assert (
        "the update was cancelled inside the monitoring window and karematch-dev is UPDATE_ROLLBACK_COMPLETE"
        in r.err
    )


def test_an_alarm_already_in_alarm_keeps_the_triggers_off(flow):
    flow.live(firing="karematch-dev-alb-5xx-errors").created().described(task_definition_change())
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--dry-run", "--image-tag", "v2")

    assert r.code == 0, r.text
    assert armed_request(flow) == {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0}
    assert "Rollback triggers: not armed: karematch-dev-alb-5xx-errors already in ALARM" in r.out


def test_a_template_change_to_the_service_recreates_the_change_set_with_triggers(flow):
    second = s.change_set_arn("again", 7)
    # No image change: the alarms are not read up front, and the change set is created unarmed.
    flow.add("describe_stacks", s.stack("UPDATE_COMPLETE", params=RUNNING), StackName=s.STACK)
    flow.add("list_stack_resources", flow.tree(), StackName=s.ROOT_ID)  # the task count
    flow.created().described(task_definition_change())
    # It touches the task definition: now the alarms are read, and it is created again, armed.
    flow.add("list_stack_resources", flow.tree(), StackName=s.ROOT_ID)
    flow.alarms()
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)
    flow.add("create_change_set", {"Id": second, "StackId": s.ROOT_ID})
    flow.described(task_definition_change() | {"ChangeSetId": second}, second)
    flow.add("delete_change_set", {}, ChangeSetName=second)

    r = flow.run("--dry-run")

    assert r.code == 0, r.text
    assert armed_request(flow, 0)["RollbackTriggers"] == []
    assert len(armed_request(flow, 1)["RollbackTriggers"]) == 3
    assert "re-creating the change set with rollback triggers" in r.out


def test_no_image_yet_means_no_triggers_and_a_create_states_none(flow):
    flow.existing().created().described(task_definition_change())  # LIVE: ImageTag ""
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--dry-run")

    assert r.code == 0, r.text
    assert "Rollback triggers: not armed: no image runs yet" in r.out
    assert armed_request(flow) == {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0}


def test_monitoring_minutes_is_checked_before_aws(moto, karematch):
    from .conftest import tree_args

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--monitoring-minutes", "181")
    assert r.code == 2 and "--monitoring-minutes" in r.err


def test_an_update_that_does_not_touch_the_service_reads_no_alarm(flow):
    # No image change and a change set without a watched type: no DescribeAlarms at all (the
    # cw stubber has nothing queued, so a call would fail), and the update states no triggers.
    flow.add("describe_stacks", s.stack("UPDATE_COMPLETE", params=RUNNING), StackName=s.STACK)
    flow.add("list_stack_resources", flow.tree(), StackName=s.ROOT_ID)  # the task count
    flow.created().described(s.change_set([s.change("Modify", "AuditLogGroup", LOGS)]))
    flow.add("delete_change_set", {}, ChangeSetName=s.ROOT_CS)

    r = flow.run("--dry-run")

    assert r.code == 0, r.text
    assert armed_request(flow) == {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0}
    assert "Rollback triggers: not armed: the change set does not touch the service" in r.out
