"""The one way this project makes an S3 bucket: private, encrypted, versioned.

Every bucket (frontend, ALB access logs, CloudTrail, deploy artifacts) gets default encryption,
versioning, all four public-access blocks and ACLs disabled (BucketOwnerEnforced); the caller
adds what differs: its name, encryption algorithm, lifecycle rules and tags.
"""

from __future__ import annotations

from troposphere import Sub, Tags
from troposphere.s3 import (
    Bucket,
    BucketEncryption,
    LifecycleConfiguration,
    LifecycleRule,
    OwnershipControls,
    OwnershipControlsRule,
    PublicAccessBlockConfiguration,
    ServerSideEncryptionByDefault,
    ServerSideEncryptionRule,
    VersioningConfiguration,
)

SSE_S3 = "AES256"


def private_bucket(logical_id: str, name_pattern: str, lifecycle: list[LifecycleRule], tags: Tags,
                   sse_algorithm: str = SSE_S3, bucket_key: bool = False) -> Bucket:  # fmt: skip
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
