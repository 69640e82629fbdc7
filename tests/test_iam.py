"""iam.yaml does what spec section 8 says, least privilege: the task execution role (AWS managed
policy, the app secret and nothing else, KMS decrypt only through Secrets Manager) and the task
role (the app secret for refresh, its own log group, optional RDS IAM authentication, off by
default). Repo-wide IAM rules live in test_iam_policies.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests import helpers, spec

FILE = "iam.yaml"
IAM = "8. IAM Roles"
ROLE = "AWS::IAM::Role"
APP_SECRET = helpers.wired_value("AppSecretArn")  # as deployed: the app secret stack's Output


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def role_named(t: dict[str, Any], spec_label: str) -> dict[str, Any]:
    """The role whose RoleName is the spec's name (e.g. for "ECS Task Role") with the env."""
    name = spec.find(rf"\*\*{spec_label}\*\*: `([\w-]+)`", IAM)
    expected = name.replace("karematch-", "karematch-${EnvironmentName}-", 1)
    found = [
        r
        for r in helpers.resources_of_type(t, ROLE).values()
        if helpers.sub_text(helpers.props(r)["RoleName"]) == expected
    ]
    assert len(found) == 1, f"no single role named {expected}"
    return found[0]


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for policy in helpers.props(role).get("Policies", []):
        out += policy["PolicyDocument"]["Statement"]
    return out


def actions(st: dict[str, Any]) -> set[str]:
    return set(_as_list(st["Action"]))


def secret_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in statements(role) if any(a.startswith("secretsmanager:") for a in actions(s))]


@pytest.fixture(scope="module", params=["dev", "prod"])
def deployed(request) -> dict[str, Any]:
    return helpers.for_env(FILE, request.param)


def execution_role(t):
    return role_named(t, "ECS Task Execution Role")


def task_role(t):
    return role_named(t, "ECS Task Role")


# ---------------------------------------------------------------------------------------------
# Both roles
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", [execution_role, task_role])
def test_only_ecs_tasks_of_this_account_can_assume(deployed, which):
    trust = helpers.props(which(deployed))["AssumeRolePolicyDocument"]
    (st,) = trust["Statement"]
    assert st["Effect"] == "Allow"
    assert st["Principal"] == {"Service": ["ecs-tasks.amazonaws.com"]}
    assert actions(st) == {"sts:AssumeRole"}
    assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


