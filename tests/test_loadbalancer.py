"""Load balancer stack (spec section 4): target group, listeners, access-log bucket, outputs."""

from __future__ import annotations

import re

import pytest

from karematch_cfn import names
from tests import helpers, spec

FILE = "loadbalancer.yaml"
SECTION = "4. Load Balancing"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
SAMPLE_TG_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/karematch-dev-tg/73e2d6bc24d8a067"
)

TG = "AWS::ElasticLoadBalancingV2::TargetGroup"
LB = "AWS::ElasticLoadBalancingV2::LoadBalancer"
LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
BUCKET = "AWS::S3::Bucket"
BUCKET_POLICY = "AWS::S3::BucketPolicy"


def _t() -> dict:
    return helpers.template(FILE)


_logical_id = helpers.logical_id_of_type


def _attributes(items: list[dict]) -> dict:
    return {a["Key"]: a["Value"] for a in items}


def _env_name(spec_name: str) -> str:
    """The spec's physical name with the environment inserted (karematch-tg -> karematch-${env}-tg)."""
    assert spec_name.startswith("karematch-"), spec_name
    return spec_name.replace("karematch-", "karematch-${EnvironmentName}-", 1)


def _listeners_by_port(t: dict) -> dict[int, dict]:
    return {int(helpers.props(r)["Port"]): r for r in helpers.resources_of_type(t, LISTENER).values()}


# --------------------------------------------------------------------------------------------
# Target group
# --------------------------------------------------------------------------------------------


def test_target_group_protocol_port_and_target_type_follow_the_spec():
    tg = helpers.props(helpers.one_of_type(_t(), TG))
    assert tg["Protocol"] == spec.find(r"^- Protocol: (\w+)", SECTION)
    assert int(tg["Port"]) == spec.number(r"^- Port: (\d+) \(container port\)", SECTION)
    assert tg["TargetType"].lower() == spec.find(r"^- Target type: (\w+) \(for Fargate\)", SECTION).lower()
    assert tg["VpcId"] == {"Ref": names.VPC_ID}
    assert helpers.sub_text(tg["Name"]) == _env_name(spec.find(r"\*\*Target Group\*\*: `([^`]+)`", SECTION))


def test_target_group_health_check_follows_the_spec():
    tg = helpers.props(helpers.one_of_type(_t(), TG))
    m = re.search(r"Health check: `GET (\S+)` every (\d+)s", spec.section(SECTION))
    assert m, "spec section 4 lost its health check line"
    assert tg["HealthCheckPath"] == m.group(1)
    assert tg["HealthCheckIntervalSeconds"] == int(m.group(2))
    assert tg["HealthCheckProtocol"] == "HTTP"
    assert tg["HealthyThresholdCount"] == spec.number(r"Healthy threshold: (\d+) consecutive", SECTION)
    assert tg["UnhealthyThresholdCount"] == spec.number(r"Unhealthy threshold: (\d+) consecutive", SECTION)
    # A check must time out before the next one starts.
    assert 0 < tg["HealthCheckTimeoutSeconds"] < tg["HealthCheckIntervalSeconds"]
    assert tg["Matcher"]["HttpCode"] == "200"


def test_target_group_stickiness_and_deregistration_delay_follow_the_spec():
    attrs = _attributes(helpers.props(helpers.one_of_type(_t(), TG))["TargetGroupAttributes"])
    hours = spec.number(r"Stickiness: Enabled \((\d+)-hour cookie\)", SECTION)
    assert attrs["stickiness.enabled"] == "true"
    assert attrs["stickiness.type"] == "lb_cookie"
    assert int(attrs["stickiness.lb_cookie.duration_seconds"]) == hours * 3600
    delay = spec.number(r"Deregistration delay: (\d+) seconds", SECTION)
    assert int(attrs["deregistration_delay.timeout_seconds"]) == delay


# --------------------------------------------------------------------------------------------
# Load balancer
# --------------------------------------------------------------------------------------------


def test_load_balancer_is_internet_facing_in_the_public_subnets_behind_the_alb_group():
    t = _t()
    lb = helpers.props(helpers.one_of_type(t, LB))
    assert lb["Scheme"] == spec.find(r"^- Scheme: (\S+)", SECTION).lower()
    assert lb["Type"] == "application"
    assert lb["Subnets"] == {"Ref": names.PUBLIC_SUBNET_IDS}
    assert lb["SecurityGroups"] == [{"Ref": names.ALB_SECURITY_GROUP_ID}]
    spec_name = spec.find(r"\*\*Application Load Balancer\*\*: `([^`]+)`", SECTION)
    assert helpers.sub_text(lb["Name"]) == _env_name(spec_name)
    attrs = _attributes(lb["LoadBalancerAttributes"])
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"


