"""Networking (spec section 1, "Security Architecture"): the VPC, its three subnet tiers and flow logs.

Two availability zones (AZ index 0 and 1 of ``Fn::GetAZs``); subnet ``n`` of every tier sits in
the same AZ, so each private subnet routes through the NAT gateway of its own AZ:

- public (ALB, NAT gateways): default route to the internet gateway;
- private (ECS tasks): default route to the NAT gateway in the same AZ, plus the S3 gateway
  endpoint (ECR image layers stay off the NAT). With ``NatGatewayLayout`` = single (dev,
  staging) only NAT gateway 1 exists and both private route tables use it: one Elastic IP per
  environment instead of two, so three environments fit the default quota of five per region;
- database (RDS): a route table with no route out of the VPC at all.

Every packet is logged: a VPC flow log (all traffic) into a retained CloudWatch log group,
written by a role only the flow-logs service can assume.

Parameters:
    EnvironmentName: dev | staging | prod.
    LogRetentionDays: retention of the flow log group.
    NatGatewayLayout: per-az (the spec, prod) | single.

Outputs:
    VpcId, PublicSubnetIds, PrivateSubnetIds, DatabaseSubnetIds (comma-separated, AZ order),
    FlowLogGroupName.
"""

from __future__ import annotations

from dataclasses import dataclass

from awacs import ec2 as ec2_actions
from awacs.aws import Allow, Statement
from troposphere import Equals, GetAtt, GetAZs, If, Join, Parameter, Ref, Select, Sub, Template
from troposphere.awslambda import Code, Function
from troposphere.cloudformation import CustomResource
from troposphere.ec2 import (
    EIP,
    VPC,
    FlowLog,
    InternetGateway,
    NatGateway,
    Route,
    RouteTable,
    Subnet,
    SubnetRouteTableAssociation,
    VPCEndpoint,
    VPCGatewayAttachment,
)
from troposphere.iam import Policy, Role
from troposphere.logs import LogGroup

from karematch_cfn import names, render
from karematch_cfn.lib import arns, iam, logs, suppress, tags


@dataclass(frozen=True)
class Tier:
    """One subnet tier: its name (logical-id prefix) and one CIDR per AZ index, in AZ order."""

    name: str
    cidrs: tuple[str, ...]


# Spec section 1: each tier spans 2 AZs; position in ``cidrs`` = AZ index.
PUBLIC = Tier("Public", ("10.0.1.0/24", "10.0.2.0/24"))
PRIVATE = Tier("Private", ("10.0.11.0/24", "10.0.12.0/24"))
DATABASE = Tier("Database", ("10.0.21.0/24", "10.0.22.0/24"))
TIERS = (PUBLIC, PRIVATE, DATABASE)

FLOW_LOG_TRAFFIC = "ALL"  # spec: all network traffic logged

# Logical IDs. Per-AZ ids take the AZ number (index + 1).
VPC_RESOURCE = "Vpc"
INTERNET_GATEWAY = "InternetGateway"
INTERNET_GATEWAY_ATTACHMENT = "InternetGatewayAttachment"
PUBLIC_ROUTE_TABLE = "PublicRouteTable"
PUBLIC_DEFAULT_ROUTE = "PublicDefaultRoute"
PRIVATE_ROUTE_TABLE = "PrivateRouteTable{n}"
PRIVATE_DEFAULT_ROUTE = "PrivateDefaultRoute{n}"
DATABASE_ROUTE_TABLE = "DatabaseRouteTable"
SUBNET = "{tier}Subnet{n}"
SUBNET_ROUTE_TABLE_ASSOCIATION = "{tier}Subnet{n}RouteTableAssociation"
NAT_EIP = "NatEip{n}"
NAT_GATEWAY = "NatGateway{n}"
S3_GATEWAY_ENDPOINT = "S3GatewayEndpoint"
FLOW_LOG_GROUP = "FlowLogGroup"
FLOW_LOG_ROLE = "FlowLogRole"
FLOW_LOG = "VpcFlowLog"
# Conditions and rules.
NAT_PER_AZ = "NatGatewayPerAz"  # every AZ has its own NAT gateway (the spec)
PRODUCTION_NAT_RULE = "ProductionNatGatewayPerAz"
DEFAULT_GROUP_CLOSER = "RestrictDefaultSecurityGroupFunction"
DEFAULT_GROUP_CLOSER_ROLE = "RestrictDefaultSecurityGroupRole"
DEFAULT_GROUP_CLOSER_LOG_GROUP = "RestrictDefaultSecurityGroupLogGroup"
DEFAULT_GROUP_CLOSED = "RestrictDefaultSecurityGroup"

