"""Load balancing (spec section 4): the internet-facing ALB, its target group, listeners and the
access-log bucket (the spec's audit trail).

- Target group: HTTP to the container port, IP targets (Fargate), health check ``GET /health``
  every 30 s (2 successes healthy, 3 failures unhealthy), 24-hour load-balancer cookie
  stickiness, 30 s deregistration delay.
- Listeners: with ``CertificateArn``, HTTPS 443 forwards and HTTP 80 answers 301 to HTTPS;
  without it (dev), HTTP 80 forwards and there is no HTTPS listener.
- Access logs: a retained, SSE-S3 bucket (ALB log delivery supports no KMS key), private,
  TLS-only, objects expiring after ``LogRetentionDays``. The writer is the region's ELB account
  (regions before August 2022) or the log-delivery service principal (newer regions), chosen by
  the ``ElbLogDelivery`` mapping. The ALB waits for the bucket policy: it test-writes on create.

Parameters:
    EnvironmentName: dev | staging | prod (deletion protection in prod).
    LogRetentionDays: days access-log objects are kept.
    CertificateArn: ACM certificate for HTTPS; empty = HTTP only.
    VpcId, PublicSubnetIds, AlbSecurityGroupId: from the network and security stacks.

Outputs:
    TargetGroupArn, LoadBalancerDnsName, LoadBalancerFullName, TargetGroupFullName (the ARN
    suffixes CloudWatch uses as the LoadBalancer and TargetGroup dimensions).
"""

from __future__ import annotations

from dataclasses import dataclass

from awacs.aws import Principal
from troposphere import (
    Equals,
    FindInMap,
    GetAtt,
    If,
    Not,
    Ref,
    Select,
    Split,
    Sub,
    Template,
)
from troposphere.elasticloadbalancingv2 import (
    Action,
    Certificate,
    Listener,
    LoadBalancer,
    LoadBalancerAttributes,
    Matcher,
    RedirectConfig,
    TargetGroup,
    TargetGroupAttribute,
)
from troposphere.s3 import (
    Bucket,
    BucketPolicy,
    LifecycleRule,
    NoncurrentVersionExpiration,
)
from troposphere.wafv2 import WebACL, WebACLAssociation

from karematch_cfn import names, render
from karematch_cfn.lib import arns, buckets, conditions, iam, policies, suppress, tags, waf

# Logical IDs.
LOAD_BALANCER = "LoadBalancer"
TARGET_GROUP = "BackendTargetGroup"
HTTPS_LISTENER = "HttpsListener"
HTTP_LISTENER = "HttpListener"
LOG_BUCKET = "AccessLogBucket"
LOG_BUCKET_POLICY = "AccessLogBucketPolicy"
WEB_ACL = "LoadBalancerWebAcl"
WEB_ACL_ASSOCIATION = "LoadBalancerWebAclAssociation"
WEB_ACL_LOGGING = "LoadBalancerWebAclLogging"
WEB_ACL_NAME = f"karematch-{names.ENV}-alb"

# Conditions and mappings.
HAS_CERTIFICATE = "HasCertificate"
HAS_ELB_ACCOUNT = "HasElbAccount"
ELB_LOG_DELIVERY = "ElbLogDelivery"
ELB_PRINCIPAL_KEY = "AccountPrincipal"

# Spec section 4.
SCHEME = "internet-facing"
TARGET_PROTOCOL = "HTTP"
TARGET_TYPE = "ip"  # Fargate tasks register by ENI address
UNHEALTHY_THRESHOLD = 3
STICKINESS_SECONDS = 24 * 60 * 60  # "24-hour cookie"
DEREGISTRATION_DELAY_SECONDS = 30
# The spec names ELBSecurityPolicy-TLS-1-2-2017-01; AWS's current recommended policy keeps the
# TLS 1.2 floor, adds TLS 1.3 and drops the non-forward-secret ciphers (docs/decisions.md).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Not in the spec.
LOG_PREFIX = "alb"

# ELB user guide, "Enable access logs for your Application Load Balancer", step 2: regions
# available before August 2022 grant the region's Elastic Load Balancing account; newer regions
# grant the log-delivery service principal (NO_ELB_ACCOUNT below). A region missing from this
# table fails at change-set validation ("Unable to get mapping"), before anything is created:
# add its row. The mapping holds the account's root ARN, not the bare id: YAML readers turn an
# unquoted all-digit id with a leading zero (033677994240) into a number (aws-cli #2934).
NO_ELB_ACCOUNT = "none"
ELB_ACCOUNT_IDS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378",
    "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-south-1": "635631232127",
    "eu-west-3": "009996457667",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
    "us-gov-east-1": "190560391635",
}
SERVICE_PRINCIPAL_REGIONS = (
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "mx-central-1",
)


