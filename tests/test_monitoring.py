"""monitoring.yaml does what spec section 9 says: the seven alarms with the spec's metrics,
comparisons and thresholds, each notifying an encrypted topic that CloudWatch can publish to;
the custom metrics from the application log group; the dashboard with ECS, RDS, ALB and log
widgets."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import helpers, spec

# Data kept on stack deletion; a rolled-back first create leaves no named leftover.
KEEP = ("Retain", "RetainExceptOnCreate")
FILE = "monitoring.yaml"
MON = "9. Monitoring"
ALARM = "AWS::CloudWatch::Alarm"
TOPIC_REF = {"Ref": "AlarmTopic"}
# Decision (docs/decisions.md): the spec's MB/GB are read as binary units (MiB/GiB).
UNIT_BYTES = {"MB": 1024**2, "GB": 1024**3}


@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return helpers.template(FILE)


def alarm_bullets() -> list[str]:
    """The bullets of the spec's **Alarms** list."""
    return spec.find(r"\*\*Alarms\*\*:\n((?:- .*\n?)+)", MON).strip().splitlines()


def alarm_line(pattern: str) -> re.Match:
    """One bullet of the spec's **Alarms** list, matched with ``pattern``."""
    m = re.search(pattern, "\n".join(alarm_bullets()))
    assert m, f"spec alarm list has no match for {pattern!r}"
    return m


def alarm_on(t, metric: str) -> dict[str, Any]:
    """The one alarm watching ``metric`` (directly or inside a metric-math query)."""
    found = []
    for res in helpers.resources_of_type(t, ALARM).values():
        p = helpers.props(res)
        metrics = {p.get("MetricName")} | {
            q["MetricStat"]["Metric"]["MetricName"] for q in p.get("Metrics", []) if "MetricStat" in q
        }
        if metric in metrics:
            found.append(p)
    assert len(found) == 1, f"expected one alarm on {metric}, found {len(found)}"
    return found[0]


def dims(p: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}


def statistic(p: dict[str, Any]) -> str:
    return p.get("Statistic") or p["ExtendedStatistic"]


# ---------------------------------------------------------------------------------------------
# The seven alarms (spec section 9, **Alarms**)
# ---------------------------------------------------------------------------------------------
def test_rds_cpu_alarm(t):
    threshold = int(alarm_line(r"RDS CPU > (\d+)%").group(1))
    p = alarm_on(t, "CPUUtilization")
    assert p["Namespace"] == "AWS/RDS"
    assert dims(p) == {"DBInstanceIdentifier": {"Ref": "DatabaseInstanceId"}}
    assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == threshold


@pytest.mark.parametrize(
    "metric, pattern",
    [
        ("FreeableMemory", r"RDS free memory < (\d+) (MB|GB)"),
        ("FreeStorageSpace", r"RDS free storage < (\d+) (MB|GB)"),
    ],
)
def test_rds_low_memory_and_storage_alarms_in_bytes(t, metric, pattern):
    m = alarm_line(pattern)
    threshold_bytes = int(m.group(1)) * UNIT_BYTES[m.group(2)]
    p = alarm_on(t, metric)
    assert p["Namespace"] == "AWS/RDS"
    assert dims(p) == {"DBInstanceIdentifier": {"Ref": "DatabaseInstanceId"}}
    assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == threshold_bytes
    assert p.get("Unit") in (None, "Bytes")


def test_alb_response_time_alarm(t):
    seconds = int(alarm_line(r"ALB response time > (\d+) second").group(1))
    p = alarm_on(t, "TargetResponseTime")
    assert p["Namespace"] == "AWS/ApplicationELB"
    assert dims(p) == {"LoadBalancer": {"Ref": "LoadBalancerFullName"}}
    assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == seconds
    # No requests is not slowness.
    assert p["TreatMissingData"] == "notBreaching"


def test_alb_healthy_host_alarm_watches_the_target_group_of_the_load_balancer(t):
    minimum = int(alarm_line(r"ALB healthy host count < (\d+)").group(1))
    p = alarm_on(t, "HealthyHostCount")
    assert p["Namespace"] == "AWS/ApplicationELB"
    assert dims(p) == {
        "TargetGroup": {"Ref": "TargetGroupFullName"},
        "LoadBalancer": {"Ref": "LoadBalancerFullName"},
    }
    assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == minimum
    assert p["TreatMissingData"] == "breaching"


