"""Planning reads the live stack tree once: the task count and the quota preflight share it;
outside the planning block every read is fresh (protection after a deploy sees the new tree)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from karematch_cfn.deploy import protect

pytestmark = pytest.mark.deploy

ROOT = "arn:aws:cloudformation:us-east-1:111122223333:stack/karematch-dev/1"
CHILD = "arn:aws:cloudformation:us-east-1:111122223333:stack/karematch-dev-ServiceStack-X/2"


def _expect_one_read(stub: Stubber) -> None:
    stub.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "ServiceStack",
                    "PhysicalResourceId": CHILD,
                    "ResourceType": "AWS::CloudFormation::Stack",
                    "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
            ]
        },
        {"StackName": ROOT},
    )
    stub.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "Service",
                    "PhysicalResourceId": "arn:aws:ecs:us-east-1:111122223333:service/c/s",
                    "ResourceType": "AWS::ECS::Service",
                    "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
            ]
        },
        {"StackName": CHILD},
    )


def test_the_live_tree_is_read_once_while_planning_and_fresh_outside():
    cfn = boto3.client(
        "cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(cfn) as stub:  # the Stubber fails on any call not listed
        _expect_one_read(stub)
        with protect.read_once():
            first = protect.live_tree(cfn, ROOT)
            second = protect.live_tree(cfn, ROOT)
        stub.assert_no_pending_responses()
        assert [s.path for s in second.walk()] == [s.path for s in first.walk()] == [(), ("ServiceStack",)]

        _expect_one_read(stub)
        _expect_one_read(stub)
        protect.live_tree(cfn, ROOT)
        protect.live_tree(cfn, ROOT)
        stub.assert_no_pending_responses()