@dataclass(frozen=True)
class Inputs:
    retention_days: Ref
    certificate: Ref
    vpc: Ref
    public_subnets: Ref
    alb_security_group: Ref
    access_log_bucket: Ref
    waf_log_bucket: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    return Inputs(
        retention_days=Ref(
            names.declare(t, names.LOG_RETENTION_DAYS, "Days the ALB access-log objects are kept")
        ),
        certificate=Ref(names.declare(t, names.CERTIFICATE_ARN)),
        vpc=Ref(names.declare(t, names.VPC_ID, "VPC of the target group")),
        public_subnets=Ref(
            names.declare(t, names.PUBLIC_SUBNET_IDS, "Public subnets (one per AZ) for the load balancer")
        ),
        alb_security_group=Ref(
            names.declare(t, names.ALB_SECURITY_GROUP_ID, "Security group of the load balancer")
        ),
        access_log_bucket=Ref(
            names.declare(
                t,
                names.ACCESS_LOG_BUCKET_NAME,
                "Bucket of the environment's S3 server access logs (foundation.yaml)",
            )
        ),
        waf_log_bucket=Ref(
            names.declare(
                t, names.WAF_LOG_BUCKET_ARN, "Bucket of the web ACLs' request logs (foundation.yaml)"
            )
        ),
    )


def add_conditions(t: Template, p: Inputs) -> None:
    conditions.protect_from_deletion(t)
    t.add_condition(HAS_CERTIFICATE, Not(Equals(p.certificate, "")))
    t.add_mapping(ELB_LOG_DELIVERY, elb_log_delivery_mapping())
    t.add_condition(HAS_ELB_ACCOUNT, Not(Equals(elb_account_principal(), NO_ELB_ACCOUNT)))


def elb_account_principal() -> FindInMap:
    return FindInMap(ELB_LOG_DELIVERY, Ref("AWS::Region"), ELB_PRINCIPAL_KEY)


def partition_of(region: str) -> str:
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def elb_log_delivery_mapping() -> dict[str, dict[str, str]]:
    """Region -> root ARN of the ELB account that writes access logs there, or NO_ELB_ACCOUNT."""
    rows = {
        region: {ELB_PRINCIPAL_KEY: f"arn:{partition_of(region)}:iam::{account}:root"}
        for region, account in ELB_ACCOUNT_IDS.items()
    }
    rows.update({r: {ELB_PRINCIPAL_KEY: NO_ELB_ACCOUNT} for r in SERVICE_PRINCIPAL_REGIONS})
    return dict(sorted(rows.items()))


def add_log_bucket(t: Template, p: Inputs) -> tuple[Bucket, BucketPolicy]:
    # Versioning keeps an overwritten or deleted log object recoverable (audit trail);
    # noncurrent versions expire on the same retention as current ones.
    bucket = buckets.private_bucket(
        LOG_BUCKET,
        name_pattern=names.ALB_LOG_BUCKET,
        lifecycle=[
            LifecycleRule(
                Id="ExpireAccessLogs",
                Status="Enabled",
                Prefix=f"{LOG_PREFIX}/",
                ExpirationInDays=p.retention_days,
                NoncurrentVersionExpiration=NoncurrentVersionExpiration(NoncurrentDays=p.retention_days),
            )
        ],
        tags=tags.standard(names.ALB_LOG_BUCKET),
        sse_algorithm=buckets.SSE_S3,  # the only encryption ALB access-log delivery supports
    )
    buckets.log_access(bucket, p.access_log_bucket, "alb-logs/")
    # Audit logs outlive the stack (removed only if the create that made it rolls back).
    policies.retain_except_on_create(bucket)
    t.add_resource(bucket)

    writer = If(
        HAS_ELB_ACCOUNT,
        Principal("AWS", [elb_account_principal()]),
        Principal("Service", ["logdelivery.elasticloadbalancing.amazonaws.com"]),
    )
    policy = buckets.tls_only_policy(
        LOG_BUCKET_POLICY,
        bucket,
        names.ALB_LOG_BUCKET,
        # ELB writes <prefix>/AWSLogs/<load balancer owner's account>/...: only ours.
        iam.deliver_alb_logs(
            arns.bucket_objects(names.ALB_LOG_BUCKET, f"{LOG_PREFIX}/AWSLogs/${{AWS::AccountId}}/"), writer
        ),
    )
    t.add_resource(policy)
    return bucket, policy


def add_load_balancer(t: Template, p: Inputs, *, bucket: Bucket, policy: BucketPolicy) -> LoadBalancer:
    attributes = {
        "access_logs.s3.enabled": "true",
        "access_logs.s3.bucket": Ref(bucket),
        "access_logs.s3.prefix": LOG_PREFIX,
        "deletion_protection.enabled": If(names.PROTECT_FROM_DELETION, "true", "false"),
        "routing.http.drop_invalid_header_fields.enabled": "true",
    }
    lb = LoadBalancer(
        LOAD_BALANCER,
        Name=Sub(names.LOAD_BALANCER),
        Type="application",
        Scheme=SCHEME,
        IpAddressType="ipv4",
        Subnets=p.public_subnets,
        SecurityGroups=[p.alb_security_group],
        LoadBalancerAttributes=[LoadBalancerAttributes(Key=k, Value=v) for k, v in attributes.items()],
        Tags=tags.standard(names.LOAD_BALANCER),
        # ELB test-writes to the bucket when access logs are enabled: the grant must exist first.
        DependsOn=[policy.title],
    )
    return t.add_resource(lb)


