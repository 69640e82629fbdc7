"""Database (spec section 3): RDS PostgreSQL 15 in the database subnets, encrypted, SSL forced.

The master credentials come from the generated ``DatabaseSecretArn`` secret through dynamic
references (self-managed secret, not ManageMasterUserPassword: an RDS-managed password rotates
and would silently stale the DATABASE_URL in the app secret: CloudFormation never re-reads an
unchanged dynamic reference).

Properties that force a replacement of the instance (which fails anyway, the identifier being
custom, and would otherwise snapshot and recreate an empty database): DBInstanceIdentifier,
DBName, MasterUsername, DBSubnetGroupName (so the subnet group is unnamed and its logical id
pinned), StorageEncrypted, KmsKeyId. Never change them on a live stack. The parameter group's
Family and Description force a new group (a reboot to apply), so they are constants too.

Parameters:
    EnvironmentName: dev | staging | prod (prod: Multi-AZ, Performance Insights, deletion
        protection).
    DatabaseInstanceClass: db.t4g.micro (default) | db.t4g.small.
    LogRetentionDays: retention of the exported PostgreSQL log group.
    DatabaseSubnetIds: the isolated database subnets (network.yaml).
    DatabaseSecurityGroupId: the RDS security group (security.yaml).
    DatabaseSecretArn: the generated master credentials (secrets.yaml).

Outputs:
    DatabaseEndpointAddress, DatabaseEndpointPort, DatabaseInstanceId,
    DatabaseResourceId (the DbiResourceId, for rds-db:connect ARNs).
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import GetAtt, If, Ref, Sub, Template
from troposphere.backup import (
    BackupPlan,
    BackupPlanResourceType,
    BackupRuleResourceType,
    BackupSelection,
    BackupSelectionResourceType,
    BackupVault,
    LifecycleResourceType,
)
from troposphere.iam import Role
from troposphere.logs import LogGroup
from troposphere.rds import DBInstance, DBParameterGroup, DBSubnetGroup

from karematch_cfn import names, render
from karematch_cfn.lib import arns, conditions, iam, logs, policies, suppress, tags
from karematch_cfn.stacks import secrets  # the JSON keys of the generated credentials

INSTANCE = "DatabaseInstance"
SUBNET_GROUP = "DatabaseSubnetGroup"
PARAMETER_GROUP = "DatabaseParameterGroup"
LOG_GROUP = "DatabaseLogGroup"
UPGRADE_LOG_GROUP = "DatabaseUpgradeLogGroup"
MONITORING_ROLE = "DatabaseMonitoringRole"
BACKUP_VAULT = "DatabaseBackupVault"
BACKUP_PLAN = "DatabaseBackupPlan"
BACKUP_SELECTION = "DatabaseBackupSelection"
BACKUP_ROLE = "DatabaseBackupRole"

ENGINE = "postgres"
# Spec: PostgreSQL 15.4, which RDS has deprecated (cfn-lint W3691 flags 15.2-15.12 and a bare
# "15"). The newest 15.x that cfn-lint 1.58's RDS data lists as creatable; minor upgrades are
# applied by RDS in the maintenance window, major upgrades never without a template change.
ENGINE_VERSION = "15.19"
PARAMETER_GROUP_FAMILY = "postgres15"
ALLOCATED_STORAGE_GB = 20  # spec: 20 GB
MAX_ALLOCATED_STORAGE_GB = 100  # spec: auto-scaling up to 100 GB
STORAGE_TYPE = "gp3"  # spec
BACKUP_RETENTION_DAYS = 7  # spec: 7-day retention
BACKUP_WINDOW = "03:00-04:00"  # spec: 03:00-04:00 UTC
MAINTENANCE_WINDOW = "sun:04:00-sun:05:00"  # spec: Sunday 04:00-05:00 UTC
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7  # spec: production only, 7-day retention
LOG_EXPORT = "postgresql"
UPGRADE_LOG_EXPORT = "upgrade"  # engine upgrade logs (HIPAA hardening: both exports)
LOG_GROUP_NAME = f"/aws/rds/instance/{names.DATABASE_INSTANCE}/{LOG_EXPORT}"
UPGRADE_LOG_GROUP_NAME = f"/aws/rds/instance/{names.DATABASE_INSTANCE}/{UPGRADE_LOG_EXPORT}"
MONITORING_ROLE_NAME = f"karematch-{names.ENV}-rds-monitoring-role"
# AWS Backup (contingency plan), beside the spec's 7-day automated backups: a daily recovery
# point in the environment's own vault under its key (schedule and retention in add_backup).
BACKUP_VAULT_NAME = f"karematch-{names.ENV}-database"
BACKUP_PLAN_NAME = f"karematch-{names.ENV}-database-daily"
BACKUP_ROLE_NAME = f"karematch-{names.ENV}-backup-role"

# Spec "Parameter Group (custom)": exactly these.
FORCE_SSL = "1"  # rds.force_ssl: reject unencrypted connections
LOG_CONNECTIONS = "1"  # audit
LOG_DISCONNECTIONS = "1"  # audit
SLOW_QUERY_MS = "10000"  # log_min_duration_statement: statements of 10 s and more
SPEC_DB_PARAMETERS = {
    "rds.force_ssl": FORCE_SSL,
    "log_connections": LOG_CONNECTIONS,
    "log_disconnections": LOG_DISCONNECTIONS,
    "log_min_duration_statement": SLOW_QUERY_MS,
}


@dataclass(frozen=True)
class Inputs:
    instance_class: Ref
    log_retention: Ref
    subnets: Ref
    security_group: Ref
    data_key: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    # Read only through the credentials' dynamic references (Fn::Sub).
    names.declare(
        t,
        names.DATABASE_SECRET_ARN,
        "ARN of the generated master-credentials secret (JSON keys username, password)",
    )
    return Inputs(
        instance_class=Ref(names.declare(t, names.DATABASE_INSTANCE_CLASS)),
        log_retention=Ref(names.declare(t, names.LOG_RETENTION_DAYS)),
        subnets=Ref(
            names.declare(t, names.DATABASE_SUBNET_IDS, "The isolated database subnets (one per AZ)")
        ),
        security_group=Ref(
            names.declare(t, names.DATABASE_SECURITY_GROUP_ID, "Security group of the RDS instance")
        ),
        data_key=Ref(
            names.declare(
                t, names.DATA_KEY_ARN, "ARN of the environment's customer-managed KMS key (foundation.yaml)"
            )
        ),
    )


def add_subnet_group(t: Template, p: Inputs) -> DBSubnetGroup:
    # Unnamed on purpose: the instance's DBSubnetGroupName is create-only, so the group's
    # physical name must never change (a generated name changes only if the group is replaced).
    return t.add_resource(
        DBSubnetGroup(
            SUBNET_GROUP,
            DBSubnetGroupDescription="KareMatch database subnets (isolated, one per AZ)",
            SubnetIds=p.subnets,
            Tags=tags.standard(),
        )
    )


def add_parameter_group(t: Template) -> DBParameterGroup:
    return t.add_resource(
        DBParameterGroup(
            PARAMETER_GROUP,
            Family=PARAMETER_GROUP_FAMILY,
            Description="KareMatch PostgreSQL 15: SSL forced, connection audit, slow queries, pgaudit",
            Parameters={
                **SPEC_DB_PARAMETERS,
                # pgaudit (HIPAA audit controls; docs/runbooks/pgaudit.md does the in-database half). The
                # library is loaded at start (static: a later change needs a reboot CloudFormation does not
                # do). Object auditing through the rds_pgaudit role audits reads and writes of the PHI tables
                # granted to it; session auditing logs only DDL and role changes: "read,write" globally would
                # write PHI literals of every statement into the logs. Bound parameters are never logged.
                "shared_preload_libraries": "pg_stat_statements,pgaudit",
                "pgaudit.role": "rds_pgaudit",
                "pgaudit.log": "ddl,role",
                "pgaudit.log_parameter": "0",
                "pgaudit.log_catalog": "0",
            },
            Tags=tags.standard(),
        )
    )


def add_log_groups(t: Template, p: Inputs) -> list[LogGroup]:
    # Created before the instance: RDS would otherwise create a never-expiring, unencrypted
    # group on the first export.
    return [
        t.add_resource(logs.log_group(logical_id, name, p.log_retention, KmsKeyId=p.data_key))
        for logical_id, name in ((LOG_GROUP, LOG_GROUP_NAME), (UPGRADE_LOG_GROUP, UPGRADE_LOG_GROUP_NAME))
    ]


def add_monitoring_role(t: Template) -> Role:
    """The role Enhanced Monitoring assumes to publish OS metrics (AWS managed policy)."""
    return t.add_resource(
        Role(
            MONITORING_ROLE,
            RoleName=Sub(MONITORING_ROLE_NAME),
            Description="RDS Enhanced Monitoring publishes the database's OS metrics to CloudWatch Logs",
            # Confused deputy: only RDS monitoring acting for this account may assume it.
            AssumeRolePolicyDocument=iam.assume_role(
                "monitoring.rds.amazonaws.com", {"aws:SourceAccount": Ref("AWS::AccountId")}
            ),
            ManagedPolicyArns=[
                arns.managed_policy("service-role/AmazonRDSEnhancedMonitoringRole")
            ],  # AWS managed
            PermissionsBoundary=arns.customer_policy(names.PERMISSIONS_BOUNDARY),
            Tags=tags.standard(),
        )
    )


def add_backup(t: Template, p: Inputs, db: DBInstance) -> BackupVault:
    """A daily AWS Backup recovery point of the instance in the environment's own vault."""
    vault = BackupVault(
        BACKUP_VAULT,
        BackupVaultName=Sub(BACKUP_VAULT_NAME),
        EncryptionKeyArn=p.data_key,
        BackupVaultTags={"Project": "karematch", "Environment": Sub(names.ENV)},
    )
    # Recovery points outlive the stack; a vault that holds any cannot be deleted anyway.
    t.add_resource(policies.retain_except_on_create(vault))
    plan = t.add_resource(
        BackupPlan(
            BACKUP_PLAN,
            BackupPlan=BackupPlanResourceType(
                BackupPlanName=Sub(BACKUP_PLAN_NAME),
                BackupPlanRule=[
                    BackupRuleResourceType(
                        RuleName="daily",
                        TargetBackupVault=Ref(vault),
                        # 06:00 UTC: after the 03:00-04:00 backup and Sunday 04:00-05:00
                        # maintenance windows; recovery points kept 35 days.
                        ScheduleExpression="cron(0 6 * * ? *)",
                        StartWindowMinutes=60,
                        CompletionWindowMinutes=180,
                        Lifecycle=LifecycleResourceType(DeleteAfterDays=35),
                    )
                ],
            ),
            BackupPlanTags={"Project": "karematch", "Environment": Sub(names.ENV)},
        )
    )
    role = t.add_resource(
        Role(
            BACKUP_ROLE,
            RoleName=Sub(BACKUP_ROLE_NAME),
            Description="AWS Backup takes and restores the database's recovery points",
            # No aws:SourceAccount here: AWS Backup's documented service-role trust has no condition,
            # and whether Backup sends the key on AssumeRole is unverified; with it missing, every
            # backup job would fail at runtime. Only this account's principals with iam:PassRole can
            # hand the role to Backup (docs/decisions.md).
            AssumeRolePolicyDocument=iam.assume_role("backup.amazonaws.com"),
            ManagedPolicyArns=[
                arns.managed_policy("service-role/AWSBackupServiceRolePolicyForBackup")
            ],  # AWS managed
            PermissionsBoundary=arns.customer_policy(names.PERMISSIONS_BOUNDARY),
            Tags=tags.standard(),
        )
    )
    t.add_resource(
        BackupSelection(
            BACKUP_SELECTION,
            BackupPlanId=Ref(plan),
            BackupSelection=BackupSelectionResourceType(
                SelectionName=Sub(f"karematch-{names.ENV}-database"),
                IamRoleArn=GetAtt(role, "Arn"),
                Resources=[arns.regional("rds", f"db:{names.DATABASE_INSTANCE}")],
            ),
            DependsOn=[db.title],
        )
    )
    return vault


