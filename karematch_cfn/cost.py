"""A monthly cost estimate of one environment, computed from its rendered templates.

Counts come from the tree as the environment creates it (``resolved.resolve_tree``): NAT
gateways, Elastic IPs, the load balancer and the subnets it has a public address in, database
class, Multi-AZ and storage, task size and desired count, keys, secrets, alarms (per metric they
read), dashboards, trails, web ACLs and their rules, Container Insights clusters, Backup plans.
Unit prices come from one data file (``pricing/prices.yaml``: region, the date they were read,
typed by hand from AWS's public price pages); what the templates cannot know (traffic, log
volume, stored data) from one usage file (``pricing/usage.yaml``), and every item built on it is
marked ``usage`` and says which assumption it uses.

Every resource type in the tree must have an entry in the price file's ``resource_types``
(``priced``, ``usage-based`` or ``free``): a type without one stops the estimate, so a new
resource cannot go uncounted.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from karematch_cfn import diagram, names, resolved

PRICING_DIR = Path(__file__).resolve().parent / "pricing"
PRICES_FILE = PRICING_DIR / "prices.yaml"
USAGE_FILE = PRICING_DIR / "usage.yaml"
COVERAGE = ("priced", "usage-based", "free")
FIXED = "fixed"
USAGE = "usage"

Tree = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Item:
    """One line of the estimate: ``quantity`` x ``unit_usd`` (the price file's ``price``)."""

    item: str
    kind: str  # FIXED (counted from the templates) or USAGE (an assumption of the usage file)
    quantity: float
    unit: str
    price: str
    unit_usd: float
    monthly_usd: float
    note: str = ""


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def coverage(resource_type: str, prices: Mapping[str, Any]) -> str | None:
    """How the price file counts a resource type (exact entry first, then patterns)."""
    table = prices["resource_types"]
    if resource_type in table:
        return table[resource_type]
    for pattern, how in table.items():
        if fnmatch.fnmatchcase(resource_type, pattern):
            return how
    return None


def uncovered(tree: Tree, prices: Mapping[str, Any]) -> list[str]:
    """Resource types of the tree the price file does not account for, sorted."""
    types = {r["Type"] for t in tree.values() for r in t.get("Resources", {}).values()}
    return sorted(t for t in types if coverage(t, prices) not in COVERAGE)


def _all(tree: Tree, rtype: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(file, logical id, resource) of every resource of ``rtype`` in the tree."""
    return diagram.find(tree, rtype)


class _Builder:
    """Collects items against one price file and one environment's usage."""

    def __init__(self, prices: Mapping[str, Any], usage: Mapping[str, Any], env: str) -> None:
        self.prices = prices
        self.usage = usage
        self.env = env
        self.hours = prices["hours_per_month"]
        self.items: list[Item] = []

    def unit_price(self, key: str, variant: str | None = None) -> float:
        value = self.prices["prices"].get(key)
        if variant is not None:
            if not isinstance(value, dict) or variant not in value:
                raise ValueError(
                    f"{PRICES_FILE.name}: no price {key}.{variant}; add it from the AWS price page"
                )
            value = value[variant]
        if value is None or isinstance(value, dict):
            raise ValueError(f"{PRICES_FILE.name}: no price {key}; add it from the AWS price page")
        return float(value)

    def add(
        self,
        item: str,
        *,
        quantity: float,
        unit: str,
        price: str,
        variant: str | None = None,
        kind: str = FIXED,
        note: str = "",
    ) -> None:
        if quantity <= 0:
            return
        unit_usd = self.unit_price(price, variant)
        self.items.append(
            Item(
                item=item,
                kind=kind,
                quantity=round(quantity, 4),
                unit=unit,
                price=f"{price}.{variant}" if variant else price,
                unit_usd=unit_usd,
                monthly_usd=round(quantity * unit_usd, 2),
                note=note,
            )
        )

    def assumed(self, key: str) -> tuple[float, str]:
        entry = self.usage[key]
        return float(entry[self.env]), f"assumes {entry[self.env]} {entry['unit']}: {entry['why']}"

    def add_usage(self, item: str, *, key: str, price: str, unit: str, times: float = 1) -> None:
        amount, why = self.assumed(key)
        self.add(item, quantity=amount * times, unit=unit, price=price, kind=USAGE, note=why)


def _subnet_count(tree: Tree, filename: str, value: Any) -> int:
    return len(diagram.Wiring(tree).targets(filename, value))


def _network(b: _Builder, tree: Tree) -> None:
    nats = _all(tree, diagram.NAT_GATEWAY)
    b.add(
        "NAT gateway hours", quantity=len(nats) * b.hours, unit="NAT gateway-hour", price="nat_gateway_hour"
    )
    nat_eips = {ref for _, _, nat in nats for ref in diagram.refs(nat["Properties"].get("AllocationId"))}
    eips = _all(tree, "AWS::EC2::EIP")
    b.add(
        "Public IPv4 addresses of the NAT gateways",
        quantity=sum(1 for _, logical_id, _ in eips if logical_id in nat_eips) * b.hours,
        unit="address-hour",
        price="public_ipv4_hour",
    )
    b.add(
        "Other Elastic IP addresses",
        quantity=sum(1 for _, logical_id, _ in eips if logical_id not in nat_eips) * b.hours,
        unit="address-hour",
        price="public_ipv4_hour",
    )
    interface_azs = sum(
        _subnet_count(tree, filename, endpoint["Properties"].get("SubnetIds"))
        or len(endpoint["Properties"].get("SubnetIds") or [])
        for filename, _, endpoint in _all(tree, diagram.GATEWAY_ENDPOINT)
        if endpoint["Properties"].get("VpcEndpointType") == "Interface"
    )
    b.add(
        "VPC interface endpoint hours",
        quantity=interface_azs * b.hours,
        unit="endpoint-AZ-hour",
        price="vpc_interface_endpoint_hour",
    )
    if nats:
        b.add_usage("NAT gateway data processed", key="nat_data_gb", price="nat_gateway_gb", unit="GB")


def _load_balancers(b: _Builder, tree: Tree) -> None:
    lbs = _all(tree, diagram.LOAD_BALANCER)
    b.add("Load balancer hours", quantity=len(lbs) * b.hours, unit="ALB-hour", price="alb_hour")
    if lbs:
        amount, why = b.assumed("alb_lcu_baseline")
        b.add(
            "Load balancer capacity units (baseline)",
            quantity=len(lbs) * amount * b.hours,
            unit="LCU-hour",
            price="alb_lcu_hour",
            kind=USAGE,
            note=why,
        )
    public = sum(
        _subnet_count(tree, filename, lb["Properties"].get("Subnets"))
        or len(lb["Properties"].get("SubnetMappings") or [])
        for filename, _, lb in lbs
        if lb["Properties"].get("Scheme", "internet-facing") == "internet-facing"
    )
    b.add(
        "Public IPv4 addresses of the load balancer (one per AZ)",
        quantity=public * b.hours,
        unit="address-hour",
        price="public_ipv4_hour",
    )
    if lbs:
        b.add_usage(
            "Data transfer out to the internet",
            key="data_transfer_out_gb",
            price="data_transfer_out_gb",
            unit="GB",
        )


def _databases(b: _Builder, tree: Tree) -> None:
    has_backup_plan = bool(_all(tree, "AWS::Backup::BackupPlan"))
    for _, logical_id, db in _all(tree, diagram.DB_INSTANCE):
        props = db["Properties"]
        copies = 2 if props.get("MultiAZ") is True else 1
        layout = "Multi-AZ: primary and standby" if copies == 2 else "Single-AZ"
        b.add(
            f"Database instance hours ({props['DBInstanceClass']}, {layout})",
            quantity=copies * b.hours,
            unit="instance-hour",
            price="rds_postgresql_hour",
            variant=props["DBInstanceClass"],
        )
        storage_type = props.get("StorageType", "gp2")
        if storage_type != "gp3":
            raise ValueError(
                f"{logical_id}: no price for storage type {storage_type}; add one to {PRICES_FILE.name}"
            )
        gb = float(props["AllocatedStorage"])
        b.add(
            f"Database gp3 storage ({layout})",
            quantity=copies * gb,
            unit="GB-month",
            price="rds_gp3_gb_month",
        )
        if has_backup_plan:
            ratio, why = b.assumed("backup_storage_ratio")
            b.add(
                "Backup storage (database snapshots in the Backup vault)",
                quantity=gb * ratio,
                unit="GB-month",
                price="backup_warm_gb_month",
                kind=USAGE,
                note=why,
            )
        else:
            b.add(
                "Database automated backups (within the allocated storage: no charge)",
                quantity=gb,
                unit="GB-month",
                price="rds_backup_within_allowance_gb_month",
            )


def _compute(b: _Builder, tree: Tree) -> None:
    for filename, _, svc in _all(tree, diagram.SERVICE):
        props = svc["Properties"]
        task_id = next(diagram.refs(props["TaskDefinition"]))
        task = tree[filename]["Resources"][task_id]["Properties"]
        desired = int(props.get("DesiredCount", 1))
        vcpu = float(task["Cpu"]) / 1024
        memory_gb = float(task["Memory"]) / 1024
        tasks = f"{desired} task{'' if desired == 1 else 's'}"
        b.add(
            f"Fargate vCPU ({tasks} x {vcpu:g} vCPU)",
            quantity=desired * vcpu * b.hours,
            unit="vCPU-hour",
            price="fargate_vcpu_hour",
        )
        b.add(
            f"Fargate memory ({tasks} x {memory_gb:g} GB)",
            quantity=desired * memory_gb * b.hours,
            unit="GB-hour",
            price="fargate_gb_hour",
        )
    for _, _, cluster in _all(tree, "AWS::ECS::Cluster"):
        settings = {s["Name"]: s["Value"] for s in cluster["Properties"].get("ClusterSettings", [])}
        if settings.get("containerInsights") in ("enabled", "enhanced"):
            amount, why = b.assumed("container_insights_metrics")
            b.add(
                "Container Insights metrics",
                quantity=amount,
                unit="metric-month",
                price="custom_metric_month",
                kind=USAGE,
                note=why,
            )
    if _all(tree, "AWS::ECR::Repository"):
        b.add_usage("ECR image storage", key="ecr_storage_gb", price="ecr_gb_month", unit="GB-month")


def _security(b: _Builder, tree: Tree) -> None:
    keys = _all(tree, "AWS::KMS::Key")
    b.add("KMS customer-managed keys", quantity=len(keys), unit="key-month", price="kms_key_month")
    if keys:
        b.add_usage("KMS requests", key="kms_requests_10k", price="kms_10k_requests", unit="10,000 requests")
    b.add(
        "Secrets Manager secrets",
        quantity=len(_all(tree, "AWS::SecretsManager::Secret")),
        unit="secret-month",
        price="secret_month",
    )
    acls = _all(tree, "AWS::WAFv2::WebACL")
    b.add("WAF web ACLs", quantity=len(acls), unit="web ACL-month", price="waf_web_acl_month")
    b.add(
        "WAF rules",
        quantity=sum(len(acl["Properties"].get("Rules") or []) for _, _, acl in acls),
        unit="rule-month",
        price="waf_rule_month",
    )
    if acls:
        b.add_usage(
            "WAF requests",
            key="waf_million_requests",
            price="waf_million_requests",
            unit="million requests",
            times=len(acls),
        )


def _alarm_metrics(alarm: Mapping[str, Any]) -> int:
    """Metrics an alarm reads (metric math: one per MetricStat query), each billed."""
    queries = alarm["Properties"].get("Metrics")
    return sum(1 for q in queries if "MetricStat" in q) if queries else 1


def _observability(b: _Builder, tree: Tree) -> None:
    b.add(
        "CloudWatch alarms (per metric they read)",
        quantity=sum(_alarm_metrics(a) for _, _, a in _all(tree, "AWS::CloudWatch::Alarm")),
        unit="alarm metric-month",
        price="alarm_metric_month",
    )
    b.add(
        "CloudWatch composite alarms",
        quantity=len(_all(tree, "AWS::CloudWatch::CompositeAlarm")),
        unit="alarm-month",
        price="composite_alarm_month",
    )
    b.add(
        "CloudWatch dashboards",
        quantity=len(_all(tree, "AWS::CloudWatch::Dashboard")),
        unit="dashboard-month",
        price="dashboard_month",
    )
    trails = _all(tree, "AWS::CloudTrail::Trail")
    b.add(
        "CloudTrail trail (first copy of management events: no charge)",
        quantity=len(trails),
        unit="trail-month",
        price="cloudtrail_management_first_copy",
        note="its logs are in the log ingestion and storage items",
    )
    b.add_usage("CloudWatch Logs ingestion", key="log_ingest_gb", price="logs_ingest_gb", unit="GB")
    b.add_usage("CloudWatch Logs storage", key="log_storage_gb", price="logs_store_gb_month", unit="GB-month")


def _edge_and_storage(b: _Builder, tree: Tree) -> None:
    if _all(tree, diagram.DISTRIBUTION):
        b.add_usage("CloudFront data out", key="cloudfront_gb", price="cloudfront_gb_out", unit="GB")
        b.add_usage(
            "CloudFront HTTPS requests",
            key="cloudfront_requests_10k",
            price="cloudfront_10k_https_requests",
            unit="10,000 requests",
        )
    if _all(tree, "AWS::S3::Bucket"):
        b.add_usage("S3 storage", key="s3_storage_gb", price="s3_standard_gb_month", unit="GB-month")


def estimate(
    tree: Tree,
    env: str,
    prices: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
) -> list[Item]:
    """The items of ``env``'s monthly estimate for its resolved ``tree``."""
    prices = load(PRICES_FILE) if prices is None else prices
    usage = load(USAGE_FILE) if usage is None else usage
    missing = uncovered(tree, prices)
    if missing:
        raise ValueError(
            f"{PRICES_FILE.name}: resource type(s) {', '.join(missing)} have no entry under "
            f"resource_types; add a price, usage-based or free"
        )
    b = _Builder(prices, usage, env)
    for part in (
        _network,
        _load_balancers,
        _databases,
        _compute,
        _security,
        _observability,
        _edge_and_storage,
    ):
        part(b, tree)
    return b.items


def total(items: list[Item]) -> float:
    return round(sum(i.monthly_usd for i in items), 2)


def for_env(env: str) -> list[Item]:
    """Render the templates in memory, resolve them for ``env`` and estimate."""
    from karematch_cfn import tree

    if env not in names.ENVIRONMENTS:
        raise ValueError(f"unknown environment {env!r}; allowed: {', '.join(names.ENVIRONMENTS)}")
    return estimate(resolved.resolve_tree(resolved.parse(tree.render_all()), env), env)


def as_json(items: list[Item]) -> str:
    return json.dumps({"monthly_usd": total(items), "items": [asdict(i) for i in items]}, indent=2)


def as_text(items: list[Item], env: str, prices: Mapping[str, Any]) -> str:
    width = max(len(i.item) for i in items)
    lines = [
        f"KareMatch {env}: estimated monthly cost in {prices['currency']} "
        f"({prices['region']} list prices read {prices['read_on']})",
        f"{'item':<{width}}  {'quantity':>10}  {'unit':<20}  {'unit price':>10}  {'monthly':>9}",
    ]
    for i in items:
        mark = " *" if i.kind == USAGE else ""
        lines.append(
            f"{i.item:<{width}}  {i.quantity:>10g}  {i.unit:<20}  {i.unit_usd:>10g}  {i.monthly_usd:>9.2f}{mark}"
        )
    lines.append(f"{'total':<{width}}  {'':>10}  {'':<20}  {'':>10}  {total(items):>9.2f}")
    lines.append(f"* usage-based: assumptions in {USAGE_FILE.relative_to(PRICING_DIR.parent.parent)}")
    lines.append(f"prices: {PRICES_FILE.relative_to(PRICING_DIR.parent.parent)}")
    return "\n".join(lines)


def command(env: str, *, json_output: bool) -> int:
    """``cost --env ENV [--json]``: 0, or 2 with one line for an unknown environment."""
    if env not in names.ENVIRONMENTS:
        print(
            f"error: --env {env}: unknown environment; allowed: {', '.join(names.ENVIRONMENTS)}",
            file=sys.stderr,
        )
        return 2
    try:
        items = for_env(env)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(as_json(items) if json_output else as_text(items, env, load(PRICES_FILE)))
    return 0


# --------------------------------------------------------------------------------------------
# docs/cost.md
# --------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def markdown(templates: Mapping[str, Mapping[str, Any]]) -> str:
    """The cost page for dev, staging and prod (gendocs adds the generated-file header)."""
    prices, usage = load(PRICES_FILE), load(USAGE_FILE)
    estimates = {
        env: estimate(resolved.resolve_tree(templates, env), env, prices, usage) for env in names.ENVIRONMENTS
    }
    out = [
        "# Monthly cost estimate",
        "",
        "Computed by `build.py` from the rendered templates, each resolved for its environment",
        "(`karematch_cfn/cost.py`); `python -m karematch_cfn cost --env ENV [--json]` prints the same.",
        f"Prices: {prices['currency']}, {prices['region']}, on-demand list prices read on {prices['read_on']},",
        "typed by hand from AWS's public price pages into `karematch_cfn/pricing/prices.yaml`; no free",
        "tier, Savings Plans or reserved capacity. Items marked *usage* rest on the assumptions in",
        "`karematch_cfn/pricing/usage.yaml`. An estimate, not a quote: check the price pages.",
        "",
        "| Environment | Fixed (from the templates) | Usage (assumed) | Monthly total |",
        "|---|---:|---:|---:|",
    ]
    for env, items in estimates.items():
        fixed = round(sum(i.monthly_usd for i in items if i.kind == FIXED), 2)
        used = round(sum(i.monthly_usd for i in items if i.kind == USAGE), 2)
        out.append(f"| {env} | {fixed:.2f} | {used:.2f} | **{total(items):.2f}** |")
    for env, items in estimates.items():
        out += [
            "",
            f"## {env}",
            "",
            "| Item | Kind | Quantity | Unit | Unit price | Monthly |",
            "|---|---|---:|---|---:|---:|",
        ]
        for i in items:
            out.append(
                f"| {_cell(i.item)} | {i.kind} | {i.quantity:g} | {_cell(i.unit)} | {i.unit_usd:g} | {i.monthly_usd:.2f} |"
            )
        out.append(f"| **Total** | | | | | **{total(items):.2f}** |")
    out += [
        "",
        "## Usage assumptions",
        "",
        "| Assumption | dev | staging | prod | Unit | Why |",
        "|---|---:|---:|---:|---|---|",
    ]
    for key, entry in usage.items():
        values = " | ".join(str(entry[env]) for env in names.ENVIRONMENTS)
        out.append(f"| `{key}` | {values} | {_cell(entry['unit'])} | {_cell(entry['why'])} |")
    out += ["", "## Price pages", ""]
    out += [f"- {name}: {url}" for name, url in prices["pages"].items()]
    return "\n".join(out) + "\n"
