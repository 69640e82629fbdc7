"""The one way this project makes an S3 bucket: private, encrypted, versioned.

Every bucket (frontend, ALB access logs, CloudTrail, deploy artifacts) gets default encryption,
versioning, all four public-access blocks and ACLs disabled (BucketOwnerEnforced); the caller
adds what differs: its name, encryption algorithm, lifecycle rules and tags.
"""

from __future__ import annotations

from typing import Any

from awacs.aws import Statement
from troposphere import Ref, Sub, Tags
from troposphere.s3 import (
    Bucket,
    BucketEncryption,
    BucketPolicy,
    LifecycleConfiguration,
    LifecycleRule,
    OwnershipControls,
    OwnershipControlsRule,
    PublicAccessBlockConfiguration,
    ServerSideEncryptionByDefault,
    ServerSideEncryptionRule,
    VersioningConfiguration,
)

from karematch_cfn.lib import arns, iam

# SSE-S3 (Amazon S3 managed keys, AES-256): the one name for it. ECR's EncryptionType calls the
# same encryption "AES256" too.
SSE_S3 = "AES256"


def private_bucket(
    logical_id: str,
    *,
    name_pattern: str,
    lifecycle: list[LifecycleRule],
    tags: Tags,
    sse_algorithm: str,
    bucket_key: bool = False,
) -> Bucket:
    """A private, versioned bucket named by a ``names`` Fn::Sub pattern (policies are the
    caller's: ``lib.policies``)."""
    rule = ServerSideEncryptionRule(
        ServerSideEncryptionByDefault=ServerSideEncryptionByDefault(SSEAlgorithm=sse_algorithm)
    )
    if bucket_key:
        rule.BucketKeyEnabled = True
    return Bucket(
        logical_id,
        BucketName=Sub(name_pattern),
        BucketEncryption=BucketEncryption(ServerSideEncryptionConfiguration=[rule]),
        VersioningConfiguration=VersioningConfiguration(Status="Enabled"),
        LifecycleConfiguration=LifecycleConfiguration(Rules=lifecycle),
        PublicAccessBlockConfiguration=PublicAccessBlockConfiguration(
            BlockPublicAcls=True,
            BlockPublicPolicy=True,
            IgnorePublicAcls=True,
            RestrictPublicBuckets=True,
        ),
        OwnershipControls=OwnershipControls(
            Rules=[OwnershipControlsRule(ObjectOwnership="BucketOwnerEnforced")]
        ),
        Tags=tags,
    )


def tls_only_policy(
    logical_id: str, bucket: Bucket, name_pattern: str, *grants: Statement, **extra: Any
) -> BucketPolicy:
    """The bucket's policy: always a deny of plain-HTTP requests first, then ``grants``."""
    deny = iam.deny_insecure_transport(arns.bucket(name_pattern), arns.bucket_objects(name_pattern))
    return BucketPolicy(logical_id, Bucket=Ref(bucket), PolicyDocument=iam.document(deny, *grants), **extra)
