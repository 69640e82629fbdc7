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


def account_root() -> Sub:
    """The account itself as a principal (key administration, IAM-delegated access)."""
    return Sub(f"{_PREFIX}:iam::${{AWS::AccountId}}:root")


def cloudfront_distribution(logical_id: str) -> Sub:
    """ARN of a distribution of this template, by logical id (CloudFront is global: no region)."""
    return Sub(f"{_PREFIX}:cloudfront::${{AWS::AccountId}}:distribution/${{{logical_id}}}")


def trail(name_pattern: str) -> Sub:
    """ARN of a CloudTrail trail given its Fn::Sub name pattern (home region)."""
    return Sub(f"{_PREFIX}:cloudtrail:${{AWS::Region}}:${{AWS::AccountId}}:trail/{name_pattern}")


def trails_of_account() -> Sub:
    """Every trail of this account in any region (CloudTrail's KMS encryption context)."""
    return Sub(f"{_PREFIX}:cloudtrail:*:${{AWS::AccountId}}:trail/*")


def regional(service: str, resource: str) -> Sub:
    """ARN pattern of a ``service`` resource in this account and region (``resource`` may hold
    ``*`` and ``${...}`` references), e.g. ``regional("ec2", "*")``."""
    return Sub(f"{_PREFIX}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def account_global(service: str, resource: str) -> Sub:
    """ARN pattern of a global ``service`` resource of this account (CloudFront, dashboards)."""
    return Sub(f"{_PREFIX}:{service}::${{AWS::AccountId}}:{resource}")


def customer_policy(name_pattern: str) -> Sub:
    """ARN of a customer managed policy of this account (e.g. the permissions boundary)."""
    return Sub(f"{_PREFIX}:iam::${{AWS::AccountId}}:policy/{name_pattern}")


def role(name_pattern: str) -> Sub:
    """ARN (pattern) of an IAM role of this account, e.g. ``role("karematch-dev-*")``."""
    return Sub(f"{_PREFIX}:iam::${{AWS::AccountId}}:role/{name_pattern}")


def stacks(name_pattern: str) -> Sub:
    """ARN pattern of every stack (any stack id) whose name matches ``name_pattern``."""
    return Sub(f"{_PREFIX}:cloudformation:${{AWS::Region}}:${{AWS::AccountId}}:stack/{name_pattern}/*")
