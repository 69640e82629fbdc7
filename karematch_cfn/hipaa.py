"""docs/hipaa.md: the HIPAA control map, generated from the templates (``gendocs.GENERATED``).

For each technical safeguard of 45 CFR 164.312 and the two administrative ones the templates can
carry (164.308(a)(1)(ii)(D), 164.308(a)(7)), the resources that implement it and the properties
that do, read from the tree each environment creates (``resolved.resolve_tree``); a row lists
the environments it holds in, so a difference between dev and prod shows as two rows. Then the
scanner's suppressions with their reasons, the cost of the hardening, and what lies outside
CloudFormation. Pure: same templates, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from karematch_cfn import names, resolved, scan

Templates = Mapping[str, Mapping[str, Any]]
Extract = Callable[[dict[str, Any], dict[str, Any]], str | None]  # (properties, resource) -> text


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"Ref {value['Ref']}"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return "GetAtt " + ".".join(value["Fn::GetAtt"])
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _props(*paths: str) -> Extract:
    """``Path=value`` for each dotted property path that is set."""

    def extract(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
        out = []
        for path in paths:
            node: Any = p
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                out.append(f"{path}={_text(node)}")
        return "; ".join(out) or None

    return extract


def _policy_sids(key: str) -> Extract:
    def extract(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
        statements = p.get(key, {}).get("Statement", [])
        sids = [s.get("Sid", s.get("Effect", "")) for s in statements]
        return f"{key} statements: {', '.join(sids)}" if sids else None

    return extract


def _trust(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
    doc = p.get("AssumeRolePolicyDocument", {})
    out = []
    for st in doc.get("Statement", []):
        principal = st.get("Principal", {})
        who = principal.get("Service") or principal.get("Federated") or principal.get("AWS")
        who = who if isinstance(who, list) else [who]
        conditions = sorted({k for c in st.get("Condition", {}).values() for k in c})
        out.append(f"{', '.join(_text(w) for w in who)} ({', '.join(conditions) or 'no condition'})")
    managed = [_text(a).rsplit("/", 1)[-1] for a in p.get("ManagedPolicyArns", [])]
    text = "trusted by " + "; ".join(out)
    return text + (f"; managed: {', '.join(managed)}" if managed else "")


def _container(*keys: str) -> Extract:
    def extract(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
        out = []
        for c in p.get("ContainerDefinitions", []):
            for key in keys:
                if key in c:
                    out.append(f"{c.get('Name')}.{key}={_text(c[key])}")
        return "; ".join(out) or None

    return extract


def _parameters(*keys: str) -> Extract:
    def extract(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
        given = p.get("Parameters", {})
        out = [f"{k}={given[k]}" for k in keys if k in given]
        return "; ".join(out) or None

    return extract


def _attributes(*keys: str) -> Extract:
    def extract(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
        attrs = {a["Key"]: a["Value"] for a in p.get("LoadBalancerAttributes", [])}
        out = [f"{k}={_text(attrs[k])}" for k in keys if k in attrs]
        return "; ".join(out) or None

    return extract


def _policies(_p: dict[str, Any], r: dict[str, Any]) -> str | None:
    if "DeletionPolicy" not in r:
        return None
    return f"DeletionPolicy={r['DeletionPolicy']}; UpdateReplacePolicy={r.get('UpdateReplacePolicy')}"


def _web_acl(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
    rules = [rule["Name"] for rule in p.get("Rules", [])]
    return f"Scope={p.get('Scope')}; rules: {', '.join(rules)}"


def _alarm(p: dict[str, Any], _r: dict[str, Any]) -> str | None:
    return (
        f"{_text(p.get('MetricName'))} {p.get('ComparisonOperator')} {p.get('Threshold')}; "
        f"TreatMissingData={p.get('TreatMissingData')}; "
        f"actions: alarm{', OK' if p.get('OKActions') else ''}"
        f"{', insufficient data' if p.get('InsufficientDataActions') else ''}"
    )


@dataclass(frozen=True)
class Facet:
    """One way a resource type implements a safeguard: what to read from it."""

    rtype: str
    extract: Extract


@dataclass(frozen=True)
class Safeguard:
    citation: str
    title: str
    summary: str
    facets: tuple[Facet, ...]


ENCRYPTION_AT_REST = (
    Facet("AWS::KMS::Key", _props("EnableKeyRotation")),
    Facet("AWS::KMS::Key", _policy_sids("KeyPolicy")),
    Facet("AWS::SecretsManager::Secret", _props("KmsKeyId")),
    Facet("AWS::RDS::DBInstance", _props("StorageEncrypted", "KmsKeyId", "PerformanceInsightsKMSKeyId")),
    Facet(
        "AWS::S3::Bucket",
        _props("BucketEncryption.ServerSideEncryptionConfiguration"),
    ),
    Facet("AWS::Logs::LogGroup", _props("KmsKeyId")),
    Facet("AWS::ECR::Repository", _props("EncryptionConfiguration")),
    Facet("AWS::Backup::BackupVault", _props("EncryptionKeyArn")),
    Facet("AWS::SNS::Topic", _props("KmsMasterKeyId")),
    Facet("AWS::CloudTrail::Trail", _props("KMSKeyId")),
)

SAFEGUARDS = (
    Safeguard(
        "164.312(a)",
        "Access control",
        "Only the roles and services that need a resource reach it; PHI at rest is encrypted "
        "under customer-managed keys (addressable (a)(2)(iv)).",
        (
            Facet("AWS::IAM::Role", _trust),
            Facet("AWS::S3::Bucket", _props("PublicAccessBlockConfiguration", "OwnershipControls")),
            Facet("AWS::S3::BucketPolicy", _policy_sids("PolicyDocument")),
            Facet("AWS::RDS::DBInstance", _props("PubliclyAccessible", "EnableIAMDatabaseAuthentication")),
            Facet("AWS::EC2::SecurityGroup", _props("SecurityGroupIngress", "SecurityGroupEgress")),
            Facet(
                "AWS::EC2::SecurityGroupIngress", _props("IpProtocol", "FromPort", "SourceSecurityGroupId")
            ),
            Facet(
                "AWS::ECS::TaskDefinition", _container("User", "ReadonlyRootFilesystem", "LinuxParameters")
            ),
            Facet("AWS::ECS::Service", _props("NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp")),
            *ENCRYPTION_AT_REST,
        ),
    ),
    Safeguard(
        "164.312(b)",
        "Audit controls",
        "Activity in the systems that hold PHI is recorded and kept: API calls, network flows, "
        "requests, database sessions and audited statements.",
        (
            Facet(
                "AWS::CloudTrail::Trail",
                _props("IsMultiRegionTrail", "IncludeGlobalServiceEvents", "CloudWatchLogsLogGroupArn"),
            ),
            Facet("AWS::EC2::FlowLog", _props("TrafficType", "MaxAggregationInterval")),
            Facet("AWS::Logs::LogGroup", _props("LogGroupName", "RetentionInDays")),
            Facet("AWS::S3::Bucket", _props("LoggingConfiguration")),
            Facet("AWS::ElasticLoadBalancingV2::LoadBalancer", _attributes("access_logs.s3.enabled")),
            Facet("AWS::Logs::Delivery", _props("DeliverySourceName")),
            Facet("AWS::WAFv2::LoggingConfiguration", _props("LogDestinationConfigs", "RedactedFields")),
            Facet(
                "AWS::RDS::DBParameterGroup",
                _parameters(
                    "log_connections",
                    "log_disconnections",
                    "shared_preload_libraries",
                    "pgaudit.role",
                    "pgaudit.log",
                ),
            ),
            Facet("AWS::RDS::DBInstance", _props("EnableCloudwatchLogsExports", "MonitoringInterval")),
        ),
    ),
    Safeguard(
        "164.312(c)",
        "Integrity",
        "PHI and the evidence about it cannot be altered or destroyed unnoticed: validated log "
        "files, versioned buckets, data-keeping deletion policies, filtered requests.",
        (
            Facet("AWS::CloudTrail::Trail", _props("EnableLogFileValidation")),
            Facet("AWS::S3::Bucket", _props("VersioningConfiguration.Status")),
            Facet("AWS::RDS::DBInstance", _policies),
            Facet("AWS::S3::Bucket", _policies),
            Facet("AWS::SecretsManager::Secret", _policies),
            Facet("AWS::KMS::Key", _policies),
            Facet("AWS::Backup::BackupVault", _policies),
            Facet("AWS::WAFv2::WebACL", _web_acl),
            Facet("AWS::ECR::Repository", _props("ImageScanningConfiguration.ScanOnPush")),
        ),
    ),
    Safeguard(
        "164.312(d)",
        "Person or entity authentication",
        "Every principal that acts is authenticated: services through role trust with "
        "confused-deputy conditions, CI through GitHub's OIDC provider, database users through "
        "generated credentials or IAM tokens.",
        (
            Facet("AWS::IAM::Role", _trust),
            Facet("AWS::IAM::OIDCProvider", _props("Url", "ClientIdList")),
            Facet("AWS::SecretsManager::Secret", _props("GenerateSecretString.PasswordLength")),
            Facet("AWS::RDS::DBInstance", _props("EnableIAMDatabaseAuthentication")),
        ),
    ),
    Safeguard(
        "164.312(e)",
        "Transmission security",
        "PHI in transit is encrypted with TLS 1.2 or later: viewer to CloudFront, client to the "
        "load balancer, application to the database; buckets refuse plain HTTP.",
        (
            Facet("AWS::ElasticLoadBalancingV2::Listener", _props("Protocol", "SslPolicy")),
            Facet(
                "AWS::CloudFront::Distribution",
                _props(
                    "DistributionConfig.ViewerCertificate",
                    "DistributionConfig.DefaultCacheBehavior.ViewerProtocolPolicy",
                ),
            ),
            Facet("AWS::RDS::DBParameterGroup", _parameters("rds.force_ssl")),
            Facet("AWS::S3::BucketPolicy", _policy_sids("PolicyDocument")),
        ),
    ),
    Safeguard(
        "164.308(a)(1)(ii)(D)",
        "Information system activity review",
        "Records of activity are reviewed: alarms page the alarm topic, metric filters turn log "
        "lines into security and application metrics, one dashboard per environment.",
        (
            Facet("AWS::CloudWatch::Alarm", _alarm),
            Facet("AWS::Logs::MetricFilter", _props("FilterPattern")),
            Facet("AWS::SNS::Topic", _props("TopicName")),
            Facet("AWS::CloudWatch::Dashboard", _props("DashboardName")),
        ),
    ),
    Safeguard(
        "164.308(a)(7)",
        "Contingency plan",
        "Data backup, disaster recovery and emergency mode: automated backups with point-in-time "
        "recovery, daily AWS Backup recovery points, final snapshots, Multi-AZ in prod, two AZs.",
        (
            Facet(
                "AWS::RDS::DBInstance",
                _props(
                    "BackupRetentionPeriod",
                    "PreferredBackupWindow",
                    "MultiAZ",
                    "DeletionProtection",
                    "DeleteAutomatedBackups",
                ),
            ),
            Facet("AWS::Backup::BackupPlan", _props("BackupPlan.BackupPlanRule")),
            Facet("AWS::Backup::BackupSelection", _props("BackupSelection.Resources")),
            Facet("AWS::ECS::Service", _props("DeploymentConfiguration.DeploymentCircuitBreaker")),
            Facet("AWS::EC2::NatGateway", _props("SubnetId")),
        ),
    ),
)

OUTSIDE_CLOUDFORMATION = (
    "Sign the AWS Business Associate Addendum (AWS Artifact) for the account before any PHI is stored, "
    "and use only HIPAA-eligible services for PHI.",
    "MFA for every console user and the root user; no root access keys; named users or SSO only.",
    "Access reviews: who can assume the deploy, execution and task roles, and who holds console "
    "access, reviewed on a schedule and when people leave.",
    "Penetration tests and vulnerability management of the application (AWS's penetration-testing "
    "policy applies) and acting on ECR scan findings.",
    "Workforce security awareness and HIPAA training; sanctions policy; incident response plan.",
    "Risk analysis and risk management (164.308(a)(1)(ii)(A)-(B)), documented and repeated.",
    "pgaudit's in-database steps (docs/runbooks/pgaudit.md) and a least-privilege application database user.",
    "Subscribe a monitored address to each environment's alarm topic (AlarmEmail) and review "
    "the dashboard and the security alarms.",
    "Test restores: a database restore from an AWS Backup recovery point and from a snapshot, "
    "on a schedule, with the time it took.",
    "Retention of the account-wide RDSOSMetrics log group (Enhanced Monitoring) set by hand.",
    "Keep AWS Config's 'Operational Best Practices for HIPAA Security' conformance pack (or "
    "Security Hub) running in the account for what lies outside these templates.",
)

# Cost of the hardening per environment and month: us-east-1 list prices typed by hand from AWS's
# pricing pages (KMS, WAF, Backup, CloudWatch, S3) in December 2026. Usage-based items depend on
# traffic: the unit price is given.
HARDENING_COST = (
    ("KMS customer-managed key (DataKey)", "$1.00 per key-month", "1 per environment: $1.00"),
    (
        "KMS requests",
        "$0.03 per 10,000",
        "usage-based; the frontend bucket's bucket key keeps S3's share small",
    ),
    ("WAF web ACLs", "$5.00 per ACL-month", "2 per environment (ALB, CloudFront): $10.00"),
    ("WAF rules", "$1.00 per rule-month", "4 per ACL, 8 per environment: $8.00"),
    ("WAF requests", "$0.60 per million", "usage-based"),
    ("AWS Backup (RDS snapshots)", "$0.095 per GB-month", "about 20 GB x 35 days of changes: a few $"),
    ("RDS Enhanced Monitoring", "CloudWatch Logs ingestion", "about $1-3 per instance"),
    (
        "S3 server access logs and CloudFront logs v2",
        "S3 storage, $0.25 per GB delivered (v2)",
        "usage-based",
    ),
)


def _rows(tree: Mapping[str, Mapping[str, Any]], safeguard: Safeguard) -> dict[tuple[str, str, str], str]:
    rows: dict[tuple[str, str, str], list[str]] = {}
    for filename, template in sorted(tree.items()):
        for logical_id, resource in sorted(template.get("Resources", {}).items()):
            for facet in safeguard.facets:
                if resource.get("Type") != facet.rtype:
                    continue
                text = facet.extract(resource.get("Properties", {}), resource)
                if text:
                    rows.setdefault((filename, logical_id, facet.rtype), []).append(text)
    return {k: "; ".join(dict.fromkeys(v)) for k, v in rows.items()}


def _environments(envs: list[str]) -> str:
    return "all" if envs == list(names.ENVIRONMENTS) else ", ".join(envs)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _safeguard_section(
    trees: Mapping[str, Mapping[str, Mapping[str, Any]]], safeguard: Safeguard
) -> list[str]:
    by_row: dict[tuple[str, str, str, str], list[str]] = {}
    for env in names.ENVIRONMENTS:
        for key, text in _rows(trees[env], safeguard).items():
            by_row.setdefault((*key, text), []).append(env)
    if scan.BOOTSTRAP_DIR in trees:
        for key, text in _rows(trees[scan.BOOTSTRAP_DIR], safeguard).items():
            by_row.setdefault((*key, text), []).append("bootstrap (once per environment)")
    lines = [
        f"## {safeguard.citation} {safeguard.title}",
        "",
        safeguard.summary,
        "",
        "| stack | logical id | type | properties | environments |",
        "|---|---|---|---|---|",
    ]
    for (filename, logical_id, rtype, text), envs in sorted(by_row.items()):
        where = envs[0] if envs[0].startswith("bootstrap") else _environments(envs)
        lines.append(f"| `{filename}` | `{logical_id}` | `{rtype}` | {_cell(text)} | {where} |")
    return [*lines, ""]


def _suppressions_section(trees: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    found: dict[tuple[str, str, str, str, str], list[str]] = {}
    for scope, skips in scan.all_suppressions(trees).items():
        for s in skips:
            found.setdefault((s.check_id, s.file, s.logical_id, s.resource_type, s.reason), []).append(scope)
    lines = [
        "## Suppressed scanner checks",
        "",
        "checkov runs on every environment's resolved tree and on `bootstrap.yaml` in `make test` "
        "(zero failed checks). These checks are skipped on the one resource they concern, with "
        "the reason written there (`Metadata.checkov.skip`); a skip listed for some environments "
        "only is judged in the others.",
        "",
        "| check | stack | logical id | type | reason | skipped in |",
        "|---|---|---|---|---|---|",
    ]
    for (check, filename, logical_id, rtype, reason), scopes in sorted(found.items()):
        envs = [s for s in scopes if s in names.ENVIRONMENTS]
        where = _environments(envs) if envs else "bootstrap"
        lines.append(f"| {check} | `{filename}` | `{logical_id}` | `{rtype}` | {_cell(reason)} | {where} |")
    return [*lines, ""]


def control_map(templates: Templates) -> str:
    """The Markdown of docs/hipaa.md."""
    trees = scan.trees(templates)
    lines = [
        "# HIPAA control map",
        "",
        "What the templates do for each HIPAA Security Rule safeguard they can carry, read from the "
        "tree each environment creates (`karematch_cfn.resolved.resolve_tree`: Conditions "
        "evaluated; prod with a certificate and a custom domain, as a real prod deploy has). "
        f"Values such as `{resolved.wired('X')}` stand for an input another stack's Output feeds. "
        "A resource that differs between environments has one row per variant.",
        "",
    ]
    for safeguard in SAFEGUARDS:
        lines += _safeguard_section(trees, safeguard)
    lines += _suppressions_section(trees)
    lines += [
        "## Cost of the hardening",
        "",
        "Per environment and month: us-east-1 list prices typed by hand from AWS's pricing pages "
        "(December 2026); re-check them there before relying on a total.",
        "",
        "| item | price | per environment |",
        "|---|---|---|",
        *(f"| {item} | {price} | {total} |" for item, price, total in HARDENING_COST),
        "",
        "Fixed part: about $19 per environment (one key, two web ACLs with four rules each), "
        "$57 for dev, staging and prod together, plus usage.",
        "",
        "## Outside CloudFormation",
        "",
        "The templates cannot do these; the organisation must, and keep the evidence:",
        "",
        *(f"- [ ] {item}" for item in OUTSIDE_CLOUDFORMATION),
        "",
    ]
    return "\n".join(lines)
