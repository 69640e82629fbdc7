"""audit.yaml takes the spec's HIPAA steps a template can take (Compliance, "Required Additional
Steps"): CloudTrail for API audit logging (multi-region, validated, encrypted, delivered to
CloudWatch Logs), log retention, and alerting on security events. The root creates it only
when EnableCloudTrail is "true"."""

from __future__ import annotations

from typing import Any

import pytest

from tests import helpers, spec

# Data kept on stack deletion; a rolled-back first create leaves no named leftover.
KEEP = ("Retain", "RetainExceptOnCreate")
FILE = "audit.yaml"
ROOT = "karematch.yaml"
STEPS = "Compliance"
ALARM_TOPIC = {"Ref": "AlarmTopicArn"}


@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return helpers.template(FILE)


def trail(t) -> dict[str, Any]:
    return helpers.one_of_type(t, "AWS::CloudTrail::Trail")


def resource(t, ref_or_getatt: dict[str, Any], rtype: str) -> dict[str, Any]:
    logical_id = ref_or_getatt.get("Ref") or ref_or_getatt["Fn::GetAtt"][0]
    res = t["Resources"][logical_id]
    assert res["Type"] == rtype
    return res


def test_the_spec_asks_for_cloudtrail_retention_and_security_alerting():
    assert spec.find(r"\d\. (Enable AWS CloudTrail) for API audit logging", STEPS)
    assert spec.find(r"\d\. Implement log retention for (\d+) years", STEPS)
    assert spec.find(r"\d\. (Set up monitoring and alerting for security events)", STEPS)


# ---------------------------------------------------------------------------------------------
# The trail
# ---------------------------------------------------------------------------------------------
def test_trail_is_multi_region_logging_with_global_events_and_log_file_validation(t):
    p = helpers.props(trail(t))
    assert p["IsLogging"] is True
    assert p["IsMultiRegionTrail"] is True
    assert p["IncludeGlobalServiceEvents"] is True  # IAM and console sign-ins are global
    assert p["EnableLogFileValidation"] is True
    assert helpers.sub_text(p["TrailName"]) == "karematch-${EnvironmentName}-trail"


def test_trail_log_files_are_encrypted_with_a_rotated_retained_key_cloudtrail_may_use(t):
    key = resource(t, helpers.props(trail(t))["KMSKeyId"], "AWS::KMS::Key")
    assert key["DeletionPolicy"] in KEEP and key["UpdateReplacePolicy"] == "Retain"
    kp = helpers.props(key)
    assert kp["EnableKeyRotation"] is True
    (encrypt,) = [
        s
        for s in kp["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": ["cloudtrail.amazonaws.com"]}
        and "kms:GenerateDataKey*" in s["Action"]
    ]
    source = helpers.sub_text(encrypt["Condition"]["StringEquals"]["aws:SourceArn"])
    assert source.endswith(":trail/karematch-${EnvironmentName}-trail")


