"""network.yaml does what spec section 1 says: the VPC, three subnet tiers in two AZs, their
routes (public -> internet gateway, private -> the NAT gateway of the same AZ, database -> none)
and flow logs of all traffic. Subnets are found by their spec CIDRs, not by logical id."""

from __future__ import annotations

import re
from typing import Any

import pytest

from karematch_cfn import names
from karematch_cfn.lib import iam
from tests import helpers, spec

FILE = "network.yaml"
NETWORKING = "1. Networking"
MONITORING = "9. Monitoring"
TIERS = ("Public", "Private", "Database")
CIDR = r"`(\d+\.\d+\.\d+\.\d+/\d+)`"


# ---------------------------------------------------------------------------------------------
# Spec facts and template lookups
# ---------------------------------------------------------------------------------------------
def spec_tier_line(tier: str) -> str:
    return spec.find(rf"^- \*\*{tier} Subnets\*\*:(.*)$", NETWORKING)


def spec_cidrs(tier: str) -> list[str]:
    cidrs = re.findall(CIDR, spec_tier_line(tier))
    assert cidrs, f"spec lists no CIDRs for {tier} subnets"
    return cidrs


def spec_az_count(tier: str) -> int:
    return int(re.search(r"\((\d+) AZs\)", spec_tier_line(tier)).group(1))


@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return helpers.template(FILE)


