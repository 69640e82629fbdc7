"""Security groups (spec "Security Architecture / Network Security", sections 3 and 4).

The three groups live in one stack so their mutual references cannot form a cross-stack cycle:

- ALB group: HTTP and HTTPS in from anywhere; out only to the app group on the container port.
- App (ECS) group: the container port in from the ALB group only; out HTTPS to anywhere (AWS
  APIs, ECR, Secrets Manager through the NAT) and PostgreSQL to the database group only.
- Database (RDS) group: PostgreSQL in from the app group only; no egress.

Rules that name another group are separate ``SecurityGroupIngress``/``SecurityGroupEgress``
resources (no dependency cycle between the groups). Every group sets ``SecurityGroupEgress``
itself, so CloudFormation removes the default allow-all egress rule; a group with no real
inline egress carries a rule that matches no traffic (CDK's "disallow all traffic" rule).

Parameters:
    EnvironmentName: dev | staging | prod.
    VpcId: the VPC (network stack).

Outputs:
    AlbSecurityGroupId, AppSecurityGroupId, DatabaseSecurityGroupId.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Template
from troposphere.ec2 import SecurityGroup, SecurityGroupEgress, SecurityGroupIngress, SecurityGroupRule

from karematch_cfn import names, render
from karematch_cfn.lib import suppress, tags

# Logical IDs.
ALB_SECURITY_GROUP = "AlbSecurityGroup"
APP_SECURITY_GROUP = "AppSecurityGroup"
DATABASE_SECURITY_GROUP = "DatabaseSecurityGroup"
APP_INGRESS_FROM_ALB = "AppIngressFromAlb"
ALB_EGRESS_TO_APP = "AlbEgressToApp"
APP_EGRESS_TO_DATABASE = "AppEgressToDatabase"
DATABASE_INGRESS_FROM_APP = "DatabaseIngressFromApp"

TCP = "tcp"
ALB_LISTENER_PORTS = (names.HTTP_PORT, names.HTTPS_PORT)  # spec: ALB allows 80, 443 from internet

# A rule that matches no traffic: ICMP type 252 code 86 to the limited-broadcast address.
# Giving a group this as its only inline egress removes CloudFormation's default allow-all
# egress (aws-cdk-lib/aws-ec2 SecurityGroup, allowAllOutbound: false).
NO_TRAFFIC_EGRESS = SecurityGroupRule(
    IpProtocol="icmp",
    FromPort=252,
    ToPort=86,
    CidrIp="255.255.255.255/32",
    Description="Disallow all traffic",
)


@dataclass(frozen=True)
class Groups:
    """The three groups, for wiring rules between them."""

    alb: SecurityGroup
    app: SecurityGroup
    database: SecurityGroup


def _group_id(group: SecurityGroup) -> GetAtt:
    return GetAtt(group, "GroupId")


def _tcp(port: int, description: str, **peer: object) -> SecurityGroupRule:
    return SecurityGroupRule(IpProtocol=TCP, FromPort=port, ToPort=port, Description=description, **peer)


def add_groups(t: Template, vpc: Ref) -> Groups:
    """The groups with their address-range rules inline (no group references here)."""
    alb = SecurityGroup(
        ALB_SECURITY_GROUP,
        GroupDescription="KareMatch ALB: HTTP and HTTPS from the internet, out to the app only",
        VpcId=vpc,
        SecurityGroupIngress=[
            _tcp(port, f"Internet to the ALB listener on port {port}", CidrIp=names.ANYWHERE_IPV4)
            for port in ALB_LISTENER_PORTS
        ],
        SecurityGroupEgress=[NO_TRAFFIC_EGRESS],  # real egress: ALB_EGRESS_TO_APP
        Tags=tags.standard(f"karematch-{names.ENV}-alb-sg"),
    )
    suppress.skip(
        alb,
        (
            "CKV_AWS_260",
            "Spec section 1: the ALB accepts port 80 from the internet; outside dev its listener only "
            "redirects to HTTPS (301)",
        ),
    )
    app = SecurityGroup(
        APP_SECURITY_GROUP,
        GroupDescription="KareMatch ECS tasks: container port from the ALB, out to AWS APIs and RDS",
        VpcId=vpc,
        SecurityGroupEgress=[
            _tcp(
                names.HTTPS_PORT,  # ECR, Secrets Manager, CloudWatch Logs: HTTPS only
                "HTTPS to AWS APIs, ECR and Secrets Manager via the NAT",
                CidrIp=names.ANYWHERE_IPV4,
            ),
        ],
        Tags=tags.standard(f"karematch-{names.ENV}-ecs-sg"),
    )
    database = SecurityGroup(
        DATABASE_SECURITY_GROUP,
        GroupDescription="KareMatch RDS PostgreSQL: PostgreSQL from the ECS tasks only, no egress",
        VpcId=vpc,
        SecurityGroupEgress=[NO_TRAFFIC_EGRESS],
        Tags=tags.standard(f"karematch-{names.ENV}-rds-sg"),
    )
    return Groups(*(t.add_resource(g) for g in (alb, app, database)))


def add_flow(
    t: Template,
    *,
    source: SecurityGroup,
    dest: SecurityGroup,
    port: int,
    egress_id: str,
    ingress_id: str,
    egress_text: str,
    ingress_text: str,
) -> None:
    """TCP ``port`` from ``source`` to ``dest``: the egress rule on the source and the ingress
    rule on the destination, both by group reference, as separate resources (no cycle)."""
    common = {"IpProtocol": TCP, "FromPort": port, "ToPort": port}
    t.add_resource(
        SecurityGroupEgress(
            egress_id,
            GroupId=_group_id(source),
            DestinationSecurityGroupId=_group_id(dest),
            Description=egress_text,
            **common,
        )
    )
    t.add_resource(
        SecurityGroupIngress(
            ingress_id,
            GroupId=_group_id(dest),
            SourceSecurityGroupId=_group_id(source),
            Description=ingress_text,
            **common,
        )
    )


def add_group_rules(t: Template, g: Groups) -> None:
    """The two flows between tiers: ALB -> tasks (container port), tasks -> RDS (PostgreSQL)."""
    add_flow(
        t,
        source=g.alb,
        dest=g.app,
        port=names.CONTAINER_PORT,
        egress_id=ALB_EGRESS_TO_APP,
        ingress_id=APP_INGRESS_FROM_ALB,
        egress_text="ALB to the ECS tasks on the container port",
        ingress_text="ALB to the container port",
    )
    add_flow(
        t,
        source=g.app,
        dest=g.database,
        port=names.DATABASE_PORT,
        egress_id=APP_EGRESS_TO_DATABASE,
        ingress_id=DATABASE_INGRESS_FROM_APP,
        egress_text="ECS tasks to PostgreSQL on RDS",
        ingress_text="ECS tasks to PostgreSQL",
    )


@dataclass(frozen=True)
class Inputs:
    vpc: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    return Inputs(vpc=Ref(names.declare(t, names.VPC_ID, "VPC the security groups belong to")))


def build() -> Template:
    t = render.new_template(
        "KareMatch security groups: ALB, ECS tasks and RDS, each reachable only from the tier in front of it"
    )
    p = declare_inputs(t)
    groups = add_groups(t, p.vpc)
    add_group_rules(t, groups)
    render.add_outputs(
        t,
        {
            names.ALB_SECURITY_GROUP_ID: _group_id(groups.alb),
            names.APP_SECURITY_GROUP_ID: _group_id(groups.app),
            names.DATABASE_SECURITY_GROUP_ID: _group_id(groups.database),
        },
    )
    return t