# The VPC's default security group, closed by a custom resource (CDK's
# RestrictDefaultSecurityGroup pattern): CloudFormation cannot revoke its rules otherwise.
DEFAULT_GROUP_CLOSER_NAME = f"karematch-{names.ENV}-restrict-default-sg"
DEFAULT_GROUP_CLOSER_ROLE_NAME = f"karematch-{names.ENV}-restrict-default-sg-role"
DEFAULT_GROUP_CLOSER_LOG_GROUP_NAME = f"/aws/lambda/{DEFAULT_GROUP_CLOSER_NAME}"
# Revokes every rule of the group on Create and Update; on Delete it leaves the group closed
# (the VPC goes with the stack). cfnresponse is provided for inline Python code.
DEFAULT_GROUP_CLOSER_CODE = """\
import boto3
import cfnresponse


def handler(event, context):
    group_id = event["ResourceProperties"]["SecurityGroupId"]
    try:
        if event["RequestType"] in ("Create", "Update"):
            ec2 = boto3.client("ec2")
            group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
            if group["IpPermissions"]:
                ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=group["IpPermissions"])
            if group["IpPermissionsEgress"]:
                ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=group["IpPermissionsEgress"])
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, group_id)
    except Exception as exc:  # report, never hang the stack for an hour
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, group_id, reason=str(exc)[:200])
"""


def _name(*parts: object) -> str:
    """Name-tag pattern (Fn::Sub) local to this stack: ``karematch-${EnvironmentName}-...``."""
    return "-".join(["karematch", names.ENV, *(str(p) for p in parts)])


def _az(index: int) -> Select:
    return Select(index, GetAZs(""))


def add_vpc(t: Template) -> VPC:
    return t.add_resource(
        VPC(
            VPC_RESOURCE,
            CidrBlock=names.VPC_CIDR,
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=tags.standard(names.VPC_NAME),
        )
    )


def add_subnets(t: Template, vpc: VPC, tier: Tier) -> list[Subnet]:
    """One subnet per CIDR of ``tier``, subnet n in AZ index n-1."""
    out = []
    for index, cidr in enumerate(tier.cidrs):
        n = index + 1
        out.append(
            t.add_resource(
                Subnet(
                    SUBNET.format(tier=tier.name, n=n),
                    VpcId=Ref(vpc),
                    CidrBlock=cidr,
                    AvailabilityZone=_az(index),
                    # The ALB and the NAT gateways have their own addresses; nothing else gets one.
                    MapPublicIpOnLaunch=False,
                    Tags=tags.standard(_name(tier.name.lower(), n)),
                )
            )
        )
    return out


def _route_table(t: Template, logical_id: str, vpc: VPC, *name: object) -> RouteTable:
    return t.add_resource(RouteTable(logical_id, VpcId=Ref(vpc), Tags=tags.standard(_name(*name))))


def _associate(t: Template, tier: Tier, *, subnets: list[Subnet], tables: list[RouteTable]) -> None:
    """Subnet n uses tables[n-1] (or the only table)."""
    for index, subnet in enumerate(subnets):
        table = tables[index] if len(tables) > 1 else tables[0]
        t.add_resource(
            SubnetRouteTableAssociation(
                SUBNET_ROUTE_TABLE_ASSOCIATION.format(tier=tier.name, n=index + 1),
                SubnetId=Ref(subnet),
                RouteTableId=Ref(table),
            )
        )


