"""Service stack (spec section 2): cluster, task definition, Fargate service, autoscaling."""

from __future__ import annotations

import re

import pytest

from karematch_cfn import names
from tests import helpers, spec

FILE = "service.yaml"
SECTION = "2. Compute"
LB_SECTION = "4. Load Balancing"
IMAGE_TAG = "abc123"

CLUSTER = "AWS::ECS::Cluster"
TASK = "AWS::ECS::TaskDefinition"
SERVICE = "AWS::ECS::Service"
LOG_GROUP = "AWS::Logs::LogGroup"
SCALABLE_TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"
SCALING_POLICY = "AWS::ApplicationAutoScaling::ScalingPolicy"


def _t() -> dict:
    return helpers.template(FILE)


_logical_id = helpers.logical_id_of_type


def _container(t: dict) -> dict:
    (container,) = helpers.props(helpers.one_of_type(t, TASK))["ContainerDefinitions"]
    return container


def _env_name(spec_name: str) -> str:
    assert spec_name.startswith("karematch-"), spec_name
    return spec_name.replace("karematch-", "karematch-${EnvironmentName}-", 1)


def _container_port() -> int:
    return spec.number(r"^- Port: (\d+) \(container port\)", LB_SECTION)


# --------------------------------------------------------------------------------------------
# Cluster and names
# --------------------------------------------------------------------------------------------


def test_cluster_and_service_names_are_the_spec_names_per_environment():
    t = _t()
    cluster = helpers.props(helpers.one_of_type(t, CLUSTER))
    service = helpers.props(helpers.one_of_type(t, SERVICE))
    assert helpers.sub_text(cluster["ClusterName"]) == _env_name(
        spec.find(r"\*\*ECS Cluster\*\*: `([^`]+)`", SECTION)
    )
    assert helpers.sub_text(service["ServiceName"]) == _env_name(
        spec.find(r"\*\*ECS Service\*\*: `([^`]+)`", SECTION)
    )
    assert service["Cluster"] == {"Ref": _logical_id(t, CLUSTER)}


def test_container_insights_is_on_for_the_running_task_alarm():
    cluster = helpers.props(helpers.one_of_type(_t(), CLUSTER))
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]


# --------------------------------------------------------------------------------------------
# Task definition
# --------------------------------------------------------------------------------------------


def test_task_size_and_network_mode_follow_the_spec():
    task = helpers.props(helpers.one_of_type(_t(), TASK))
    assert task["Cpu"] == spec.find(r"^- CPU: (\d+) units", SECTION)
    assert task["Memory"] == spec.find(r"^- Memory: (\d+) MB", SECTION)
    assert task["NetworkMode"] == spec.find(r"Network mode: `(\w+)`", SECTION)
    assert task["RequiresCompatibilities"] == [spec.find(r"Launch type: (\w+)", SECTION).upper()]
    assert task["ExecutionRoleArn"] == {"Ref": names.TASK_EXECUTION_ROLE_ARN}
    assert task["TaskRoleArn"] == {"Ref": names.TASK_ROLE_ARN}


def test_container_listens_on_the_container_port_and_is_essential():
    c = _container(_t())
    assert c["Essential"] is True
    assert c["PortMappings"] == [{"ContainerPort": _container_port(), "Protocol": "tcp"}]


def test_container_health_check_hits_health_every_30s_without_curl():
    c = _container(_t())
    path, every = re.search(r"Health check: `GET (\S+)` every (\d+)s", spec.section(SECTION)).groups()
    hc = c["HealthCheck"]
    assert hc["Interval"] == int(every)
    assert hc["Command"][0] in ("CMD", "CMD-SHELL")
    command = " ".join(hc["Command"][1:])
    assert f"{_container_port()}{path}" in command
    # Slim Node images ship no curl; Node's global fetch needs Node 18+.
    assert "curl" not in command and "wget" not in command
    assert hc["Command"][1:3] == ["node", "-e"] or command.startswith("node -e")
    assert int(spec.find(r"Container: Node\.js (\d+)", SECTION)) >= 18
    assert 0 < hc["Timeout"] < hc["Interval"]
    assert hc["Retries"] >= 1
    assert hc["StartPeriod"] > 0


def test_container_logs_to_the_spec_log_group_with_the_environment_retention():
    t = _t()
    group_id = _logical_id(t, LOG_GROUP)
    group = helpers.one_of_type(t, LOG_GROUP)
    spec_group = spec.find(r"Logging: CloudWatch Logs \(`([^`]+)`\)", SECTION)
    assert helpers.sub_text(helpers.props(group)["LogGroupName"]) == f"{spec_group}-${{EnvironmentName}}"
    assert helpers.props(group)["RetentionInDays"] == {"Ref": names.LOG_RETENTION_DAYS}
    assert group["DeletionPolicy"] != "Delete" and group["UpdateReplacePolicy"] != "Delete"
    log = _container(t)["LogConfiguration"]
    assert log["LogDriver"] == "awslogs"
    assert log["Options"]["awslogs-group"] == {"Ref": group_id}
    assert log["Options"]["awslogs-region"] == {"Ref": "AWS::Region"}
    assert log["Options"]["awslogs-stream-prefix"]


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_log_retention_is_the_environment_value(env):
    group = helpers.one_of_type(helpers.for_env(FILE, env), LOG_GROUP)
    assert helpers.props(group)["RetentionInDays"] == helpers.env_values(env)[names.LOG_RETENTION_DAYS]