def add_web_acl(t: Template, p: Inputs, lb: LoadBalancer) -> WebACL:
    """AWS WAF in front of the ALB (lib/waf.py: managed rule groups and a per-IP rate limit)."""
    acl = t.add_resource(
        waf.web_acl(
            WEB_ACL,
            scope=waf.REGIONAL,
            name_pattern=WEB_ACL_NAME,
            description="KareMatch ALB: AWS managed rule groups and a per-IP rate limit",
        )
    )
    t.add_resource(WebACLAssociation(WEB_ACL_ASSOCIATION, ResourceArn=Ref(lb), WebACLArn=GetAtt(acl, "Arn")))
    t.add_resource(
        waf.request_logs(WEB_ACL_LOGGING, acl=GetAtt(acl, "Arn"), destination_arn=p.waf_log_bucket)
    )
    return acl


def add_target_group(t: Template, p: Inputs) -> TargetGroup:
    attributes = {
        "stickiness.enabled": "true",
        "stickiness.type": "lb_cookie",
        "stickiness.lb_cookie.duration_seconds": str(STICKINESS_SECONDS),
        "deregistration_delay.timeout_seconds": str(DEREGISTRATION_DELAY_SECONDS),
    }
    tg = TargetGroup(
        TARGET_GROUP,
        Name=Sub(names.TARGET_GROUP),
        Protocol=TARGET_PROTOCOL,
        Port=names.CONTAINER_PORT,
        TargetType=TARGET_TYPE,
        VpcId=p.vpc,
        HealthCheckEnabled=True,
        HealthCheckProtocol=TARGET_PROTOCOL,
        HealthCheckPath=names.HEALTH_CHECK_PATH,
        HealthCheckIntervalSeconds=names.HEALTH_CHECK_INTERVAL_SECONDS,
        HealthCheckTimeoutSeconds=5,
        HealthyThresholdCount=names.HEALTHY_THRESHOLD,
        UnhealthyThresholdCount=UNHEALTHY_THRESHOLD,
        Matcher=Matcher(HttpCode="200"),
        TargetGroupAttributes=[TargetGroupAttribute(Key=k, Value=v) for k, v in attributes.items()],
        Tags=tags.standard(names.TARGET_GROUP),
    )
    return t.add_resource(tg)


def add_listeners(t: Template, p: Inputs, *, lb: LoadBalancer, tg: TargetGroup) -> None:
    forward = Action(Type="forward", TargetGroupArn=Ref(tg))
    t.add_resource(
        Listener(
            HTTPS_LISTENER,
            Condition=HAS_CERTIFICATE,
            LoadBalancerArn=Ref(lb),
            Port=names.HTTPS_PORT,
            Protocol="HTTPS",
            SslPolicy=SSL_POLICY,
            Certificates=[Certificate(CertificateArn=p.certificate)],
            DefaultActions=[forward],
        )
    )
    redirect = Action(
        Type="redirect",
        RedirectConfig=RedirectConfig(Protocol="HTTPS", Port=str(names.HTTPS_PORT), StatusCode="HTTP_301"),
    )
    listener = suppress.skip(
        Listener(
            HTTP_LISTENER,
            LoadBalancerArn=Ref(lb),
            Port=names.HTTP_PORT,
            Protocol="HTTP",
            DefaultActions=If(HAS_CERTIFICATE, [redirect], [forward]),
        ),
        outside=(
            (
                "CKV_AWS_2",
                "dev only (no certificate): plain HTTP forward, the spec's development mode; dev holds no PHI",
            ),
            ("CKV_AWS_103", "dev only (no certificate): no TLS listener at all; dev holds no PHI"),
        ),
        production_condition=HAS_CERTIFICATE,
    )
    t.add_resource(listener)


def target_group_full_name(tg: TargetGroup) -> Select:
    """``targetgroup/<name>/<id>``: the ARN's sixth ``:`` field. Not GetAtt
    TargetGroupFullName, which breaks moto's stack outputs; Select/Split works on AWS and moto."""
    return Select(5, Split(":", Ref(tg)))


def build() -> Template:
    t = render.new_template(
        "KareMatch load balancing: internet-facing ALB, target group, listeners, access logs"
    )
    p = declare_inputs(t)
    add_conditions(t, p)
    bucket, policy = add_log_bucket(t, p)
    lb = add_load_balancer(t, p, bucket=bucket, policy=policy)
    tg = add_target_group(t, p)
    add_listeners(t, p, lb=lb, tg=tg)
    add_web_acl(t, p, lb)
    render.add_outputs(
        t,
        {
            names.TARGET_GROUP_ARN: Ref(tg),
            names.LOAD_BALANCER_DNS_NAME: GetAtt(lb, "DNSName"),
            names.LOAD_BALANCER_FULL_NAME: GetAtt(lb, "LoadBalancerFullName"),
            names.TARGET_GROUP_FULL_NAME: target_group_full_name(tg),
        },
    )
    return t