def add_public_routing(t: Template, vpc: VPC, public: list[Subnet]) -> VPCGatewayAttachment:
    """Internet gateway and the public route table (default route to it)."""
    igw = t.add_resource(InternetGateway(INTERNET_GATEWAY, Tags=tags.standard(_name("igw"))))
    attachment = t.add_resource(
        VPCGatewayAttachment(INTERNET_GATEWAY_ATTACHMENT, VpcId=Ref(vpc), InternetGatewayId=Ref(igw))
    )
    table = _route_table(t, PUBLIC_ROUTE_TABLE, vpc, PUBLIC.name.lower(), "rt")
    t.add_resource(
        Route(
            PUBLIC_DEFAULT_ROUTE,
            RouteTableId=Ref(table),
            DestinationCidrBlock=names.ANYWHERE_IPV4,
            GatewayId=Ref(igw),
            # The route is invalid until the gateway is attached to the VPC.
            DependsOn=[attachment.title],
        )
    )
    _associate(t, PUBLIC, subnets=public, tables=[table])
    return attachment


def add_private_routing(
    t: Template, vpc: VPC, *, public: list[Subnet], private: list[Subnet], attachment: VPCGatewayAttachment
) -> list[RouteTable]:
    """A NAT gateway in each public subnet; private subnet n routes through NAT gateway n. Under
    the single layout only NAT gateway 1 exists and every private route table uses it.

    Switching layouts on a live stack replaces nothing stateful: NAT gateways 2+ and their
    addresses are created or deleted and route n's target changes in place (ReplaceRoute).
    """
    if len(public) != len(private):
        raise ValueError(
            f"one NAT gateway per AZ needs as many public subnets ({len(public)}) "
            f"as private subnets ({len(private)})"
        )
    tables = []
    nats: list[NatGateway] = []
    for index, pub in enumerate(public):
        n = index + 1
        # NAT gateway 1 always exists; the others only in the per-AZ layout.
        only_per_az = {"Condition": NAT_PER_AZ} if index else {}
        eip = t.add_resource(
            EIP(
                NAT_EIP.format(n=n),
                Domain="vpc",
                Tags=tags.standard(_name("nat", n)),
                # A VPC address needs the gateway attached (AWS::EC2::EIP documentation).
                DependsOn=[attachment.title],
                **only_per_az,
            )
        )
        nats.append(
            t.add_resource(
                NatGateway(
                    NAT_GATEWAY.format(n=n),
                    AllocationId=GetAtt(eip, "AllocationId"),
                    SubnetId=Ref(pub),
                    Tags=tags.standard(_name("nat", n)),
                    **only_per_az,
                )
            )
        )
        table = _route_table(t, PRIVATE_ROUTE_TABLE.format(n=n), vpc, PRIVATE.name.lower(), "rt", n)
        t.add_resource(
            Route(
                PRIVATE_DEFAULT_ROUTE.format(n=n),
                RouteTableId=Ref(table),
                DestinationCidrBlock=names.ANYWHERE_IPV4,
                NatGatewayId=If(NAT_PER_AZ, Ref(nats[index]), Ref(nats[0])) if index else Ref(nats[0]),
            )
        )
        tables.append(table)
    _associate(t, PRIVATE, subnets=private, tables=tables)
    return tables


def declare_nat_layout(t: Template, environment: Parameter) -> None:
    """The NatGatewayLayout knob, its Condition, and the Rule that keeps prod on the spec."""
    layout = names.declare(t, names.NAT_GATEWAY_LAYOUT)
    t.add_condition(NAT_PER_AZ, Equals(Ref(layout), names.NAT_PER_AZ))
    t.add_rule(
        PRODUCTION_NAT_RULE,
        {
            "RuleCondition": Equals(Ref(environment), names.PRODUCTION),
            "Assertions": [
                {
                    "Assert": Equals(Ref(layout), names.NAT_PER_AZ),
                    "AssertDescription": "prod keeps the spec's NAT gateway per AZ (NatGatewayLayout per-az)",
                }
            ],
        },
    )