def _credential(secret_key: str) -> Sub:
    return Sub(f"{{{{resolve:secretsmanager:${{{names.DATABASE_SECRET_ARN}}}:SecretString:{secret_key}}}}}")


def add_instance(
    t: Template,
    p: Inputs,
    *,
    subnet_group: DBSubnetGroup,
    parameter_group: DBParameterGroup,
    log_groups: list[LogGroup],
    monitoring_role: Role,
) -> DBInstance:
    prod = names.IS_PRODUCTION
    db = DBInstance(
        INSTANCE,
        DBInstanceIdentifier=Sub(names.DATABASE_INSTANCE),
        Engine=ENGINE,
        EngineVersion=ENGINE_VERSION,
        AllowMajorVersionUpgrade=False,
        AutoMinorVersionUpgrade=True,
        DBInstanceClass=p.instance_class,
        DBName=names.DATABASE_NAME,
        Port=str(names.DATABASE_PORT),
        # A literal, not a dynamic reference: CloudFormation compares the reference text, so a
        # new secret ARN would read as a new MasterUsername, which replaces the database.
        MasterUsername=secrets.MASTER_USERNAME,
        MasterUserPassword=_credential(secrets.PASSWORD_KEY),
        StorageType=STORAGE_TYPE,
        AllocatedStorage=str(ALLOCATED_STORAGE_GB),
        MaxAllocatedStorage=MAX_ALLOCATED_STORAGE_GB,
        # AES-256 under the environment's customer-managed key. KmsKeyId is create-only: changing
        # it on a live stack replaces the database (the deployer's guard refuses that).
        StorageEncrypted=True,
        KmsKeyId=p.data_key,
        MultiAZ=If(prod, True, False),
        DBSubnetGroupName=Ref(subnet_group),
        VPCSecurityGroups=[p.security_group],
        PubliclyAccessible=False,
        DBParameterGroupName=Ref(parameter_group),
        # The CA that signs the server certificate, set explicitly so the CA the image trusts (the
        # RDS global bundle holds every RDS CA) is the CA RDS serves, not the region's default.
        CACertificateIdentifier="rds-ca-rsa2048-g1",
        # Lets a DB user granted rds_iam log in with an IAM token (the task role's optional
        # rds-db:connect); no effect on password logins.
        EnableIAMDatabaseAuthentication=True,
        BackupRetentionPeriod=BACKUP_RETENTION_DAYS,
        PreferredBackupWindow=BACKUP_WINDOW,
        PreferredMaintenanceWindow=MAINTENANCE_WINDOW,
        CopyTagsToSnapshot=True,
        # Keep the automated backups (point-in-time recovery) for their retention period
        # after the instance is deleted, in addition to the final snapshot.
        DeleteAutomatedBackups=False,
        DeletionProtection=If(names.PROTECT_FROM_DELETION, True, False),
        EnablePerformanceInsights=If(prod, True, False),
        PerformanceInsightsRetentionPeriod=If(prod, PERFORMANCE_INSIGHTS_RETENTION_DAYS, Ref("AWS::NoValue")),
        PerformanceInsightsKMSKeyId=If(prod, p.data_key, Ref("AWS::NoValue")),
        # Enhanced Monitoring: OS metrics every 60 s (RDS's RDSOSMetrics log group, account-wide).
        MonitoringInterval=60,
        MonitoringRoleArn=GetAtt(monitoring_role, "Arn"),
        EnableCloudwatchLogsExports=[LOG_EXPORT, UPGRADE_LOG_EXPORT],
        Tags=tags.standard(names.DATABASE_INSTANCE),
        DependsOn=[g.title for g in log_groups],
    )
    suppress.skip(
        db,
        outside=(
            (
                "CKV_AWS_157",
                "Spec section 3: Multi-AZ in production only; dev and staging are single-AZ by design",
            ),
        ),
        production_condition=prod,
    )
    # Snapshot in every environment (the spec asks for a final snapshot in prod; a dev
    # database costs little to snapshot, and Delete is never allowed on a data store).
    return t.add_resource(policies.snapshot(db))


def build() -> Template:
    t = render.new_template("KareMatch database: RDS PostgreSQL 15, encrypted, SSL forced")
    p = declare_inputs(t)
    conditions.is_production(t)
    conditions.protect_from_deletion(t)
    subnet_group = add_subnet_group(t, p)
    parameter_group = add_parameter_group(t)
    log_groups = add_log_groups(t, p)
    monitoring_role = add_monitoring_role(t)
    db = add_instance(
        t,
        p,
        subnet_group=subnet_group,
        parameter_group=parameter_group,
        log_groups=log_groups,
        monitoring_role=monitoring_role,
    )
    add_backup(t, p, db)
    render.add_outputs(
        t,
        {
            names.DATABASE_ENDPOINT_ADDRESS: GetAtt(db, "Endpoint.Address"),
            names.DATABASE_ENDPOINT_PORT: GetAtt(db, "Endpoint.Port"),
            names.DATABASE_INSTANCE_ID: Ref(db),
            names.DATABASE_RESOURCE_ID: GetAtt(db, "DbiResourceId"),
        },
    )
    return t
