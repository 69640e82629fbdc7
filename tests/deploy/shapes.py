"""CloudFormation responses shaped like AWS's documented ones (DescribeChangeSet, DescribeStacks,
DescribeStackEvents, ListStackResources), for what moto cannot produce.

Every builder's output goes through botocore's Stubber, which validates it against the service
model (``validated``), so a misspelt or mistyped field fails the test instead of passing
silently. Reference: the DescribeChangeSet example in the CloudFormation API reference and
"Change sets for nested stacks" in the user guide.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import boto3
from botocore.stub import Stubber

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "karematch-dev"
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
NO_CHANGES_REASON = (
    "The submitted information didn't contain changes. Submit different information to create a change set."
)
_ids = itertools.count(1)


def uid(n: int | None = None) -> str:
    n = next(_ids) if n is None else n
    return f"{n:08x}-0000-00a0-a123-00abc0abc000"


def stack_arn(name: str, n: int = 0) -> str:
    return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/{uid(n)}"


def change_set_arn(name: str = "karematch-cfn-20240501-120000", n: int = 0) -> str:
    return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:changeSet/{name}/{uid(n)}"


ROOT_ID = stack_arn(STACK, 1)
ROOT_CS = change_set_arn(n=1)


def nested_name(logical_id: str) -> str:
    return f"{STACK}-{logical_id}-1ABCDEFGHIJKL"


def nested_id(logical_id: str, n: int = 2) -> str:
    return stack_arn(nested_name(logical_id), n)


def _client(service: str = "cloudformation"):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def validated(operation: str, response: dict[str, Any], service: str = "cloudformation") -> dict[str, Any]:
    """``response`` after botocore checked it against the operation's output shape."""
    client = _client(service)
    with Stubber(client) as stub:
        stub.add_response(operation, response)  # raises ParamValidationError on a bad shape
    return response


def parameters(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def stack(
    status: str,
    *,
    name: str = STACK,
    stack_id: str = ROOT_ID,
    params: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """DescribeStacks output for one stack."""
    body: dict[str, Any] = {
        "StackId": stack_id,
        "StackName": name,
        "Parameters": parameters(params or {}),
        "CreationTime": T0,
        "LastUpdatedTime": T0,
        "RollbackConfiguration": {},
        "StackStatus": status,
        "DisableRollback": False,
        "NotificationARNs": [],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        "Tags": [],
        "EnableTerminationProtection": False,
        "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
    }
    if outputs:
        body["Outputs"] = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
    return validated("describe_stacks", {"Stacks": [body]})


def detail(
    name: str,
    *,
    recreation: str = "Never",
    evaluation: str = "Static",
    source: str = "DirectModification",
    causing: str | None = None,
    attribute: str = "Properties",
) -> dict[str, Any]:
    """One ResourceChangeDetail."""
    out: dict[str, Any] = {
        "Target": {"Attribute": attribute, "Name": name, "RequiresRecreation": recreation},
        "Evaluation": evaluation,
        "ChangeSource": source,
    }
    if causing:
        out["CausingEntity"] = causing
    return out


def change(
    action: str,
    logical_id: str,
    resource_type: str,
    *,
    physical: str | None = None,
    replacement: str | None = None,
    details: list[dict[str, Any]] | None = None,
    change_set_id: str | None = None,
) -> dict[str, Any]:
    """One entry of DescribeChangeSet's Changes, as AWS returns it."""
    rc: dict[str, Any] = {"Action": action, "LogicalResourceId": logical_id, "ResourceType": resource_type}
    if action != "Add":
        rc["PhysicalResourceId"] = physical or f"{logical_id.lower()}-physical-id"
    if action == "Modify":
        rc["Replacement"] = replacement or "False"
        details = details or []
        rc["Scope"] = sorted({d["Target"]["Attribute"] for d in details}) or ["Properties"]
        rc["Details"] = details
    if change_set_id:
        rc["ChangeSetId"] = change_set_id
    return {"Type": "Resource", "ResourceChange": rc}


def nested(
    action: str, logical_id: str, change_set_id: str | None, n: int = 2, replacement: str = "False"
) -> dict[str, Any]:
    """A child stack's entry in its parent's change set (pointing at its nested change set)."""
    details = [detail("TemplateURL", source="DirectModification")] if action == "Modify" else None
    return change(
        action,
        logical_id,
        "AWS::CloudFormation::Stack",
        physical=nested_id(logical_id, n),
        replacement=replacement if action == "Modify" else None,
        details=details,
        change_set_id=change_set_id,
    )


def change_set(
    changes: list[dict[str, Any]],
    *,
    status: str = "CREATE_COMPLETE",
    reason: str | None = None,
    cs_id: str = ROOT_CS,
    stack_id: str = ROOT_ID,
    stack_name: str = STACK,
    params: dict[str, str] | None = None,
    parent: str | None = None,
    next_token: str | None = None,
) -> dict[str, Any]:
    """DescribeChangeSet output (one page)."""
    out: dict[str, Any] = {
        "ChangeSetName": cs_id.split("/")[1],
        "ChangeSetId": cs_id,
        "StackId": stack_id,
        "StackName": stack_name,
        "Parameters": parameters(params or {}),
        "CreationTime": T0,
        "ExecutionStatus": "UNAVAILABLE" if status == "FAILED" else "AVAILABLE",
        "Status": status,
        "NotificationARNs": [],
        "RollbackConfiguration": {},
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        "Changes": changes,
        "IncludeNestedStacks": True,
    }
    if reason:
        out["StatusReason"] = reason
    if parent:
        out["ParentChangeSetId"] = parent
        out["RootChangeSetId"] = ROOT_CS
    if next_token:
        out["NextToken"] = next_token
    return validated("describe_change_set", out)


def event(
    logical_id: str,
    resource_type: str,
    status: str,
    *,
    seconds: int,
    reason: str | None = None,
    stack_id: str = ROOT_ID,
    stack_name: str = STACK,
    physical: str | None = None,
) -> dict[str, Any]:
    """One StackEvent (DescribeStackEvents returns them newest first)."""
    out: dict[str, Any] = {
        "StackId": stack_id,
        "EventId": f"{logical_id}-{status}-{seconds}",
        "StackName": stack_name,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": physical if physical is not None else f"{logical_id.lower()}-physical-id",
        "ResourceType": resource_type,
        "Timestamp": T0 + dt.timedelta(seconds=seconds),
        "ResourceStatus": status,
    }
    if reason:
        out["ResourceStatusReason"] = reason
    return out


def events(*newest_first: dict[str, Any]) -> dict[str, Any]:
    return validated("describe_stack_events", {"StackEvents": list(newest_first)})


def resources(*rows: tuple[str, str, str]) -> dict[str, Any]:
    """ListStackResources output from (logical id, type, physical id)."""
    return validated(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": lid,
                    "PhysicalResourceId": pid,
                    "ResourceType": rtype,
                    "LastUpdatedTimestamp": T0,
                    "ResourceStatus": "UPDATE_COMPLETE",
                    "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
                }
                for lid, rtype, pid in rows
            ]
        },
    )
