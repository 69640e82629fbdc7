"""Service Quotas preflight: refuse a deploy the account's quotas cannot hold, before any change
set exists.

Three environments in one region allocate an Elastic IP per NAT gateway; the default quota is
five per region, and a create that runs out fails halfway with AddressLimitExceeded and rolls
back. So before a create, and before an update that adds addresses, VPCs or NAT gateways, the
deployer counts what the resolved tree adds (for an update: beyond what the live stacks already
hold), reads each quota through Service Quotas (AWS's default when the account has no applied
value), counts what is in use, and refuses with the quota, the numbers and the command that asks
for more. Where the caller may not read a quota or the usage, it warns and goes on: the
preflight is advice, CloudFormation is still the judge.

The counting (``wanted``, ``added``, ``shortages``) is pure; ``preflight`` does the AWS calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from karematch_cfn import evaluate
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import protect
from karematch_cfn.deploy.errors import DeployFailed

EIP = "AWS::EC2::EIP"
VPC = "AWS::EC2::VPC"
NAT_GATEWAY = "AWS::EC2::NatGateway"
NESTED_STACK = "AWS::CloudFormation::Stack"
NO_APPLIED_VALUE = "NoSuchResourceException"  # GetServiceQuota: the account has no applied value


@dataclass(frozen=True)
class Quota:
    """One quota this tree consumes: Service Quotas' service and quota codes, and what uses it."""

    service: str
    code: str
    name: str
    resource_type: str
    per_az: bool = False  # the quota is per Availability Zone, not per region


QUOTAS = (
    Quota("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs", EIP),
    Quota("vpc", "L-F678F1CE", "VPCs per Region", VPC),
    # Each NAT gateway of the tree sits in its own AZ (network.py): one per AZ it uses.
    Quota("vpc", "L-FE5A380F", "NAT gateways per Availability Zone", NAT_GATEWAY, per_az=True),
)


# ------------------------------------------------------------------------------------------
# Pure: what the tree wants, what it adds, what does not fit
# ------------------------------------------------------------------------------------------
def wanted(
    files: Mapping[str, Mapping[str, Any]], root: str, values: Mapping[str, str], *, region: str
) -> Counter[str]:
    """Resources of the quota types the tree creates with these root ``values``: each template
    resolved with its own parameters (Conditions applied), children through their Stack
    resource's Parameters. ``files``: template name -> template dict (``./child.yaml`` names).
    A template whose Conditions cannot be evaluated counts every such resource it holds."""
    types = {q.resource_type for q in QUOTAS}
    count: Counter[str] = Counter()
    pseudo = {"AWS::Region": region, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}

    def visit(name: str, params: Mapping[str, Any]) -> None:
        # A value another child's Output feeds is unknown here: a placeholder string.
        known = {
            k: (str(v) if isinstance(v, (str, int, float)) else f"<wired:{k}>") for k, v in params.items()
        }
        try:
            t = evaluate.resolve(files[name], {**pseudo, **known})
        except KeyError:
            t = dict(files[name])
        for body in t.get("Resources", {}).values():
            if body.get("Type") in types:
                count[body["Type"]] += 1
            elif body.get("Type") == NESTED_STACK:
                props = body.get("Properties", {})
                child = str(props.get("TemplateURL", "")).removeprefix("./")
                if child in files:
                    visit(child, props.get("Parameters", {}))

    visit(root, values)
    return count


def added(want: Counter[str], live: Counter[str]) -> Counter[str]:
    """What a deploy adds beyond the live stacks (nothing for a type it keeps or shrinks)."""
    return Counter({k: want[k] - live.get(k, 0) for k in want if want[k] > live.get(k, 0)})


@dataclass(frozen=True)
class Shortage:
    quota: Quota
    where: str  # the region, or the Availability Zone of a per-AZ quota
    limit: int
    used: int
    needed: int

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)

    def message(self) -> str:
        return (
            f"quota {self.quota.name!r} ({self.quota.service} {self.quota.code}) in {self.where}: this "
            f"deploy needs {self.needed}, {self.free} free ({self.used} in use of {self.limit})"
        )

    def command(self) -> str:
        return (
            f"aws service-quotas request-service-quota-increase --service-code {self.quota.service} "
            f"--quota-code {self.quota.code} --desired-value {self.used + self.needed}"
        )


def shortages(
    *, quota: Quota, limit: float, needed: Mapping[str, int], used: Mapping[str, int]
) -> list[Shortage]:
    """Where ``needed`` more do not fit (``needed``/``used`` by region or AZ name)."""
    return [
        Shortage(quota, where, int(limit), used.get(where, 0), n)
        for where, n in sorted(needed.items())
        if n > 0 and used.get(where, 0) + n > limit
    ]


# ------------------------------------------------------------------------------------------
# AWS: quota values, usage, the preflight
# ------------------------------------------------------------------------------------------
def quota_value(client: Any, quota: Quota) -> float:
    """The applied value, else AWS's default (GetServiceQuota raises NoSuchResourceException
    when the account has no applied value)."""
    try:
        out = client.get_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)
    except Exception as exc:
        if awsmod.error_code(exc) != NO_APPLIED_VALUE:
            raise
        out = client.get_aws_default_service_quota(ServiceCode=quota.service, QuotaCode=quota.code)
    return float(out["Quota"]["Value"])


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    if client.can_paginate(operation):
        return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page[key]]
    return list(getattr(client, operation)(**kwargs)[key])


