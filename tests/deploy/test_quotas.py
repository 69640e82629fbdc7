"""The Service Quotas preflight (deploy/quotas.py): what the real tree needs per environment, and
the deployer refusing, before any change set exists, a deploy the account's quotas cannot hold.

moto answers only the VPC quotas and not GetAWSDefaultServiceQuota, so Service Quotas and the
EC2 usage reads are botocore Stubbers with AWS's documented response shapes (validated against
the service models); STS, S3 and CloudFormation are the moto server's."""

from __future__ import annotations

import io
from collections import Counter

import boto3
import pytest
from botocore.stub import Stubber

from karematch_cfn import cli, tree
from karematch_cfn.deploy import deployer, inputs, quotas
from karematch_cfn.deploy.aws import Aws
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import EXIT_DEPLOY_FAILED, DeployFailed
from tests import helpers

from .conftest import REGION, Result

pytestmark = pytest.mark.deploy

EIP_QUOTA, VPC_QUOTA, NAT_QUOTA = quotas.QUOTAS
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def client(service: str):
    return boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def quota_response(q: quotas.Quota, value: float) -> dict:
    return {
        "Quota": {
            "ServiceCode": q.service,
            "QuotaCode": q.code,
            "QuotaName": q.name,
            "Value": value,
            "Adjustable": True,
            "GlobalQuota": False,
        }
    }


class Accounts:
    """Stubbed Service Quotas and EC2 clients; the calls each expects, in order."""

    def __init__(self, cfn=None) -> None:
        self.sq, self.ec2 = client("service-quotas"), client("ec2")
        self.sq_stub, self.ec2_stub = Stubber(self.sq), Stubber(self.ec2)
        self.aws = Aws(
            clients={
                "service-quotas": self.sq,
                "ec2": self.ec2,
                "cloudformation": cfn or client("cloudformation"),
            }
        )

    def quota(self, q: quotas.Quota, value: float) -> Accounts:
        self.sq_stub.add_response(
            "get_service_quota", quota_response(q, value), {"ServiceCode": q.service, "QuotaCode": q.code}
        )
        return self

    def no_applied_value(self, q: quotas.Quota, default: float) -> Accounts:
        self.sq_stub.add_client_error(
            "get_service_quota",
            "NoSuchResourceException",
            "The request failed because the specified service quota does not exist.",
        )
        self.sq_stub.add_response(
            "get_aws_default_service_quota",
            quota_response(q, default),
            {"ServiceCode": q.service, "QuotaCode": q.code},
        )
        return self

    def denied(self) -> Accounts:
        self.sq_stub.add_client_error(
            "get_service_quota",
            "AccessDeniedException",
            "User is not authorized to perform servicequotas:GetServiceQuota",
            400,
        )
        return self

    def addresses(self, n: int) -> Accounts:
        rows = [
            {"AllocationId": f"eipalloc-{i:017x}", "PublicIp": f"203.0.113.{i}", "Domain": "vpc"}
            for i in range(n)
        ]
        self.ec2_stub.add_response("describe_addresses", {"Addresses": rows})
        return self

    def vpcs(self, n: int) -> Accounts:
        rows = [
            {"VpcId": f"vpc-{i:017x}", "CidrBlock": "10.9.0.0/16", "State": "available"} for i in range(n)
        ]
        self.ec2_stub.add_response("describe_vpcs", {"Vpcs": rows})
        return self

    def nat_gateways(self, zones: list[str]) -> Accounts:
        nats = [
            {"NatGatewayId": f"nat-{i:017x}", "SubnetId": f"subnet-{i:017x}", "State": "available"}
            for i in range(len(zones))
        ]
        self.ec2_stub.add_response("describe_nat_gateways", {"NatGateways": nats})
        if nats:
            subnets = [{"SubnetId": f"subnet-{i:017x}", "AvailabilityZone": z} for i, z in enumerate(zones)]
            self.ec2_stub.add_response("describe_subnets", {"Subnets": subnets})
        return self

    def zones(self) -> Accounts:
        rows = [
            {"ZoneName": z, "State": "available", "ZoneType": "availability-zone"} for z in reversed(ZONES)
        ]
        self.ec2_stub.add_response("describe_availability_zones", {"AvailabilityZones": rows})
        return self

    def check(self, want: Counter, live: Counter | None = None) -> tuple[list[quotas.Shortage], str]:
        err = io.StringIO()
        with self.sq_stub, self.ec2_stub:
            found = quotas.check(self.aws, Console(io.StringIO(), err), want=want, live=live or Counter())
            self.sq_stub.assert_no_pending_responses()
            self.ec2_stub.assert_no_pending_responses()
        return found, err.getvalue()


