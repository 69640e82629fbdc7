"""Foundation (HIPAA hardening): the environment's customer-managed KMS key and its S3 server
access-log bucket, created before every other child so each can use them.

- ``DataKey``: one key per environment, rotated yearly, for the generated and app secrets, the
  application, flow-log and database log groups, the frontend bucket, the ECR repository, the
  database storage and Performance Insights. Its policy: the account administers it and IAM
  policies grant its use (Secrets Manager, RDS and ECR use the caller's permissions and grants);
  CloudWatch Logs may use it only for this environment's log groups (encryption context);
  CloudFront may decrypt only for this account's distributions (aws:SourceAccount,
  aws:SourceArn). The trail and the alarm topic keep their own keys (audit.yaml, monitoring.yaml).
- ``AccessLogBucket``: S3 server access logs of every bucket of the environment (frontend, ALB
  logs, CloudTrail), SSE-S3 (the only encryption server access logging writes to), expiring after
  ``LogRetentionDays``. It does not log its own access: logging it into itself would log its own
  writes without end.

Parameters:
    EnvironmentName, LogRetentionDays: root knobs.

Outputs:
    DataKeyArn, AccessLogBucketName.
"""

from __future__ import annotations

from troposphere import GetAtt, Ref, Sub, Template
from troposphere.kms import Alias, Key
from troposphere.s3 import Bucket, LifecycleRule, NoncurrentVersionExpiration

from karematch_cfn import names, render
from karematch_cfn.lib import arns, buckets, iam, policies, suppress, tags

DATA_KEY = "DataKey"
DATA_KEY_ALIAS = "DataKeyAlias"
ACCESS_LOG_BUCKET = "AccessLogBucket"
ACCESS_LOG_BUCKET_POLICY = "AccessLogBucketPolicy"
WAF_LOG_BUCKET = "WafLogBucket"
WAF_LOG_BUCKET_POLICY = "WafLogBucketPolicy"

LOGS_SERVICE = "logs.${AWS::Region}.amazonaws.com"
# Every bucket of the environment: karematch-<purpose>-<env>-<account>.
ENVIRONMENT_BUCKETS = f"karematch-*-{names.SUFFIX}"
SERVER_ACCESS_LOG_ENCRYPTION = "AES256"  # SSE-S3: server access logging supports no other


def add_key(t: Template) -> Key:
    key = Key(
        DATA_KEY,
        Description=Sub(f"KareMatch {names.ENV}: secrets, log groups, frontend bucket, images, database"),
        EnableKeyRotation=True,
        KeyPolicy=iam.document(
            iam.key_admin(arns.account_root()),
            # The log groups the key encrypts (its CloudWatch Logs statement names exactly these).
            iam.key_use_by_log_groups(
                Sub(LOGS_SERVICE),
                [
                    arns.log_group(names.APP_LOG_GROUP),
                    arns.log_group(names.FLOW_LOG_GROUP),
                    # Every exported RDS log.
                    arns.log_group(f"/aws/rds/instance/{names.DATABASE_INSTANCE}/*"),
                    # The stacks' own functions (network.yaml).
                    arns.log_group(f"/aws/lambda/karematch-{names.ENV}-*"),
                ],
            ),
            iam.key_decrypt_by_cloudfront(
                Ref("AWS::AccountId"), arns.account_global("cloudfront", "distribution/*")
            ),
        ),
        Tags=tags.standard(),
    )
    # Losing the key loses everything it encrypted: kept on delete/replace.
    t.add_resource(policies.retain_except_on_create(key))
    t.add_resource(Alias(DATA_KEY_ALIAS, AliasName=Sub(names.DATA_KEY_ALIAS), TargetKeyId=Ref(key)))
    return key


def add_access_log_bucket(t: Template, retention: Ref) -> Bucket:
    bucket = buckets.private_bucket(
        ACCESS_LOG_BUCKET,
        name_pattern=names.ACCESS_LOG_BUCKET,
        lifecycle=[
            LifecycleRule(
                Id="ExpireAfterRetention",
                Status="Enabled",
                ExpirationInDays=retention,
                NoncurrentVersionExpiration=NoncurrentVersionExpiration(NoncurrentDays=retention),
            )
        ],
        tags=tags.standard(),
        sse_algorithm=SERVER_ACCESS_LOG_ENCRYPTION,
    )
    suppress.skip(
        bucket,
        ("CKV_AWS_18", "The access-log bucket itself: logging it into itself would log its own writes"),
    )
    t.add_resource(policies.retain_except_on_create(bucket))
    t.add_resource(
        buckets.tls_only_policy(
            ACCESS_LOG_BUCKET_POLICY,
            bucket,
            names.ACCESS_LOG_BUCKET,
            iam.write_server_access_logs(
                arns.bucket_objects(names.ACCESS_LOG_BUCKET),
                [arns.bucket(ENVIRONMENT_BUCKETS), arns.bucket(names.WAF_LOG_BUCKET)],
                Ref("AWS::AccountId"),
            ),
            iam.deliver_vended_logs(
                arns.bucket_objects(names.ACCESS_LOG_BUCKET, "cloudfront/"),
                Ref("AWS::AccountId"),
                arns.regional("logs", "delivery-source:*"),
            ),
        )
    )
    return bucket


def add_waf_log_bucket(t: Template, retention: Ref, access_logs: Bucket) -> Bucket:
    """Request logs of both web ACLs (the name must start with aws-waf-logs-), delivered by
    CloudWatch Logs' log delivery; SSE-S3, expiring after LogRetentionDays, access-logged."""
    bucket = buckets.private_bucket(
        WAF_LOG_BUCKET,
        name_pattern=names.WAF_LOG_BUCKET,
        lifecycle=[
            LifecycleRule(
                Id="ExpireAfterRetention",
                Status="Enabled",
                ExpirationInDays=retention,
                NoncurrentVersionExpiration=NoncurrentVersionExpiration(NoncurrentDays=retention),
            )
        ],
        tags=tags.standard(),
        sse_algorithm=SERVER_ACCESS_LOG_ENCRYPTION,
    )
    buckets.log_access(bucket, Ref(access_logs), "waf-logs/")
    t.add_resource(policies.retain_except_on_create(bucket))
    t.add_resource(
        buckets.tls_only_policy(
            WAF_LOG_BUCKET_POLICY,
            bucket,
            names.WAF_LOG_BUCKET,
            iam.vended_logs_acl_check(arns.bucket(names.WAF_LOG_BUCKET), Ref("AWS::AccountId")),
            iam.deliver_vended_logs(
                arns.bucket_objects(names.WAF_LOG_BUCKET, "AWSLogs/${AWS::AccountId}/"),
                Ref("AWS::AccountId"),
                arns.regional("logs", "*"),
            ),
        )
    )
    return bucket


def build() -> Template:
    t = render.new_template(
        "KareMatch foundation: the environment's customer-managed KMS key, access-log and WAF-log buckets"
    )
    names.declare(t, names.ENVIRONMENT_NAME)
    retention = Ref(names.declare(t, names.LOG_RETENTION_DAYS))
    key = add_key(t)
    bucket = add_access_log_bucket(t, retention)
    waf_logs = add_waf_log_bucket(t, retention, bucket)
    render.add_outputs(
        t,
        {
            names.DATA_KEY_ARN: GetAtt(key, "Arn"),
            names.ACCESS_LOG_BUCKET_NAME: Ref(bucket),
            names.WAF_LOG_BUCKET_ARN: GetAtt(waf_logs, "Arn"),
        },
    )
    return t
