"""The logical ids of stateful resources and child stacks are pinned.

Renaming a logical id makes CloudFormation create a new resource and delete the old one: for
these that means a new database, bucket, secret or log group. Changing this table is a
deliberate act reviewed with the deployer's guard (docs/deploying.md), never a side effect.
"""

from __future__ import annotations

from karematch_cfn.lib import policies
from tests import helpers

STACK = "AWS::CloudFormation::Stack"
PINNED = {
    ("appsecret.yaml", "AppSecret", "AWS::SecretsManager::Secret"),
    ("audit.yaml", "TrailBucket", "AWS::S3::Bucket"),
    ("audit.yaml", "TrailKey", "AWS::KMS::Key"),
    ("audit.yaml", "TrailLogGroup", "AWS::Logs::LogGroup"),
    ("bootstrap.yaml", "ArtifactsBucket", "AWS::S3::Bucket"),
    ("bootstrap.yaml", "PlanArtifactsBucket", "AWS::S3::Bucket"),
    ("database.yaml", "DatabaseBackupVault", "AWS::Backup::BackupVault"),
    ("database.yaml", "DatabaseInstance", "AWS::RDS::DBInstance"),
    ("database.yaml", "DatabaseLogGroup", "AWS::Logs::LogGroup"),
    ("database.yaml", "DatabaseUpgradeLogGroup", "AWS::Logs::LogGroup"),
    ("foundation.yaml", "AccessLogBucket", "AWS::S3::Bucket"),
    ("foundation.yaml", "DataKey", "AWS::KMS::Key"),
    ("foundation.yaml", "WafLogBucket", "AWS::S3::Bucket"),
    ("frontend.yaml", "FrontendBucket", "AWS::S3::Bucket"),
    ("karematch.yaml", "AppSecretStack", STACK),
    ("karematch.yaml", "AuditStack", STACK),
    ("karematch.yaml", "DatabaseStack", STACK),
    ("karematch.yaml", "FoundationStack", STACK),
    ("karematch.yaml", "FrontendStack", STACK),
    ("karematch.yaml", "IamStack", STACK),
    ("karematch.yaml", "LoadBalancerStack", STACK),
    ("karematch.yaml", "MonitoringStack", STACK),
    ("karematch.yaml", "NetworkStack", STACK),
    ("karematch.yaml", "RegistryStack", STACK),
    ("karematch.yaml", "SecretsStack", STACK),
    ("karematch.yaml", "SecurityGroupsStack", STACK),
    ("karematch.yaml", "ServiceStack", STACK),
    ("loadbalancer.yaml", "AccessLogBucket", "AWS::S3::Bucket"),
    ("monitoring.yaml", "AlarmTopicKey", "AWS::KMS::Key"),
    ("network.yaml", "FlowLogGroup", "AWS::Logs::LogGroup"),
    ("network.yaml", "RestrictDefaultSecurityGroupLogGroup", "AWS::Logs::LogGroup"),
    ("registry.yaml", "BackendRepository", "AWS::ECR::Repository"),
    ("secrets.yaml", "DatabaseSecret", "AWS::SecretsManager::Secret"),
    ("secrets.yaml", "EncryptionKeySecret", "AWS::SecretsManager::Secret"),
    ("secrets.yaml", "SessionSecret", "AWS::SecretsManager::Secret"),
    ("service.yaml", "AppLogGroup", "AWS::Logs::LogGroup"),
}


def test_stateful_logical_ids_are_exactly_the_pinned_ones():
    found = set()
    for filename in helpers.rendered_text():
        for logical_id, res in helpers.template(filename).get("Resources", {}).items():
            if res["Type"] in policies.STATEFUL_TYPES or res["Type"] == STACK:
                found.add((filename, logical_id, res["Type"]))
    missing = sorted(PINNED - found)
    new = sorted(found - PINNED)
    assert not missing, f"renamed or removed (would REPLACE/DELETE the resource): {missing}"
    assert not new, f"new stateful resources: pin them here deliberately: {new}"
