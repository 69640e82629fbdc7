"""database.yaml does what spec section 3 says, in dev and in prod: PostgreSQL 15 on the spec's
instance classes and storage, encrypted, private, SSL forced by the custom parameter group,
the spec's backup and maintenance windows, the prod-only features, a final snapshot, and the
PostgreSQL log exported to a log group with a retention."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import helpers, spec

FILE = "database.yaml"
DB = "3. Database"
DB_TYPE = "AWS::RDS::DBInstance"
ENVS = ("dev", "staging", "prod")


def instance(t: dict[str, Any]) -> dict[str, Any]:
    return helpers.one_of_type(t, DB_TYPE)


def db_props(env: str) -> dict[str, Any]:
    return helpers.props(instance(helpers.for_env(FILE, env)))


@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return helpers.template(FILE)


# ---------------------------------------------------------------------------------------------
# Engine, class, storage
# ---------------------------------------------------------------------------------------------
def test_engine_is_postgresql_of_the_spec_major_version(t):
    major = spec.find(r"Engine: PostgreSQL (\d+)\.\d+", DB)
    p = helpers.props(instance(t))
    assert p["Engine"] == "postgres"
    # The spec's minor (15.4) is deprecated by RDS; any 15.x that lint accepts (docs/decisions.md).
    assert re.fullmatch(rf"{major}\.\d+", p["EngineVersion"]), p["EngineVersion"]
    assert p["AllowMajorVersionUpgrade"] is False  # 16 would need the postgres16 family
    assert p["AutoMinorVersionUpgrade"] is True
    group = helpers.one_of_type(t, "AWS::RDS::DBParameterGroup")
    assert helpers.props(group)["Family"] == f"postgres{major}"


def test_instance_class_is_the_spec_default_and_upgradeable_value(t):
    default = spec.find(r"Instance class: `([\w.]+)`", DB)
    upgrade = spec.find(r"upgradeable to `([\w.]+)`", DB)
    p = helpers.props(instance(t))
    pname = p["DBInstanceClass"]["Ref"]
    param = t["Parameters"][pname]
    assert param["Default"] == default
    assert set(param["AllowedValues"]) == {default, upgrade}
    # The environments' files choose among them (prod runs the upgrade, docs/decisions.md).
    assert db_props("dev")["DBInstanceClass"] == default
    assert db_props("prod")["DBInstanceClass"] == upgrade


def test_storage_is_gp3_with_the_spec_size_and_autoscaling_ceiling(t):
    m = re.search(r"Storage: (\d+) GB (\w+) \(auto-scaling up to (\d+) GB\)", spec.section(DB))
    assert m, "spec storage line not found"
    size, kind, ceiling = m.groups()
    p = helpers.props(instance(t))
    assert int(p["AllocatedStorage"]) == int(size)
    assert p["StorageType"] == kind
    assert int(p["MaxAllocatedStorage"]) == int(ceiling)


def test_storage_is_encrypted_at_rest(t):
    assert spec.find(r"Encryption: (AES-256) encryption at rest", DB)
    p = helpers.props(instance(t))
    assert p["StorageEncrypted"] is True
    # AES-256 under the environment's customer-managed key (foundation.yaml).
    assert p["KmsKeyId"] == {"Ref": "DataKeyArn"}


# ---------------------------------------------------------------------------------------------
# Connection: database name, port, network placement, credentials
# ---------------------------------------------------------------------------------------------
def test_database_name_and_port_are_the_spec_ones(t):
    name = spec.find(r"Database: `(\w+)`", DB)
    port = spec.find(r"Endpoint: `[^`]*:(\d+)`", DB)
    p = helpers.props(instance(t))
    assert p["DBName"] == name
    assert int(p["Port"]) == int(port)


def test_instance_identifier_is_the_spec_name_with_the_environment(t):
    spec_name = spec.find(r"\*\*RDS Instance\*\*: `([\w-]+)`", DB)  # karematch-db
    expected = spec_name.replace("karematch-", "karematch-${EnvironmentName}-", 1)
    assert helpers.sub_text(helpers.props(instance(t))["DBInstanceIdentifier"]) == expected


def test_the_instance_is_private_in_the_database_subnets_behind_its_security_group(t):
    assert spec.find(r"Access: (Private) subnets only", DB)
    p = helpers.props(instance(t))
    assert p["PubliclyAccessible"] is False
    group_id = p["DBSubnetGroupName"]["Ref"]
    group = t["Resources"][group_id]
    assert group["Type"] == "AWS::RDS::DBSubnetGroup"
    assert helpers.props(group)["SubnetIds"] == {"Ref": "DatabaseSubnetIds"}
    assert t["Parameters"]["DatabaseSubnetIds"]["Type"] == "List<AWS::EC2::Subnet::Id>"
    assert p["VPCSecurityGroups"] == [{"Ref": "DatabaseSecurityGroupId"}]
    # Wired from the network and security stacks' Outputs, not root knobs.
    for env in ENVS:
        deployed = db_props(env)
        assert deployed["VPCSecurityGroups"] == [helpers.wired_value("DatabaseSecurityGroupId")]


def test_the_subnet_group_has_no_fixed_name():
    # DBSubnetGroupName is create-only on the instance: a renamed group would replace the DB.
    group = helpers.one_of_type(helpers.template(FILE), "AWS::RDS::DBSubnetGroup")
    assert "DBSubnetGroupName" not in helpers.props(group)


def test_master_credentials_come_from_the_generated_secret_not_rds_managed(t):
    p = helpers.props(instance(t))
    assert "ManageMasterUserPassword" not in p  # an RDS-managed password would stale DATABASE_URL
    # The keys the secrets stack generates (its JSON template and GenerateStringKey).
    secret = helpers.resources_of_type(helpers.template("secrets.yaml"), "AWS::SecretsManager::Secret")
    generated = [helpers.props(s)["GenerateSecretString"] for s in secret.values()]
    db_secret = next(g for g in generated if "SecretStringTemplate" in g)
    (user,) = json.loads(db_secret["SecretStringTemplate"]).values()
    password_key = db_secret["GenerateStringKey"]
    # The user name is the literal the secret holds: a dynamic reference would be compared as
    # text, and a new secret ARN would then replace the database (MasterUsername is create-only).
    assert p["MasterUsername"] == user
    assert helpers.sub_text(p["MasterUserPassword"]) == (
        f"{{{{resolve:secretsmanager:${{DatabaseSecretArn}}:SecretString:{password_key}}}}}"
    )


# ---------------------------------------------------------------------------------------------
# Parameter group
# ---------------------------------------------------------------------------------------------
def test_custom_parameter_group_has_the_spec_parameters_plus_pgaudit(t):
    expected = dict(spec.find_all(r"`([\w.]+) = (\d+)`", DB))
    assert len(expected) == 4 and expected["rds.force_ssl"] == "1"
    group_id = helpers.props(instance(t))["DBParameterGroupName"]["Ref"]
    group = t["Resources"][group_id]
    assert group["Type"] == "AWS::RDS::DBParameterGroup"
    given = {k: str(v) for k, v in helpers.props(group)["Parameters"].items()}
    assert {k: given[k] for k in expected} == expected
    extra = {k: v for k, v in given.items() if k not in expected}
    # pgaudit loaded at start; object auditing through rds_pgaudit; never reads/writes of every
    # statement (PHI literals) and never bound parameters.
    assert "pgaudit" in extra.pop("shared_preload_libraries").split(",")
    assert extra.pop("pgaudit.role") == "rds_pgaudit"
    assert not {"read", "write", "all"} & set(extra.pop("pgaudit.log").split(","))
    assert extra.pop("pgaudit.log_parameter") == "0"
    assert set(extra) <= {"pgaudit.log_catalog"}


# ---------------------------------------------------------------------------------------------
# Backups, maintenance, final snapshot
# ---------------------------------------------------------------------------------------------
def test_backup_retention_and_windows_are_the_spec_ones(t):
    retention = spec.number(r"Automated backups: (\d+)-day retention", DB)
    backup = spec.find(r"Backup window: (\d\d:\d\d-\d\d:\d\d) UTC", DB)
    day, start, end = re.search(
        r"Maintenance window: (\w+) (\d\d:\d\d)-(\d\d:\d\d) UTC", spec.section(DB)
    ).groups()
    ddd = day[:3].lower()
    p = helpers.props(instance(t))
    assert int(p["BackupRetentionPeriod"]) == retention
    assert p["PreferredBackupWindow"] == backup
    assert p["PreferredMaintenanceWindow"] == f"{ddd}:{start}-{ddd}:{end}"


@pytest.mark.parametrize("env", ENVS)
def test_deleting_or_replacing_the_database_takes_a_final_snapshot(env):
    assert spec.find(r"Final snapshot: (Enabled) on deletion", DB)
    db = instance(helpers.for_env(FILE, env))
    # Snapshot in every environment, not only prod (docs/decisions.md).
    assert db["DeletionPolicy"] == "Snapshot"
    assert db["UpdateReplacePolicy"] == "Snapshot"


def test_automated_backups_survive_the_instance_and_snapshots_carry_tags(t):
    p = helpers.props(instance(t))
    assert p["DeleteAutomatedBackups"] is False
    assert p["CopyTagsToSnapshot"] is True


# ---------------------------------------------------------------------------------------------
# Production-only features
# ---------------------------------------------------------------------------------------------
def test_multi_az_only_in_production():
    assert spec.find(r"Multi-AZ: (Enabled in production)", DB)
    assert db_props("prod")["MultiAZ"] is True
    assert db_props("staging")["MultiAZ"] is False
    assert db_props("dev")["MultiAZ"] is False


def test_performance_insights_only_in_production_with_the_spec_retention():
    days = spec.number(r"\*\*Performance Insights\*\*: Enabled in production \((\d+)-day retention\)", DB)
    prod = db_props("prod")
    assert prod["EnablePerformanceInsights"] is True
    assert prod["PerformanceInsightsRetentionPeriod"] == days
    for env in ("dev", "staging"):
        other = db_props(env)
        assert other["EnablePerformanceInsights"] is False
        # RDS rejects a retention period when Performance Insights is off.
        assert "PerformanceInsightsRetentionPeriod" not in other


def test_deletion_protection_only_in_production():
    assert db_props("prod")["DeletionProtection"] is True
    assert db_props("dev")["DeletionProtection"] is False


# ---------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ("dev", "prod"))
def test_postgresql_log_is_exported_to_a_log_group_with_the_environment_retention(env):
    deployed = helpers.for_env(FILE, env)
    db = instance(deployed)
    exports = helpers.props(db)["EnableCloudwatchLogsExports"]
    assert exports == ["postgresql", "upgrade"]
    logs = helpers.resources_of_type(deployed, "AWS::Logs::LogGroup")
    assert len(logs) == len(exports)
    ident = helpers.sub_text(helpers.props(db)["DBInstanceIdentifier"])
    # The exact names RDS writes to, or RDS creates its own never-expiring, unencrypted group.
    by_name = {helpers.sub_text(helpers.props(log)["LogGroupName"]): (i, log) for i, log in logs.items()}
    assert set(by_name) == {f"/aws/rds/instance/{ident}/{e}" for e in exports}
    for log_id, log in by_name.values():
        assert str(helpers.props(log)["RetentionInDays"]) == helpers.env_values(env)["LogRetentionDays"]
        assert helpers.props(log)["KmsKeyId"] == helpers.wired_value("DataKeyArn")
        # Created before the instance starts exporting.
        assert log_id in db.get("DependsOn", [])
        assert log["DeletionPolicy"] in ("Retain", "RetainExceptOnCreate")


def test_log_retention_is_the_root_knob_not_a_constant(t):
    for log in helpers.resources_of_type(t, "AWS::Logs::LogGroup").values():
        assert helpers.props(log)["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------
def test_outputs_are_the_endpoint_and_ids_never_a_credential(t):
    outputs = t["Outputs"]
    db_id = next(iter(helpers.resources_of_type(t, DB_TYPE)))
    assert outputs["DatabaseEndpointAddress"]["Value"] == {"Fn::GetAtt": [db_id, "Endpoint.Address"]}
    assert outputs["DatabaseEndpointPort"]["Value"] == {"Fn::GetAtt": [db_id, "Endpoint.Port"]}
    assert outputs["DatabaseInstanceId"]["Value"] == {"Ref": db_id}
    assert outputs["DatabaseResourceId"]["Value"] == {"Fn::GetAtt": [db_id, "DbiResourceId"]}


def test_the_database_logical_id_is_pinned(t):
    # Renaming the logical id would replace (and snapshot away) the database.
    assert set(helpers.resources_of_type(t, DB_TYPE)) == {"DatabaseInstance"}


def test_aws_backup_keeps_daily_recovery_points_in_its_own_encrypted_retained_vault(t):
    ((vault_id, vault),) = helpers.resources_of_type(t, "AWS::Backup::BackupVault").items()
    assert helpers.props(vault)["EncryptionKeyArn"] == {"Ref": "DataKeyArn"}
    assert vault["DeletionPolicy"] != "Delete" and vault["UpdateReplacePolicy"] != "Delete"
    plan = helpers.props(helpers.one_of_type(t, "AWS::Backup::BackupPlan"))["BackupPlan"]
    (rule,) = plan["BackupPlanRule"]
    assert rule["TargetBackupVault"] == {"Ref": vault_id}
    # Starts (and, within its start window, begins) outside the spec's backup and maintenance
    # windows (03:00-05:00 UTC).
    hour = int(rule["ScheduleExpression"].split()[1])
    assert not 3 <= hour < 5 and not 3 <= hour + rule["StartWindowMinutes"] / 60 < 5
    assert rule["Lifecycle"]["DeleteAfterDays"] >= int(
        spec.number(r"Automated backups: (\d+)-day retention", DB)
    )
    selection = helpers.props(helpers.one_of_type(t, "AWS::Backup::BackupSelection"))["BackupSelection"]
    (resource,) = selection["Resources"]
    ident = helpers.sub_text(helpers.props(instance(t))["DBInstanceIdentifier"])
    assert helpers.sub_text(resource).endswith(f":db:{ident}")


def test_the_server_certificate_ca_is_set_explicitly_to_one_the_rds_global_bundle_holds():
    db = helpers.one_of_type(helpers.template("database.yaml"), "AWS::RDS::DBInstance")
    # rds-ca-rsa2048-g1, rds-ca-rsa4096-g1, rds-ca-ecc384-g1: the CAs of the global bundle
    assert re.fullmatch(r"rds-ca-(rsa2048|rsa4096|ecc384)-g1", helpers.props(db)["CACertificateIdentifier"])


def test_the_backup_role_trusts_aws_backup_without_a_condition_backup_may_not_send():
    # A trust condition AWS Backup does not satisfy fails every backup job at runtime, which no
    # emulator shows; AWS's documented Backup service role trusts the principal alone.
    t = helpers.template("database.yaml")
    (role,) = [
        r
        for r in helpers.resources_of_type(t, "AWS::IAM::Role").values()
        if "backup.amazonaws.com" in repr(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": ["backup.amazonaws.com"]}
    assert "Condition" not in statement
    assert role["Properties"]["PermissionsBoundary"]  # the boundary still caps it
