"""The generated architecture page (docs/architecture.md): every stack, tier, subnet and traffic
path of the templates is on it, and it changes when the templates do."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from karematch_cfn import diagram, gendocs, resolved
from tests import helpers, spec

REPO = Path(__file__).resolve().parent.parent
PAGE = "docs/architecture.md"
NODE = re.compile(r"^\s*(?:subgraph\s+)?(\w+)\s*[\[\(]")
EDGE = re.compile(r'^\s*(\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$')


@pytest.fixture(scope="module")
def parsed():
    return resolved.parse(helpers.rendered_text())


@pytest.fixture(scope="module")
def prod(parsed):
    return resolved.resolve_tree(parsed, "prod")


def _charts(page: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"```mermaid\n(.*?)```", page, re.S)]


def _nodes(chart: list[str]) -> dict[str, str]:
    """Node id -> its line."""
    return {m.group(1): line for line in chart if (m := NODE.match(line)) and not EDGE.match(line)}


def _edges(chart: list[str]) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(4), m.group(3) or "") for line in chart if (m := EDGE.match(line))]


def _members(chart: list[str], title_words: str) -> list[str]:
    """Lines inside the subgraph whose title contains ``title_words``."""
    inside, depth, found = False, 0, []
    for line in chart:
        stripped = line.strip()
        if stripped.startswith("subgraph ") and title_words in stripped and not inside:
            inside, depth = True, 1
            continue
        if inside:
            if stripped.startswith("subgraph "):
                depth += 1
            elif stripped == "end":
                depth -= 1
                if depth == 0:
                    return found
            found.append(stripped)
    return found


def _traffic(parsed) -> list[str]:
    return diagram.traffic_chart(resolved.resolve_tree(parsed, "prod"))


def test_the_page_is_registered_and_fresh(parsed):
    assert PAGE in dict(gendocs.GENERATED)
    docs = gendocs.render_docs(parsed)
    assert gendocs.diff({PAGE: docs[PAGE]}, REPO) == []


def test_every_nested_stack_and_its_wiring_is_drawn(parsed):
    stacks_chart, _ = _charts(diagram.markdown(parsed))
    root = parsed["karematch.yaml"]["Resources"]
    nodes, edges = _nodes(stacks_chart), _edges(stacks_chart)
    for logical_id, stack in root.items():
        assert logical_id in nodes, logical_id
        assert stack["Properties"]["TemplateURL"].removeprefix("./") in nodes[logical_id]
        if "Condition" in stack:
            assert stack["Condition"] in nodes[logical_id]
        for given in stack["Properties"].get("Parameters", {}).values():
            if isinstance(given, dict) and "Fn::GetAtt" in given:
                assert (given["Fn::GetAtt"][0], logical_id, "") in edges


@pytest.mark.parametrize(
    ("tier_title", "spec_label"),
    [
        ("Public subnets", "Public Subnets"),
        ("Private subnets", "Private Subnets"),
        ("Isolated", "Database Subnets"),
    ],
)
def test_each_tier_holds_the_spec_subnets(parsed, tier_title, spec_label):
    cidrs = spec.find_all(rf"\*\*{spec_label}\*\*: `([\d./]+)`, `([\d./]+)`")[0]
    members = " ".join(_members(_traffic(parsed), tier_title))
    for cidr in cidrs:
        assert cidr in members, (tier_title, cidr)


def test_the_load_balancer_tasks_and_database_sit_in_their_tiers(parsed, prod):
    chart = _traffic(parsed)
    public = " ".join(_members(chart, "Public subnets"))
    private = " ".join(_members(chart, "Private subnets"))
    isolated = " ".join(_members(chart, "Isolated"))
    assert (
        diagram.node_id(
            "loadbalancer.yaml", helpers.logical_id_of_type(prod["loadbalancer.yaml"], diagram.LOAD_BALANCER)
        )
        in public
    )
    assert (
        diagram.node_id("service.yaml", helpers.logical_id_of_type(prod["service.yaml"], diagram.SERVICE))
        in private
    )
    assert (
        diagram.node_id(
            "database.yaml", helpers.logical_id_of_type(prod["database.yaml"], diagram.DB_INSTANCE)
        )
        in isolated
    )
    for nat in helpers.resources_of_type(prod["network.yaml"], diagram.NAT_GATEWAY):
        assert diagram.node_id("network.yaml", nat) in public


def _node(prod, filename: str, rtype: str) -> str:
    return diagram.node_id(filename, helpers.logical_id_of_type(prod[filename], rtype))


def test_the_traffic_paths_are_drawn(parsed, prod):
    edges = _edges(_traffic(parsed))
    pairs = {(a, b) for a, b, _ in edges}
    dist = _node(prod, "frontend.yaml", diagram.DISTRIBUTION)
    bucket = _node(prod, "frontend.yaml", "AWS::S3::Bucket")
    lb = _node(prod, "loadbalancer.yaml", diagram.LOAD_BALANCER)
    svc = _node(prod, "service.yaml", diagram.SERVICE)
    db = _node(prod, "database.yaml", diagram.DB_INSTANCE)
    # internet -> CloudFront -> S3
    assert (diagram.INTERNET, dist) in pairs
    assert (dist, bucket) in pairs
    # internet -> ALB (every listener) -> tasks (container port) -> database (PostgreSQL)
    (internet_lb,) = [label for a, b, label in edges if (a, b) == (diagram.INTERNET, lb)]
    for listener in helpers.resources_of_type(prod["loadbalancer.yaml"], diagram.LISTENER).values():
        assert f"{listener['Properties']['Protocol']} {listener['Properties']['Port']}" in internet_lb
    container_port = spec.number(r"Port: (\d+) \(container port\)")
    assert (lb, svc, f"TCP {container_port}") in edges
    database_port = spec.number(r"Allows port (\d+) from ECS tasks only")
    assert (svc, db, f"TCP {database_port}") in edges


def test_tasks_reach_secrets_ecr_and_logs_through_their_nat_gateways(parsed, prod):
    edges = _edges(_traffic(parsed))
    pairs = {(a, b) for a, b, _ in edges}
    svc = _node(prod, "service.yaml", diagram.SERVICE)
    network = prod["network.yaml"]
    igw = _node(prod, "network.yaml", diagram.INTERNET_GATEWAY)
    for route in helpers.resources_of_type(network, "AWS::EC2::Route").values():
        if "NatGatewayId" in route["Properties"]:
            nat = diagram.node_id("network.yaml", route["Properties"]["NatGatewayId"]["Ref"])
            assert (svc, nat) in pairs
            assert (nat, igw) in pairs
    for filename, rtype in (
        ("appsecret.yaml", "AWS::SecretsManager::Secret"),
        ("registry.yaml", "AWS::ECR::Repository"),
        ("service.yaml", "AWS::Logs::LogGroup"),
    ):
        assert (igw, _node(prod, filename, rtype)) in pairs, rtype
    assert (svc, _node(prod, "network.yaml", diagram.GATEWAY_ENDPOINT)) in pairs


def test_every_edge_joins_declared_nodes(parsed):
    for chart in _charts(diagram.markdown(parsed)):
        nodes = _nodes(chart)
        for a, b, _ in _edges(chart):
            assert a in nodes and b in nodes, (a, b)


def test_a_removed_rule_or_nat_gateway_leaves_the_diagram(parsed, prod):
    """Drawn from the templates, not by hand: take a flow or a resource away and it is gone."""
    svc = _node(prod, "service.yaml", diagram.SERVICE)
    db = _node(prod, "database.yaml", diagram.DB_INSTANCE)
    changed = copy.deepcopy(dict(parsed))
    rules = changed["security.yaml"]["Resources"]
    for logical_id in [k for k, r in rules.items() if r["Type"] == diagram.SG_INGRESS]:
        if rules[logical_id]["Properties"]["GroupId"]["Fn::GetAtt"][0] == "DatabaseSecurityGroup":
            del rules[logical_id]
    network = changed["network.yaml"]["Resources"]
    del network["NatGateway2"]
    for route in network.values():
        if route["Properties"].get("NatGatewayId") == {"Ref": "NatGateway2"}:
            route["Properties"]["NatGatewayId"] = {"Ref": "NatGateway1"}
    chart = _traffic(changed)
    assert (svc, db) not in {(a, b) for a, b, _ in _edges(chart)}
    assert diagram.node_id("network.yaml", "NatGateway2") not in _nodes(chart)


def test_the_table_shows_where_the_environments_differ(parsed):
    page = diagram.markdown(parsed)
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| ")}
    assert "Multi-AZ: Enabled in production" in spec.text()
    db_cells = [c.strip() for c in rows["Database"].split("|")[2:5]]
    assert ["Multi-AZ" in c for c in db_cells] == [False, False, True]
    trees = {env: resolved.resolve_tree(parsed, env) for env in ("dev", "staging", "prod")}
    only_some = [c.strip() for c in rows["Stacks only some environments create"].split("|")[2:5]]
    for cell, tree in zip(only_some, trees.values(), strict=True):
        for filename in set().union(*trees.values()) - set.intersection(*(set(t) for t in trees.values())):
            assert (filename in cell) == (filename in tree), (filename, cell)


def test_a_second_origin_gets_its_paths_and_the_default_origin_the_rest(parsed, prod):
    """CloudFront sending /api/* to the load balancer (a custom origin named by a domain)."""
    changed = copy.deepcopy(dict(prod))
    (dist_id,) = helpers.resources_of_type(changed["frontend.yaml"], diagram.DISTRIBUTION)
    config = changed["frontend.yaml"]["Resources"][dist_id]["Properties"]["DistributionConfig"]
    config["Origins"].append(
        {
            "Id": "ApiOrigin",
            "DomainName": "api.example.com",
            "CustomOriginConfig": {"OriginProtocolPolicy": "https-only"},
        }
    )
    config["CacheBehaviors"] = [
        *config.get("CacheBehaviors", []),
        {"PathPattern": "/api/*", "TargetOriginId": "ApiOrigin"},
    ]
    edges = _edges(diagram.traffic_chart(changed))
    dist = diagram.node_id("frontend.yaml", dist_id)
    lb = _node(prod, "loadbalancer.yaml", diagram.LOAD_BALANCER)
    bucket = _node(prod, "frontend.yaml", "AWS::S3::Bucket")
    assert (dist, lb, "/api/*: custom origin ApiOrigin") in edges
    (to_bucket,) = [label for a, b, label in edges if (a, b) == (dist, bucket)]
    assert to_bucket.startswith("all paths but ") and "/api/*" in to_bucket
