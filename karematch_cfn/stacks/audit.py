"""API audit logging (spec, Compliance: "Required Additional Steps for Full HIPAA Compliance").

The steps a template can take: step 2 (enable CloudTrail for API audit logging), step 3 (log
retention, here ``LogRetentionDays``: six years in prod) and step 4 (monitoring and alerting for
security events: CIS AWS Foundations Benchmark metric filters and alarms on the trail's logs).
The root creates this stack only when ``EnableCloudTrail`` is "true".

One multi-region trail with log file validation writes to a private, versioned bucket; its log
files are encrypted with a customer-managed KMS key (CIS: CloudTrail logs encrypted with a CMK)
that also encrypts the trail's CloudWatch Logs group.

Parameters:
    EnvironmentName: dev | staging | prod.
    LogRetentionDays: days to keep the trail's log files (S3) and log events (CloudWatch Logs).
    AlarmTopicArn: the monitoring stack's alarm topic, notified by the security alarms.

Outputs:
    none (the root does not consume Outputs of a conditional child).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from troposphere import GetAtt, Ref, Sub, Template
from troposphere.cloudtrail import Trail
from troposphere.iam import Role
from troposphere.kms import Alias, Key
from troposphere.logs import LogGroup, MetricFilter, MetricTransformation
from troposphere.s3 import (
    Bucket,
    BucketPolicy,
    LifecycleRule,
    NoncurrentVersionExpiration,
)

from karematch_cfn import names, render
from karematch_cfn.lib import alarms, arns, buckets, iam, logs, policies, tags
from karematch_cfn.lib.alarms import Evaluation

# Logical IDs (bucket, key and log group are pinned: renaming would replace them).
TRAIL_KEY = "TrailKey"
TRAIL_KEY_ALIAS = "TrailKeyAlias"
TRAIL_BUCKET = "TrailBucket"
TRAIL_BUCKET_POLICY = "TrailBucketPolicy"
TRAIL_LOG_GROUP = "TrailLogGroup"
TRAIL_LOGS_ROLE = "TrailLogsRole"
TRAIL = "Trail"

KEY_ALIAS = f"alias/karematch-{names.ENV}-cloudtrail"
LOGS_SERVICE = "logs.${AWS::Region}.amazonaws.com"

SECURITY_NAMESPACE = f"KareMatch/{names.ENV}/Security"


class SecurityCheck(NamedTuple):
    """One CIS AWS Foundations Benchmark monitoring control: a metric filter and its alarm."""

    metric: str  # metric name, logical-id stem and (kebab-case) alarm name suffix
    description: str
    pattern: str


# Filter patterns of the CIS AWS Foundations Benchmark (monitoring section; AWS Security Hub
# controls CloudWatch.1-4 and 6 use the same ones).
SECURITY_CHECKS = (
    SecurityCheck(
        "RootAccountUsage",
        "The root user was used (CIS: usage of the root account)",
        '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS '
        '&& $.eventType != "AwsServiceEvent" }',
    ),
    SecurityCheck(
        "UnauthorizedApiCalls",
        "API calls were denied (CIS: unauthorized API calls)",
        '{ (($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*")) '
        '&& ($.sourceIPAddress != "delivery.logs.amazonaws.com") '
        '&& ($.eventName != "HeadBucket") }',
    ),
    SecurityCheck(
        "IamPolicyChanges",
        "An IAM policy was created, changed, attached or detached (CIS: IAM policy changes)",
        "{ ($.eventName = DeleteGroupPolicy) || ($.eventName = DeleteRolePolicy) "
        "|| ($.eventName = DeleteUserPolicy) || ($.eventName = PutGroupPolicy) "
        "|| ($.eventName = PutRolePolicy) || ($.eventName = PutUserPolicy) "
        "|| ($.eventName = CreatePolicy) || ($.eventName = DeletePolicy) "
        "|| ($.eventName = CreatePolicyVersion) || ($.eventName = DeletePolicyVersion) "
        "|| ($.eventName = AttachRolePolicy) || ($.eventName = DetachRolePolicy) "
        "|| ($.eventName = AttachUserPolicy) || ($.eventName = DetachUserPolicy) "
        "|| ($.eventName = AttachGroupPolicy) || ($.eventName = DetachGroupPolicy) }",
    ),
    SecurityCheck(
        "SecurityGroupChanges",
        "A security group was created, changed or deleted (CIS: security group changes)",
        "{ ($.eventName = AuthorizeSecurityGroupIngress) "
        "|| ($.eventName = AuthorizeSecurityGroupEgress) "
        "|| ($.eventName = RevokeSecurityGroupIngress) "
        "|| ($.eventName = RevokeSecurityGroupEgress) "
        "|| ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }",
    ),
    SecurityCheck(
        "ConsoleSignInFailures",
        "A console sign-in failed (CIS: AWS Management Console authentication failures)",
        '{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }',
    ),
)


@dataclass(frozen=True)
class Inputs:
    retention_days: Ref
    alarm_topic: Ref
    access_log_bucket: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    retention = Ref(names.declare(t, names.LOG_RETENTION_DAYS))
    topic = Ref(names.declare(t, names.ALARM_TOPIC_ARN, "SNS topic notified by the security alarms"))
    access_logs = Ref(
        names.declare(
            t,
            names.ACCESS_LOG_BUCKET_NAME,
            "Bucket of the environment's S3 server access logs (foundation.yaml)",
        )
    )
    return Inputs(retention_days=retention, alarm_topic=topic, access_log_bucket=access_logs)


def add_key(t: Template) -> Key:
    trail_arn = arns.trail(names.TRAIL)
    key = Key(
        TRAIL_KEY,
        Description=Sub(f"KareMatch {names.ENV}: encrypts CloudTrail log files and their log group"),
        EnableKeyRotation=True,
        KeyPolicy=iam.document(
            iam.key_admin(arns.account_root()),
            *iam.key_encrypt_by_cloudtrail(trail_arn, arns.trails_of_account()),
            iam.key_use_by_log_group(Sub(LOGS_SERVICE), arns.log_group(names.TRAIL_LOG_GROUP)),
        ),
        Tags=tags.standard(),
    )
    # Losing the key loses every log file it encrypted: six years of audit history in prod.
    # Kept on delete/replace; only a rolled-back first create (nothing encrypted yet) deletes it.
    t.add_resource(policies.retain_except_on_create(key))
    # The alias is only a name: not retained, or a re-created stack would collide with it.
    t.add_resource(Alias(TRAIL_KEY_ALIAS, AliasName=Sub(KEY_ALIAS), TargetKeyId=Ref(key)))
    return key


def add_bucket(t: Template, p: Inputs) -> Bucket:
    # Log files are SSE-KMS with the trail's key (Trail.KMSKeyId). The bucket default is
    # SSE-S3 for everything else CloudTrail writes (digest files): a KMS default would need
    # CloudTrail to use the key outside its trail encryption context.
    bucket = buckets.private_bucket(
        TRAIL_BUCKET,
        name_pattern=names.TRAIL_BUCKET,
        lifecycle=[
            LifecycleRule(
                Id="ExpireAfterRetention",
                Status="Enabled",
                ExpirationInDays=p.retention_days,
                NoncurrentVersionExpiration=NoncurrentVersionExpiration(NoncurrentDays=p.retention_days),
            )
        ],
        tags=tags.standard(),
        sse_algorithm=buckets.SSE_S3,
    )
    buckets.log_access(bucket, p.access_log_bucket, "cloudtrail/")
    return t.add_resource(policies.retain_except_on_create(bucket))


def add_bucket_policy(t: Template, bucket: Bucket) -> BucketPolicy:
    bucket_arn = arns.bucket(names.TRAIL_BUCKET)
    trail_arn = arns.trail(names.TRAIL)
    return t.add_resource(
        buckets.tls_only_policy(
            TRAIL_BUCKET_POLICY,
            bucket,
            names.TRAIL_BUCKET,
            iam.cloudtrail_acl_check(bucket_arn, trail_arn),
            # CloudTrail writes log files under AWSLogs/<account id>/ (and digests beside them).
            iam.cloudtrail_write(
                arns.bucket_objects(names.TRAIL_BUCKET, "AWSLogs/${AWS::AccountId}/"), trail_arn
            ),
        )
    )


def add_log_delivery(t: Template, p: Inputs, key: Key) -> tuple[LogGroup, Role]:
    group = t.add_resource(
        logs.log_group(TRAIL_LOG_GROUP, names.TRAIL_LOG_GROUP, p.retention_days, KmsKeyId=GetAtt(key, "Arn"))
    )
    role = t.add_resource(
        logs.delivery_role(
            TRAIL_LOGS_ROLE,
            service="cloudtrail.amazonaws.com",
            group_pattern=names.TRAIL_LOG_GROUP,
            policy_name="DeliverTrailToCloudWatchLogs",
            description="CloudTrail delivers the trail's events to its CloudWatch Logs group",
            # Confused deputy: only this account's trail may assume it.
            conditions={"aws:SourceArn": arns.trail(names.TRAIL), "aws:SourceAccount": Ref("AWS::AccountId")},
        )
    )
    return group, role


def add_trail(
    t: Template, *, bucket: Bucket, bucket_policy: BucketPolicy, key: Key, group: LogGroup, role: Role
) -> Trail:
    trail = Trail(
        TRAIL,
        TrailName=Sub(names.TRAIL),
        IsLogging=True,
        IsMultiRegionTrail=True,
        IncludeGlobalServiceEvents=True,
        EnableLogFileValidation=True,
        S3BucketName=Ref(bucket),
        KMSKeyId=GetAtt(key, "Arn"),
        CloudWatchLogsLogGroupArn=GetAtt(group, "Arn"),
        CloudWatchLogsRoleArn=GetAtt(role, "Arn"),
        Tags=tags.standard(),
        # CloudTrail checks it may write to the bucket when the trail is created.
        DependsOn=[bucket_policy.title],
    )
    return t.add_resource(trail)


def add_security_alarms(t: Template, p: Inputs, group: LogGroup) -> None:
    for check in SECURITY_CHECKS:
        t.add_resource(
            MetricFilter(
                f"{check.metric}MetricFilter",
                LogGroupName=Ref(group),
                FilterPattern=check.pattern,
                MetricTransformations=[
                    MetricTransformation(
                        MetricNamespace=Sub(SECURITY_NAMESPACE),
                        MetricName=check.metric,
                        MetricValue="1",
                        Unit="Count",
                    )
                ],
            )
        )
        # Alarm actions only: an "OK" mail 5 minutes after each security event is noise.
        alarms.metric_alarm(
            t,
            f"{check.metric}Alarm",
            purpose=f"cis-{_kebab(check.metric)}",
            description=check.description,
            namespace=Sub(SECURITY_NAMESPACE),
            metric=check.metric,
            dims={},
            comparison=alarms.GREATER_OR_EQUAL,
            # Any single event in a 5-minute window alerts (CIS: threshold 1).
            threshold=1,
            evaluation=Evaluation(
                statistic="Sum",
                period=5 * 60,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                treat_missing_data=alarms.NOT_BREACHING,
            ),
            actions=[p.alarm_topic],
        )


def _kebab(camel: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(camel))


def build() -> Template:
    t = render.new_template(
        "KareMatch audit: multi-region CloudTrail with validated, encrypted logs and security alarms"
    )
    p = declare_inputs(t)
    key = add_key(t)
    bucket = add_bucket(t, p)
    bucket_policy = add_bucket_policy(t, bucket)
    group, role = add_log_delivery(t, p, key)
    add_trail(t, bucket=bucket, bucket_policy=bucket_policy, key=key, group=group, role=role)
    add_security_alarms(t, p, group)
    alarms.notify_insufficient_data(t)
    return t