def test_ecs_no_running_tasks_alarm_is_less_than_one_with_missing_data_breaching(t):
    equals = int(alarm_line(r"ECS running tasks = (\d+)").group(1))
    p = alarm_on(t, "RunningTaskCount")
    assert p["Namespace"] == "ECS/ContainerInsights"
    assert dims(p) == {"ClusterName": {"Ref": "ClusterName"}, "ServiceName": {"Ref": "ServiceName"}}
    # CloudWatch has no "=": counts are integers, so "= 0" is "< 1".
    assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == equals + 1
    assert statistic(p) in ("Minimum", "Average", "Maximum")
    assert p["TreatMissingData"] == "breaching"  # no metric = nothing running


def test_alb_5xx_alarm_sums_load_balancer_and_target_errors_over_the_spec_window(t):
    m = alarm_line(r"ALB 5XX errors > (\d+) \((\d+) min window\)")
    count, window = int(m.group(1)), int(m.group(2)) * 60
    p = alarm_on(t, "HTTPCode_Target_5XX_Count")
    assert p is not None and alarm_on(t, "HTTPCode_ELB_5XX_Count") == p  # one alarm, both sources
    stats = [q for q in p["Metrics"] if "MetricStat" in q]
    assert {q["MetricStat"]["Metric"]["MetricName"] for q in stats} == {
        "HTTPCode_ELB_5XX_Count",
        "HTTPCode_Target_5XX_Count",
    }
    for q in stats:
        assert q["MetricStat"]["Metric"]["Namespace"] == "AWS/ApplicationELB"
        assert dims(q["MetricStat"]["Metric"]) == {"LoadBalancer": {"Ref": "LoadBalancerFullName"}}
        assert q["MetricStat"]["Period"] == window and q["MetricStat"]["Stat"] == "Sum"
        assert q["ReturnData"] is False
    (expr,) = [q for q in p["Metrics"] if "Expression" in q]
    assert expr["ReturnData"] is True
    assert all(q["Id"] in expr["Expression"] for q in stats)
    assert p["ComparisonOperator"] == "GreaterThanThreshold" and p["Threshold"] == count
    assert p["EvaluationPeriods"] == 1 and p["DatapointsToAlarm"] == 1
    assert p["TreatMissingData"] == "notBreaching"


def test_there_are_exactly_the_spec_alarms_and_each_notifies_the_topic_on_alarm_and_ok(t):
    bullets = alarm_bullets()
    found = helpers.resources_of_type(t, ALARM)
    assert len(found) == len(bullets) == 7
    for logical_id, res in found.items():
        p = helpers.props(res)
        assert p["AlarmActions"] == [TOPIC_REF], logical_id
        assert p["OKActions"] == [TOPIC_REF], logical_id
        assert "${EnvironmentName}" in helpers.sub_text(p["AlarmName"])
        assert p["DatapointsToAlarm"] <= p["EvaluationPeriods"]


