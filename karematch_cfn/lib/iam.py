"""IAM through intent-named awacs factories.

Each factory returns Statements for one intent (``write_logs``, ``read_secrets``, ...);
``document`` wraps them. A wildcard Resource is used only for the actions listed in
``WILDCARD_ACTIONS``, where AWS authorises nothing narrower; ``tests/test_iam.py`` reads that list.
"""

from __future__ import annotations

from typing import Any

from awacs import ecr, kms, logs, rds_db, s3, secretsmanager, sns, sts
from awacs.aws import (
    Action,
    Allow,
    ArnEquals,
    ArnLike,
    Bool,
    Condition,
    Deny,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
    StringLike,
    StringNotEquals,
)

VERSION = "2012-10-17"

# Actions AWS authorises only on Resource "*" (service authorisation reference).
WILDCARD_ACTIONS = frozenset({"ecr:GetAuthorizationToken", "logs:DescribeLogGroups", "tag:GetResources"})


def document(*statements: Statement) -> PolicyDocument:
    """A policy document; always the current policy language version."""
    return PolicyDocument(Version=VERSION, Statement=list(statements))


def assume_role(service: str, conditions: dict[str, Any] | None = None) -> PolicyDocument:
    """Trust policy letting exactly one AWS service (e.g. ``ecs-tasks.amazonaws.com``) assume."""
    kwargs: dict[str, Any] = {}
    if conditions:
        kwargs["Condition"] = Condition(StringEquals(conditions))
    return document(
        Statement(
            Effect=Allow,
            Principal=Principal("Service", [service]),
            Action=[sts.AssumeRole],
            **kwargs,
        )
    )


def write_logs(log_group_arn: Any, streams_arn: Any) -> Statement:
    """Create streams in and put events into one log group."""
    return Statement(
        Sid="WriteLogs",
        Effect=Allow,
        Action=[logs.CreateLogStream, logs.PutLogEvents, logs.DescribeLogStreams],
        Resource=[log_group_arn, streams_arn],
    )


def read_secrets(*secret_arns: Any) -> Statement:
    """Read the current value of exactly these secrets."""
    return Statement(
        Sid="ReadSecrets",
        Effect=Allow,
        Action=[secretsmanager.GetSecretValue, secretsmanager.DescribeSecret],
        Resource=list(secret_arns),
    )


def decrypt_via(service_host: Any, key_arns: Any) -> Statement:
    """kms:Decrypt, only when the call comes through one service (e.g. Secrets Manager)."""
    return Statement(
        Sid="DecryptViaService",
        Effect=Allow,
        Action=[kms.Decrypt],
        Resource=[key_arns],
        Condition=Condition(StringEquals({"kms:ViaService": service_host})),
    )


def use_key_via(service_host: Any, key_arns: Any, sid: str = "UseKeyViaSecretsManager") -> Statement:
    """kms:Decrypt and kms:GenerateDataKey, only through one service: what creating, updating
    and resolving a secret under a customer-managed key needs (Secrets Manager encrypts with
    the caller's permissions), or reading and writing SSE-KMS objects through S3. A list of
    hosts allows any of them (StringEquals with several values)."""
    return Statement(
        Sid=sid,
        Effect=Allow,
        Action=[kms.Decrypt, kms.GenerateDataKey],
        Resource=[key_arns],
        Condition=Condition(StringEquals({"kms:ViaService": service_host})),
    )


def pull_images(principal_arn: Any) -> Statement:
    """Repository-policy statement: one role may pull images."""
    return Statement(
        Sid="AllowTaskExecutionRolePull",
        Effect=Allow,
        Principal=Principal("AWS", [principal_arn]),
        Action=[ecr.BatchCheckLayerAvailability, ecr.BatchGetImage, ecr.GetDownloadUrlForLayer],
    )


# --- Resource policies: buckets, topics, keys (frontend, monitoring, audit) -----------------


