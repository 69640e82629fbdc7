"""Monitoring (spec section 9): the alarm topic, the seven spec alarms, custom metrics, dashboard.

The alarm topic is encrypted with a customer-managed KMS key: a topic under the AWS-managed SNS
key cannot receive CloudWatch alarms (its key policy cannot be changed to allow CloudWatch).
Every alarm notifies the topic when it fires and when it clears.

Parameters:
    EnvironmentName: dev | staging | prod.
    AlarmEmail: optional e-mail subscribed to the topic.
    DatabaseInstanceId: RDS instance identifier (database stack).
    LoadBalancerFullName, TargetGroupFullName: ARN suffixes, the CloudWatch dimensions
        (load balancer stack).
    ClusterName, ServiceName, AppLogGroupName: the ECS service and its log group (service stack).

Outputs:
    AlarmTopicArn, DashboardName.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from troposphere import Equals, GetAtt, If, Not, Ref, Sub, Template
from troposphere.cloudwatch import Alarm, Dashboard, Metric, MetricDataQuery, MetricStat
from troposphere.kms import Alias, Key
from troposphere.logs import MetricFilter, MetricTransformation
from troposphere.sns import SubscriptionResource, Topic, TopicPolicy

from karematch_cfn import names, render
from karematch_cfn.lib import alarms, arns, conditions, iam, policies, tags
from karematch_cfn.lib.alarms import Evaluation

# Logical IDs.
TOPIC_KEY = "AlarmTopicKey"
TOPIC_KEY_ALIAS = "AlarmTopicKeyAlias"
TOPIC = "AlarmTopic"
TOPIC_POLICY = "AlarmTopicPolicy"
EMAIL_SUBSCRIPTION = "AlarmEmailSubscription"
HAS_ALARM_EMAIL = "HasAlarmEmail"
DATABASE_CPU_ALARM = "DatabaseCpuAlarm"
DATABASE_MEMORY_ALARM = "DatabaseFreeableMemoryAlarm"
DATABASE_STORAGE_ALARM = "DatabaseFreeStorageAlarm"
RESPONSE_TIME_ALARM = "LoadBalancerResponseTimeAlarm"
HEALTHY_HOSTS_ALARM = "LoadBalancerHealthyHostsAlarm"
RUNNING_TASKS_ALARM = "ServiceRunningTasksAlarm"
SERVER_ERRORS_ALARM = "LoadBalancer5xxAlarm"
APP_ERRORS_FILTER = "ApplicationErrorsMetricFilter"
FAILED_LOGINS_FILTER = "FailedLoginsMetricFilter"
DASHBOARD = "MonitoringDashboard"

KEY_ALIAS = f"alias/karematch-{names.ENV}-alarms"
# Services that publish alarms/events to the topic (key policy and topic policy).
# Only CloudWatch alarms publish to the topic. No EventBridge rule targets it: EventBridge's
# KMS requests do not carry aws:SourceAccount (SNS developer guide, "Key management"), so a
# rule added later needs its own key statement without that condition.
PUBLISHERS = ["cloudwatch.amazonaws.com"]

# Binary units: RDS reports bytes; 256 MiB / 2 GiB are the larger readings of "256 MB" / "2 GB",
# so the low-memory and low-storage alarms fire (slightly) earlier, never later.
MIB = 1024 * 1024
GIB = 1024 * MIB

# Spec section 9 alarm thresholds.
DATABASE_CPU_PERCENT = 80  # "RDS CPU > 80%"
DATABASE_FREEABLE_MEMORY_BYTES = 256 * MIB  # "RDS free memory < 256 MB"
DATABASE_FREE_STORAGE_BYTES = 2 * GIB  # "RDS free storage < 2 GB"
RESPONSE_TIME_SECONDS = 1  # "ALB response time > 1 second"
HEALTHY_HOSTS_MINIMUM = 1  # "ALB healthy host count < 1"
RUNNING_TASKS_MINIMUM = 1  # "ECS running tasks = 0": CloudWatch has no "=", so < 1
SERVER_ERRORS_COUNT = 10  # "ALB 5XX errors > 10 (5 min window)"
SERVER_ERRORS_WINDOW_SECONDS = 5 * 60

# How each alarm evaluates (docs/decisions.md, Monitoring).
FIVE_MINUTES = 5 * 60
ONE_MINUTE = 60
SUSTAINED_RESOURCE = Evaluation(  # 15 min
    statistic="Average",
    period=FIVE_MINUTES,
    evaluation_periods=3,
    datapoints_to_alarm=3,
    treat_missing_data=alarms.MISSING,
)
STORAGE = Evaluation(
    statistic="Minimum",
    period=FIVE_MINUTES,
    evaluation_periods=1,
    datapoints_to_alarm=1,
    treat_missing_data=alarms.MISSING,
)
# p95, the statistic of the spec's performance target ("API Response Time: < 500ms (p95)").
RESPONSE_TIME = Evaluation(
    statistic="p95",
    period=FIVE_MINUTES,
    evaluation_periods=3,
    datapoints_to_alarm=3,
    treat_missing_data=alarms.NOT_BREACHING,
)
# Outages: minute resolution, two consecutive minutes, no data = nothing running = breaching.
AVAILABILITY = Evaluation(
    statistic="Minimum",
    period=ONE_MINUTE,
    evaluation_periods=2,
    datapoints_to_alarm=2,
    treat_missing_data=alarms.BREACHING,
)
SERVER_ERRORS = Evaluation(
    statistic="Sum",
    period=SERVER_ERRORS_WINDOW_SECONDS,
    evaluation_periods=1,
    datapoints_to_alarm=1,
    treat_missing_data=alarms.NOT_BREACHING,
)

RDS_NAMESPACE = "AWS/RDS"
ALB_NAMESPACE = "AWS/ApplicationELB"
ECS_NAMESPACE = "AWS/ECS"
CONTAINER_INSIGHTS_NAMESPACE = "ECS/ContainerInsights"
# Custom metrics (spec: "Application errors, failed logins") from the app's JSON log lines.
APP_NAMESPACE = f"KareMatch/{names.ENV}"
APP_ERRORS_METRIC = "ApplicationErrors"
FAILED_LOGINS_METRIC = "FailedLogins"

# Dashboard.
WIDGET_WIDTH = 8
WIDGET_HEIGHT = 6
DASHBOARD_COLUMNS = 3


@dataclass(frozen=True)
class Inputs:
    alarm_email: Ref


@dataclass(frozen=True)
class Notify:
    topic: Topic

    @property
    def actions(self) -> list[Ref]:
        return [Ref(self.topic)]


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    email = Ref(names.declare(t, names.ALARM_EMAIL))
    for pname, description in (
        (names.DATABASE_INSTANCE_ID, "RDS DB instance identifier (alarm and dashboard dimension)"),
        (names.LOAD_BALANCER_FULL_NAME, "ALB full name, app/<name>/<id> (CloudWatch dimension)"),
        (names.TARGET_GROUP_FULL_NAME, "Target group full name, targetgroup/<name>/<id>"),
        (names.CLUSTER_NAME, "ECS cluster name"),
        (names.SERVICE_NAME, "ECS service name"),
        (names.APP_LOG_GROUP_NAME, "Log group of the backend containers"),
    ):
        names.declare(t, pname, description)
    t.add_condition(HAS_ALARM_EMAIL, Not(Equals(email, "")))
    # Before CI has pushed an image the service runs 0 tasks on purpose: the two availability
    # alarms show ALARM but do not page until ImageTag is set.
    conditions.has_image(t)
    return Inputs(alarm_email=email)


def add_topic(t: Template, p: Inputs) -> Notify:
    key = t.add_resource(
        policies.retain_except_on_create(
            Key(
                TOPIC_KEY,
                Description=Sub(f"KareMatch {names.ENV}: encrypts the alarm topic"),
                EnableKeyRotation=True,
                KeyPolicy=iam.document(
                    iam.key_admin(arns.account_root()),
                    iam.key_use_by_services(PUBLISHERS, Ref("AWS::AccountId")),
                ),
                Tags=tags.standard(),
            )
        )
    )
    # The alias is only a name: not retained, or a re-created stack would collide with it.
    t.add_resource(Alias(TOPIC_KEY_ALIAS, AliasName=Sub(KEY_ALIAS), TargetKeyId=Ref(key)))
    topic = t.add_resource(
        Topic(
            TOPIC,
            TopicName=Sub(names.ALARM_TOPIC),
            DisplayName=Sub(f"KareMatch {names.ENV} alarms"),
            KmsMasterKeyId=GetAtt(key, "Arn"),
            Tags=tags.standard(),
        )
    )
    t.add_resource(
        TopicPolicy(
            TOPIC_POLICY,
            Topics=[Ref(topic)],
            PolicyDocument=iam.document(
                iam.publish_from_services(Ref(topic), PUBLISHERS, Ref("AWS::AccountId"))
            ),
        )
    )
    t.add_resource(
        SubscriptionResource(
            EMAIL_SUBSCRIPTION,
            Condition=HAS_ALARM_EMAIL,
            TopicArn=Ref(topic),
            Protocol="email",
            Endpoint=p.alarm_email,
        )
    )
    return Notify(topic=topic)


def add_database_alarms(t: Template, n: Notify) -> None:
    dims = {"DBInstanceIdentifier": Ref(names.DATABASE_INSTANCE_ID)}
    for logical_id, purpose, description, metric, comparison, threshold, evaluation in (
        (
            DATABASE_CPU_ALARM,
            "rds-cpu-high",
            f"RDS CPU above {DATABASE_CPU_PERCENT}% for 15 minutes",
            "CPUUtilization",
            alarms.GREATER,
            DATABASE_CPU_PERCENT,
            SUSTAINED_RESOURCE,
        ),
        (
            DATABASE_MEMORY_ALARM,
            "rds-freeable-memory-low",
            f"RDS freeable memory below 256 MiB ({DATABASE_FREEABLE_MEMORY_BYTES} bytes) for 15 minutes",
            "FreeableMemory",
            alarms.LESS,
            DATABASE_FREEABLE_MEMORY_BYTES,
            SUSTAINED_RESOURCE,
        ),
        (
            DATABASE_STORAGE_ALARM,
            "rds-free-storage-low",
            f"RDS free storage below 2 GiB ({DATABASE_FREE_STORAGE_BYTES} bytes)",
            "FreeStorageSpace",
            alarms.LESS,
            DATABASE_FREE_STORAGE_BYTES,
            STORAGE,
        ),
    ):
        alarms.metric_alarm(
            t,
            logical_id,
            purpose=purpose,
            description=description,
            namespace=RDS_NAMESPACE,
            metric=metric,
            dims=dims,
            comparison=comparison,
            threshold=threshold,
            evaluation=evaluation,
            actions=n.actions,
            ok_actions=n.actions,
        )


def add_service_alarms(t: Template, n: Notify) -> None:
    lb = Ref(names.LOAD_BALANCER_FULL_NAME)
    alarms.metric_alarm(
        t,
        RESPONSE_TIME_ALARM,
        purpose="alb-response-time-high",
        description=f"ALB p95 target response time above {RESPONSE_TIME_SECONDS} s for 15 minutes",
        namespace=ALB_NAMESPACE,
        metric="TargetResponseTime",
        dims={"LoadBalancer": lb},
        comparison=alarms.GREATER,
        threshold=RESPONSE_TIME_SECONDS,
        evaluation=RESPONSE_TIME,
        actions=n.actions,
        ok_actions=n.actions,
    )
    alarms.metric_alarm(
        t,
        HEALTHY_HOSTS_ALARM,
        purpose="alb-no-healthy-hosts",
        description=f"Fewer than {HEALTHY_HOSTS_MINIMUM} healthy target for 2 minutes (no data counts)",
        namespace=ALB_NAMESPACE,
        metric="HealthyHostCount",
        dims={"TargetGroup": Ref(names.TARGET_GROUP_FULL_NAME), "LoadBalancer": lb},
        comparison=alarms.LESS,
        threshold=HEALTHY_HOSTS_MINIMUM,
        evaluation=AVAILABILITY,
        actions=n.actions,
        ok_actions=n.actions,
        actions_enabled=If(names.HAS_IMAGE, True, False),
    )
    alarms.metric_alarm(
        t,
        RUNNING_TASKS_ALARM,
        purpose="ecs-no-running-tasks",
        description="No running backend task for 2 minutes (spec: running tasks = 0; no data counts; "
        "needs Container Insights on the cluster)",
        namespace=CONTAINER_INSIGHTS_NAMESPACE,
        metric="RunningTaskCount",
        dims={"ClusterName": Ref(names.CLUSTER_NAME), "ServiceName": Ref(names.SERVICE_NAME)},
        comparison=alarms.LESS,
        threshold=RUNNING_TASKS_MINIMUM,
        evaluation=AVAILABILITY,
        actions=n.actions,
        ok_actions=n.actions,
        actions_enabled=If(names.HAS_IMAGE, True, False),
    )
    add_server_errors_alarm(t, n)


def add_server_errors_alarm(t: Template, n: Notify) -> Alarm:
    """5XX seen by clients: the load balancer's own (502/503/504) plus the targets' (500...)."""
    lb = alarms.dimensions(LoadBalancer=Ref(names.LOAD_BALANCER_FULL_NAME))

    def count(query_id: str, metric: str) -> MetricDataQuery:
        return MetricDataQuery(
            Id=query_id,
            MetricStat=MetricStat(
                Metric=Metric(Namespace=ALB_NAMESPACE, MetricName=metric, Dimensions=lb),
                Period=SERVER_ERRORS.period,
                Stat=SERVER_ERRORS.statistic,
            ),
            ReturnData=False,
        )

    return t.add_resource(
        Alarm(
            SERVER_ERRORS_ALARM,
            AlarmName=alarms.name("alb-5xx-errors"),
            AlarmDescription=(
                f"More than {SERVER_ERRORS_COUNT} 5XX responses (ALB + targets) in "
                f"{SERVER_ERRORS_WINDOW_SECONDS // 60} minutes"
            ),
            Metrics=[
                count("elb5xx", "HTTPCode_ELB_5XX_Count"),
                count("target5xx", "HTTPCode_Target_5XX_Count"),
                MetricDataQuery(
                    Id="total5xx",
                    Expression="FILL(elb5xx, 0) + FILL(target5xx, 0)",
                    Label="5XX responses (load balancer + targets)",
                    ReturnData=True,
                ),
            ],
            ComparisonOperator=alarms.GREATER,
            Threshold=SERVER_ERRORS_COUNT,
            EvaluationPeriods=SERVER_ERRORS.evaluation_periods,
            DatapointsToAlarm=SERVER_ERRORS.datapoints_to_alarm,
            TreatMissingData=SERVER_ERRORS.treat_missing_data,
            AlarmActions=n.actions,
            OKActions=n.actions,
        )
    )


def add_metric_filters(t: Template) -> None:
    for logical_id, pattern, metric in (
        (APP_ERRORS_FILTER, '{ ($.level = "error") || ($.level = "fatal") }', APP_ERRORS_METRIC),
        (FAILED_LOGINS_FILTER, '{ $.event = "login_failed" }', FAILED_LOGINS_METRIC),
    ):
        t.add_resource(
            MetricFilter(
                logical_id,
                LogGroupName=Ref(names.APP_LOG_GROUP_NAME),
                FilterPattern=pattern,
                MetricTransformations=[
                    MetricTransformation(
                        MetricNamespace=Sub(APP_NAMESPACE),
                        MetricName=metric,
                        MetricValue="1",
                        DefaultValue=0,
                        Unit="Count",
                    )
                ],
            )
        )


def _metric_widget(
    title: str, metrics: list[list[Any]], *, stat: str = "Average", period: int = FIVE_MINUTES
) -> dict[str, Any]:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "view": "timeSeries",
            "stat": stat,
            "period": period,
            "metrics": metrics,
        },
    }


def dashboard_widgets() -> list[dict[str, Any]]:
    """The widgets, top to bottom: ECS, RDS, ALB, custom metrics, alarms, recent logs.

    Values are Fn::Sub placeholders (``${ClusterName}``); positions are filled in by
    ``dashboard_body``.
    """
    ecs = ["ClusterName", "${ClusterName}", "ServiceName", "${ServiceName}"]
    rds = ["DBInstanceIdentifier", "${DatabaseInstanceId}"]
    alb = ["LoadBalancer", "${LoadBalancerFullName}"]
    alarm_arns = [
        f"${{{a}.Arn}}"
        for a in (
            DATABASE_CPU_ALARM,
            DATABASE_MEMORY_ALARM,
            DATABASE_STORAGE_ALARM,
            RESPONSE_TIME_ALARM,
            HEALTHY_HOSTS_ALARM,
            RUNNING_TASKS_ALARM,
            SERVER_ERRORS_ALARM,
        )
    ]
    return [
        _metric_widget("ECS CPU utilization (%)", [[ECS_NAMESPACE, "CPUUtilization", *ecs]]),
        _metric_widget("ECS memory utilization (%)", [[ECS_NAMESPACE, "MemoryUtilization", *ecs]]),
        _metric_widget(
            "ECS running tasks",
            [[CONTAINER_INSIGHTS_NAMESPACE, "RunningTaskCount", *ecs]],
            stat="Minimum",
            period=ONE_MINUTE,
        ),
        _metric_widget("RDS CPU utilization (%)", [[RDS_NAMESPACE, "CPUUtilization", *rds]]),
        _metric_widget("RDS freeable memory (bytes)", [[RDS_NAMESPACE, "FreeableMemory", *rds]]),
        _metric_widget("RDS free storage (bytes)", [[RDS_NAMESPACE, "FreeStorageSpace", *rds]]),
        _metric_widget("RDS connections", [[RDS_NAMESPACE, "DatabaseConnections", *rds]]),
        _metric_widget("ALB requests", [[ALB_NAMESPACE, "RequestCount", *alb]], stat="Sum"),
        _metric_widget(
            "ALB target response time (s)",
            [
                [ALB_NAMESPACE, "TargetResponseTime", *alb, {"stat": "p95"}],
                [ALB_NAMESPACE, "TargetResponseTime", *alb, {"stat": "Average"}],
            ],
        ),
        _metric_widget(
            "ALB 5XX responses",
            [
                [ALB_NAMESPACE, "HTTPCode_ELB_5XX_Count", *alb],
                [ALB_NAMESPACE, "HTTPCode_Target_5XX_Count", *alb],
            ],
            stat="Sum",
        ),
        _metric_widget(
            "Application errors and failed logins",
            [[APP_NAMESPACE, APP_ERRORS_METRIC], [APP_NAMESPACE, FAILED_LOGINS_METRIC]],
            stat="Sum",
        ),
        {
            "type": "alarm",
            "properties": {"title": "Alarms", "alarms": alarm_arns},
        },
        {
            "type": "log",
            "properties": {
                "title": "Recent application logs",
                "region": "${AWS::Region}",
                "view": "table",
                "query": (
                    "SOURCE '${AppLogGroupName}' | fields @timestamp, @message "
                    "| sort @timestamp desc | limit 50"
                ),
            },
        },
    ]


def dashboard_body() -> str:
    """The dashboard JSON (an Fn::Sub pattern): widgets laid out in a grid, sorted keys."""
    widgets = []
    for i, widget in enumerate(dashboard_widgets()):
        full_row = widget["type"] == "log"
        widgets.append(
            {
                **widget,
                "x": 0 if full_row else (i % DASHBOARD_COLUMNS) * WIDGET_WIDTH,
                "y": (i // DASHBOARD_COLUMNS) * WIDGET_HEIGHT,
                "width": WIDGET_WIDTH * (DASHBOARD_COLUMNS if full_row else 1),
                "height": WIDGET_HEIGHT,
            }
        )
    return json.dumps({"widgets": widgets}, indent=2, sort_keys=True)


def add_dashboard(t: Template) -> Dashboard:
    return t.add_resource(
        Dashboard(
            DASHBOARD,
            DashboardName=Sub(names.DASHBOARD),
            DashboardBody=Sub(dashboard_body()),
        )
    )


def build() -> Template:
    t = render.new_template(
        "KareMatch monitoring: encrypted alarm topic, the spec's alarms, custom metrics, dashboard"
    )
    p = declare_inputs(t)
    n = add_topic(t, p)
    add_database_alarms(t, n)
    add_service_alarms(t, n)
    add_metric_filters(t)
    dashboard = add_dashboard(t)
    render.add_outputs(t, {names.ALARM_TOPIC_ARN: Ref(n.topic), names.DASHBOARD_NAME: Ref(dashboard)})
    alarms.notify_insufficient_data(t)
    return t