def test_trail_bucket_is_private_versioned_encrypted_and_kept(t):
    res = resource(t, helpers.props(trail(t))["S3BucketName"], "AWS::S3::Bucket")
    assert res["DeletionPolicy"] in KEEP and res["UpdateReplacePolicy"] == "Retain"
    b = helpers.props(res)
    assert helpers.sub_text(b["BucketName"]) == "karematch-cloudtrail-${EnvironmentName}-${AWS::AccountId}"
    (rule,) = b["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert b["VersioningConfiguration"]["Status"] == "Enabled"
    assert set(b["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(b["PublicAccessBlockConfiguration"]) == 4
    assert b["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_policy_admits_only_this_trail_over_tls_and_the_trail_waits_for_it(t):
    policy_id, policy = next(iter(helpers.resources_of_type(t, "AWS::S3::BucketPolicy").items()))
    assert policy_id in trail(t)["DependsOn"]
    statements = helpers.props(policy)["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allows = {s["Action"][0]: s for s in statements if s["Effect"] == "Allow"}
    assert set(allows) == {"s3:GetBucketAcl", "s3:PutObject"}
    for st in allows.values():
        assert st["Principal"] == {"Service": ["cloudtrail.amazonaws.com"]}
        source = helpers.sub_text(st["Condition"]["StringEquals"]["aws:SourceArn"])
        assert source.endswith(":trail/karematch-${EnvironmentName}-trail")
    write = allows["s3:PutObject"]
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"
    assert helpers.sub_text(write["Resource"][0]).endswith("/AWSLogs/${AWS::AccountId}/*")


def test_trail_is_delivered_to_cloudwatch_logs_with_the_retention_parameter(t):
    p = helpers.props(trail(t))
    group = resource(t, p["CloudWatchLogsLogGroupArn"], "AWS::Logs::LogGroup")
    assert group["DeletionPolicy"] in KEEP
    gp = helpers.props(group)
    assert helpers.sub_text(gp["LogGroupName"]) == "/aws/cloudtrail/karematch-${EnvironmentName}"
    assert gp["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    role = helpers.props(resource(t, p["CloudWatchLogsRoleArn"], "AWS::IAM::Role"))
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["cloudtrail.amazonaws.com"]}
    # Confused deputy: only this trail, of this account, may assume the role.
    source = trust["Condition"]["StringEquals"]
    assert source["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert helpers.sub_text(source["aws:SourceArn"]) == helpers.sub_text(p["TrailName"]).join(
        ("arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/", "")
    )
    (policy,) = role["Policies"]
    (st,) = policy["PolicyDocument"]["Statement"]
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= set(st["Action"])
    assert all("/aws/cloudtrail/karematch-${EnvironmentName}" in helpers.sub_text(r) for r in st["Resource"])


def test_trail_files_expire_with_the_retention_parameter(t):
    b = helpers.props(helpers.one_of_type(t, "AWS::S3::Bucket"))
    (rule,) = b["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == {"Ref": "LogRetentionDays"}
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == {"Ref": "LogRetentionDays"}


def test_prod_keeps_audit_logs_for_the_spec_years_in_s3_and_cloudwatch():
    years = spec.number(r"Implement log retention for (\d+) years", STEPS)
    prod = helpers.for_env(FILE, "prod")
    group = helpers.props(helpers.one_of_type(prod, "AWS::Logs::LogGroup"))
    assert int(group["RetentionInDays"]) >= years * 365
    b = helpers.props(helpers.one_of_type(prod, "AWS::S3::Bucket"))
    for rule in b["LifecycleConfiguration"]["Rules"]:
        noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        for days in (rule.get("ExpirationInDays"), noncurrent):
            assert days is None or int(days) >= years * 365


# ---------------------------------------------------------------------------------------------
# Security alarms (CIS AWS Foundations Benchmark filters on the trail's log group)
# ---------------------------------------------------------------------------------------------
CIS = {
    # what the spec's "security events" include here -> tokens the CIS filter pattern must test
    "root account use": ('$.userIdentity.type = "Root"', "$.userIdentity.invokedBy NOT EXISTS"),
    "unauthorized API calls": ("*UnauthorizedOperation", "AccessDenied*"),
    "IAM policy changes": (
        "PutRolePolicy",
        "AttachRolePolicy",
        "CreatePolicyVersion",
        "DetachUserPolicy",
        "DeleteGroupPolicy",
    ),
    "security group changes": (
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
    ),
    "console sign-in failures": ("ConsoleLogin", '"Failed authentication"'),
}


@pytest.mark.parametrize("event", sorted(CIS))
def test_each_security_event_has_a_filter_on_the_trail_logs_and_an_alarm_to_the_topic(t, event):
    tokens = CIS[event]
    filters = [
        helpers.props(f)
        for f in helpers.resources_of_type(t, "AWS::Logs::MetricFilter").values()
        if all(tok in helpers.props(f)["FilterPattern"] for tok in tokens)
    ]
    assert len(filters) == 1, f"{event}: {len(filters)} filters"
    (f,) = filters
    group_id = helpers.props(trail(t))["CloudWatchLogsLogGroupArn"]["Fn::GetAtt"][0]
    assert f["LogGroupName"] == {"Ref": group_id}
    pattern = f["FilterPattern"]
    assert pattern.startswith("{") and pattern.endswith("}")
    assert pattern.count("(") == pattern.count(")")
    (mt,) = f["MetricTransformations"]
    alarms = [
        helpers.props(a)
        for a in helpers.resources_of_type(t, "AWS::CloudWatch::Alarm").values()
        if helpers.props(a)["MetricName"] == mt["MetricName"]
        and helpers.props(a)["Namespace"] == mt["MetricNamespace"]
    ]
    assert len(alarms) == 1, event
    (a,) = alarms
    # Any single event alarms (CIS: threshold 1) within 5 minutes.
    assert a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and a["Threshold"] == 1
    assert a["Statistic"] == "Sum" and a["Period"] == 300 and a["EvaluationPeriods"] == 1
    assert a["TreatMissingData"] == "notBreaching"
    assert a["AlarmActions"] == [ALARM_TOPIC]


def test_exactly_the_five_security_alarms(t):
    assert len(helpers.resources_of_type(t, "AWS::CloudWatch::Alarm")) == len(CIS)
    assert len(helpers.resources_of_type(t, "AWS::Logs::MetricFilter")) == len(CIS)


# ---------------------------------------------------------------------------------------------
# The root creates the audit stack only when EnableCloudTrail is "true"
# ---------------------------------------------------------------------------------------------
def test_root_creates_the_audit_stack_only_when_cloudtrail_is_enabled():
    root = helpers.template(ROOT)
    stacks = helpers.resources_of_type(root, "AWS::CloudFormation::Stack")
    (audit_id,) = [k for k, v in stacks.items() if v["Properties"]["TemplateURL"] == f"./{FILE}"]
    assert root["Conditions"][stacks[audit_id]["Condition"]] == {
        "Fn::Equals": [{"Ref": "EnableCloudTrail"}, "true"]
    }
    assert helpers.env_values("prod")["EnableCloudTrail"] == "true"
    assert audit_id in helpers.for_env(ROOT, "prod")["Resources"]
    for env in ("dev", "staging"):
        assert audit_id not in helpers.for_env(ROOT, env)["Resources"], env
    assert audit_id in helpers.for_env(ROOT, "dev", EnableCloudTrail="true")["Resources"]


def test_root_feeds_the_audit_stack_the_alarm_topic_and_the_retention():
    stacks = helpers.resources_of_type(helpers.template(ROOT), "AWS::CloudFormation::Stack")
    (audit,) = [v for v in stacks.values() if v["Properties"]["TemplateURL"] == f"./{FILE}"]
    params = audit["Properties"]["Parameters"]
    assert params["AlarmTopicArn"]["Fn::GetAtt"][1] == "Outputs.AlarmTopicArn"
    assert params["LogRetentionDays"] == {"Ref": "LogRetentionDays"}
