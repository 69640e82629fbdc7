"""security.yaml enforces the spec's "Network Security" chain: internet -> ALB (80, 443) -> ECS
(container port) -> RDS (5432), each hop by group reference, with egress scoped the same way.

A group's effective rules are its inline rules plus the separate SecurityGroupIngress/Egress
resources that target it; groups are identified through the stack's Outputs (the contract).
"""

from __future__ import annotations

from typing import Any

import pytest

from karematch_cfn import names
from tests import helpers, spec

FILE = "security.yaml"
NETWORK_SECURITY = "Network Security"
LOAD_BALANCING = "4. Load Balancing"
# A destination no packet is ever routed to (the limited-broadcast address): a rule that only
# names it permits nothing, and its presence removes CloudFormation's default allow-all egress.
NO_TRAFFIC_CIDR = "255.255.255.255/32"


# ---------------------------------------------------------------------------------------------
# Spec facts
# ---------------------------------------------------------------------------------------------
def spec_alb_ports() -> set[int]:
    listed = spec.find(r"\*\*ALB SG\*\*: Allow ([\d, ]+) from internet", NETWORK_SECURITY)
    ports = {int(p) for p in listed.split(",")}
    # Section 4 says the same in words: HTTP (80) and HTTPS (443) from internet.
    assert ports == {
        spec.number(r"HTTP \((\d+)\)", LOAD_BALANCING),
        spec.number(r"HTTPS \((\d+)\)", LOAD_BALANCING),
    }
    return ports


def spec_container_port() -> int:
    port = spec.number(r"\*\*ECS SG\*\*: Allow (\d+) from ALB only", NETWORK_SECURITY)
    assert port == spec.number(r"Port: (\d+) \(container port\)", LOAD_BALANCING)
    return port


def spec_database_port() -> int:
    return spec.number(r"\*\*RDS SG\*\*: Allow (\d+) from ECS only", NETWORK_SECURITY)


def spec_https_port() -> int:
    return spec.number(r"HTTPS \((\d+)\)", LOAD_BALANCING)


# ---------------------------------------------------------------------------------------------
# The template as effective rules per group
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return helpers.template(FILE)


def group_of_output(t: dict[str, Any], output: str) -> str:
    logical_id, attr = t["Outputs"][output]["Value"]["Fn::GetAtt"]
    assert attr == "GroupId"
    assert t["Resources"][logical_id]["Type"] == "AWS::EC2::SecurityGroup"
    return logical_id


def group_ref(value: Any) -> str:
    """The logical id of a group named by GetAtt GroupId (or Ref)."""
    if "Fn::GetAtt" in value:
        logical_id, attr = value["Fn::GetAtt"]
        assert attr == "GroupId", value
        return logical_id
    return value["Ref"]


def _normal(rule: dict[str, Any], peer_key: str) -> dict[str, Any]:
    out = {
        "proto": str(rule["IpProtocol"]),
        "from": rule.get("FromPort"),
        "to": rule.get("ToPort"),
        "cidr": rule.get("CidrIp"),
        "cidr6": rule.get("CidrIpv6"),
        "prefix": rule.get("SourcePrefixListId") or rule.get("DestinationPrefixListId"),
        "group": group_ref(rule[peer_key]) if peer_key in rule else None,
        "description": rule.get("Description"),
    }
    return out


def rules(t: dict[str, Any], group: str, direction: str) -> list[dict[str, Any]]:
    """Every ingress or egress rule of ``group``: inline and as separate resources."""
    peer_key = "SourceSecurityGroupId" if direction == "Ingress" else "DestinationSecurityGroupId"
    found = [
        _normal(r, peer_key)
        for r in helpers.props(t["Resources"][group]).get(f"SecurityGroup{direction}", [])
    ]
    for res in helpers.resources_of_type(t, f"AWS::EC2::SecurityGroup{direction}").values():
        if group_ref(helpers.props(res)["GroupId"]) == group:
            found.append(_normal(helpers.props(res), peer_key))
    return found


def usable(rule_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rule_list if r["cidr"] != NO_TRAFFIC_CIDR]


def tcp(port: int, *, cidr: str | None = None, group: str | None = None) -> tuple:
    return ("tcp", port, port, cidr, group)