@pytest.mark.parametrize("env,expected", [("prod", "true"), ("staging", "false"), ("dev", "false")])
def test_deletion_protection_only_in_prod(env, expected):
    t = helpers.for_env(FILE, env)
    attrs = _attributes(helpers.props(helpers.one_of_type(t, LB))["LoadBalancerAttributes"])
    assert attrs["deletion_protection.enabled"] == expected


def test_access_logs_go_to_the_log_bucket_and_wait_for_its_policy():
    t = _t()
    lb_resource = helpers.one_of_type(t, LB)
    attrs = _attributes(helpers.props(lb_resource)["LoadBalancerAttributes"])
    assert "Access Logs**: Enabled" in spec.section(SECTION)
    assert attrs["access_logs.s3.enabled"] == "true"
    assert attrs["access_logs.s3.bucket"] == {"Ref": _logical_id(t, BUCKET)}
    assert attrs["access_logs.s3.prefix"] and "AWSLogs" not in attrs["access_logs.s3.prefix"]
    # ELB test-writes to the bucket on create: without the grant in place the create fails.
    depends = lb_resource.get("DependsOn", [])
    depends = [depends] if isinstance(depends, str) else depends
    assert _logical_id(t, BUCKET_POLICY) in depends


# --------------------------------------------------------------------------------------------
# Listeners, with and without a certificate
# --------------------------------------------------------------------------------------------


def _tg_ref(t: dict) -> dict:
    return {"Ref": _logical_id(t, TG)}


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_with_a_certificate_https_forwards_and_http_redirects_with_301(env):
    t = helpers.for_env(FILE, env, CertificateArn=CERT)
    https_port = spec.number(r"\*\*HTTPS \((\d+)\)\*\*", SECTION)
    http_port = spec.number(r"\*\*HTTP \((\d+)\)\*\*", SECTION)
    listeners = _listeners_by_port(t)
    assert set(listeners) == {https_port, http_port}

    https = helpers.props(listeners[https_port])
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": CERT}]
    assert https["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": _tg_ref(t)}]

    http = helpers.props(listeners[http_port])
    assert http["Protocol"] == "HTTP"
    status = spec.find(r"If certificate exists: (\d+) redirect to HTTPS", SECTION)
    (action,) = http["DefaultActions"]
    assert action["Type"] == "redirect"
    redirect = action["RedirectConfig"]
    assert redirect["Protocol"] == "HTTPS"
    assert int(redirect["Port"]) == https_port
    assert redirect["StatusCode"] == f"HTTP_{status}"


def test_without_a_certificate_there_is_no_https_and_http_forwards():
    t = helpers.for_env(FILE, "dev", CertificateArn="")
    listeners = _listeners_by_port(t)
    http_port = spec.number(r"\*\*HTTP \((\d+)\)\*\*", SECTION)
    assert set(listeners) == {http_port}
    http = helpers.props(listeners[http_port])
    assert http["Protocol"] == "HTTP"
    assert http["DefaultActions"] == [{"Type": "forward", "TargetGroupArn": _tg_ref(t)}]


# ELB security policies whose lowest protocol is TLS 1.2 or 1.3 (ELB user guide, "Security
# policies for your Application Load Balancer"); the TLS13-1-0/1-1 and 2016-08 ones allow older.
TLS12_PLUS_POLICY = re.compile(
    r"ELBSecurityPolicy-(TLS-1-2(-Ext)?-\d{4}-\d{2}|TLS13-1-[23](-[A-Za-z0-9]+)*-\d{4}-\d{2}"
    r"|FS-1-2(-Res)?-\d{4}-\d{2})"
)


def test_https_uses_the_spec_policy_or_a_recorded_tls12_plus_one():
    t = helpers.for_env(FILE, "prod", CertificateArn=CERT)
    policy = helpers.props(_listeners_by_port(t)[spec.number(r"\*\*HTTPS \((\d+)\)\*\*", SECTION)])[
        "SslPolicy"
    ]
    spec_policy = spec.find(r"SSL Policy: `([^`]+)`", SECTION)
    assert TLS12_PLUS_POLICY.fullmatch(spec_policy), "the spec's own policy is TLS 1.2+"
    if policy != spec_policy:
        assert TLS12_PLUS_POLICY.fullmatch(policy), f"{policy} allows protocols older than TLS 1.2"
        decisions = (helpers.REPO / "docs" / "decisions.md").read_text(encoding="utf-8")
        lb_section = decisions.split("## Load balancer", 1)[1].split("\n## ", 1)[0]
        assert policy in lb_section and spec_policy in lb_section, "SSL policy choice not recorded"


