"""Deletion and replacement policies, decided once per kind of resource.

Every stateful resource (database, buckets, secrets, log groups, repositories, KMS keys, backup
vaults) keeps its data when it is deleted or replaced by accident; ``tests/test_policies.py`` and
the custom cfn-lint rule in ``karematch_cfn/lintrules`` enforce it on the rendered templates.
"""

from __future__ import annotations

from troposphere import AWSObject

# Types whose loss loses data. The deployer's guard (deploy/guard.py) uses the same set.
STATEFUL_TYPES = frozenset(
    {
        "AWS::RDS::DBInstance",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
        "AWS::Logs::LogGroup",
        "AWS::ECR::Repository",
        "AWS::KMS::Key",
        "AWS::Backup::BackupVault",
    }
)

RETAIN = "Retain"
SNAPSHOT = "Snapshot"
DELETE = "Delete"


def retain(resource: AWSObject) -> AWSObject:
    """Keep the resource (and its data) if the stack deletes or replaces it."""
    resource.DeletionPolicy = RETAIN
    resource.UpdateReplacePolicy = RETAIN
    return resource


def snapshot(resource: AWSObject) -> AWSObject:
    """Take a final snapshot before the resource is deleted or replaced (RDS)."""
    resource.DeletionPolicy = SNAPSHOT
    resource.UpdateReplacePolicy = SNAPSHOT
    return resource


def delete(resource: AWSObject) -> AWSObject:
    """Explicitly disposable (child stacks: the data inside carries its own policy)."""
    resource.DeletionPolicy = DELETE
    resource.UpdateReplacePolicy = DELETE
    return resource


def retain_except_on_create(resource: AWSObject) -> AWSObject:
    """Keep the resource if the stack deletes or replaces it, except when the stack operation
    that created it rolls back: a failed first deploy then leaves no named resource behind to
    block the retry ("already exists"). UpdateReplacePolicy has no such value: Retain."""
    resource.DeletionPolicy = "RetainExceptOnCreate"
    resource.UpdateReplacePolicy = RETAIN
    return resource
