"""IAM through intent-named awacs factories.

Each factory returns Statements for one intent (``write_logs``, ``read_secrets``, ...);
``document`` wraps them. A wildcard Resource is used only for the actions listed in
``WILDCARD_ACTIONS``, where AWS authorises nothing narrower; ``tests/test_iam.py`` reads that list.
"""

from __future__ import annotations

from typing import Any

from awacs import ecr, kms, logs, secretsmanager, sts
from awacs.aws import Allow, Condition, PolicyDocument, Principal, Statement, StringEquals

VERSION = "2012-10-17"

# Actions AWS authorises only on Resource "*" (service authorisation reference).
WILDCARD_ACTIONS = frozenset({"ecr:GetAuthorizationToken", "logs:DescribeLogGroups"})


def document(*statements: Statement) -> PolicyDocument:
    """A policy document; always the current policy language version."""
    return PolicyDocument(Version=VERSION, Statement=list(statements))


def assume_role(service: str, conditions: dict[str, Any] | None = None) -> PolicyDocument:
    """Trust policy letting exactly one AWS service (e.g. ``ecs-tasks.amazonaws.com``) assume."""
    kwargs: dict[str, Any] = {}
    if conditions:
        kwargs["Condition"] = Condition(StringEquals(conditions))
    return document(
        Statement(
            Effect=Allow,
            Principal=Principal("Service", [service]),
            Action=[sts.AssumeRole],
            **kwargs,
        )
    )


def write_logs(log_group_arn: Any, streams_arn: Any) -> Statement:
    """Create streams in and put events into one log group."""
    return Statement(
        Sid="WriteLogs",
        Effect=Allow,
        Action=[logs.CreateLogStream, logs.PutLogEvents, logs.DescribeLogStreams],
        Resource=[log_group_arn, streams_arn],
    )


def read_secrets(*secret_arns: Any) -> Statement:
    """Read the current value of exactly these secrets."""
    return Statement(
        Sid="ReadSecrets",
        Effect=Allow,
        Action=[secretsmanager.GetSecretValue, secretsmanager.DescribeSecret],
        Resource=list(secret_arns),
    )


def decrypt_via(service_host: Any, key_arns: Any) -> Statement:
    """kms:Decrypt, only when the call comes through one service (e.g. Secrets Manager)."""
    return Statement(
        Sid="DecryptViaService",
        Effect=Allow,
        Action=[kms.Decrypt],
        Resource=[key_arns],
        Condition=Condition(StringEquals({"kms:ViaService": service_host})),
    )


def pull_images(principal_arn: Any) -> Statement:
    """Repository-policy statement: one role may pull images."""
    return Statement(
        Sid="AllowTaskExecutionRolePull",
        Effect=Allow,
        Principal=Principal("AWS", [principal_arn]),
        Action=[ecr.BatchCheckLayerAvailability, ecr.BatchGetImage, ecr.GetDownloadUrlForLayer],
    )
