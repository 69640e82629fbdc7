"""Rollback triggers: a deploy that makes the service sick rolls itself back.

On an update, the service-health alarms (5XX errors, healthy hosts, running tasks) are passed
as CloudFormation rollback triggers with a monitoring period, but only when they can help:

* not on a first create, and not while no image runs (the availability alarms are in ALARM
  then, so the first image deploy would roll back at once);
* not when a trigger alarm is already in ALARM (DescribeAlarms first);
* only when the change set touches the service, its task definition or the load balancer:
  otherwise every update would wait out the monitoring period.

A stack keeps the rollback configuration of its last update when none is given, so every
update states it: the triggers, or an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from karematch_cfn import names
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import changeset, protect
from karematch_cfn.stacks.monitoring import HEALTHY_HOSTS_ALARM, RUNNING_TASKS_ALARM, SERVER_ERRORS_ALARM

TRIGGER_ALARMS = (SERVER_ERRORS_ALARM, HEALTHY_HOSTS_ALARM, RUNNING_TASKS_ALARM)
ALARM_TYPE = "AWS::CloudWatch::Alarm"
# A change to one of these is a change to what serves traffic: worth watching the alarms.
WATCHED_TYPES = frozenset(
    {
        "AWS::ECS::Service",
        "AWS::ECS::TaskDefinition",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
    }
)
MAX_MONITORING_MINUTES = 180  # RollbackConfiguration.MonitoringTimeInMinutes: 0-180
DEFAULT_MONITORING_MINUTES = 10


@dataclass(frozen=True)
class Triggers:
    """The alarms that may be armed (empty: none may) and why."""

    alarm_arns: tuple[str, ...]
    alarm_names: tuple[str, ...]
    minutes: int
    reason: str  # why not, when no alarm may be armed

    def configuration(self, armed: bool) -> dict[str, Any]:
        if not armed or not self.alarm_arns:
            return {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0}
        return {
            "RollbackTriggers": [{"Arn": arn, "Type": ALARM_TYPE} for arn in self.alarm_arns],
            "MonitoringTimeInMinutes": self.minutes,
        }

    def line(self, armed: bool) -> str:
        if armed and self.alarm_arns:
            return (
                f"Rollback triggers: armed: {', '.join(self.alarm_names)}; monitoring "
                f"{self.minutes} minute(s) after the update (CloudFormation rolls back if one goes "
                "into ALARM)"
            )
        why = self.reason or "the change set does not touch the service, task definition or load balancer"
        return f"Rollback triggers: not armed: {why}"


def touches_service(root: changeset.Node) -> bool:
    """Whether any stack of the change set tree adds, modifies or replaces a watched type."""
    return any(
        rc.get("ResourceType") in WATCHED_TYPES
        for node in root.walk()
        for rc in changeset.effective_changes(node)
    )


def available(
    aws: awsmod.Aws,
    *,
    stack: dict[str, Any] | None,
    kind: str,
    account: str,
    minutes: int,
) -> Triggers:
    """The trigger alarms of the live stack, unless a precondition rules them out."""
    if kind != changeset.UPDATE or stack is None:
        return Triggers((), (), 0, "first create")
    if minutes == 0:
        return Triggers((), (), 0, "--monitoring-minutes 0")
    live = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", []) or []}
    if names.IMAGE_TAG in live and not live[names.IMAGE_TAG]:
        return Triggers((), (), 0, "no image runs yet (its availability alarms are in ALARM until one does)")
    tree = protect.live_tree(aws.cfn, stack["StackId"])
    found = sorted(
        r["PhysicalResourceId"]
        for node in tree.walk()
        for r in node.resources
        if r.get("ResourceType") == ALARM_TYPE
        and r.get("LogicalResourceId") in TRIGGER_ALARMS
        and r.get("PhysicalResourceId")
    )
    if not found:
        return Triggers((), (), 0, "the stack has no service-health alarms")
    out = awsmod.call(
        "reading the service-health alarms", aws.client("cloudwatch").describe_alarms, AlarmNames=found
    )
    alarms = {a["AlarmName"]: a for a in out.get("MetricAlarms", [])}
    firing = sorted(n for n, a in alarms.items() if a.get("StateValue") == "ALARM")
    if firing:
        return Triggers(
            (), (), 0, f"{', '.join(firing)} already in ALARM (it would roll the update back at once)"
        )
    arns = tuple(
        alarms[n].get("AlarmArn") or f"arn:{aws.partition}:cloudwatch:{aws.region}:{account}:alarm:{n}"
        for n in found
        if n in alarms
    )
    if not arns:
        return Triggers((), (), 0, "the service-health alarms were not found in CloudWatch")
    return Triggers(arns, tuple(n for n in found if n in alarms), minutes, "")