def res(t: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return t["Resources"][logical_id]


def ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, f"expected a Ref, got {value!r}"
    return value["Ref"]


def subnet_by_cidr(t: dict[str, Any], cidr: str) -> str:
    found = [
        k
        for k, v in helpers.resources_of_type(t, "AWS::EC2::Subnet").items()
        if helpers.props(v)["CidrBlock"] == cidr
    ]
    assert len(found) == 1, f"expected one subnet {cidr}, found {found}"
    return found[0]


def tier_subnets(t: dict[str, Any], tier: str) -> list[str]:
    return [subnet_by_cidr(t, c) for c in spec_cidrs(tier)]


def az_index(t: dict[str, Any], subnet: str) -> int:
    """The AZ index of a subnet placed with Fn::Select [i, Fn::GetAZs ""] (the region's AZs)."""
    az = helpers.props(res(t, subnet))["AvailabilityZone"]
    index, azs = az["Fn::Select"]
    assert azs == {"Fn::GetAZs": ""}, f"{subnet}: AZ must come from this region's AZ list"
    return int(index)


def route_tables_of(t: dict[str, Any], subnet: str) -> list[str]:
    return [
        ref(helpers.props(a)["RouteTableId"])
        for a in helpers.resources_of_type(t, "AWS::EC2::SubnetRouteTableAssociation").values()
        if ref(helpers.props(a)["SubnetId"]) == subnet
    ]


def route_table_of(t: dict[str, Any], subnet: str) -> str:
    tables = route_tables_of(t, subnet)
    assert len(tables) == 1, f"{subnet}: expected one explicit route table, found {tables}"
    return tables[0]


def routes_in(t: dict[str, Any], table: str) -> list[dict[str, Any]]:
    return [
        helpers.props(r)
        for r in helpers.resources_of_type(t, "AWS::EC2::Route").values()
        if ref(helpers.props(r)["RouteTableId"]) == table
    ]


def default_route(t: dict[str, Any], table: str) -> dict[str, Any]:
    found = [r for r in routes_in(t, table) if r.get("DestinationCidrBlock") == names.ANYWHERE_IPV4]
    assert len(found) == 1, f"{table}: expected one default route, found {found}"
    return found[0]


def vpc_id(t: dict[str, Any]) -> str:
    (logical_id,) = helpers.resources_of_type(t, "AWS::EC2::VPC")
    return logical_id


# ---------------------------------------------------------------------------------------------
# VPC and subnets
# ---------------------------------------------------------------------------------------------
def test_vpc_cidr_and_dns_match_the_spec(t):
    cidr = spec.find(r"\*\*VPC\*\*: " + CIDR, NETWORKING)
    vpc = helpers.props(helpers.one_of_type(t, "AWS::EC2::VPC"))
    assert vpc["CidrBlock"] == cidr
    # Interface endpoints, RDS endpoints and ECR need DNS names resolvable inside the VPC.
    assert vpc["EnableDnsSupport"] is True and vpc["EnableDnsHostnames"] is True


def test_subnets_are_exactly_the_spec_cidrs_in_the_vpc(t):
    listed = spec.find_all(CIDR.replace(r"\d+/\d+", r"\d+/24"), NETWORKING)
    by_tier = [c for tier in TIERS for c in spec_cidrs(tier)]
    assert sorted(by_tier) == sorted(listed), "every /24 of the spec section belongs to one tier"
    subnets = helpers.resources_of_type(t, "AWS::EC2::Subnet")
    assert sorted(helpers.props(s)["CidrBlock"] for s in subnets.values()) == sorted(by_tier)
    for name, s in subnets.items():
        assert ref(helpers.props(s)["VpcId"]) == vpc_id(t), name


@pytest.mark.parametrize("tier", TIERS)
def test_each_tier_spans_the_spec_number_of_azs(t, tier):
    indexes = [az_index(t, s) for s in tier_subnets(t, tier)]
    assert len(set(indexes)) == len(indexes) == spec_az_count(tier)


def test_subnet_n_of_every_tier_shares_an_az(t):
    """Same AZ index across tiers, so 'the NAT of its own AZ' is well defined."""
    per_tier = [[az_index(t, s) for s in tier_subnets(t, tier)] for tier in TIERS]
    assert all(indexes == per_tier[0] for indexes in per_tier)


def test_no_subnet_hands_out_public_ips(t):
    # The ALB and NAT gateways bring their own addresses; nothing else may be reachable.
    for name, s in helpers.resources_of_type(t, "AWS::EC2::Subnet").items():
        assert helpers.props(s).get("MapPublicIpOnLaunch", False) is False, name


# ---------------------------------------------------------------------------------------------
# Routing per tier
# ---------------------------------------------------------------------------------------------
def test_public_subnets_default_route_is_the_attached_internet_gateway(t):
    (igw,) = helpers.resources_of_type(t, "AWS::EC2::InternetGateway")
    attachments = [
        k
        for k, a in helpers.resources_of_type(t, "AWS::EC2::VPCGatewayAttachment").items()
        if ref(helpers.props(a)["InternetGatewayId"]) == igw and ref(helpers.props(a)["VpcId"]) == vpc_id(t)
    ]
    assert len(attachments) == 1
    for subnet in tier_subnets(t, "Public"):
        table = route_table_of(t, subnet)
        route = default_route(t, table)
        assert ref(route["GatewayId"]) == igw, subnet
        # Without the dependency the route can be created before the gateway is attached.
        route_id = next(
            k for k, r in helpers.resources_of_type(t, "AWS::EC2::Route").items() if helpers.props(r) == route
        )
        assert attachments[0] in res(t, route_id).get("DependsOn", []), route_id


@pytest.fixture(scope="module")
def prod() -> dict[str, Any]:
    """network.yaml as prod deploys it: the spec's layout."""
    return helpers.for_env(FILE, names.PRODUCTION)


def test_private_subnets_route_through_the_nat_gateway_of_their_own_az(prod):
    t = prod
    used = set()
    for subnet in tier_subnets(t, "Private"):
        route = default_route(t, route_table_of(t, subnet))
        assert "GatewayId" not in route, f"{subnet}: private subnets have no direct internet access"
        nat = ref(route["NatGatewayId"])
        assert res(t, nat)["Type"] == "AWS::EC2::NatGateway"
        nat_subnet = ref(helpers.props(res(t, nat))["SubnetId"])
        assert nat_subnet in tier_subnets(t, "Public"), f"{nat} must sit in a public subnet"
        assert az_index(t, nat_subnet) == az_index(t, subnet), f"{subnet} crosses AZs to {nat}"
        used.add(nat)
    assert len(used) == len(tier_subnets(t, "Private")), "each AZ has its own NAT path"


def test_private_subnets_do_not_share_a_route_table_with_other_tiers(t):
    private_tables = {route_table_of(t, s) for s in tier_subnets(t, "Private")}
    others = {route_table_of(t, s) for tier in ("Public", "Database") for s in tier_subnets(t, tier)}
    assert not private_tables & others


def test_database_subnets_have_no_route_out_of_the_vpc(t):
    database = tier_subnets(t, "Database")
    tables = {route_table_of(t, s) for s in database}
    for table in tables:
        assert routes_in(t, table) == [], f"{table}: the database tier is completely isolated"
        shared = [
            s
            for tier in ("Public", "Private")
            for s in tier_subnets(t, tier)
            if table in route_tables_of(t, s)
        ]
        assert shared == [], f"{table} is also used by {shared}"
    for name, endpoint in helpers.resources_of_type(t, "AWS::EC2::VPCEndpoint").items():
        attached = {ref(r) for r in helpers.props(endpoint).get("RouteTableIds", [])}
        assert not attached & tables, f"{name} adds a route to the database tier"


def test_every_subnet_has_exactly_one_explicit_route_table(t):
    for name in helpers.resources_of_type(t, "AWS::EC2::Subnet"):
        route_table_of(t, name)


def test_one_nat_gateway_per_public_subnet_each_with_its_own_address(prod):
    t = prod
    nats = helpers.resources_of_type(t, "AWS::EC2::NatGateway")
    public = tier_subnets(t, "Public")
    assert len(nats) == len(public)
    assert sorted(ref(helpers.props(n)["SubnetId"]) for n in nats.values()) == sorted(public)
    eips = set()
    for _name, nat in nats.items():
        allocation = helpers.props(nat)["AllocationId"]["Fn::GetAtt"]
        assert allocation[1] == "AllocationId" and res(t, allocation[0])["Type"] == "AWS::EC2::EIP"
        eips.add(allocation[0])
    assert len(eips) == len(nats)


def test_s3_gateway_endpoint_serves_only_the_private_route_tables(t):
    endpoint = helpers.props(helpers.one_of_type(t, "AWS::EC2::VPCEndpoint"))
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert helpers.sub_text(endpoint["ServiceName"]) == "com.amazonaws.${AWS::Region}.s3"
    private_tables = {route_table_of(t, s) for s in tier_subnets(t, "Private")}
    assert {ref(r) for r in endpoint["RouteTableIds"]} == private_tables


# ---------------------------------------------------------------------------------------------
# Flow logs
# ---------------------------------------------------------------------------------------------
def flow_log_group_id(t: dict[str, Any]) -> str:
    return ref(helpers.props(helpers.one_of_type(t, "AWS::EC2::FlowLog"))["LogGroupName"])


def test_flow_log_records_all_vpc_traffic_into_the_flow_log_group(t):
    assert spec.find(r"\*\*VPC Flow Logs\*\*: (All) network traffic logged", NETWORKING)
    flow = helpers.props(helpers.one_of_type(t, "AWS::EC2::FlowLog"))
    assert flow["TrafficType"] == "ALL"
    assert flow["ResourceType"] == "VPC" and ref(flow["ResourceId"]) == vpc_id(t)
    assert flow["LogDestinationType"] == "cloud-watch-logs"
    assert res(t, flow_log_group_id(t))["Type"] == "AWS::Logs::LogGroup"
    # Decision (docs/decisions.md): 1-minute records, not the 10-minute default.
    assert flow["MaxAggregationInterval"] == 60


def test_flow_log_group_has_the_spec_name_with_the_environment(t):
    spec_name = spec.find(r"`(/aws/vpc/karematch[^`]*)` - VPC flow logs", MONITORING)
    expected = spec_name.replace("karematch-", "karematch-${EnvironmentName}-", 1)
    group = res(t, flow_log_group_id(t))
    assert helpers.sub_text(helpers.props(group)["LogGroupName"]) == expected
    assert t["Outputs"][names.FLOW_LOG_GROUP_NAME]["Value"] == {"Ref": flow_log_group_id(t)}


def test_flow_log_group_is_kept_and_its_retention_is_the_parameter(t):
    group = res(t, flow_log_group_id(t))
    assert group["DeletionPolicy"] == "RetainExceptOnCreate"
    assert group["UpdateReplacePolicy"] == "Retain"
    assert helpers.props(group)["RetentionInDays"] == {"Ref": names.LOG_RETENTION_DAYS}


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_flow_log_retention_per_environment_is_the_parameter_file_value(env):
    deployed = helpers.for_env(FILE, env)
    group = deployed["Resources"][flow_log_group_id(helpers.template(FILE))]
    assert str(helpers.props(group)["RetentionInDays"]) == helpers.env_values(env)[names.LOG_RETENTION_DAYS]


def test_dev_keeps_the_spec_retention_and_prod_keeps_six_years():
    spec_days = spec.number(r"VPC flow logs \((\d+)-day retention\)", MONITORING)
    hipaa_years = spec.number(r"log retention for (\d+) years")
    group_id = flow_log_group_id(helpers.template(FILE))
    days = {
        env: int(helpers.props(helpers.for_env(FILE, env)["Resources"][group_id])["RetentionInDays"])
        for env in ("dev", "prod")
    }
    assert days["dev"] == spec_days
    assert days["prod"] >= hipaa_years * 365
    assert days["prod"] == int(helpers.env_values("prod")[names.LOG_RETENTION_DAYS])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flow_role(t: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    arn = helpers.props(helpers.one_of_type(t, "AWS::EC2::FlowLog"))["DeliverLogsPermissionArn"]
    role_id, attr = arn["Fn::GetAtt"]
    assert attr == "Arn" and res(t, role_id)["Type"] == "AWS::IAM::Role"
    return role_id, helpers.props(res(t, role_id))


def test_flow_log_role_is_assumable_only_by_vpc_flow_logs_of_this_account(t):
    _, role = flow_role(t)
    spec_name = spec.find(r"\*\*VPC Flow Log Role\*\*: `([^`]+)`", "8. IAM")
    expected = spec_name.replace("karematch-", "karematch-${EnvironmentName}-", 1)
    assert helpers.sub_text(role["RoleName"]) == expected
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": ["vpc-flow-logs.amazonaws.com"]}
    assert statement["Action"] == ["sts:AssumeRole"]
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "ManagedPolicyArns" not in role


def test_flow_log_role_writes_only_to_the_flow_log_group(t):
    _, role = flow_role(t)
    group_name = helpers.sub_text(helpers.props(res(t, flow_log_group_id(t)))["LogGroupName"])
    group_arn = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:" + group_name
    allowed = {group_arn, group_arn + ":*"}
    actions = set()
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            stmt_actions = as_list(statement["Action"])
            resources = as_list(statement["Resource"])
            for resource in resources:
                if resource == "*":
                    assert set(stmt_actions) <= iam.WILDCARD_ACTIONS, stmt_actions
                else:
                    assert helpers.sub_text(resource) in allowed, resource
            actions |= set(stmt_actions)
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= actions
    assert not any(a.endswith("*") for a in actions), "no wildcard actions"


# ---------------------------------------------------------------------------------------------
# Outputs (what the security, database, load balancer and service stacks consume)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "output, tier",
    [
        (names.PUBLIC_SUBNET_IDS, "Public"),
        (names.PRIVATE_SUBNET_IDS, "Private"),
        (names.DATABASE_SUBNET_IDS, "Database"),
    ],
)
def test_subnet_id_outputs_list_exactly_their_tier(t, output, tier):
    sep, items = t["Outputs"][output]["Value"]["Fn::Join"]
    assert sep == ","
    assert [ref(i) for i in items] == tier_subnets(t, tier)


def test_vpc_id_output(t):
    assert t["Outputs"][names.VPC_ID]["Value"] == {"Ref": vpc_id(t)}


# ---------------------------------------------------------------------------------------------
# NAT layout: the spec's per-AZ layout in prod, one NAT gateway in dev and staging
# ---------------------------------------------------------------------------------------------
ELASTIC_IPS_PER_REGION_DEFAULT = 5  # Service Quotas L-0263D0A3, AWS default


def test_prod_runs_the_spec_layout_and_the_parameter_default_is_the_spec():
    root = helpers.template("karematch.yaml")
    assert root["Parameters"][names.NAT_GATEWAY_LAYOUT]["Default"] == names.NAT_PER_AZ
    assert helpers.env_values("prod")[names.NAT_GATEWAY_LAYOUT] == names.NAT_PER_AZ
    assert len(helpers.resources_of_type(helpers.for_env(FILE, "prod"), "AWS::EC2::NatGateway")) == 2


def test_a_single_nat_gateway_in_az_1_serves_both_private_subnets_in_dev_and_staging():
    for env in ("dev", "staging"):
        t = helpers.for_env(FILE, env)
        (nat,) = helpers.resources_of_type(t, "AWS::EC2::NatGateway")
        (eip,) = helpers.resources_of_type(t, "AWS::EC2::EIP")
        assert az_index(t, ref(helpers.props(res(t, nat))["SubnetId"])) == 0
        assert helpers.props(res(t, nat))["AllocationId"] == {"Fn::GetAtt": [eip, "AllocationId"]}
        for subnet in tier_subnets(t, "Private"):
            assert ref(default_route(t, route_table_of(t, subnet))["NatGatewayId"]) == nat, env


def test_the_three_environments_fit_the_default_elastic_ip_quota_with_room_to_spare():
    used = sum(
        len(helpers.resources_of_type(helpers.for_env(FILE, env), "AWS::EC2::EIP"))
        for env in names.ENVIRONMENTS
    )
    assert used < ELASTIC_IPS_PER_REGION_DEFAULT


def test_switching_the_layout_keeps_every_logical_id_that_exists_in_both():
    """per-az -> single deletes NAT gateway 2 and its address and re-points route 2; nothing
    that exists in both layouts changes its logical id (which would replace it)."""
    per_az = helpers.for_env(FILE, "dev", NatGatewayLayout=names.NAT_PER_AZ)["Resources"]
    single = helpers.for_env(FILE, "dev", NatGatewayLayout=names.NAT_SINGLE)["Resources"]
    assert set(single) < set(per_az)
    gone = {per_az[k]["Type"] for k in set(per_az) - set(single)}
    assert gone == {"AWS::EC2::NatGateway", "AWS::EC2::EIP"}
    changed = {k for k in single if single[k] != per_az[k]}
    assert {per_az[k]["Type"] for k in changed} == {"AWS::EC2::Route"}


def test_prod_cannot_run_a_single_nat_gateway():
    from karematch_cfn import evaluate

    root = helpers.template("karematch.yaml")
    values = dict(helpers.env_values("prod"), NatGatewayLayout=names.NAT_SINGLE)
    broken = evaluate.broken_rules(root, values)
    assert any("per-az" in b for b in broken), broken
    assert not evaluate.broken_rules(
        root,
        dict(
            helpers.env_values("prod"),
            ApiDomainName="api.karematch.example",
            CertificateArn="arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
        ),
    )
