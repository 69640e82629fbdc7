"""The architecture page (docs/architecture.md): Mermaid flowcharts drawn from the templates.

Nothing here is typed by hand: the nested stacks and their wiring come from the root template,
the network tiers from the subnets' route tables (internet gateway = public, NAT gateway = private,
no default route = isolated), the traffic paths from the listeners, the distribution's origins,
the security-group rules between groups and the task definition, each resolved for an
environment by ``resolved.resolve_tree``. Which resource sits in which tier, and which security
group guards it, is followed through the root's wiring (a child's ``<wired:Name>`` input is the
Output ``Name`` of the child that feeds it). A pure function of the templates: same input, same
Markdown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from karematch_cfn import names, resolved
from karematch_cfn.stacks import root

Tree = Mapping[str, Mapping[str, Any]]

DRAWN_ENV = names.PRODUCTION  # the fullest environment; the table shows what the others lack
ROOT_NODE = "root"
INTERNET = "internet"
AWS_APIS = "aws_apis"
WIRED = re.compile(r"<wired:(\w+)>")
SUB_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")

# Resource types drawn as nodes of the traffic chart (tests check each appears).
SUBNET = "AWS::EC2::Subnet"
NAT_GATEWAY = "AWS::EC2::NatGateway"
INTERNET_GATEWAY = "AWS::EC2::InternetGateway"
GATEWAY_ENDPOINT = "AWS::EC2::VPCEndpoint"
VPC = "AWS::EC2::VPC"
ROUTE = "AWS::EC2::Route"
ASSOCIATION = "AWS::EC2::SubnetRouteTableAssociation"
DISTRIBUTION = "AWS::CloudFront::Distribution"
LOAD_BALANCER = "AWS::ElasticLoadBalancingV2::LoadBalancer"
LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
SERVICE = "AWS::ECS::Service"
TASK_DEFINITION = "AWS::ECS::TaskDefinition"
DB_INSTANCE = "AWS::RDS::DBInstance"
DB_SUBNET_GROUP = "AWS::RDS::DBSubnetGroup"
SG_INGRESS = "AWS::EC2::SecurityGroupIngress"
STACK = "AWS::CloudFormation::Stack"
TYPE_LABELS = {"AWS::S3::Bucket": "S3 bucket"}

# Tier of a subnet by what its route table's default route points at.
PUBLIC_TIER = "public"
PRIVATE_TIER = "private"
ISOLATED_TIER = "isolated"
TIER_TITLES = {
    PUBLIC_TIER: "Public subnets: default route to the internet gateway",
    PRIVATE_TIER: "Private subnets: default route through a NAT gateway",
    ISOLATED_TIER: "Isolated subnets: no route out of the VPC",
}


def node_id(filename: str, logical_id: str) -> str:
    """Mermaid node id of a resource: ``<stack file stem>_<logical id>``."""
    return f"{filename.removesuffix('.yaml')}_{logical_id}"


def _q(text: str) -> str:
    """A Mermaid label in double quotes (quotes inside become #quot;)."""
    return '"' + str(text).replace('"', "#quot;") + '"'


def _resources(t: Mapping[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in sorted(t.get("Resources", {}).items()) if r["Type"] == rtype}


def refs(node: Any) -> Iterator[str]:
    """Logical ids a value points at (Ref and Fn::GetAtt), in order."""
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            yield node["Ref"]
        elif set(node) == {"Fn::GetAtt"}:
            yield node["Fn::GetAtt"][0]
        else:
            for value in node.values():
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def _wired_names(node: Any) -> Iterator[str]:
    """Names of the wired inputs a resolved value uses (``<wired:Name>`` and ``${Name}``)."""
    if isinstance(node, str):
        yield from WIRED.findall(node)
    elif isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            yield from SUB_PLACEHOLDER.findall(node["Fn::Sub"])
        for value in node.values():
            yield from _wired_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _wired_names(value)


@dataclass(frozen=True)
class Wiring:
    """Which child file produces each wired input of each child (from the root's Parameters)."""

    tree: Tree

    def producer(self, consumer: str, name: str) -> str | None:
        """The file whose Output ``name`` feeds ``consumer``'s input ``name``."""
        for stack in self.tree[root.ROOT_FILE]["Resources"].values():
            if stack["Type"] != STACK or stack["Properties"]["TemplateURL"] != f"./{consumer}":
                continue
            given = stack["Properties"].get("Parameters", {}).get(name)
            if isinstance(given, dict) and "Fn::GetAtt" in given:
                return _file_of(self.tree, given["Fn::GetAtt"][0])
        return None

    def targets(self, consumer: str, value: Any) -> list[tuple[str, str]]:
        """(file, logical id) of the resources a consumer's value reaches through the wiring."""
        found = []
        for name in _wired_names(value):
            producer = self.producer(consumer, name)
            if producer is None:
                continue
            output = self.tree[producer].get("Outputs", {}).get(name, {}).get("Value")
            found.extend((producer, logical_id) for logical_id in refs(output))
        return found


def _file_of(tree: Tree, stack_logical_id: str) -> str:
    url = tree[root.ROOT_FILE]["Resources"][stack_logical_id]["Properties"]["TemplateURL"]
    return url.removeprefix("./")


def find(tree: Tree, rtype: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(file, logical id, resource) of every resource of ``rtype`` in the tree, sorted."""
    return [
        (filename, logical_id, resource)
        for filename in sorted(tree)
        for logical_id, resource in _resources(tree[filename], rtype).items()
    ]


# --------------------------------------------------------------------------------------------
# The network: tiers from the route tables.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subnet:
    filename: str
    logical_id: str
    cidr: str
    az_index: int
    tier: str
    nat: str | None  # the NAT gateway its default route uses (private tier)

    @property
    def node(self) -> str:
        return node_id(self.filename, self.logical_id)


def subnets(tree: Tree) -> list[Subnet]:
    """Every subnet with its tier, from its route table's default route."""
    found = []
    for filename, logical_id, subnet in find(tree, SUBNET):
        t = tree[filename]
        tables = [
            a["Properties"]["RouteTableId"]["Ref"]
            for a in _resources(t, ASSOCIATION).values()
            if a["Properties"]["SubnetId"] == {"Ref": logical_id}
        ]
        routes = [
            r["Properties"]
            for r in _resources(t, ROUTE).values()
            if r["Properties"]["RouteTableId"] in [{"Ref": table} for table in tables]
            and r["Properties"].get("DestinationCidrBlock") == names.ANYWHERE_IPV4
        ]
        tier, nat = ISOLATED_TIER, None
        for route in routes:
            if "NatGatewayId" in route:
                tier, nat = PRIVATE_TIER, route["NatGatewayId"]["Ref"]
            elif "GatewayId" in route:
                tier = PUBLIC_TIER
        az = subnet["Properties"]["AvailabilityZone"]
        az_index = az["Fn::Select"][0] if isinstance(az, dict) and "Fn::Select" in az else 0
        found.append(
            Subnet(filename, logical_id, subnet["Properties"]["CidrBlock"], int(az_index), tier, nat)
        )
    return found


def _tier_of(tree: Tree, wiring: Wiring, filename: str, value: Any) -> str | None:
    """The tier of the subnets a resource's value (wired subnet ids) points at."""
    by_id = {(s.filename, s.logical_id): s for s in subnets(tree)}
    tiers = {by_id[target].tier for target in wiring.targets(filename, value) if target in by_id}
    return tiers.pop() if len(tiers) == 1 else None


def _private_nats(tree: Tree, wiring: Wiring, filename: str, value: Any) -> list[str]:
    by_id = {(s.filename, s.logical_id): s for s in subnets(tree)}
    return sorted(
        {
            node_id(by_id[target].filename, by_id[target].nat)
            for target in wiring.targets(filename, value)
            if target in by_id and by_id[target].nat
        }
    )


# --------------------------------------------------------------------------------------------
# Labels.
# --------------------------------------------------------------------------------------------


def _listener_text(listener: Mapping[str, Any]) -> str:
    props = listener["Properties"]
    text = f"{props['Protocol']} {props['Port']}"
    actions = [a["Type"] for a in props.get("DefaultActions", [])]
    if "redirect" in actions:
        redirect = props["DefaultActions"][actions.index("redirect")]["RedirectConfig"]
        text += f" redirects to {redirect['Protocol']} {redirect['Port']}"
    return text


def _listeners(tree: Tree, lb_file: str, lb_id: str) -> list[str]:
    return [
        _listener_text(listener)
        for listener in _resources(tree[lb_file], LISTENER).values()
        if listener["Properties"]["LoadBalancerArn"] == {"Ref": lb_id}
    ]


def _db_text(props: Mapping[str, Any]) -> str:
    multi_az = "Multi-AZ" if props.get("MultiAZ") is True else "single-AZ"
    return (
        f"RDS {props['Engine']} {props.get('EngineVersion', '')}".rstrip()
        + f"<br/>{props['DBInstanceClass']}, {multi_az}<br/>{props['AllocatedStorage']} GB {props.get('StorageType', '')}"
    )


def _origin_paths(config: Mapping[str, Any], origin_id: str | None) -> str:
    """The paths a distribution sends to an origin: the default origin gets every path the
    other origins' behaviours do not claim."""
    if config.get("DefaultCacheBehavior", {}).get("TargetOriginId") == origin_id:
        others = [
            b["PathPattern"] for b in config.get("CacheBehaviors", []) if b.get("TargetOriginId") != origin_id
        ]
        return f"all paths but {', '.join(others)}" if others else "all paths"
    mine = [
        b["PathPattern"] for b in config.get("CacheBehaviors", []) if b.get("TargetOriginId") == origin_id
    ]
    return ", ".join(mine) or "no path"


def _rule_text(props: Mapping[str, Any]) -> str:
    protocol = str(props["IpProtocol"])
    if protocol == "-1":
        return "all traffic"
    low, high = props.get("FromPort"), props.get("ToPort")
    return f"{protocol.upper()} {low}" if low == high else f"{protocol.upper()} {low}-{high}"


def _task_dependencies(tree: Tree, wiring: Wiring, filename: str) -> list[tuple[str, str, str]]:
    """(node, label, what the tasks do with it) for the image, secrets and log group of the
    task definitions in ``filename``."""
    found = []
    for _, _, task in find({filename: tree[filename]}, TASK_DEFINITION):
        for container in task["Properties"]["ContainerDefinitions"]:
            for target_file, target in wiring.targets(filename, container.get("Image")):
                found.append((node_id(target_file, target), f"ECR repository {target}", "pull the image"))
            for target_file, target in wiring.targets(filename, container.get("Secrets")):
                found.append(
                    (node_id(target_file, target), f"Secrets Manager {target}", "read their secrets")
                )
            options = container.get("LogConfiguration", {}).get("Options", {})
            for group in refs(options.get("awslogs-group")):
                found.append((node_id(filename, group), f"CloudWatch Logs {group}", "write their logs"))
    return found


# --------------------------------------------------------------------------------------------
# The charts.
# --------------------------------------------------------------------------------------------


def stacks_chart(templates: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The root and its children; an arrow from each child to the children its Outputs feed."""
    root_t = templates[root.ROOT_FILE]
    stacks = _resources(root_t, STACK)
    lines = ["flowchart LR", f"  subgraph {ROOT_NODE}[{_q(root.ROOT_FILE + ' (root stack)')}]"]
    for logical_id, stack in stacks.items():
        filename = stack["Properties"]["TemplateURL"].removeprefix("./")
        label = f"{filename}<br/>{logical_id}"
        if "Condition" in stack:
            label += f"<br/>only if {stack['Condition']}"
        lines.append(f"    {logical_id}[{_q(label)}]")
    lines.append("  end")
    for consumer, stack in stacks.items():
        producers = sorted(
            {
                given["Fn::GetAtt"][0]
                for given in stack["Properties"].get("Parameters", {}).values()
                if isinstance(given, dict) and "Fn::GetAtt" in given
            }
        )
        lines.extend(f"  {producer} --> {consumer}" for producer in producers)
    return lines


@dataclass
class _Chart:
    """A flowchart being drawn: node and subgraph lines, then the edges (each once, in order)."""

    tree: Tree
    wiring: Wiring
    lines: list[str]
    edges: dict[str, None]

    def edge(self, a: str, b: str, label: str | None = None, *, dotted: bool = False) -> None:
        arrow = "-.->" if dotted else "-->"
        self.edges[f"  {a} {arrow}|{_q(label)}| {b}" if label else f"  {a} {arrow} {b}"] = None

    def gateways(self) -> list[str]:
        return [node_id(f, i) for f, i, _ in find(self.tree, INTERNET_GATEWAY)]


def traffic_chart(tree: Tree) -> list[str]:
    """Internet -> CloudFront -> S3; internet -> ALB -> tasks -> database; tasks -> AWS APIs."""
    chart = _Chart(tree, Wiring(tree), ["flowchart TB", f"  {INTERNET}(({_q('Internet')}))"], {})
    _draw_edge_locations(chart)
    _draw_vpc(chart, placed=_place_in_tiers(chart))
    _draw_routes(chart)
    _draw_security_group_flows(chart)
    _draw_aws_apis(chart)
    return chart.lines + list(chart.edges)


def _draw_edge_locations(chart: _Chart) -> None:
    """CloudFront and its origins: the bucket through origin access control, the ALB for API paths."""
    tree = chart.tree
    for filename, logical_id, dist in find(tree, DISTRIBUTION):
        config = dist["Properties"]["DistributionConfig"]
        aliases = config.get("Aliases") or ["*.cloudfront.net"]
        dist_node = node_id(filename, logical_id)
        chart.lines.append(f"  {dist_node}[{_q('CloudFront distribution<br/>' + ', '.join(aliases))}]")
        chart.edge(INTERNET, dist_node, "HTTPS")
        for origin in config.get("Origins", []):
            domain = origin.get("DomainName")
            paths = _origin_paths(config, origin.get("Id"))
            targets = [ref for ref in refs(domain) if ref in tree[filename]["Resources"]]
            for target in targets:
                target_type = tree[filename]["Resources"][target]["Type"]
                target_node = node_id(filename, target)
                kind = TYPE_LABELS.get(target_type, target_type)
                chart.lines.append(f"  {target_node}[{_q(f'{kind} {target}')}]")
                via = "origin access control, SigV4" if origin.get("OriginAccessControlId") else "origin"
                chart.edge(dist_node, target_node, f"{paths}: {via}")
            wired = chart.wiring.targets(filename, domain)
            for lb_file, lb_id in wired:
                chart.edge(dist_node, node_id(lb_file, lb_id), f"{paths}: origin {origin.get('Id', '')}")
            if not targets and not wired and "CustomOriginConfig" in origin:
                # A custom origin named by a domain outside the stacks: the load balancer's name.
                for lb_file, lb_id, _ in find(tree, LOAD_BALANCER):
                    chart.edge(
                        dist_node, node_id(lb_file, lb_id), f"{paths}: custom origin {origin.get('Id', '')}"
                    )


def _place_in_tiers(chart: _Chart) -> dict[str, list[str]]:
    """Node lines of the load balancer, the service and the database, by the tier of their subnets;
    the internet reaches the load balancer on its listeners."""
    tree, wiring = chart.tree, chart.wiring
    placed: dict[str, list[str]] = {tier: [] for tier in TIER_TITLES}
    for filename, logical_id, lb in find(tree, LOAD_BALANCER):
        tier = _tier_of(tree, wiring, filename, lb["Properties"].get("Subnets"))
        text = "Application Load Balancer<br/>" + ", ".join(_listeners(tree, filename, logical_id))
        placed.setdefault(tier or PUBLIC_TIER, []).append(f"{node_id(filename, logical_id)}[{_q(text)}]")
        chart.edge(INTERNET, node_id(filename, logical_id), ", ".join(_listeners(tree, filename, logical_id)))
    for filename, logical_id, svc in find(tree, SERVICE):
        network = svc["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        tier = _tier_of(tree, wiring, filename, network.get("Subnets"))
        count = svc["Properties"].get("DesiredCount")
        text = f"ECS {svc['Properties'].get('LaunchType', '')} service<br/>{count} backend tasks"
        placed.setdefault(tier or PRIVATE_TIER, []).append(f"{node_id(filename, logical_id)}[{_q(text)}]")
    for filename, logical_id, db in find(tree, DB_INSTANCE):
        group = tree[filename]["Resources"][next(refs(db["Properties"]["DBSubnetGroupName"]))]
        tier = _tier_of(tree, wiring, filename, group["Properties"]["SubnetIds"])
        text = _db_text(db["Properties"])
        placed.setdefault(tier or ISOLATED_TIER, []).append(f"{node_id(filename, logical_id)}[({_q(text)})]")
    return placed


def _draw_vpc(chart: _Chart, *, placed: Mapping[str, list[str]]) -> None:
    """The VPC: one subgraph per tier with its subnets, NAT gateways and what runs there."""
    tree = chart.tree
    all_subnets = subnets(tree)
    for filename, logical_id, vpc in find(tree, VPC):
        chart.lines.append(
            f"  subgraph {node_id(filename, logical_id)}[{_q('VPC ' + vpc['Properties']['CidrBlock'])}]"
        )
        for tier, title in TIER_TITLES.items():
            members = [s for s in all_subnets if s.tier == tier and s.filename == filename]
            if not members and not placed.get(tier):
                continue
            chart.lines.append(f"    subgraph tier_{tier}[{_q(title)}]")
            for s in members:
                chart.lines.append(
                    f"      {s.node}[{_q(f'{s.logical_id}<br/>{s.cidr}<br/>AZ {s.az_index + 1}')}]"
                )
            if tier == PUBLIC_TIER:
                for nat_file, nat_id, nat in find(tree, NAT_GATEWAY):
                    subnet_id = next(refs(nat["Properties"]["SubnetId"]))
                    chart.lines.append(
                        f"      {node_id(nat_file, nat_id)}[{_q(f'NAT gateway {nat_id}<br/>in {subnet_id}')}]"
                    )
            chart.lines.extend(f"      {node}" for node in placed.get(tier, []))
            chart.lines.append("    end")
        chart.lines.append("  end")
    for filename, logical_id, _ in find(tree, INTERNET_GATEWAY):
        chart.lines.append(f"  {node_id(filename, logical_id)}[{_q('Internet gateway')}]")


def _draw_routes(chart: _Chart) -> None:
    """Private subnets route to their NAT gateway; each NAT gateway leaves through the gateway."""
    for s in subnets(chart.tree):
        if s.nat:
            chart.edge(s.node, node_id(s.filename, s.nat), "default route", dotted=True)
    for nat_file, nat_id, _ in find(chart.tree, NAT_GATEWAY):
        for igw in chart.gateways():
            chart.edge(node_id(nat_file, nat_id), igw)


def _draw_security_group_flows(chart: _Chart) -> None:
    """Each group-to-group ingress rule, drawn between the resources the two groups guard."""
    tree = chart.tree
    guarded: dict[tuple[str, str], list[str]] = {}
    for rtype in (LOAD_BALANCER, SERVICE, DB_INSTANCE):
        for filename, logical_id, resource in find(tree, rtype):
            for target in chart.wiring.targets(filename, resource["Properties"]):
                guarded.setdefault(target, []).append(node_id(filename, logical_id))
    for filename, _, rule in find(tree, SG_INGRESS):
        props = rule["Properties"]
        if "SourceSecurityGroupId" not in props:
            continue
        sources = guarded.get((filename, next(refs(props["SourceSecurityGroupId"]))), [])
        dests = guarded.get((filename, next(refs(props["GroupId"]))), [])
        for a in sources:
            for b in dests:
                chart.edge(a, b, _rule_text(props))


def _draw_aws_apis(chart: _Chart) -> None:
    """What the tasks reach outside the VPC: through the NAT gateways, and S3 through the endpoint."""
    tree = chart.tree
    api_nodes: dict[str, str] = {}
    for filename, logical_id, svc in find(tree, SERVICE):
        svc_node = node_id(filename, logical_id)
        subnets_value = svc["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"].get("Subnets")
        for nat in _private_nats(tree, chart.wiring, filename, subnets_value):
            chart.edge(svc_node, nat, f"HTTPS {names.HTTPS_PORT} to AWS APIs")
        for api_node, label, how in _task_dependencies(tree, chart.wiring, filename):
            api_nodes[api_node] = label
            for igw in chart.gateways():
                chart.edge(igw, api_node, f"tasks {how}")
        for ep_file, ep_id, endpoint in find(tree, GATEWAY_ENDPOINT):
            service_name = str(endpoint["Properties"].get("ServiceName", ""))
            label = "S3 gateway endpoint" if ".s3" in service_name else f"Gateway endpoint {ep_id}"
            chart.lines.append(
                f"  {node_id(ep_file, ep_id)}[{_q(label + '<br/>on the private route tables')}]"
            )
            chart.edge(svc_node, node_id(ep_file, ep_id), "S3: image layers", dotted=True)
    chart.lines.append(f"  subgraph {AWS_APIS}[{_q(f'AWS regional APIs, HTTPS {names.HTTPS_PORT}')}]")
    chart.lines.extend(f"    {api_node}[{_q(label)}]" for api_node, label in api_nodes.items())
    chart.lines.append("  end")


# --------------------------------------------------------------------------------------------
# Where the environments differ.
# --------------------------------------------------------------------------------------------


def _one(tree: Tree, rtype: str) -> dict[str, Any] | None:
    found = find(tree, rtype)
    return found[0][2]["Properties"] if found else None


def environment_rows(trees: Mapping[str, Tree]) -> list[tuple[str, list[str]]]:
    """(what, value per environment) for the facts that set the environments apart."""

    def row(what: str, fn: Any) -> tuple[str, list[str]]:
        return what, [str(fn(trees[env])) for env in trees]

    def lb_listeners(tree: Tree) -> str:
        return "; ".join(text for f, i, _ in find(tree, LOAD_BALANCER) for text in _listeners(tree, f, i))

    def frontend(tree: Tree) -> str:
        dist = _one(tree, DISTRIBUTION)
        return ", ".join(dist["DistributionConfig"].get("Aliases") or ["*.cloudfront.net"]) if dist else "-"

    def database(tree: Tree) -> str:
        db = _one(tree, DB_INSTANCE)
        return _db_text(db).replace("<br/>", ", ") if db else "-"

    def protected(tree: Tree) -> str:
        db = _one(tree, DB_INSTANCE)
        return "yes" if db and db.get("DeletionProtection") is True else "no"

    everywhere = set.intersection(*(set(tree) for tree in trees.values()))
    rows = [
        row(
            "Stacks only some environments create",
            lambda tree: ", ".join(sorted(set(tree) - everywhere)) or "-",
        ),
        row("NAT gateways (one public IPv4 each)", lambda tree: len(find(tree, NAT_GATEWAY))),
        row("Load balancer listeners", lb_listeners),
        row("Frontend address", frontend),
        row("Backend tasks (desired)", lambda tree: (_one(tree, SERVICE) or {}).get("DesiredCount", "-")),
        row("Database", database),
        row("Database deletion protection", protected),
    ]
    counts = {
        env: Counter(r["Type"] for t in tree.values() for r in t.get("Resources", {}).values())
        for env, tree in trees.items()
    }
    types = sorted({rtype for c in counts.values() for rtype in c})
    for rtype in types:
        per_env = [counts[env][rtype] for env in trees]
        if len(set(per_env)) > 1:
            rows.append((f"`{rtype}` resources", [str(n) for n in per_env]))
    return rows


def markdown(templates: Mapping[str, Mapping[str, Any]]) -> str:
    """The whole page (gendocs adds the generated-file header)."""
    trees = {env: resolved.resolve_tree(templates, env) for env in names.ENVIRONMENTS}
    out = [
        "# Architecture diagram",
        "",
        "Drawn by `build.py` from the rendered templates (`karematch_cfn/diagram.py`), each resolved for",
        "an environment (`karematch_cfn/resolved.py`); `build.py --check` fails when this page is stale.",
        "The requirements are in [ARCHITECTURE.md](ARCHITECTURE.md); the monthly estimate in",
        "[cost.md](cost.md).",
        "",
        "## Nested stacks",
        "",
        "The root stack creates one child per template; an arrow runs from a child to each child its",
        "Outputs feed (the root passes them on as Parameters of the same name).",
        "",
        "```mermaid",
        *stacks_chart(templates),
        "```",
        "",
        f"## Network and traffic ({DRAWN_ENV})",
        "",
        "Tiers come from the subnets' route tables; arrows between the load balancer, the tasks and the",
        "database are the security-group rules between their groups.",
        "",
        "```mermaid",
        *traffic_chart(trees[DRAWN_ENV]),
        "```",
        "",
        "## Where dev, staging and prod differ",
        "",
        "| | " + " | ".join(trees) + " |",
        "|---|" + "---|" * len(trees),
    ]
    for what, values in environment_rows(trees):
        cells = [v.replace("|", "\\|").replace("*", "\\*") for v in values]
        out.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