def deny_insecure_transport(*resources: Any) -> Statement:
    """Bucket-policy statement: refuse every request that is not over TLS."""
    return Statement(
        Sid="DenyInsecureTransport",
        Effect=Deny,
        Principal=Principal("*"),
        Action=[s3.Action("*")],
        Resource=list(resources),
        Condition=Condition(Bool({"aws:SecureTransport": "false"})),
    )


def read_by_cloudfront(objects_arn: Any, distribution_arn: Any) -> Statement:
    """Bucket-policy statement: one CloudFront distribution (OAC) may read objects."""
    return Statement(
        Sid="AllowCloudFrontRead",
        Effect=Allow,
        Principal=Principal("Service", ["cloudfront.amazonaws.com"]),
        Action=[s3.GetObject],
        Resource=[objects_arn],
        Condition=Condition(StringEquals({"AWS:SourceArn": distribution_arn})),
    )


def list_by_cloudfront(bucket_arn: Any, distribution_arn: Any) -> Statement:
    """Bucket-policy statement: the distribution may list the bucket, so a missing object is
    S3's 404 rather than 403 (S3 answers 403 to a caller that may not list). CloudFront forwards
    no query string to the bucket, so viewers cannot request a listing."""
    return Statement(
        Sid="AllowCloudFrontNotFound",
        Effect=Allow,
        Principal=Principal("Service", ["cloudfront.amazonaws.com"]),
        Action=[s3.ListBucket],
        Resource=[bucket_arn],
        Condition=Condition(StringEquals({"AWS:SourceArn": distribution_arn})),
    )


def cloudtrail_acl_check(bucket_arn: Any, trail_arn: Any) -> Statement:
    """Bucket-policy statement: one trail may check the bucket ACL before delivering."""
    return Statement(
        Sid="AllowCloudTrailAclCheck",
        Effect=Allow,
        Principal=Principal("Service", ["cloudtrail.amazonaws.com"]),
        Action=[s3.GetBucketAcl],
        Resource=[bucket_arn],
        Condition=Condition(StringEquals({"aws:SourceArn": trail_arn})),
    )