def add_database_routing(t: Template, vpc: VPC, database: list[Subnet]) -> RouteTable:
    """A route table with only the implicit local route: nothing leaves the VPC."""
    table = _route_table(t, DATABASE_ROUTE_TABLE, vpc, DATABASE.name.lower(), "rt")
    _associate(t, DATABASE, subnets=database, tables=[table])
    return table


def add_s3_endpoint(t: Template, vpc: VPC, private_tables: list[RouteTable]) -> VPCEndpoint:
    """S3 gateway endpoint for the private subnets: free, and keeps ECR layer pulls off the NAT."""
    return t.add_resource(
        VPCEndpoint(
            S3_GATEWAY_ENDPOINT,
            VpcId=Ref(vpc),
            ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
            VpcEndpointType="Gateway",
            RouteTableIds=[Ref(table) for table in private_tables],
            Tags=tags.standard(_name("s3-endpoint")),
        )
    )


def add_flow_log(t: Template, vpc: VPC, retention: Ref, key: Ref) -> LogGroup:
    """Flow log of all VPC traffic into its own log group (under the environment's key), via a
    flow-logs-only role."""
    group = t.add_resource(logs.log_group(FLOW_LOG_GROUP, names.FLOW_LOG_GROUP, retention, KmsKeyId=key))
    role = t.add_resource(
        logs.delivery_role(
            FLOW_LOG_ROLE,
            service="vpc-flow-logs.amazonaws.com",
            group_pattern=names.FLOW_LOG_GROUP,
            policy_name="WriteFlowLogs",
            description="Lets VPC flow logs write to the VPC's flow log group",
            # Confused deputy: only flow logs acting for this account may assume it.
            conditions={"aws:SourceAccount": Ref("AWS::AccountId")},
            RoleName=Sub(names.FLOW_LOG_ROLE),
        )
    )
    t.add_resource(
        FlowLog(
            FLOW_LOG,
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType=FLOW_LOG_TRAFFIC,
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=GetAtt(role, "Arn"),
            MaxAggregationInterval=60,  # 1-minute records (the default is 10 minutes)
            Tags=tags.standard(),
        )
    )
    return group


