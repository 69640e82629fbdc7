"""Log groups and the roles AWS services use to write into them, made one way everywhere.

Every log group is named by a ``names`` pattern, expires after the given retention (the root's
LogRetentionDays), and is kept on delete/replace (RetainExceptOnCreate/Retain). A delivery role
lets exactly one service write to exactly one group.
"""

from __future__ import annotations

from typing import Any

from troposphere import Sub
from troposphere.iam import Policy, Role
from troposphere.logs import LogGroup

from karematch_cfn import names
from karematch_cfn.lib import arns, iam, policies, tags


def log_group(logical_id: str, name_pattern: str, retention: Any, **extra: Any) -> LogGroup:
    """A retained, expiring log group (``extra``: e.g. KmsKeyId)."""
    group = LogGroup(
        logical_id, LogGroupName=Sub(name_pattern), RetentionInDays=retention, Tags=tags.standard(), **extra
    )
    return policies.retain_except_on_create(group)


def delivery_role(
    logical_id: str,
    *,
    service: str,
    group_pattern: str,
    policy_name: str,
    description: str,
    conditions: dict[str, Any] | None = None,
    **extra: Any,
) -> Role:
    """A role only ``service`` may assume, allowed to write to the log group ``group_pattern``."""
    return Role(
        logical_id,
        Description=description,
        AssumeRolePolicyDocument=iam.assume_role(service, conditions),
        Policies=[
            Policy(
                PolicyName=policy_name,
                PolicyDocument=iam.document(
                    iam.write_logs(arns.log_group(group_pattern), arns.log_streams(group_pattern))
                ),
            )
        ],
        # Every KareMatch role carries the environment's boundary (bootstrap.yaml).
        PermissionsBoundary=arns.customer_policy(names.PERMISSIONS_BOUNDARY),
        Tags=tags.standard(),
        **extra,
    )