def cloudtrail_write(objects_arn: Any, trail_arn: Any) -> Statement:
    """Bucket-policy statement: one trail may write log files, owned by the bucket owner."""
    return Statement(
        Sid="AllowCloudTrailWrite",
        Effect=Allow,
        Principal=Principal("Service", ["cloudtrail.amazonaws.com"]),
        Action=[s3.PutObject],
        Resource=[objects_arn],
        Condition=Condition(
            StringEquals({"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail_arn})
        ),
    )


def publish_from_services(topic_arn: Any, services: list[str], account: Any) -> Statement:
    """Topic-policy statement: these AWS services may publish, on behalf of this account only."""
    return Statement(
        Sid="AllowServicesPublish",
        Effect=Allow,
        Principal=Principal("Service", list(services)),
        Action=[sns.Publish],
        Resource=[topic_arn],
        Condition=Condition(StringEquals({"aws:SourceAccount": account})),
    )


# In a KMS key policy, Resource "*" means "this key" (the policy is attached to one key).
KEY_POLICY_RESOURCE = "*"


def key_admin(account_root_arn: Any) -> Statement:
    """Key-policy statement: the account administers the key and IAM policies may grant use.

    Without it the key becomes unmanageable (AWS's default key policy).
    """
    return Statement(
        Sid="AllowAccountAdministration",
        Effect=Allow,
        Principal=Principal("AWS", [account_root_arn]),
        Action=[kms.Action("*")],
        Resource=[KEY_POLICY_RESOURCE],
    )


def key_use_by_services(services: list[str], account: Any) -> Statement:
    """Key-policy statement: services that publish to an encrypted SNS topic (CloudWatch alarms)
    may create and read data keys, on behalf of this account only (confused deputy). The
    AWS-managed SNS key cannot allow this."""
    return Statement(
        Sid="AllowServicesToPublishEncrypted",
        Effect=Allow,
        Principal=Principal("Service", list(services)),
        Action=[kms.Decrypt, kms.Action("GenerateDataKey*")],
        Resource=[KEY_POLICY_RESOURCE],
        Condition=Condition(StringEquals({"aws:SourceAccount": account})),
    )


def key_encrypt_by_cloudtrail(trail_arn: Any, trail_arns_like: Any) -> list[Statement]:
    """Key-policy statements: one trail may encrypt its log files and describe the key
    (CloudTrail user guide, "Configure AWS KMS key policies for CloudTrail")."""
    return [
        Statement(
            Sid="AllowCloudTrailEncrypt",
            Effect=Allow,
            Principal=Principal("Service", ["cloudtrail.amazonaws.com"]),
            Action=[kms.Action("GenerateDataKey*")],
            Resource=[KEY_POLICY_RESOURCE],
            Condition=Condition(
                [
                    StringEquals({"aws:SourceArn": trail_arn}),
                    StringLike({"kms:EncryptionContext:aws:cloudtrail:arn": trail_arns_like}),
                ]
            ),
        ),
        Statement(
            Sid="AllowCloudTrailDescribeKey",
            Effect=Allow,
            Principal=Principal("Service", ["cloudtrail.amazonaws.com"]),
            Action=[kms.DescribeKey],
            Resource=[KEY_POLICY_RESOURCE],
            Condition=Condition(StringEquals({"aws:SourceArn": trail_arn})),
        ),
    ]


# What CloudWatch Logs needs of a key that encrypts a log group (CloudWatch Logs user guide,
# "Encrypt log data in CloudWatch Logs using AWS KMS", key policy).
LOGS_KEY_ACTIONS = (
    kms.Action("Encrypt*"),
    kms.Action("Decrypt*"),
    kms.Action("ReEncrypt*"),
    kms.Action("GenerateDataKey*"),
    kms.Action("Describe*"),
)


def key_use_by_log_group(logs_service: Any, log_group_arn: Any) -> Statement:
    """Key-policy statement: CloudWatch Logs may use the key for exactly one log group."""
    return Statement(
        Sid="AllowCloudWatchLogsForOneGroup",
        Effect=Allow,
        Principal=Principal("Service", [logs_service]),
        Action=list(LOGS_KEY_ACTIONS),
        Resource=[KEY_POLICY_RESOURCE],
        Condition=Condition(ArnEquals({"kms:EncryptionContext:aws:logs:arn": log_group_arn})),
    )


def key_use_by_log_groups(logs_service: Any, log_group_arns_like: list[Any]) -> Statement:
    """Key-policy statement: CloudWatch Logs may use the key for the named log groups only."""
    return Statement(
        Sid="AllowCloudWatchLogsForTheEnvironmentsGroups",
        Effect=Allow,
        Principal=Principal("Service", [logs_service]),
        Action=list(LOGS_KEY_ACTIONS),
        Resource=[KEY_POLICY_RESOURCE],
        Condition=Condition(ArnLike({"kms:EncryptionContext:aws:logs:arn": list(log_group_arns_like)})),
    )


def key_decrypt_by_cloudfront(account: Any, distributions_like: Any) -> Statement:
    """Key-policy statement: CloudFront (OAC) may decrypt SSE-KMS objects for this account's
    distributions. ArnLike on every distribution of the account, not the one distribution: the
    key exists before the distribution (key -> bucket -> distribution would be a cycle); the
    bucket policy still admits only the one distribution (aws-cdk issue 31227)."""
    return Statement(
        Sid="AllowCloudFrontOacDecrypt",
        Effect=Allow,
        Principal=Principal("Service", ["cloudfront.amazonaws.com"]),
        Action=[kms.Decrypt],
        Resource=[KEY_POLICY_RESOURCE],
        Condition=Condition(
            [StringEquals({"aws:SourceAccount": account}), ArnLike({"aws:SourceArn": distributions_like})]
        ),
    )


def write_server_access_logs(objects_arn: Any, source_buckets_like: Any, account: Any) -> Statement:
    """Bucket-policy statement: S3 server access logging may write log objects, for the given
    source buckets of this account only (S3 user guide, "Enabling Amazon S3 server access
    logging", bucket policy for the logging service principal)."""
    return Statement(
        Sid="AllowS3ServerAccessLogs",
        Effect=Allow,
        Principal=Principal("Service", ["logging.s3.amazonaws.com"]),
        Action=[s3.PutObject],
        Resource=[objects_arn],
        Condition=Condition(
            [ArnLike({"aws:SourceArn": source_buckets_like}), StringEquals({"aws:SourceAccount": account})]
        ),
    )


def deliver_vended_logs(objects_arn: Any, account: Any, delivery_sources_like: Any) -> Statement:
    """Bucket-policy statement: CloudWatch Logs' log delivery (vended logs v2, e.g. CloudFront
    standard logging) may write log objects for this account's delivery sources (CloudWatch Logs
    user guide, "Logs sent to Amazon S3")."""
    return Statement(
        Sid="AllowLogDeliveryWrite",
        Effect=Allow,
        Principal=Principal("Service", ["delivery.logs.amazonaws.com"]),
        Action=[s3.PutObject],
        Resource=[objects_arn],
        Condition=Condition(
            [
                StringEquals({"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceAccount": account}),
                ArnLike({"aws:SourceArn": delivery_sources_like}),
            ]
        ),
    )


def vended_logs_acl_check(bucket_arn: Any, account: Any) -> Statement:
    """Bucket-policy statement: log delivery may read the bucket's ACL (it checks before writing),
    for this account's deliveries only."""
    return Statement(
        Sid="AllowLogDeliveryAclCheck",
        Effect=Allow,
        Principal=Principal("Service", ["delivery.logs.amazonaws.com"]),
        Action=[s3.GetBucketAcl],
        Resource=[bucket_arn],
        Condition=Condition(StringEquals({"aws:SourceAccount": account})),
    )


def deliver_alb_logs(objects_arn: Any, principal: Any) -> Statement:
    """Bucket-policy statement: Elastic Load Balancing may write access-log objects.

    ``principal`` is an awacs Principal, or an Fn::If choosing between the region's ELB account
    and the ``logdelivery.elasticloadbalancing.amazonaws.com`` service principal (ELB user
    guide, "Enable access logs for your Application Load Balancer", step 2).
    """
    return Statement(
        Sid="AllowAlbLogDelivery",
        Effect=Allow,
        Principal=principal,
        Action=[s3.PutObject],
        Resource=[objects_arn],
    )


def connect_db(db_user_arn: Any) -> Statement:
    """rds-db:connect as one database user (IAM database authentication)."""
    return Statement(
        Sid="ConnectToDatabase",
        Effect=Allow,
        Action=[rds_db.connect],
        Resource=[db_user_arn],
    )


# --- Deployment plumbing (bootstrap.yaml): GitHub OIDC, change sets, provisioning ----------

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"

# Calls CloudFormation makes while provisioning KareMatch resources that AWS authorises only on
# Resource "*" (the service authorisation reference lists no resource type for them): reads,
# and the creates whose resource has no ARN yet. Granted to bootstrap.yaml's execution role;
# tests/test_bootstrap.py checks every entry against cfn-lint's copy of that reference.
PROVISIONING_WILDCARD_ACTIONS = frozenset(
    {
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DescribeScalingPolicies",
        "application-autoscaling:DescribeScheduledActions",
        "autoscaling:DescribeTags",
        "cloudfront:CreateCachePolicy",
        "cloudfront:CreateDistribution",
        "cloudfront:CreateFunction",
        "cloudfront:CreateOriginAccessControl",
        "cloudfront:CreateResponseHeadersPolicy",
        "cloudtrail:DescribeTrails",
        "ec2:DescribeAccountAttributes",
        "ec2:DescribeAddresses",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeFlowLogs",
        "ec2:DescribeInstances",
        "ec2:DescribeInternetGateways",
        "ec2:DescribeIpamPools",
        "ec2:DescribeNatGateways",
        "ec2:DescribeNetworkAcls",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeRouteTables",
        "ec2:DescribeSecurityGroupRules",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeTags",
        "ec2:DescribeVpcEncryptionControls",
        "ec2:DescribeVpcEndpoints",
        "ec2:DescribeVpcs",
        "ec2:DescribeVpnGateways",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "elasticloadbalancing:DescribeCapacityReservation",
        "elasticloadbalancing:SetWebACL",
        "firehose:ListDeliveryStreams",
        "elasticloadbalancing:DescribeListenerAttributes",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeTags",
        "elasticloadbalancing:DescribeTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "iam:ListRoles",
        "kms:CreateKey",
        "kms:ListAliases",
        "logs:CreateLogDelivery",
        "logs:DeleteLogDelivery",
        "backup-storage:MountCapsule",
        "logs:DescribeDeliveries",
        "logs:DescribeIndexPolicies",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "organizations:DescribeOrganization",
        "organizations:ListAWSServiceAccessForOrganization",
        "rds:DescribeDBEngineVersions",
        "rds:DescribeEngineDefaultParameters",
        "rds:DescribeEvents",
        "secretsmanager:GetRandomPassword",
    }
)
# What the deployer's quota preflight reads (deploy/quotas.py): usage through EC2's Describe
# calls and AWS's default quota values, which AWS authorises only on Resource "*".
QUOTA_USAGE_ACTIONS = frozenset(
    {
        "ec2:DescribeAddresses",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeNatGateways",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "servicequotas:GetAWSDefaultServiceQuota",
    }
)
WILDCARD_ACTIONS = WILDCARD_ACTIONS | PROVISIONING_WILDCARD_ACTIONS | QUOTA_USAGE_ACTIONS


def read_quotas(quota_arns: list[Any]) -> list[Statement]:
    """The deployer's preflight: the applied value of exactly these quotas, AWS's defaults, and
    the usage counts (Elastic IPs, VPCs, NAT gateways by subnet and zone)."""
    return [
        Statement(
            Sid="ReadQuotas",
            Effect=Allow,
            Action=[Action("servicequotas", "GetServiceQuota")],
            Resource=list(quota_arns),
        ),
        Statement(
            Sid="ReadQuotaUsage",
            Effect=Allow,
            Action=[Action(*a.split(":")) for a in sorted(QUOTA_USAGE_ACTIONS)],
            Resource=["*"],
        ),
    ]


def _actions(service: str, action_names: Any) -> list[Action]:
    return [Action(service, name) for name in action_names]


def assume_from_github(provider_arn: Any, subjects: list[Any]) -> PolicyDocument:
    """Trust policy: GitHub Actions jobs may assume the role with their OIDC token, when the
    token is meant for STS and its subject is exactly one of ``subjects``.

    A subject names the repository and what the job runs for, e.g.
    ``repo:ORG/REPO:environment:prod`` or ``repo:ORG/REPO:ref:refs/heads/main`` (GitHub docs,
    "About security hardening with OpenID Connect", example subject claims). Exact values, never
    a wildcard: ``repo:ORG/REPO:*`` would let any branch or pull request of the repository in.
    """
    if not subjects:
        raise ValueError("assume_from_github needs at least one subject")
    return document(
        Statement(
            Sid="GitHubActionsOidc",
            Effect=Allow,
            Principal=Principal("Federated", provider_arn),
            Action=[sts.AssumeRoleWithWebIdentity],
            Condition=Condition(
                StringEquals(
                    {
                        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": list(subjects),
                    }
                )
            ),
        )
    )


# CloudFormation calls of a change-set deploy (karematch_cfn/deploy): reading stacks and their
# events, creating, reading and deleting change sets, drift detection (deploy checks it before a
# prod update; detection also reads each resource with the caller's permissions). No DeleteStack: only the prod root has
# termination protection, so it would let a pull request delete dev or staging; the empty
# REVIEW_IN_PROGRESS stack a first dry run leaves is reused by the first deploy.
STACK_PLAN_ACTIONS = (
    "CreateChangeSet",
    "DeleteChangeSet",
    "DescribeChangeSet",
    "DescribeStackDriftDetectionStatus",
    "DescribeStackEvents",
    "DescribeStackResourceDrifts",
    "DetectStackDrift",
    "DetectStackResourceDrift",
    "DescribeStackResource",
    "DescribeStackResources",
    "DescribeStacks",
    "GetStackPolicy",
    "GetTemplate",
    "ListChangeSets",
    "ListStackResources",
    "TagResource",
)
# ... and, to deploy: executing the change set, the stack policies around it, termination
# protection of the root.
STACK_EXECUTE_ACTIONS = (
    "CancelUpdateStack",  # a smoke test failing inside the rollback triggers' monitoring window
    "ExecuteChangeSet",
    "SetStackPolicy",
    "UntagResource",
    "UpdateTerminationProtection",
)


def plan_stack_changes(stack_arns: list[Any]) -> Statement:
    """Create, review and delete change sets on these stacks (never execute them)."""
    return Statement(
        Sid="PlanStackChanges",
        Effect=Allow,
        Action=_actions("cloudformation", STACK_PLAN_ACTIONS),
        Resource=list(stack_arns),
    )


def execute_stack_changes(stack_arns: list[Any]) -> Statement:
    """Execute reviewed change sets on these stacks, with their stack policies."""
    return Statement(
        Sid="ExecuteStackChanges",
        Effect=Allow,
        Action=_actions("cloudformation", STACK_EXECUTE_ACTIONS),
        Resource=list(stack_arns),
    )


def pass_role(sid: str, role_arns: list[Any], to_services: list[str] | None = None) -> Statement:
    """iam:PassRole of exactly these roles, and (when given) only to these services."""
    kwargs: dict[str, Any] = {}
    if to_services:
        services: Any = to_services[0] if len(to_services) == 1 else list(to_services)
        kwargs["Condition"] = Condition(StringEquals({"iam:PassedToService": services}))
    return Statement(
        Sid=sid,
        Effect=Allow,
        Action=[Action("iam", "PassRole")],
        Resource=list(role_arns),
        **kwargs,
    )


def find_bucket(sid: str, bucket_arns: list[Any]) -> Statement:
    """HeadBucket/ListBucket on these buckets (without it a missing key reads as 403, not 404)."""
    return Statement(
        Sid=sid,
        Effect=Allow,
        Action=[s3.ListBucket, s3.GetBucketLocation],
        Resource=list(bucket_arns),
    )


def read_bucket_settings(sid: str, bucket_arns: list[Any]) -> Statement:
    """Read a bucket's encryption, public access block, versioning, policy and lifecycle (the
    deployer checks the default artifacts bucket is still hardened before using it)."""
    return Statement(
        Sid=sid,
        Effect=Allow,
        Action=[
            s3.GetEncryptionConfiguration,
            s3.GetBucketPublicAccessBlock,
            s3.GetBucketVersioning,
            s3.GetBucketPolicy,
            s3.GetLifecycleConfiguration,
        ],
        Resource=list(bucket_arns),
    )


def read_write_objects(sid: str, objects_arns: list[Any]) -> Statement:
    """Read (HeadObject, GetObject) and write objects under these ARNs; never delete."""
    return Statement(Sid=sid, Effect=Allow, Action=[s3.GetObject, s3.PutObject], Resource=list(objects_arns))


def read_objects(sid: str, objects_arns: list[Any]) -> Statement:
    """Read objects under these ARNs (e.g. nested templates CloudFormation fetches)."""
    return Statement(Sid=sid, Effect=Allow, Action=[s3.GetObject], Resource=list(objects_arns))


def describe_ecs_services(service_arns: list[Any]) -> Statement:
    """ecs:DescribeServices (the live desired count a deploy keeps)."""
    return Statement(
        Sid="DescribeEcsServices",
        Effect=Allow,
        Action=[Action("ecs", "DescribeServices")],
        Resource=list(service_arns),
    )


def retag_images(repository_arns: list[Any]) -> Statement:
    """Read an image manifest and put it under another tag (the deployer's deployed-* tags,
    deploy/images.py); no layer upload, so no InitiateLayerUpload."""
    return Statement(
        Sid="TagDeployedImages",
        Effect=Allow,
        Action=[ecr.BatchGetImage, ecr.PutImage],
        Resource=list(repository_arns),
    )


def provision(
    sid: str, *, service: str, actions: Any, resources: list[Any], condition: Condition | None = None
) -> Statement:
    """Let CloudFormation create, read, update and delete one service's resources: ``actions``
    (names without the service prefix) on ``resources`` (ARN patterns scoped to the account)."""
    kwargs: dict[str, Any] = {"Condition": condition} if condition is not None else {}
    return Statement(
        Sid=sid,
        Effect=Allow,
        Action=_actions(service, actions),
        Resource=list(resources),
        **kwargs,
    )


# Lifecycle of IAM roles a stack creates (AWS::IAM::Role handler permissions), attachments apart.
ROLE_LIFECYCLE_ACTIONS = (
    "CreateRole",
    "DeleteRole",
    "DeleteRolePolicy",
    "GetRole",
    "GetRolePolicy",
    "ListAttachedRolePolicies",
    "ListRolePolicies",
    "PutRolePermissionsBoundary",
    "PutRolePolicy",
    "TagRole",
    "UntagRole",
    "UpdateAssumeRolePolicy",
    "UpdateRole",
    "UpdateRoleDescription",
)
# What changes a role's permissions: allowed only on a role whose boundary is the environment's
# (iam:PermissionsBoundary is the boundary the request sets or the role has; IAM user guide,
# "Permissions boundaries for IAM entities", delegating role creation).
BOUNDED_ROLE_ACTIONS = ("CreateRole", "DeleteRolePolicy", "PutRolePermissionsBoundary", "PutRolePolicy")
BOUNDARY_KEY = "iam:PermissionsBoundary"


def manage_roles(role_arns: list[Any], boundary_arn: Any) -> list[Statement]:
    """Create, change and delete the roles matching ``role_arns`` (and nothing else in IAM):
    a role is created, and its permissions changed, only with ``boundary_arn`` as its boundary."""
    return [
        Statement(
            Sid="ManageStackRolesWithinBoundary",
            Effect=Allow,
            Action=_actions("iam", BOUNDED_ROLE_ACTIONS),
            Resource=list(role_arns),
            Condition=Condition(StringEquals({BOUNDARY_KEY: boundary_arn})),
        ),
        Statement(
            Sid="ManageStackRoles",
            Effect=Allow,
            Action=_actions("iam", [a for a in ROLE_LIFECYCLE_ACTIONS if a not in BOUNDED_ROLE_ACTIONS]),
            Resource=list(role_arns),
        ),
    ]


def keep_boundaries(boundary_arn: Any) -> list[Statement]:
    """Explicit denies (no Allow anywhere can undo them): never remove a role's boundary, never
    replace it with another, never change or delete the boundary policy itself."""
    return [
        Statement(
            Sid="DenyRemovingBoundaries",
            Effect=Deny,
            Action=[
                Action("iam", "DeleteRolePermissionsBoundary"),
                Action("iam", "DeleteUserPermissionsBoundary"),
            ],
            Resource=["*"],
        ),
        Statement(
            Sid="DenyOtherBoundaries",
            Effect=Deny,
            Action=[Action("iam", "PutRolePermissionsBoundary"), Action("iam", "PutUserPermissionsBoundary")],
            Resource=["*"],
            Condition=Condition(StringNotEquals({BOUNDARY_KEY: boundary_arn})),
        ),
        Statement(
            Sid="DenyChangingTheBoundaryPolicy",
            Effect=Deny,
            Action=_actions(
                "iam",
                ("CreatePolicyVersion", "DeletePolicy", "DeletePolicyVersion", "SetDefaultPolicyVersion"),
            ),
            Resource=[boundary_arn],
        ),
    ]


def attach_managed_policies(
    role_arns: list[Any], policy_arn_patterns: list[Any], boundary_arn: Any
) -> Statement:
    """Attach/detach managed policies to these roles, only policies matching the patterns
    (iam:PolicyARN), so a template cannot attach e.g. AdministratorAccess, and only to a role
    that carries the boundary."""
    return Statement(
        Sid="AttachManagedPolicies",
        Effect=Allow,
        Action=_actions("iam", ("AttachRolePolicy", "DetachRolePolicy")),
        Resource=list(role_arns),
        Condition=Condition(
            [
                ArnLike({"iam:PolicyARN": list(policy_arn_patterns)}),
                StringEquals({BOUNDARY_KEY: boundary_arn}),
            ]
        ),
    )


def boundary(grants: list[tuple[str, list[str], list[Any]]]) -> PolicyDocument:
    """A permissions boundary: the most any KareMatch role may ever do, as (sid, actions,
    resources) grants; a role's own policies only ever narrow it."""
    return document(
        *(
            Statement(
                Sid=sid,
                Effect=Allow,
                Action=[Action(*a.split(":", 1)) for a in actions],
                Resource=list(resources),
            )
            for sid, actions, resources in grants
        )
    )


def create_service_linked_roles(role_arns: list[Any]) -> Statement:
    """Create the service-linked roles at these ARNs (a new account may lack ECS's or ELB's;
    the service creates it on first use with the caller's permission)."""
    return Statement(
        Sid="CreateServiceLinkedRoles",
        Effect=Allow,
        Action=[Action("iam", "CreateServiceLinkedRole")],
        Resource=list(role_arns),
    )


def provision_unscoped(actions: Any) -> Statement:
    """Provisioning calls AWS authorises only on Resource "*" (``"service:Action"`` strings from
    ``WILDCARD_ACTIONS``); anything else raises, so the wildcard never widens by accident."""
    actions = sorted(actions)
    outside = [a for a in actions if a not in WILDCARD_ACTIONS]
    if outside:
        raise ValueError(f"not authorised only on '*', scope them to resources: {outside}")
    return Statement(
        Sid="ProvisionUnscoped",
        Effect=Allow,
        Action=[Action(*a.split(":", 1)) for a in actions],
        Resource=["*"],
    )


def publish_objects(sid: str, objects_arns: list[Any]) -> Statement:
    """Read, write and delete objects under these ARNs (a site's files, replaced per release)."""
    return Statement(
        Sid=sid,
        Effect=Allow,
        Action=[s3.GetObject, s3.PutObject, s3.DeleteObject],
        Resource=list(objects_arns),
    )


def invalidate_distributions(distribution_arns: list[Any]) -> Statement:
    """cloudfront:CreateInvalidation (a published site's un-hashed paths)."""
    return Statement(
        Sid="InvalidateDistributions",
        Effect=Allow,
        Action=[Action("cloudfront", "CreateInvalidation")],
        Resource=list(distribution_arns),
    )


def describe_alarms(alarm_arns: list[Any]) -> Statement:
    """cloudwatch:DescribeAlarms (a deploy arms rollback triggers only while they are calm)."""
    return Statement(
        Sid="DescribeServiceHealthAlarms",
        Effect=Allow,
        Action=[Action("cloudwatch", "DescribeAlarms")],
        Resource=list(alarm_arns),
    )