def close_default_security_group(t: Template, vpc: VPC, retention: Ref, key: Ref) -> CustomResource:
    """Revoke every rule of the VPC's default security group (nothing uses it; AWS Config's
    vpc-default-security-group-closed, CIS EC2.2)."""
    group_arn = Sub(
        "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/${GroupId}",
        GroupId=GetAtt(vpc, "DefaultSecurityGroup"),
    )
    log_group = t.add_resource(
        logs.log_group(
            DEFAULT_GROUP_CLOSER_LOG_GROUP, DEFAULT_GROUP_CLOSER_LOG_GROUP_NAME, retention, KmsKeyId=key
        )
    )
    role = t.add_resource(
        Role(
            DEFAULT_GROUP_CLOSER_ROLE,
            RoleName=Sub(DEFAULT_GROUP_CLOSER_ROLE_NAME),
            Description="Revokes the rules of the VPC's default security group (custom resource)",
            PermissionsBoundary=arns.customer_policy(names.PERMISSIONS_BOUNDARY),
            AssumeRolePolicyDocument=iam.assume_role(
                "lambda.amazonaws.com", {"aws:SourceAccount": Ref("AWS::AccountId")}
            ),
            Policies=[
                Policy(
                    PolicyName="close-default-security-group",
                    PolicyDocument=iam.document(
                        Statement(
                            Sid="RevokeDefaultGroupRules",
                            Effect=Allow,
                            Action=[
                                ec2_actions.RevokeSecurityGroupIngress,
                                ec2_actions.RevokeSecurityGroupEgress,
                            ],
                            Resource=[group_arn],
                        ),
                        Statement(
                            Sid="DescribeGroups",  # authorised on "*" only
                            Effect=Allow,
                            Action=[ec2_actions.DescribeSecurityGroups],
                            Resource=["*"],
                        ),
                        iam.write_logs(
                            arns.log_group(DEFAULT_GROUP_CLOSER_LOG_GROUP_NAME),
                            arns.log_streams(DEFAULT_GROUP_CLOSER_LOG_GROUP_NAME),
                        ),
                    ),
                )
            ],
            Tags=tags.standard(),
        )
    )
    function = Function(
        DEFAULT_GROUP_CLOSER,
        FunctionName=Sub(DEFAULT_GROUP_CLOSER_NAME),
        Description="KareMatch: revoke every rule of the VPC's default security group",
        Runtime="python3.13",
        Handler="index.handler",
        Code=Code(ZipFile=DEFAULT_GROUP_CLOSER_CODE),
        Role=GetAtt(role, "Arn"),
        Timeout=60,
        Tags=tags.standard(),
        # Its log group exists first, with retention and the environment's key.
        DependsOn=[log_group.title],
    )
    suppress.skip(
        function,
        (
            "CKV_AWS_115",
            "Runs only when CloudFormation creates or updates the stack; reserving concurrency would "
            "fail in an account whose limit is 10 (unreserved may not drop below 10)",
        ),
        ("CKV_AWS_116", "Invoked by CloudFormation, which waits for its answer: a failure is a stack event"),
        ("CKV_AWS_117", "Calls only the EC2 API; in the VPC it would need the NAT path for nothing"),
    )
    t.add_resource(function)
    return t.add_resource(
        CustomResource(
            DEFAULT_GROUP_CLOSED,
            ServiceToken=GetAtt(function, "Arn"),
            SecurityGroupId=GetAtt(vpc, "DefaultSecurityGroup"),
        )
    )


def _ids(subnets: list[Subnet]) -> Join:
    return Join(",", [Ref(s) for s in subnets])


@dataclass(frozen=True)
class Inputs:
    retention_days: Ref
    data_key: Ref


def declare_inputs(t: Template) -> Inputs:
    environment = names.declare(t, names.ENVIRONMENT_NAME)
    declare_nat_layout(t, environment)
    return Inputs(
        retention_days=Ref(names.declare(t, names.LOG_RETENTION_DAYS)),
        data_key=Ref(
            names.declare(
                t, names.DATA_KEY_ARN, "ARN of the environment's customer-managed KMS key (foundation.yaml)"
            )
        ),
    )


def build() -> Template:
    t = render.new_template(
        "KareMatch network: VPC with public, private and isolated database subnets in 2 AZs, "
        "NAT gateway per AZ (or one, NatGatewayLayout), VPC flow logs"
    )
    p = declare_inputs(t)
    vpc = add_vpc(t)
    public, private, database = (add_subnets(t, vpc, tier) for tier in TIERS)
    attachment = add_public_routing(t, vpc, public)
    private_tables = add_private_routing(t, vpc, public=public, private=private, attachment=attachment)
    add_database_routing(t, vpc, database)
    add_s3_endpoint(t, vpc, private_tables)
    group = add_flow_log(t, vpc, p.retention_days, p.data_key)
    close_default_security_group(t, vpc, p.retention_days, p.data_key)
    render.add_outputs(
        t,
        {
            names.VPC_ID: Ref(vpc),
            names.PUBLIC_SUBNET_IDS: _ids(public),
            names.PRIVATE_SUBNET_IDS: _ids(private),
            names.DATABASE_SUBNET_IDS: _ids(database),
            names.FLOW_LOG_GROUP_NAME: Ref(group),
        },
    )
    return t