def in_use(ec2: Any, quota: Quota, region: str) -> Counter[str]:
    """What counts against ``quota`` now, by region (or by AZ for a per-AZ quota)."""
    if quota.resource_type == EIP:
        return Counter(
            {
                region: len(
                    ec2.describe_addresses(Filters=[{"Name": "domain", "Values": ["vpc"]}])["Addresses"]
                )
            }
        )
    if quota.resource_type == VPC:
        return Counter({region: len(_pages(ec2, "describe_vpcs", "Vpcs"))})
    nats = _pages(
        ec2,
        "describe_nat_gateways",
        "NatGateways",
        Filters=[{"Name": "state", "Values": ["pending", "available"]}],
    )
    subnet_ids = sorted({n["SubnetId"] for n in nats})
    zones = {}
    if subnet_ids:
        zones = {
            s["SubnetId"]: s["AvailabilityZone"]
            for s in _pages(ec2, "describe_subnets", "Subnets", SubnetIds=subnet_ids)
        }
    return Counter(zones.get(n["SubnetId"], "unknown") for n in nats)


def first_zones(ec2: Any, count: int) -> list[str]:
    """The first ``count`` Availability Zones, in the order Fn::GetAZs lists them."""
    out = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])
    names = sorted(
        z["ZoneName"]
        for z in out["AvailabilityZones"]
        if z.get("ZoneType", "availability-zone") == "availability-zone"
    )
    return names[:count]


def live_counts(stacks: list[Any]) -> Counter[str]:
    """Resources of the quota types the live stacks hold (``protect.LiveStack.walk()``)."""
    types = {q.resource_type for q in QUOTAS}
    return Counter(
        r["ResourceType"]
        for s in stacks
        for r in s.resources
        if r.get("ResourceType") in types and r.get("PhysicalResourceId")
    )


def check(aws: awsmod.Aws, console: Any, *, want: Counter[str], live: Counter[str]) -> list[Shortage]:
    """Read quotas and usage for what the deploy adds; warn and skip a quota it cannot read."""
    more = added(want, live)
    found: list[Shortage] = []
    if not more:
        return found
    region = aws.region
    for quota in QUOTAS:
        n = more.get(quota.resource_type, 0)
        if not n:
            continue
        try:
            limit = quota_value(aws.client("service-quotas"), quota)
        except Exception as exc:
            console.warn(
                f"preflight: cannot read quota {quota.name!r} ({quota.service} {quota.code}): "
                f"{awsmod.error_message(exc)}; not checked (the deploy role needs servicequotas:GetServiceQuota "
                "and servicequotas:GetAWSDefaultServiceQuota)"
            )
            continue
        ec2 = aws.client("ec2")
        try:
            used = in_use(ec2, quota, region)
            if quota.per_az:
                # The new NAT gateways go to the AZs after the ones the live stack already uses.
                have = live.get(quota.resource_type, 0)
                zones = first_zones(ec2, have + n)[have:]
                needed = dict.fromkeys(zones, 1)
            else:
                needed = {region: n}
        except Exception as exc:
            console.warn(
                f"preflight: cannot count what uses quota {quota.name!r}: {awsmod.error_message(exc)}; "
                "not checked (the deploy role needs ec2:Describe*)"
            )
            continue
        found += shortages(quota=quota, limit=limit, needed=needed, used=used)
    return found


def refuse(found: list[Shortage]) -> None:
    """One error naming every quota that does not fit and the commands that ask for more."""
    if not found:
        return
    raise DeployFailed(
        "; ".join(s.message() for s in found) + "; nothing was created (no change set)",
        "ask for more (takes effect once approved), then deploy again:",
        *(f"  {s.command()}" for s in found),
        "or free what is unused (aws ec2 describe-addresses lists Elastic IPs); outside prod, "
        "NatGatewayLayout=single needs one Elastic IP instead of two",
    )


def root_values(entries: list[dict[str, Any]], stack: Mapping[str, Any] | None) -> dict[str, str]:
    """The root parameter values a change set deploys: those sent, and the live ones kept."""
    live = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters", []) or []}
    out: dict[str, str] = {}
    for e in entries:
        key = e["ParameterKey"]
        if e.get("UsePreviousValue"):
            if key in live:
                out[key] = str(live[key])
        else:
            out[key] = str(e.get("ParameterValue", ""))
    return out


def preflight(
    aws: awsmod.Aws,
    console: Any,
    *,
    tree: Any,
    entries: list[dict[str, Any]],
    stack: Mapping[str, Any] | None,
) -> None:
    """Before a create, or an update that adds addresses, VPCs or NAT gateways: refuse (exit 4)
    when a quota cannot hold them; nothing has been uploaded or created yet."""
    files = {t.path.name: t.data for t in tree.files.values()}
    want = wanted(files, tree.root.name, root_values(entries, stack), region=aws.region)
    if not want:
        return
    live: Counter[str] = Counter()
    if stack is not None:
        live = live_counts(list(protect.live_tree(aws.cfn, stack["StackId"]).walk()))
    found = check(aws, console, want=want, live=live)
    if added(want, live):
        console.say(
            "preflight: service quotas "
            + ("too small" if found else "hold this deploy")
            + " ("
            + ", ".join(f"{k.split('::')[-1]} +{v}" for k, v in sorted(added(want, live).items()))
            + ")"
        )
    refuse(found)