# ------------------------------------------------------------------------------------------
# What the real tree needs
# ------------------------------------------------------------------------------------------
def want_for(env: str) -> Counter:
    t = inputs.load_tree(tree.TEMPLATES_DIR)
    files = {x.path.name: x.data for x in t.files.values()}
    return quotas.wanted(files, t.root.name, helpers.env_values(env), region=REGION)


def test_the_tree_wants_one_vpc_and_an_address_per_nat_gateway_of_the_environment_layout():
    assert want_for("prod") == Counter({quotas.VPC: 1, quotas.EIP: 2, quotas.NAT_GATEWAY: 2})
    for env in ("dev", "staging"):
        assert want_for(env) == Counter({quotas.VPC: 1, quotas.EIP: 1, quotas.NAT_GATEWAY: 1}), env


def test_an_update_adds_only_what_the_live_stacks_do_not_hold_yet():
    live = Counter({quotas.VPC: 1, quotas.EIP: 1, quotas.NAT_GATEWAY: 1})
    assert quotas.added(want_for("dev"), live) == Counter()
    assert quotas.added(want_for("prod"), live) == Counter({quotas.EIP: 1, quotas.NAT_GATEWAY: 1})
    assert (
        quotas.added(want_for("dev"), Counter({quotas.EIP: 2, quotas.NAT_GATEWAY: 2, quotas.VPC: 1}))
        == Counter()
    )


def test_a_deploy_that_adds_nothing_reads_no_quota():
    found, err = Accounts().check(Counter({quotas.EIP: 2}), Counter({quotas.EIP: 2}))
    assert found == [] and err == ""


# ------------------------------------------------------------------------------------------
# Reading quotas and usage
# ------------------------------------------------------------------------------------------
def test_the_third_environment_does_not_fit_five_addresses_and_the_message_says_so():
    acc = Accounts().quota(EIP_QUOTA, 5.0).addresses(4)
    (short,), _ = acc.check(Counter({quotas.EIP: 2}))
    assert (short.limit, short.used, short.needed, short.free) == (5, 4, 2, 1)
    assert short.where == REGION
    assert "EC2-VPC Elastic IPs" in short.message() and "L-0263D0A3" in short.message()
    assert short.command() == (
        "aws service-quotas request-service-quota-increase --service-code ec2 "
        "--quota-code L-0263D0A3 --desired-value 6"
    )


def test_without_an_applied_value_aws_default_is_used():
    acc = Accounts().no_applied_value(EIP_QUOTA, 5.0).addresses(3)
    found, _ = acc.check(Counter({quotas.EIP: 2}))
    assert found == []
    acc = Accounts().no_applied_value(EIP_QUOTA, 5.0).addresses(4)
    (short,), _ = acc.check(Counter({quotas.EIP: 2}))
    assert short.limit == 5


def test_a_caller_who_may_not_read_service_quotas_is_warned_and_goes_on():
    found, err = Accounts().denied().check(Counter({quotas.EIP: 2}))
    assert found == []
    assert "cannot read quota 'EC2-VPC Elastic IPs'" in err and "not checked" in err


def test_vpcs_count_the_default_vpc_too():
    (short,), _ = Accounts().quota(VPC_QUOTA, 5.0).vpcs(5).check(Counter({quotas.VPC: 1}))
    assert (short.used, short.needed) == (5, 1)


def test_nat_gateways_are_checked_in_the_zones_they_go_to():
    # per-az after single: the new NAT gateway goes to the second zone, which is full
    acc = Accounts().quota(NAT_QUOTA, 5.0).nat_gateways(["us-east-1b"] * 5 + ["us-east-1a"]).zones()
    (short,), _ = acc.check(Counter({quotas.NAT_GATEWAY: 2}), Counter({quotas.NAT_GATEWAY: 1}))
    assert (short.where, short.used, short.needed) == ("us-east-1b", 5, 1)
    # a first create needs one in each of the first two zones; the third zone does not matter
    acc = Accounts().quota(NAT_QUOTA, 5.0).nat_gateways(["us-east-1c"] * 5).zones()
    assert acc.check(Counter({quotas.NAT_GATEWAY: 2}))[0] == []