# --------------------------------------------------------------------------------------------
# Access-log bucket
# --------------------------------------------------------------------------------------------


def test_log_bucket_is_sse_s3_private_owner_enforced_and_retained():
    bucket = helpers.one_of_type(_t(), BUCKET)
    p = helpers.props(bucket)
    (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    # ALB access-log delivery supports SSE-S3 only (a KMS key would silently stop the logs).
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    block = p["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert helpers.sub_text(p["BucketName"]) == names.ALB_LOG_BUCKET
    assert "${AWS::AccountId}" in helpers.sub_text(p["BucketName"])  # globally unique
    assert bucket["DeletionPolicy"] != "Delete" and bucket["UpdateReplacePolicy"] != "Delete"


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_log_objects_expire_after_the_environment_log_retention(env):
    t = helpers.for_env(FILE, env)
    days = helpers.env_values(env)[names.LOG_RETENTION_DAYS]
    rules = helpers.props(helpers.one_of_type(t, BUCKET))["LifecycleConfiguration"]["Rules"]
    enabled = [r for r in rules if r["Status"] == "Enabled"]
    assert any(str(r.get("ExpirationInDays")) == days for r in enabled)
    prefix = _attributes(helpers.props(helpers.one_of_type(t, LB))["LoadBalancerAttributes"])[
        "access_logs.s3.prefix"
    ]
    for r in enabled:  # the rule covers the objects the ALB writes
        assert f"{prefix}/".startswith(r.get("Prefix", "")) or r.get("Prefix", "").startswith(prefix)
    versioned = helpers.props(helpers.one_of_type(t, BUCKET)).get("VersioningConfiguration", {})
    if versioned.get("Status") == "Enabled":
        assert any(
            str(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")) == days for r in enabled
        )


def _statements(t: dict) -> list[dict]:
    policy = helpers.props(helpers.one_of_type(t, BUCKET_POLICY))
    assert policy["Bucket"] == {"Ref": _logical_id(t, BUCKET)}
    return policy["PolicyDocument"]["Statement"]


def test_log_bucket_refuses_anything_but_tls():
    bucket_arn = f"arn:${{AWS::Partition}}:s3:::{names.ALB_LOG_BUCKET}"
    deny = [s for s in _statements(_t()) if s["Effect"] == "Deny"]
    assert len(deny) == 1
    (s,) = deny
    assert s["Principal"] == "*"
    assert s["Action"] == ["s3:*"]
    assert s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {helpers.sub_text(r) for r in s["Resource"]} == {bucket_arn, f"{bucket_arn}/*"}


def _region_principal(t: dict, statement: dict, region: str) -> dict:
    """The grant's Principal as CloudFormation resolves it in ``region``: the condition is a
    lookup of the region in the mapping compared with a 'no ELB account' marker."""
    cond_name, yes, no = statement["Principal"]["Fn::If"]
    (equals,) = t["Conditions"][cond_name]["Fn::Not"]
    lookup, marker = equals["Fn::Equals"]
    map_name, key, attr = lookup["Fn::FindInMap"]
    assert key == {"Ref": "AWS::Region"}
    row = t["Mappings"][map_name].get(region)
    assert row is not None, f"{region} is missing from {map_name}: the template fails there"
    if row[attr] == marker:
        return no
    assert yes == {"AWS": [lookup]}
    return {"AWS": [row[attr]]}


@pytest.mark.parametrize(
    "region,principal",
    [
        # ELB user guide, step 2: regions before August 2022 grant the region's ELB account...
        ("us-east-1", {"AWS": ["arn:aws:iam::127311923021:root"]}),
        ("us-east-2", {"AWS": ["arn:aws:iam::033677994240:root"]}),
        ("eu-central-1", {"AWS": ["arn:aws:iam::054676820928:root"]}),
        ("eu-west-3", {"AWS": ["arn:aws:iam::009996457667:root"]}),
        ("us-gov-west-1", {"AWS": ["arn:aws-us-gov:iam::048591011584:root"]}),
        # ... newer regions the log-delivery service principal.
        ("eu-central-2", {"Service": ["logdelivery.elasticloadbalancing.amazonaws.com"]}),
        ("ca-west-1", {"Service": ["logdelivery.elasticloadbalancing.amazonaws.com"]}),
    ],
)
def test_elb_may_write_access_logs_in_every_region(region, principal):
    t = _t()
    prefix = _attributes(helpers.props(helpers.one_of_type(t, LB))["LoadBalancerAttributes"])[
        "access_logs.s3.prefix"
    ]
    (grant,) = [s for s in _statements(t) if s["Effect"] == "Allow"]
    assert grant["Action"] == ["s3:PutObject"]
    (resource,) = grant["Resource"]
    assert helpers.sub_text(resource) == (
        f"arn:${{AWS::Partition}}:s3:::{names.ALB_LOG_BUCKET}/{prefix}/AWSLogs/${{AWS::AccountId}}/*"
    )
    assert _region_principal(t, grant, region) == principal


def test_every_elb_account_in_the_mapping_is_a_well_formed_root_arn():
    (mapping,) = _t()["Mappings"].values()
    accounts = [row for row in mapping.values() if row != {"AccountPrincipal": "none"}]
    assert len(accounts) == 24  # the documented pre-August-2022 list
    for region, row in mapping.items():
        value = next(iter(row.values()))
        partition = "aws-us-gov" if region.startswith("us-gov-") else "aws"
        assert value == "none" or re.fullmatch(rf"arn:{partition}:iam::\d{{12}}:root", value), region


def test_no_all_digit_string_with_a_leading_zero_is_left_unquoted():
    # YAML 1.2 readers (and `aws cloudformation package`) turn 033677994240 into a number.
    text = helpers.rendered_text()[FILE]
    assert not re.search(r"(:|-)\s+0\d+\s*$", text, flags=re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def _evaluate_select_split(expr: dict, ref_values: dict[str, str]) -> str:
    index, inner = expr["Fn::Select"]
    delimiter, source = inner["Fn::Split"]
    return ref_values[source["Ref"]].split(delimiter)[int(index)]


def test_outputs_feed_the_service_and_the_alarms():
    t = _t()
    tg_id, lb_id = _logical_id(t, TG), _logical_id(t, LB)
    out = {k: v["Value"] for k, v in t["Outputs"].items()}
    assert out[names.TARGET_GROUP_ARN] == {"Ref": tg_id}
    assert out[names.LOAD_BALANCER_DNS_NAME] == {"Fn::GetAtt": [lb_id, "DNSName"]}
    assert out[names.LOAD_BALANCER_FULL_NAME] == {"Fn::GetAtt": [lb_id, "LoadBalancerFullName"]}
    # CloudWatch's TargetGroup dimension is the ARN suffix "targetgroup/<name>/<id>".
    full = _evaluate_select_split(out[names.TARGET_GROUP_FULL_NAME], {tg_id: SAMPLE_TG_ARN})
    assert full == "targetgroup/karematch-dev-tg/73e2d6bc24d8a067"


def _getatt_targets(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Fn::GetAtt":
                found.append(v[0] if isinstance(v, list) else v.split(".")[0])
            found += _getatt_targets(v)
    elif isinstance(node, list):
        for v in node:
            found += _getatt_targets(v)
    return found


def test_nothing_uses_getatt_on_a_target_group_anywhere():
    # GetAtt on a target group breaks moto's stack outputs: ARN + Select/Split works on both.
    for filename in helpers.rendered_text():
        t = helpers.template(filename)
        tgs = set(helpers.resources_of_type(t, TG))
        assert not tgs & set(_getatt_targets(t)), f"{filename}: GetAtt on a target group"


def test_both_web_acls_log_requests_without_credentials():
    for filename, acl_id in (("loadbalancer.yaml", "LoadBalancerWebAcl"), ("frontend.yaml", "EdgeWebAcl")):
        t = helpers.template(filename)
        (logging,) = helpers.resources_of_type(t, "AWS::WAFv2::LoggingConfiguration").values()
        p = helpers.props(logging)
        assert p["ResourceArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
        assert p["LogDestinationConfigs"] == [{"Ref": "WafLogBucketArn"}]
        redacted = {f["SingleHeader"]["Name"].lower() for f in p["RedactedFields"]}
        assert {"authorization", "cookie"} <= redacted
    foundation = helpers.template("foundation.yaml")
    name = helpers.sub_text(helpers.props(foundation["Resources"]["WafLogBucket"])["BucketName"])
    assert name.startswith("aws-waf-logs-")  # AWS WAF accepts no other destination name