# ---------------------------------------------------------------------------------------------
# The topic: encrypted with a key CloudWatch may use
# ---------------------------------------------------------------------------------------------
def test_topic_is_encrypted_with_a_customer_managed_key_cloudwatch_can_use(t):
    topic = helpers.props(helpers.one_of_type(t, "AWS::SNS::Topic"))
    assert helpers.sub_text(topic["TopicName"]).startswith("karematch-${EnvironmentName}-")
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]  # not alias/aws/sns
    key = t["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["DeletionPolicy"] in KEEP and key["UpdateReplacePolicy"] == "Retain"
    kp = helpers.props(key)
    assert kp["EnableKeyRotation"] is True
    statements = kp["KeyPolicy"]["Statement"]
    (admin,) = [s for s in statements if "AWS" in s["Principal"]]
    assert helpers.sub_text(admin["Principal"]["AWS"][0]).endswith(":iam::${AWS::AccountId}:root")
    (use,) = [s for s in statements if "Service" in s["Principal"]]
    assert use["Principal"]["Service"] == ["cloudwatch.amazonaws.com"]
    assert set(use["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # Confused deputy: CloudWatch may use the key only for alarms of this account.
    assert use["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_topic_policy_lets_cloudwatch_of_this_account_publish(t):
    policy = helpers.props(helpers.one_of_type(t, "AWS::SNS::TopicPolicy"))
    assert policy["Topics"] == [TOPIC_REF]
    (st,) = policy["PolicyDocument"]["Statement"]
    assert st["Effect"] == "Allow" and st["Action"] == ["sns:Publish"]
    assert "cloudwatch.amazonaws.com" in st["Principal"]["Service"]
    assert st["Resource"] == [TOPIC_REF]
    assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_email_subscription_only_when_an_address_is_given():
    subs = "AWS::SNS::Subscription"
    assert not helpers.resources_of_type(helpers.for_env(FILE, "prod"), subs)
    with_mail = helpers.for_env(FILE, "prod", AlarmEmail="oncall@karematch.example")
    sub = helpers.props(helpers.one_of_type(with_mail, subs))
    assert sub["Protocol"] == "email" and sub["Endpoint"] == "oncall@karematch.example"
    assert sub["TopicArn"] == TOPIC_REF


# ---------------------------------------------------------------------------------------------
# Custom metrics (spec: "Custom: Application errors, failed logins")
# ---------------------------------------------------------------------------------------------
def test_custom_metrics_come_from_the_application_log_group(t):
    assert "Application errors, failed logins" in spec.find(r"Custom: (.+)", MON)
    filters = [helpers.props(f) for f in helpers.resources_of_type(t, "AWS::Logs::MetricFilter").values()]
    assert len(filters) == 2
    by_metric = {}
    for f in filters:
        assert f["LogGroupName"] == {"Ref": "AppLogGroupName"}
        (mt,) = f["MetricTransformations"]
        assert helpers.sub_text(mt["MetricNamespace"]) == "KareMatch/${EnvironmentName}"
        assert mt["MetricValue"] == "1"
        by_metric[mt["MetricName"]] = f["FilterPattern"]
    assert set(by_metric) == {"ApplicationErrors", "FailedLogins"}
    # JSON log contract (docs/decisions.md): {"level": "error"} and {"event": "login_failed"}.
    assert '$.level = "error"' in by_metric["ApplicationErrors"]
    assert '$.event = "login_failed"' in by_metric["FailedLogins"]
    for pattern in by_metric.values():
        assert pattern.startswith("{") and pattern.endswith("}")
        assert pattern.count("(") == pattern.count(")")


# ---------------------------------------------------------------------------------------------
# Dashboard
# ---------------------------------------------------------------------------------------------
def dashboard(t) -> tuple[str, dict[str, Any]]:
    p = helpers.props(helpers.one_of_type(t, "AWS::CloudWatch::Dashboard"))
    body = helpers.sub_text(p["DashboardBody"])
    return helpers.sub_text(p["DashboardName"]), json.loads(body)


def test_dashboard_has_the_spec_name_with_the_environment(t):
    spec_name = spec.find(r"\*\*Dashboards\*\*: `([^`]+)`", MON)
    name, _ = dashboard(t)
    assert name.replace("-${EnvironmentName}", "") == spec_name
    assert t["Outputs"]["DashboardName"]["Value"]["Ref"] in helpers.resources_of_type(
        t, "AWS::CloudWatch::Dashboard"
    )


def test_dashboard_shows_ecs_rds_alb_and_recent_logs(t):
    _, body = dashboard(t)
    metrics = set()
    for w in body["widgets"]:
        for line in w["properties"].get("metrics", []):
            metrics.add((line[0], line[1]))
    # Spec: ECS CPU, memory, task count; RDS CPU, memory, storage, connections; ALB request
    # count, response time, error rates.
    assert {
        ("AWS/ECS", "CPUUtilization"),
        ("AWS/ECS", "MemoryUtilization"),
        ("ECS/ContainerInsights", "RunningTaskCount"),
    } <= metrics
    assert {
        ("AWS/RDS", m)
        for m in ("CPUUtilization", "FreeableMemory", "FreeStorageSpace", "DatabaseConnections")
    } <= metrics
    assert {
        ("AWS/ApplicationELB", m)
        for m in ("RequestCount", "TargetResponseTime", "HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count")
    } <= metrics
    (log,) = [w for w in body["widgets"] if w["type"] == "log"]
    query = log["properties"]["query"]
    assert query.startswith("SOURCE '${AppLogGroupName}'")
    assert "sort @timestamp desc" in query
    for w in body["widgets"]:
        assert {"x", "y", "width", "height"} <= set(w)
        assert w["x"] + w["width"] <= 24  # the dashboard grid is 24 units wide


def test_dashboard_placeholders_all_resolve(t):
    """Every ${...} in the body is a parameter, a pseudo parameter or a resource attribute."""
    p = helpers.props(helpers.one_of_type(t, "AWS::CloudWatch::Dashboard"))
    body = helpers.sub_text(p["DashboardBody"])
    for name in set(re.findall(r"\$\{([^}]+)\}", body)):
        if name.startswith("AWS::"):
            continue
        base = name.split(".")[0]
        assert base in t["Parameters"] or base in t["Resources"], name


def test_outputs(t):
    assert t["Outputs"]["AlarmTopicArn"]["Value"] == TOPIC_REF