def _spec_secret_keys() -> set[str]:
    line = spec.find(r"^- ([A-Z_, ]+) loaded from AWS Secrets Manager", SECTION)
    return {k.strip() for k in line.split(",")}


def _spec_environment() -> set[str]:
    return {k.strip() for k in spec.find(r"Environment variables: ([A-Z_, ]+)$", SECTION).split(",")}


def test_secrets_are_injected_as_ecs_secrets_from_the_app_secret_never_as_environment():
    c = _container(_t())
    keys = _spec_secret_keys()
    assert len(keys) == 3
    secrets = {s["Name"]: helpers.sub_text(s["ValueFrom"]) for s in c["Secrets"]}
    assert set(secrets) == keys
    for key, value_from in secrets.items():
        # <secret ARN>:<json-key>:<version-stage>:<version-id>: one key of the JSON app secret.
        assert value_from == f"${{{names.APP_SECRET_ARN}}}:{key}::"
    env_names = {e["Name"] for e in c["Environment"]}
    assert not env_names & keys
    assert "{{resolve:" not in str(c["Environment"])


def test_environment_holds_exactly_the_four_spec_variables():
    c = _container(_t())
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert set(env) == _spec_environment()
    assert env["NODE_ENV"] == "production"
    assert env["PORT"] == str(_container_port())
    assert env["AWS_REGION"] == {"Ref": "AWS::Region"}
    assert env["AWS_SECRET_NAME"] == {"Ref": names.APP_SECRET_NAME}


# --------------------------------------------------------------------------------------------
# Service
# --------------------------------------------------------------------------------------------