def test_refusal_names_every_short_quota_and_the_commands():
    shorts = quotas.shortages(quota=EIP_QUOTA, limit=5, needed={REGION: 2}, used={REGION: 5})
    with pytest.raises(DeployFailed) as exc:
        quotas.refuse(shorts)
    assert "this deploy needs 2, 0 free (5 in use of 5)" in str(exc.value)
    assert "no change set" in str(exc.value)
    assert any("request-service-quota-increase" in h for h in exc.value.hints)


# ------------------------------------------------------------------------------------------
# The deploy command: refused before any upload or change set
# ------------------------------------------------------------------------------------------
def test_deploy_refuses_a_first_create_the_elastic_ip_quota_cannot_hold(moto):
    acc = Accounts(cfn=moto.client("cloudformation"))
    acc.aws.clients.update({"sts": moto.client("sts"), "s3": moto.client("s3")})
    acc.quota(EIP_QUOTA, 5.0).addresses(5)
    acc.quota(VPC_QUOTA, 5.0).vpcs(1)
    acc.quota(NAT_QUOTA, 5.0).nat_gateways([]).zones()
    args = cli.build_parser().parse_args(
        ["deploy", "--env", "dev", "--parameters", str(helpers.REPO / "parameters" / "dev.json"), "--yes"]
    )
    out, err = io.StringIO(), io.StringIO()
    hooks = deployer.Hooks(aws=acc.aws, interactive=lambda: False, console=Console(out, err))
    with acc.sq_stub, acc.ec2_stub:
        code = cli.run(args, hooks)
    result = Result(code, out.getvalue(), err.getvalue())
    assert result.code == EXIT_DEPLOY_FAILED, result.text
    assert "'EC2-VPC Elastic IPs' (ec2 L-0263D0A3)" in result.text
    assert "needs 1, 0 free (5 in use of 5)" in result.text
    assert "--quota-code L-0263D0A3 --desired-value 6" in result.text
    # nothing exists: no stack, no change set, no artifacts bucket
    assert moto.stacks() == {}
    assert moto.client("s3").list_buckets()["Buckets"] == []
    assert "creating a CREATE" not in result.out


def test_an_update_to_per_az_checks_only_the_address_and_nat_gateway_it_adds():
    """dev (single) -> per-az on a live stack: the live nested stacks hold one Elastic IP, one
    NAT gateway and the VPC; only the second address and NAT gateway are checked."""
    from . import shapes as s

    cfn = client("cloudformation")
    cfn_stub = Stubber(cfn)
    network_id = s.nested_id("NetworkStack")
    cfn_stub.add_response(
        "list_stack_resources",
        s.resources(("NetworkStack", "AWS::CloudFormation::Stack", network_id)),
        {"StackName": s.ROOT_ID},
    )
    cfn_stub.add_response(
        "list_stack_resources",
        s.resources(
            ("Vpc", quotas.VPC, "vpc-0123456789abcdef0"),
            ("NatEip1", quotas.EIP, "203.0.113.10"),
            ("NatGateway1", quotas.NAT_GATEWAY, "nat-0123456789abcdef0"),
        ),
        {"StackName": network_id},
    )
    acc = Accounts(cfn=cfn)
    acc.quota(EIP_QUOTA, 5.0).addresses(5)  # the account is full: the second address does not fit
    acc.quota(NAT_QUOTA, 5.0).nat_gateways(["us-east-1a"]).zones()
    t = inputs.load_tree(tree.TEMPLATES_DIR)
    live = s.stack("UPDATE_COMPLETE", params=dict(helpers.env_values("dev"), NatGatewayLayout="single"))[
        "Stacks"
    ][0]
    entries = [{"ParameterKey": "NatGatewayLayout", "ParameterValue": "per-az"}] + [
        {"ParameterKey": k, "UsePreviousValue": True} for k in ("EnvironmentName",)
    ]
    err = io.StringIO()
    with cfn_stub, acc.sq_stub, acc.ec2_stub, pytest.raises(DeployFailed) as exc:
        quotas.preflight(acc.aws, Console(io.StringIO(), err), tree=t, entries=entries, stack=live)
    assert "'EC2-VPC Elastic IPs'" in str(exc.value) and "needs 1, 0 free (5 in use of 5)" in str(exc.value)
    assert "VPCs per Region" not in str(exc.value)  # the VPC exists: not checked, not counted
    acc.sq_stub.assert_no_pending_responses()
    acc.ec2_stub.assert_no_pending_responses()
