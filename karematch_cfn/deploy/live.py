"""What runs now: the ECS service of a live stack tree (its task counts and task definition)."""

from __future__ import annotations

from typing import Any

from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.protect import LiveStack

ECS_SERVICE = "AWS::ECS::Service"
ECS_CLUSTER = "AWS::ECS::Cluster"


def service(aws: awsmod.Aws, live: LiveStack, *, doing: str) -> dict[str, Any] | None:
    """DescribeServices of the one ACTIVE ECS service in the tree (None if not exactly one)."""
    found: list[tuple[str, str | None]] = []
    for stack in live.walk():
        clusters = [
            r.get("PhysicalResourceId") for r in stack.resources if r.get("ResourceType") == ECS_CLUSTER
        ]
        for r in stack.resources:
            if r.get("ResourceType") == ECS_SERVICE and r.get("PhysicalResourceId"):
                found.append((r["PhysicalResourceId"], clusters[0] if clusters else None))
    if len(found) != 1:
        return None
    arn, cluster = found[0]
    parts = arn.split(":", 5)[-1].split("/")  # service/cluster/name (or the old service/name)
    if len(parts) == 3:
        cluster = parts[1]
    kwargs: dict[str, Any] = {"services": [arn]}
    if cluster:
        kwargs["cluster"] = cluster
    out = awsmod.call(doing, aws.client("ecs").describe_services, **kwargs)
    services = [s for s in out.get("services", []) if s.get("status") == "ACTIVE"]
    return services[0] if services else None