def shape(rule_list: list[dict[str, Any]]) -> list[tuple]:
    assert all(r["cidr6"] is None and r["prefix"] is None for r in rule_list), rule_list
    return sorted((r["proto"], r["from"], r["to"], r["cidr"], r["group"]) for r in rule_list)


@pytest.fixture(scope="module")
def groups(t) -> dict[str, str]:
    return {
        "alb": group_of_output(t, names.ALB_SECURITY_GROUP_ID),
        "app": group_of_output(t, names.APP_SECURITY_GROUP_ID),
        "db": group_of_output(t, names.DATABASE_SECURITY_GROUP_ID),
    }


# ---------------------------------------------------------------------------------------------
# Ingress
# ---------------------------------------------------------------------------------------------
def test_three_distinct_groups_in_the_wired_vpc(t, groups):
    assert len(set(groups.values())) == 3
    assert len(helpers.resources_of_type(t, "AWS::EC2::SecurityGroup")) == 3
    assert t["Parameters"][names.VPC_ID]["Type"] == "AWS::EC2::VPC::Id"
    for g in groups.values():
        assert helpers.props(t["Resources"][g])["VpcId"] == {"Ref": names.VPC_ID}, g


def test_alb_accepts_exactly_the_spec_ports_from_the_internet(t, groups):
    expected = sorted(tcp(p, cidr=names.ANYWHERE_IPV4) for p in spec_alb_ports())
    assert shape(rules(t, groups["alb"], "Ingress")) == expected


def test_app_accepts_only_the_container_port_from_the_alb_group(t, groups):
    assert shape(rules(t, groups["app"], "Ingress")) == [tcp(spec_container_port(), group=groups["alb"])]


def test_database_accepts_only_postgresql_from_the_app_group(t, groups):
    assert shape(rules(t, groups["db"], "Ingress")) == [tcp(spec_database_port(), group=groups["app"])]


@pytest.mark.parametrize("tier", ["app", "db"])
def test_no_address_ranges_on_app_or_database_ingress(t, groups, tier):
    for rule in rules(t, groups[tier], "Ingress"):
        assert rule["cidr"] is None and rule["cidr6"] is None and rule["prefix"] is None, rule


# ---------------------------------------------------------------------------------------------
# Egress
# ---------------------------------------------------------------------------------------------
def test_every_group_sets_its_own_egress_so_the_default_allow_all_is_removed(t, groups):
    # CloudFormation keeps the default 0.0.0.0/0 all-traffic egress unless the group itself
    # declares SecurityGroupEgress; separate SecurityGroupEgress resources do not remove it.
    for g in groups.values():
        assert helpers.props(t["Resources"][g]).get("SecurityGroupEgress"), g


def test_alb_sends_only_to_the_app_group_on_the_container_port(t, groups):
    expected = [tcp(spec_container_port(), group=groups["app"])]
    assert shape(usable(rules(t, groups["alb"], "Egress"))) == expected


def test_app_sends_https_anywhere_and_postgresql_only_to_the_database_group(t, groups):
    expected = sorted(
        [tcp(spec_https_port(), cidr=names.ANYWHERE_IPV4), tcp(spec_database_port(), group=groups["db"])]
    )
    assert shape(usable(rules(t, groups["app"], "Egress"))) == expected


def test_database_has_no_usable_egress(t, groups):
    egress = rules(t, groups["db"], "Egress")
    assert egress, "no egress rule at all would leave the default allow-all in place"
    assert usable(egress) == []
    for rule in egress:
        # The placeholder permits nothing: one ICMP type/code to the broadcast address.
        assert rule["proto"] == "icmp" and rule["group"] is None, rule


def test_no_rule_opens_all_protocols_or_port_ranges(t, groups):
    for g in groups.values():
        for direction in ("Ingress", "Egress"):
            for rule in usable(rules(t, g, direction)):
                assert rule["proto"] == "tcp" and rule["from"] == rule["to"], (g, direction, rule)


def test_every_rule_has_a_description(t, groups):
    for g in groups.values():
        for direction in ("Ingress", "Egress"):
            for rule in rules(t, g, direction):
                assert rule["description"], (g, direction, rule)
        assert helpers.props(t["Resources"][g])["GroupDescription"], g


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_every_environment_deploys_every_rule(t, env):
    """No Condition drops a group or rule in dev, staging or prod."""
    assert set(helpers.for_env(FILE, env)["Resources"]) == set(t["Resources"])
