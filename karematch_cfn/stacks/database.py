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
from troposphere.logs import LogGroup
from troposphere.rds import DBInstance, DBParameterGroup, DBSubnetGroup

from karematch_cfn import names, render
from karematch_cfn.lib import conditions, logs, policies, tags
from karematch_cfn.stacks import secrets  # the JSON keys of the generated credentials

INSTANCE = "DatabaseInstance"
SUBNET_GROUP = "DatabaseSubnetGroup"
PARAMETER_GROUP = "DatabaseParameterGroup"
LOG_GROUP = "DatabaseLogGroup"

ENGINE = "postgres"
# Spec: PostgreSQL 15.4, which RDS has deprecated (cfn-lint W3691 flags 15.2-15.12 and a bare
# "15"). The newest 15.x that cfn-lint 1.58's RDS data lists as creatable; minor upgrades are
# applied by RDS in the maintenance window, major upgrades never without a template change.
ENGINE_VERSION = "15.19"
# The CA that signs the server certificate, set explicitly so the CA the image trusts (the RDS
# global bundle holds every RDS CA) is the CA RDS serves, not whatever default the region has.
CA_CERTIFICATE = "rds-ca-rsa2048-g1"
PARAMETER_GROUP_FAMILY = "postgres15"
ALLOCATED_STORAGE_GB = 20  # spec: 20 GB
MAX_ALLOCATED_STORAGE_GB = 100  # spec: auto-scaling up to 100 GB
STORAGE_TYPE = "gp3"  # spec
BACKUP_RETENTION_DAYS = 7  # spec: 7-day retention
BACKUP_WINDOW = "03:00-04:00"  # spec: 03:00-04:00 UTC
MAINTENANCE_WINDOW = "sun:04:00-sun:05:00"  # spec: Sunday 04:00-05:00 UTC
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7  # spec: production only, 7-day retention
LOG_EXPORT = "postgresql"
LOG_GROUP_NAME = f"/aws/rds/instance/{names.DATABASE_INSTANCE}/{LOG_EXPORT}"

# Spec "Parameter Group (custom)": exactly these.
FORCE_SSL = "1"  # rds.force_ssl: reject unencrypted connections
LOG_CONNECTIONS = "1"  # audit
LOG_DISCONNECTIONS = "1"  # audit
SLOW_QUERY_MS = "10000"  # log_min_duration_statement: statements of 10 s and more
DB_PARAMETERS = {
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
            Description="KareMatch PostgreSQL 15: SSL forced, connection audit, slow queries",
            Parameters=DB_PARAMETERS,
            Tags=tags.standard(),
        )
    )


def add_log_group(t: Template, p: Inputs) -> LogGroup:
    # Created before the instance: RDS would otherwise create a never-expiring group on the
    # first export, with no retention.
    return t.add_resource(logs.log_group(LOG_GROUP, LOG_GROUP_NAME, p.log_retention))


def _credential(secret_key: str) -> Sub:
    return Sub(f"{{{{resolve:secretsmanager:${{{names.DATABASE_SECRET_ARN}}}:SecretString:{secret_key}}}}}")


def add_instance(
    t: Template,
    p: Inputs,
    *,
    subnet_group: DBSubnetGroup,
    parameter_group: DBParameterGroup,
    log_group: LogGroup,
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
        # AES-256 with the AWS-managed aws/rds key (no KmsKeyId, which would force replacement
        # if added later).
        StorageEncrypted=True,
        MultiAZ=If(prod, True, False),
        DBSubnetGroupName=Ref(subnet_group),
        VPCSecurityGroups=[p.security_group],
        PubliclyAccessible=False,
        DBParameterGroupName=Ref(parameter_group),
        CACertificateIdentifier=CA_CERTIFICATE,
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
        EnableCloudwatchLogsExports=[LOG_EXPORT],
        Tags=tags.standard(names.DATABASE_INSTANCE),
        DependsOn=[log_group],
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
    log_group = add_log_group(t, p)
    db = add_instance(t, p, subnet_group=subnet_group, parameter_group=parameter_group, log_group=log_group)
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
