"""IAM roles of the backend tasks (spec section 8).

Deployed before the registry and the service: the registry's pull policy names the execution
role, the service needs both roles, and the service also needs the repository URI: the roles
first breaks that cycle.

Parameters:
    EnvironmentName: dev | staging | prod.
    AppSecretArn: the app secret (appsecret.yaml), the only secret either role may read: every
        container secret comes from it.
    DatabaseResourceId: the RDS DbiResourceId (database.yaml), for the rds-db:connect ARN.
    DatabaseIamUser: optional; a database user (granted rds_iam) the task role may log in as
        with an IAM token. Empty (the default) grants no rds-db:connect at all.

Outputs:
    TaskExecutionRoleArn: ECS pulls the image, reads the app secret and writes the logs with it.
    TaskRoleArn: the application's own permissions at runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import Equals, GetAtt, If, Not, Ref, Sub, Template
from troposphere.iam import Policy, Role

from karematch_cfn import names, render
from karematch_cfn.lib import arns, iam, tags

TASK_EXECUTION_ROLE = "TaskExecutionRole"
TASK_ROLE = "TaskRole"
HAS_DATABASE_IAM_USER = "HasDatabaseIamUser"

DATABASE_IAM_USER = "DatabaseIamUser"  # this child's own optional knob (not a root knob)

EXECUTION_POLICY = "service-role/AmazonECSTaskExecutionRolePolicy"  # spec: AWS managed
SECRETS_MANAGER_HOST = "secretsmanager.${AWS::Region}.amazonaws.com"
DATABASE_USER_ARN = (
    "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"
    f"${{{names.DATABASE_RESOURCE_ID}}}/${{{DATABASE_IAM_USER}}}"
)


def trust_ecs_tasks():
    # aws:SourceAccount: only ECS acting for this account may assume (confused deputy).
    return iam.assume_role("ecs-tasks.amazonaws.com", {"aws:SourceAccount": Ref("AWS::AccountId")})


def add_task_execution_role(t: Template, app_secret: Ref) -> Role:
    read_app_secret = iam.document(
        iam.read_secrets(app_secret),
        # The secret is under the environment's customer-managed key; only via Secrets Manager.
        iam.decrypt_via(Sub(SECRETS_MANAGER_HOST), arns.kms_keys()),
    )
    return t.add_resource(
        Role(
            TASK_EXECUTION_ROLE,
            RoleName=Sub(names.TASK_EXECUTION_ROLE),
            Description="ECS task execution: pull the backend image, read the app secret, write logs",
            AssumeRolePolicyDocument=trust_ecs_tasks(),
            ManagedPolicyArns=[arns.managed_policy(EXECUTION_POLICY)],
            Policies=[Policy(PolicyName="read-app-secret", PolicyDocument=read_app_secret)],
            PermissionsBoundary=arns.customer_policy(names.PERMISSIONS_BOUNDARY),
            Tags=tags.standard(),
        )
    )


def add_task_role(t: Template, app_secret: Ref) -> Role:
    runtime = iam.document(
        iam.read_secrets(app_secret),  # spec: "for secret refresh"
        # The secret is under the environment's customer-managed key; only via Secrets Manager.
        iam.decrypt_via(Sub(SECRETS_MANAGER_HOST), arns.kms_keys()),
        iam.write_logs(arns.log_group(names.APP_LOG_GROUP), arns.log_streams(names.APP_LOG_GROUP)),
    )
    connect = Policy(
        PolicyName="connect-to-database", PolicyDocument=iam.document(iam.connect_db(Sub(DATABASE_USER_ARN)))
    )
    return t.add_resource(
        Role(
            TASK_ROLE,
            RoleName=Sub(names.TASK_ROLE),
            Description="KareMatch backend at runtime: read the app secret, write its logs",
            AssumeRolePolicyDocument=trust_ecs_tasks(),
            Policies=[
                Policy(PolicyName="runtime", PolicyDocument=runtime),
                If(HAS_DATABASE_IAM_USER, connect, Ref("AWS::NoValue")),
            ],
            PermissionsBoundary=arns.customer_policy(names.PERMISSIONS_BOUNDARY),
            Tags=tags.standard(),
        )
    )


@dataclass(frozen=True)
class Inputs:
    app_secret: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    app_secret = Ref(names.declare(t, names.APP_SECRET_ARN, "ARN of the app secret"))
    # Read only through Fn::Sub placeholders (the database user's ARN).
    names.declare(
        t, names.DATABASE_RESOURCE_ID, "DbiResourceId of the RDS instance (for IAM database authentication)"
    )
    db_user = names.declare(
        t,
        DATABASE_IAM_USER,
        "Database user the task role may connect as with IAM authentication; empty = none",
        Default="",
        # PostgreSQL role names as RDS accepts them (letters, digits, underscores; a letter first).
        AllowedPattern=r"^$|^[A-Za-z][A-Za-z0-9_]{0,62}$",
        ConstraintDescription="empty, or a PostgreSQL user name (letters, digits, underscores)",
    )
    t.add_condition(HAS_DATABASE_IAM_USER, Not(Equals(Ref(db_user), "")))
    return Inputs(app_secret=app_secret)


def build() -> Template:
    t = render.new_template("KareMatch IAM: the ECS task execution role and the task role")
    p = declare_inputs(t)
    execution = add_task_execution_role(t, p.app_secret)
    task = add_task_role(t, p.app_secret)
    render.add_outputs(
        t,
        {
            names.TASK_EXECUTION_ROLE_ARN: GetAtt(execution, "Arn"),
            names.TASK_ROLE_ARN: GetAtt(task, "Arn"),
        },
    )
    return t