@pytest.mark.parametrize("which", [execution_role, task_role])
def test_the_app_secret_is_the_only_secret_either_role_can_read(deployed, which):
    # Spec: every container secret comes from the app secret; no wildcard secret ARN.
    sts = secret_statements(which(deployed))
    assert sts, "the role cannot read the app secret"
    for st in sts:
        assert st["Effect"] == "Allow"
        assert _as_list(st["Resource"]) == [APP_SECRET]
        assert actions(st) <= {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
        assert "secretsmanager:GetSecretValue" in actions(st)


def test_the_app_secret_parameter_is_wired_from_the_app_secret_stack():
    root = helpers.template("karematch.yaml")
    stacks = helpers.resources_of_type(root, "AWS::CloudFormation::Stack")
    (iam_stack,) = [s for s in stacks.values() if s["Properties"]["TemplateURL"] == f"./{FILE}"]
    producer = iam_stack["Properties"]["Parameters"]["AppSecretArn"]["Fn::GetAtt"][0]
    assert stacks[producer]["Properties"]["TemplateURL"] == "./appsecret.yaml"


# ---------------------------------------------------------------------------------------------
# Task execution role
# ---------------------------------------------------------------------------------------------
def test_execution_role_has_the_aws_managed_policy(deployed):
    managed = spec.find(r"`(\w+)` \(AWS managed\)", IAM)
    arns = helpers.props(execution_role(deployed))["ManagedPolicyArns"]
    assert [helpers.sub_text(a) for a in arns] == [
        f"arn:${{AWS::Partition}}:iam::aws:policy/service-role/{managed}"
    ]


def test_execution_role_decrypts_only_through_secrets_manager(deployed):
    kms = [s for s in statements(execution_role(deployed)) if any(a.startswith("kms:") for a in actions(s))]
    assert kms, "spec: Custom: Decrypt with KMS"
    for st in kms:
        assert actions(st) == {"kms:Decrypt"}
        via = st["Condition"]["StringEquals"]["kms:ViaService"]
        assert helpers.sub_text(via) == "secretsmanager.${AWS::Region}.amazonaws.com"
        for resource in _as_list(st["Resource"]):
            assert helpers.sub_text(resource).startswith(
                "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/"
            )


def test_execution_role_has_nothing_beyond_secrets_and_decrypt(deployed):
    for st in statements(execution_role(deployed)):
        assert {a.split(":")[0] for a in actions(st)} <= {"secretsmanager", "kms"}


# ---------------------------------------------------------------------------------------------
# Task role
# ---------------------------------------------------------------------------------------------
def test_task_role_writes_only_to_the_app_log_group(deployed):
    spec_group = spec.find(r"`(/aws/ecs/karematch)` - ECS container logs", "9. Monitoring")
    group = spec_group.replace("karematch", "karematch-${EnvironmentName}", 1)
    prefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
    logs = [s for s in statements(task_role(deployed)) if any(a.startswith("logs:") for a in actions(s))]
    assert logs, "spec: Write to CloudWatch Logs"
    for st in logs:
        assert {helpers.sub_text(r) for r in _as_list(st["Resource"])} == {
            f"{prefix}{group}",
            f"{prefix}{group}:*",
        }
        assert "logs:PutLogEvents" in actions(st)
        assert not any(
            a.startswith("logs:Delete") or (a.startswith("logs:Put") and a != "logs:PutLogEvents")
            for a in actions(st)
        )


def test_task_role_has_no_database_access_by_default(deployed):
    for st in statements(task_role(deployed)):
        assert not any(a.startswith("rds") for a in actions(st))
    # kms only to read its secret (under the environment's key), only through Secrets Manager.
    for st in statements(task_role(deployed)):
        if any(a.startswith("kms:") for a in actions(st)):
            assert actions(st) == {"kms:Decrypt"}
            assert st["Condition"]["StringEquals"]["kms:ViaService"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rds_iam_authentication_is_granted_for_exactly_one_user_when_asked(env):
    t = helpers.for_env(FILE, env, DatabaseIamUser="karematch_app")
    connect = [s for s in statements(task_role(t)) if "rds-db:connect" in actions(s)]
    assert len(connect) == 1
    assert actions(connect[0]) == {"rds-db:connect"}
    (resource,) = _as_list(connect[0]["Resource"])
    assert helpers.sub_text(resource) == (
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"
        "${DatabaseResourceId}/${DatabaseIamUser}"
    )
    # The resource id comes from the database stack.
    root = helpers.template("karematch.yaml")
    stacks = helpers.resources_of_type(root, "AWS::CloudFormation::Stack")
    (iam_stack,) = [s for s in stacks.values() if s["Properties"]["TemplateURL"] == f"./{FILE}"]
    producer = iam_stack["Properties"]["Parameters"]["DatabaseResourceId"]["Fn::GetAtt"][0]
    assert stacks[producer]["Properties"]["TemplateURL"] == "./database.yaml"
    # ... and the instance accepts IAM tokens.
    db = helpers.one_of_type(helpers.template("database.yaml"), "AWS::RDS::DBInstance")
    assert helpers.props(db)["EnableIAMDatabaseAuthentication"] is True


def test_the_optional_database_user_rejects_wildcards():
    pattern = helpers.template(FILE)["Parameters"]["DatabaseIamUser"]["AllowedPattern"]
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "karematch_app")
    for bad in ("*", "app*", "a/b", "1app"):
        assert not re.fullmatch(pattern, bad), bad


def test_outputs_are_both_role_arns():
    t = helpers.template(FILE)
    ids = {
        helpers.sub_text(helpers.props(r)["RoleName"]): k
        for k, r in helpers.resources_of_type(t, ROLE).items()
    }
    outputs = t["Outputs"]
    execution = ids["karematch-${EnvironmentName}-ecs-task-execution-role"]
    task = ids["karematch-${EnvironmentName}-ecs-task-role"]
    assert outputs["TaskExecutionRoleArn"]["Value"] == {"Fn::GetAtt": [execution, "Arn"]}
    assert outputs["TaskRoleArn"]["Value"] == {"Fn::GetAtt": [task, "Arn"]}