def test_rolling_update_and_circuit_breaker_follow_the_spec():
    svc = helpers.props(helpers.one_of_type(_t(), SERVICE))
    minimum, maximum = re.search(
        r"Rolling update \((\d+)% minimum healthy, (\d+)% maximum\)", spec.section(SECTION)
    ).groups()
    dc = svc["DeploymentConfiguration"]
    assert dc["MinimumHealthyPercent"] == int(minimum)
    assert dc["MaximumPercent"] == int(maximum)
    assert "Circuit breaker: Enabled (auto-rollback" in spec.section(SECTION)
    assert dc["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert svc.get("DeploymentController", {"Type": "ECS"}) == {"Type": "ECS"}


def test_service_runs_on_fargate_in_private_subnets_without_public_ips():
    svc = helpers.props(helpers.one_of_type(_t(), SERVICE))
    assert svc["LaunchType"] == spec.find(r"Launch type: (\w+)", SECTION).upper()
    net = svc["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert net["Subnets"] == {"Ref": names.PRIVATE_SUBNET_IDS}
    assert net["SecurityGroups"] == [{"Ref": names.APP_SECURITY_GROUP_ID}]
    assert net["AssignPublicIp"] == "DISABLED"
    assert svc["EnableExecuteCommand"] is False


def test_service_registers_the_container_port_with_the_target_group():
    t = _t()
    svc = helpers.props(helpers.one_of_type(t, SERVICE))
    assert svc["TaskDefinition"] == {"Ref": _logical_id(t, TASK)}
    (lb,) = svc["LoadBalancers"]
    assert lb["ContainerName"] == _container(t)["Name"]
    assert lb["ContainerPort"] == _container_port()
    assert lb["TargetGroupArn"] == {"Ref": names.TARGET_GROUP_ARN}
    # The ALB must not kill a task while its container health check is still starting.
    assert svc["HealthCheckGracePeriodSeconds"] >= _container(t)["HealthCheck"]["StartPeriod"]


def test_grace_period_covers_the_start_period_and_the_healthy_checks():
    """Start period, then the target group's healthy threshold of checks one interval apart."""
    svc = helpers.props(helpers.one_of_type(_t(), SERVICE))
    tg = helpers.props(
        helpers.one_of_type(helpers.template("loadbalancer.yaml"), "AWS::ElasticLoadBalancingV2::TargetGroup")
    )
    needed = (
        _container(_t())["HealthCheck"]["StartPeriod"]
        + tg["HealthyThresholdCount"] * tg["HealthCheckIntervalSeconds"]
    )
    assert svc["HealthCheckGracePeriodSeconds"] == needed


def test_desired_count_parameter_defaults_to_the_spec_count():
    param = _t()["Parameters"][names.DESIRED_COUNT]
    assert int(param["Default"]) == spec.number(r"Desired count: (\d+) tasks \(configurable\)", SECTION)
    assert int(param["MaxValue"]) <= spec.number(r"Max tasks: (\d+)", SECTION)


# --------------------------------------------------------------------------------------------
# First deploy without an image vs later deploys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_without_an_image_the_service_runs_nothing_and_is_not_scaled(env):
    t = helpers.for_env(FILE, env, ImageTag="")
    svc = helpers.props(helpers.one_of_type(t, SERVICE))
    assert int(svc["DesiredCount"]) == 0
    assert not helpers.resources_of_type(t, SCALABLE_TARGET)
    assert not helpers.resources_of_type(t, SCALING_POLICY)
    # The task definition never names a moving tag.
    image = helpers.sub_text(_container(t)["Image"])
    assert image.startswith(f"${{{names.REPOSITORY_URI}}}:") and not image.endswith(":latest")


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_with_an_image_the_service_runs_the_desired_count_of_that_image(env):
    t = helpers.for_env(FILE, env, ImageTag=IMAGE_TAG)
    svc = helpers.props(helpers.one_of_type(t, SERVICE))
    assert svc["DesiredCount"] == helpers.env_values(env)[names.DESIRED_COUNT]
    assert helpers.sub_text(_container(t)["Image"]) == f"${{{names.REPOSITORY_URI}}}:${{{names.IMAGE_TAG}}}"
    assert len(helpers.resources_of_type(t, SCALABLE_TARGET)) == 1
    assert len(helpers.resources_of_type(t, SCALING_POLICY)) == 2


def test_autoscaling_keeps_1_to_4_tasks_on_cpu_70_and_memory_80():
    t = helpers.for_env(FILE, "prod", ImageTag=IMAGE_TAG)
    target_id = _logical_id(t, SCALABLE_TARGET)
    target = helpers.props(helpers.one_of_type(t, SCALABLE_TARGET))
    assert target["MinCapacity"] == spec.number(r"Min tasks: (\d+)", SECTION)
    assert target["MaxCapacity"] == spec.number(r"Max tasks: (\d+)", SECTION)
    assert target["ServiceNamespace"] == "ecs"
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert target["ResourceId"] == {
        "Fn::Join": [
            "/",
            ["service", {"Ref": _logical_id(t, CLUSTER)}, {"Fn::GetAtt": [_logical_id(t, SERVICE), "Name"]}],
        ]
    }
    assert "AWSServiceRoleForApplicationAutoScaling_ECSService" in helpers.sub_text(target["RoleARN"])

    targets = {}
    for policy in helpers.resources_of_type(t, SCALING_POLICY).values():
        p = helpers.props(policy)
        assert p["PolicyType"] == "TargetTrackingScaling"
        assert p["ScalingTargetId"] == {"Ref": target_id}
        cfg = p["TargetTrackingScalingPolicyConfiguration"]
        targets[cfg["PredefinedMetricSpecification"]["PredefinedMetricType"]] = cfg["TargetValue"]
    assert targets == {
        "ECSServiceAverageCPUUtilization": spec.number(r"Target CPU: (\d+)%", SECTION),
        "ECSServiceAverageMemoryUtilization": spec.number(r"Target Memory: (\d+)%", SECTION),
    }


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def test_outputs_name_the_cluster_service_and_log_group():
    t = _t()
    out = {k: v["Value"] for k, v in t["Outputs"].items()}
    assert out == {
        names.CLUSTER_NAME: {"Ref": _logical_id(t, CLUSTER)},
        names.SERVICE_NAME: {"Fn::GetAtt": [_logical_id(t, SERVICE), "Name"]},
        names.APP_LOG_GROUP_NAME: {"Ref": _logical_id(t, LOG_GROUP)},
    }


def test_the_container_is_hardened_and_only_tmp_is_writable():
    t = _t()
    task = helpers.props(helpers.one_of_type(t, "AWS::ECS::TaskDefinition"))
    c = _container(t)
    assert c["ReadonlyRootFilesystem"] is True
    (mount,) = c["MountPoints"]
    assert mount["ContainerPath"] == "/tmp" and mount["ReadOnly"] is False
    (volume,) = task["Volumes"]
    # A bind mount on Fargate's task storage: no host path, no EFS, no Docker volume.
    assert volume == {"Name": mount["SourceVolume"]}
    user = c["User"].split(":")
    assert all(part.isdigit() and int(part) != 0 for part in user), "numeric and never root"
    assert c["LinuxParameters"]["Capabilities"]["Drop"] == ["ALL"]
    assert "Add" not in c["LinuxParameters"]["Capabilities"]
    assert int(c["Memory"]) == int(task["Memory"])  # the hard limit is the task's memory


def test_the_image_contract_makes_every_bind_mount_writable_for_the_user():
    # ECS creates a Fargate bind mount root-owned with mode 0755; only a VOLUME directive for the
    # same path in the image hands ECS the ownership to copy (docs/decisions.md). The documented
    # Dockerfile must declare each writable mount path and give it to the container's user.
    c = _container(_t())
    doc = (helpers.REPO / "docs" / "backend-image.md").read_text()
    (dockerfile,) = re.findall(r"```dockerfile\n(.*?)```", doc, re.S)
    for mount in c["MountPoints"]:
        path = mount["ContainerPath"]
        assert f'VOLUME ["{path}"]' in dockerfile, path
        assert re.search(rf"^RUN .*chown node:node {re.escape(path)}\b", dockerfile, re.M), path
    assert c["User"] == "1000:1000"  # the node user of the official Node images
