"""ARNs built with ${AWS::Partition}/${AWS::Region}/${AWS::AccountId}, never hard-coded."""

from __future__ import annotations

from troposphere import Sub

_PREFIX = "arn:${AWS::Partition}"


def log_group(name_pattern: str) -> Sub:
    """ARN of a log group given its Fn::Sub name pattern (without the trailing ``:*``)."""
    return Sub(f"{_PREFIX}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{name_pattern}")


def log_streams(name_pattern: str) -> Sub:
    """ARN matching every stream of a log group (what logs:PutLogEvents is authorised on)."""
    return Sub(f"{_PREFIX}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{name_pattern}:*")


def managed_policy(name: str) -> Sub:
    """ARN of an AWS managed policy, e.g. ``service-role/AmazonECSTaskExecutionRolePolicy``."""
    return Sub(f"{_PREFIX}:iam::aws:policy/{name}")


def kms_keys() -> Sub:
    """Every KMS key of this account and region (scoped further by a kms:ViaService condition)."""
    return Sub(f"{_PREFIX}:kms:${{AWS::Region}}:${{AWS::AccountId}}:key/*")


def bucket(name_pattern: str) -> Sub:
    return Sub(f"{_PREFIX}:s3:::{name_pattern}")


def bucket_objects(name_pattern: str, prefix: str = "") -> Sub:
    return Sub(f"{_PREFIX}:s3:::{name_pattern}/{prefix}*")
