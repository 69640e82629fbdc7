"""Deployment bootstrap: what CI and the deployer need for ONE environment, deployed once per
environment (and account and region) by an administrator; a standalone template, not a child of
the root::

    aws cloudformation deploy --template-file templates/bootstrap.yaml \\
        --stack-name karematch-bootstrap-dev --capabilities CAPABILITY_NAMED_IAM \\
        --parameter-overrides EnvironmentName=dev GitHubRepository=ORG/REPO

(docs/ci.md: the other environments, several accounts, StackSets.) Each environment gets its
own roles, so credentials that can deploy dev can never touch prod:

- ``CloudFormationExecutionRole`` is the blast-radius boundary of every deploy of this
  environment: CloudFormation of this account (``aws:SourceAccount``) assumes it, and it may
  provision only what the KareMatch templates contain, on this environment's names, IAM only on
  roles named ``karematch-<env>-*`` and only with the environment's permissions boundary.
- ``PermissionsBoundaryPolicy`` (``karematch-<env>-permissions-boundary``) caps what every
  KareMatch role of the environment may ever do, whatever a template puts in its policies;
  the execution role may not remove it, replace it, or change the policy.
- ``DeployRole`` creates and executes change sets on the ``karematch-<env>`` stacks, passing
  this environment's execution role. Trusted by jobs on ``main`` for dev and by jobs in the
  GitHub environment of the same name for staging and prod (``environment:prod`` only).
- ``PlanRole`` (dev only: pull requests dry-run dev) creates, reads and deletes change sets but
  cannot execute them, and writes templates to its own bucket.

Artifacts are per environment: the deploy role may read and write only its own environment's
bucket, so no environment (nor a pull request) can plant a template another one reuses.

Parameters:
    EnvironmentName: dev | staging | prod.
    GitHubRepository: ``OWNER/REPO`` whose workflows may assume the roles (exact case).
    CreateOidcProvider: ``true`` creates the account's GitHub OIDC provider; ``false`` uses
        ``ExistingOidcProviderArn`` (an account has at most one provider per URL: only the
        first bootstrap stack of an account creates it).
    ExistingOidcProviderArn: the existing provider's ARN when ``CreateOidcProvider`` is false.

Outputs:
    ArtifactsBucketName, PlanArtifactsBucketName (dev), DeployRoleArn, PlanRoleArn (dev),
    CloudFormationExecutionRoleArn, PermissionsBoundaryArn, GitHubOidcProviderArn.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import Equals, GetAtt, If, Not, Parameter, Ref, Sub, Tags, Template
from troposphere.iam import ManagedPolicy, OIDCProvider, Policy, Role
from troposphere.s3 import (
    AbortIncompleteMultipartUpload,
    Bucket,
    LifecycleRule,
    NoncurrentVersionExpiration,
)

from karematch_cfn import names, render
from karematch_cfn.lib import arns, buckets, iam, policies, suppress

# Logical ids.
OIDC_PROVIDER = "GitHubOidcProvider"
ARTIFACTS_BUCKET = "ArtifactsBucket"
ARTIFACTS_BUCKET_POLICY = "ArtifactsBucketPolicy"
PLAN_ARTIFACTS_BUCKET = "PlanArtifactsBucket"
PLAN_ARTIFACTS_BUCKET_POLICY = "PlanArtifactsBucketPolicy"
EXECUTION_ROLE = "CloudFormationExecutionRole"
EXECUTION_POLICIES = {  # logical id -> what it lets CloudFormation provision
    "ExecutionNetworkComputePolicy": "network, compute, web ACLs, backups, log delivery",
    "ExecutionDataEdgePolicy": "database, secrets, keys, logs, buckets, CDN, alarms, audit",
    "ExecutionIdentityPolicy": "reads, roles and nested stacks",
}
DEPLOY_ROLE = "DeployRole"
PLAN_ROLE = "PlanRole"
BOUNDARY_POLICY = "PermissionsBoundaryPolicy"

# Parameters, conditions, rule.
GITHUB_REPOSITORY = "GitHubRepository"
IS_DEVELOPMENT = "IsDevelopment"  # pull requests dry-run dev: the plan role and bucket
CREATE_OIDC_PROVIDER = "CreateOidcProvider"
EXISTING_OIDC_PROVIDER_ARN = "ExistingOidcProviderArn"
CREATES_OIDC_PROVIDER = "CreatesOidcProvider"
PROVIDER_GIVEN_RULE = "OidcProviderGiven"

# Outputs (read by the operator into GitHub repository variables, docs/ci.md).
ARTIFACTS_BUCKET_NAME = "ArtifactsBucketName"
PLAN_ARTIFACTS_BUCKET_NAME = "PlanArtifactsBucketName"
DEPLOY_ROLE_ARN = "DeployRoleArn"
PLAN_ROLE_ARN = "PlanRoleArn"
EXECUTION_ROLE_ARN = "CloudFormationExecutionRoleArn"
OIDC_PROVIDER_ARN = "GitHubOidcProviderArn"
BOUNDARY_ARN = "PermissionsBoundaryArn"


# Physical names. Role names are global in the account: the environment and the region keep
# one bootstrap per environment and region apart. None matches the execution role's own IAM
# scope (karematch-<env>-*): they start karematch-bootstrap-.
EXECUTION_ROLE_NAME = f"karematch-bootstrap-{names.ENV}-cfn-exec-${{AWS::Region}}"
DEPLOY_ROLE_NAME = f"karematch-bootstrap-{names.ENV}-github-deploy-${{AWS::Region}}"
PLAN_ROLE_NAME = "karematch-bootstrap-dev-github-plan-${AWS::Region}"
# One artifacts bucket per environment (the workflow passes it with --artifact-bucket).
ARTIFACTS_BUCKET_PATTERN = f"karematch-cfn-artifacts-{names.ENV}-${{AWS::AccountId}}-${{AWS::Region}}"
PLAN_ARTIFACTS_BUCKET_PATTERN = "karematch-cfn-plan-artifacts-${AWS::AccountId}-${AWS::Region}"

# What GitHub Actions jobs are trusted (OIDC subject claims): the workflow's jobs on main
# (dev deploy), in the staging and prod GitHub environments (each its own role), and on pull
# requests (plan only, dev).
DEPLOY_BRANCH = "main"
GATED_ENVIRONMENTS = ("staging", names.PRODUCTION)
CLOUDFORMATION_SERVICE = "cloudformation.amazonaws.com"
SECRETS_MANAGER_HOST = "secretsmanager.${AWS::Region}.amazonaws.com"
BACKUP_HOST = "backup.${AWS::Region}.amazonaws.com"

# Artifacts: key prefix and lifecycle shared with the deployer (names.ARTIFACTS_*).

# ------------------------------------------------------------------------------------------
# The execution role's provisioning permissions: exactly the handler permissions
# (CloudFormation resource schemas) of the resource types the KareMatch templates use,
# minus optional features they do not use. tests/test_bootstrap.py recomputes them from
# cfn-lint's copy of the schemas and of the service authorisation reference.
# ------------------------------------------------------------------------------------------
EC2_ACTIONS = (
    "AllocateAddress",
    "AssociateAddress",
    "AssociateRouteTable",
    "AttachInternetGateway",
    "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroupIngress",
    "CreateFlowLogs",
    "CreateInternetGateway",
    "CreateNatGateway",
    "CreateRoute",
    "CreateRouteTable",
    "CreateSecurityGroup",
    "CreateSubnet",
    "CreateTags",
    "CreateVpc",
    "CreateVpcEndpoint",
    "DeleteFlowLogs",
    "DeleteInternetGateway",
    "DeleteNatGateway",
    "DeleteRoute",
    "DeleteRouteTable",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteTags",
    "DeleteVpc",
    "DeleteVpcEndpoints",
    "DescribeVpcAttribute",
    "DetachInternetGateway",
    "DisassociateAddress",
    "DisassociateRouteTable",
    "ModifySubnetAttribute",
    "ModifyVpcAttribute",
    "ModifyVpcEndpoint",
    "ReleaseAddress",
    "ReplaceRoute",
    "ReplaceRouteTableAssociation",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "UpdateSecurityGroupRuleDescriptionsIngress",
)
ECS_ACTIONS = (
    "CreateCluster",
    "CreateService",
    "DeleteCluster",
    "DeleteService",
    "DescribeClusters",
    "DescribeServiceDeployments",
    "DescribeServices",
    "ListServiceDeployments",
    "ListTagsForResource",
    "PutClusterCapacityProviders",
    "RegisterTaskDefinition",
    "StopServiceDeployment",
    "TagResource",
    "UntagResource",
    "UpdateCluster",
    "UpdateClusterSettings",
    "UpdateService",
)
ECR_ACTIONS = (
    "CreateRepository",
    "DeleteLifecyclePolicy",
    "DeleteRepository",
    "DeleteRepositoryPolicy",
    "DescribeRepositories",
    "GetLifecyclePolicy",
    "GetRepositoryPolicy",
    "ListTagsForResource",
    "PutImageScanningConfiguration",
    "PutImageTagMutability",
    "PutLifecyclePolicy",
    "SetRepositoryPolicy",
    "TagResource",
    "UntagResource",
)
LOAD_BALANCING_ACTIONS = (
    "AddTags",
    "CreateListener",
    "CreateLoadBalancer",
    "CreateTargetGroup",
    "DeleteListener",
    "DeleteLoadBalancer",
    "DeleteTargetGroup",
    "DeregisterTargets",
    "ModifyListener",
    "ModifyListenerAttributes",
    "ModifyLoadBalancerAttributes",
    "ModifyTargetGroup",
    "ModifyTargetGroupAttributes",
    "RegisterTargets",
    "RemoveTags",
    "CreateWebACLAssociation",
    "DeleteWebACLAssociation",
    "GetLoadBalancerWebACL",
    "SetIpAddressType",
    "SetSecurityGroups",
    "SetSubnets",
)
AUTOSCALING_ACTIONS = (
    "DeleteScalingPolicy",
    "DeleteScheduledAction",
    "DeregisterScalableTarget",
    "ListTagsForResource",
    "PutScalingPolicy",
    "PutScheduledAction",
    "RegisterScalableTarget",
    "TagResource",
    "UntagResource",
)
RDS_ACTIONS = (
    "AddTagsToResource",
    "CreateDBInstance",
    "CreateDBParameterGroup",
    "CreateDBSnapshot",
    "CreateDBSubnetGroup",
    "DeleteDBInstance",
    "DeleteDBParameterGroup",
    "DeleteDBSubnetGroup",
    "DescribeDBClusters",
    "DescribeDBClusterSnapshots",
    "DescribeDBInstanceAutomatedBackups",
    "DescribeDBInstances",
    "DescribeDBParameterGroups",
    "DescribeDBParameters",
    "DescribeDBSnapshots",
    "DescribeDBSubnetGroups",
    "ListTagsForResource",
    "ModifyDBInstance",
    "ModifyDBParameterGroup",
    "ModifyDBSubnetGroup",
    "RebootDBInstance",
    "RemoveTagsFromResource",
    "ResetDBParameterGroup",
)
SECRETS_ACTIONS = (
    "CreateSecret",
    "DeleteSecret",
    "DescribeSecret",
    "GetSecretValue",
    "RemoveRegionsFromReplication",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
)
KMS_ACTIONS = (
    "CreateAlias",
    "CreateGrant",
    "DeleteAlias",
    "DescribeKey",
    "DisableKey",
    "DisableKeyRotation",
    "EnableKey",
    "EnableKeyRotation",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "ListResourceTags",
    "PutKeyPolicy",
    "RetireGrant",
    "ScheduleKeyDeletion",
    "TagResource",
    "UntagResource",
    "UpdateAlias",
    "UpdateKeyDescription",
)
LOGS_ACTIONS = (
    "AssociateKmsKey",
    "CreateLogGroup",
    "DeleteDataProtectionPolicy",
    "DeleteLogGroup",
    "DeleteMetricFilter",
    "DeleteRetentionPolicy",
    "DescribeMetricFilters",
    "DisassociateKmsKey",
    "GetDataProtectionPolicy",
    "ListTagsForResource",
    "PutDataProtectionPolicy",
    "PutLogGroupDeletionProtection",
    "PutMetricFilter",
    "PutRetentionPolicy",
    "TagResource",
    "UntagResource",
)
# CloudFront standard logging v2 (AWS::Logs::Delivery, DeliverySource, DeliveryDestination).
LOG_DELIVERY_ACTIONS = (
    "*Delivery",
    "*DeliveryDestination",
    "*DeliveryDestinationPolicy",
    "*DeliverySource",
    "UpdateDeliveryConfiguration",
)
# AWS Backup: the database's vault, plan and selection. Patterns keep bootstrap.yaml under the
# 51,200-byte inline limit; an action a pattern adds that is authorised only on "*" does nothing
# on these ARNs.
BACKUP_ACTIONS = (
    "*BackupPlan",
    "*BackupSelection",
    "*BackupVault*",
    "*Tag*",
)
# The network stack's custom-resource function (closes the VPC's default security group);
# InvokeFunction: CloudFormation calls the custom resource's ServiceToken with this role.
LAMBDA_ACTIONS = (
    "*FunctionConcurrency",
    "*FunctionRecursionConfig",
    "*RuntimeManagementConfig",
    "*Tag*",
    "CreateFunction",
    "DeleteFunction",
    "GetFunction*",
    "InvokeFunction",
    "PublishVersion",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
)
# AWS WAF web ACLs (ALB and CloudFront) and the ALB association.
WAF_ACTIONS = (
    "*LoggingConfiguration",
    "*Tag*",
    "*WebACL*",
)
# Bucket-level only (the patterns match no object action): configuration, tags, listing.
S3_CONFIGURATIONS = (
    "Accelerate",
    "Analytics",
    "Encryption",
    "IntelligentTiering",
    "Inventory",
    "Lifecycle",
    "Metrics",
    "Replication",
)
S3_BUCKET_ACTIONS = (
    "CreateBucket",
    "DeleteBucket*",
    "GetBucket*",
    "ListBucket",
    "ListTagsForResource",
    "PutBucket*",
    "TagResource",
    "UntagResource",
    *(f"{verb}{c}Configuration" for c in S3_CONFIGURATIONS for verb in ("Get", "Put")),
)
SNS_ACTIONS = (
    "CreateTopic",
    "DeleteTopic",
    "GetDataProtectionPolicy",
    "GetSubscriptionAttributes",
    "GetTopicAttributes",
    "ListSubscriptionsByTopic",
    "ListTagsForResource",
    "PutDataProtectionPolicy",
    "SetSubscriptionAttributes",
    "SetTopicAttributes",
    "Subscribe",
    "TagResource",
    "Unsubscribe",
    "UntagResource",
)
CLOUDWATCH_ACTIONS = (
    "DeleteAlarms",
    "DeleteDashboards",
    "DescribeAlarms",
    "GetDashboard",
    "ListTagsForResource",
    "PutDashboard",
    "PutMetricAlarm",
    "TagResource",
    "UntagResource",
)
CLOUDFRONT_ACTIONS = (
    "AllowVendedLogDeliveryForResource",
    "DeleteCachePolicy",
    "DeleteDistribution",
    "DeleteFunction",
    "DeleteOriginAccessControl",
    "DeleteResponseHeadersPolicy",
    "DescribeFunction",
    "GetCachePolicy",
    "GetDistribution",
    "GetDistributionConfig",
    "GetFunction",
    "GetOriginAccessControl",
    "GetResponseHeadersPolicy",
    "GetVpcOrigin",
    "ListTagsForResource",
    "PublishFunction",
    "TagResource",
    "UntagResource",
    "UpdateCachePolicy",
    "UpdateDistribution",
    "UpdateFunction",
    "UpdateOriginAccessControl",
    "UpdateResponseHeadersPolicy",
)
CLOUDTRAIL_ACTIONS = (
    "AddTags",
    "CreateTrail",
    "DeleteTrail",
    "GetEventConfiguration",
    "GetEventSelectors",
    "GetInsightSelectors",
    "GetTrail",
    "GetTrailStatus",
    "ListTags",
    "PutEventConfiguration",
    "PutEventSelectors",
    "PutInsightSelectors",
    "RemoveTags",
    "StartLogging",
    "StopLogging",
    "UpdateTrail",
)
# Nested stacks (AWS::CloudFormation::Stack handler permissions).
NESTED_STACK_ACTIONS = (
    "CreateStack",
    "DeleteStack",
    "DescribeStacks",
    "GetStackPolicy",
    "GetTemplate",
    "SetStackPolicy",
    "TagResource",
    "UntagResource",
    "UpdateStack",
    "UpdateTerminationProtection",
)
# Services the stacks' roles are passed to (their trust principals); tests check the set.
ROLE_SERVICES = (
    "cloudtrail.amazonaws.com",
    "backup.amazonaws.com",
    "ecs-tasks.amazonaws.com",
    "lambda.amazonaws.com",
    "monitoring.rds.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
)
# Service-linked roles a new account may lack; the service creates them with our permission.
SERVICE_LINKED_ROLE_SERVICES = (
    "ecs.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "rds.amazonaws.com",
    # AWSServiceRoleForBackup: AWS::Backup::BackupSelection's create handler may create it.
    "backup.amazonaws.com",
)


@dataclass(frozen=True)
class Inputs:
    existing_provider: Ref


def declare_inputs(t: Template) -> Inputs:
    env = names.declare(
        t, names.ENVIRONMENT_NAME, "Environment this bootstrap serves (its roles act on it only)"
    )
    t.add_condition(IS_DEVELOPMENT, Equals(Ref(env), "dev"))
    t.add_parameter(  # read through Fn::Sub (the OIDC subjects)
        Parameter(
            GITHUB_REPOSITORY,
            Type="String",
            Description="OWNER/REPO on GitHub whose workflows may deploy (exact case)",
            AllowedPattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
            ConstraintDescription="OWNER/REPO, e.g. karematch/karematch-cfn",
        )
    )
    create = t.add_parameter(
        Parameter(
            CREATE_OIDC_PROVIDER,
            Type="String",
            Description="Create the account's GitHub OIDC provider (false: it already exists)",
            Default="true",
            AllowedValues=["true", "false"],
        )
    )
    existing = t.add_parameter(
        Parameter(
            EXISTING_OIDC_PROVIDER_ARN,
            Type="String",
            Description="ARN of the existing token.actions.githubusercontent.com provider "
            "(only when CreateOidcProvider is false)",
            Default="",
            AllowedPattern=(
                r"^$|^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/"
                r"token\.actions\.githubusercontent\.com$"
            ),
            ConstraintDescription="empty, or the ARN of the GitHub Actions OIDC provider",
        )
    )
    t.add_condition(CREATES_OIDC_PROVIDER, Equals(Ref(create), "true"))
    t.add_rule(
        PROVIDER_GIVEN_RULE,
        {
            "RuleCondition": Equals(Ref(create), "false"),
            "Assertions": [
                {
                    "Assert": Not(Equals(Ref(existing), "")),
                    "AssertDescription": "CreateOidcProvider is false: give ExistingOidcProviderArn",
                }
            ],
        },
    )
    return Inputs(existing_provider=Ref(existing))


def add_oidc_provider(t: Template, p: Inputs) -> If:
    """The account's GitHub OIDC provider, or the existing one; returns the provider ARN.

    No ThumbprintList: IAM validates GitHub's certificate against its trusted CAs and the
    property is optional (AWS::IAM::OIDCProvider reference; cfn-lint's schema).
    """
    provider = t.add_resource(
        OIDCProvider(
            OIDC_PROVIDER,
            Condition=CREATES_OIDC_PROVIDER,
            Url=f"https://{iam.GITHUB_OIDC_HOST}",
            ClientIdList=[iam.STS_AUDIENCE],
            Tags=Tags(Project="karematch"),
        )
    )
    return If(CREATES_OIDC_PROVIDER, Ref(provider), p.existing_provider)


def add_artifacts_bucket(
    t: Template, *, logical_id: str, policy_id: str, name_pattern: str, condition: str | None = None
) -> Bucket:
    """Encrypted, versioned, private (owner-enforced, TLS only) bucket for packaged templates;
    old keys and versions expire. Kept if the bootstrap stack lets go of it, except when its
    first create rolls back (a retained named bucket would block the retry)."""
    bucket = t.add_resource(
        policies.retain_except_on_create(
            buckets.private_bucket(
                logical_id,
                name_pattern=name_pattern,
                lifecycle=[
                    LifecycleRule(
                        Id="ExpireOldTemplates",
                        Status="Enabled",
                        ExpirationInDays=names.ARTIFACTS_EXPIRE_DAYS,
                        NoncurrentVersionExpiration=NoncurrentVersionExpiration(
                            NoncurrentDays=names.ARTIFACTS_NONCURRENT_EXPIRE_DAYS
                        ),
                        AbortIncompleteMultipartUpload=AbortIncompleteMultipartUpload(
                            DaysAfterInitiation=names.ARTIFACTS_ABORT_MULTIPART_DAYS
                        ),
                    )
                ],
                tags=Tags(Project="karematch"),
                sse_algorithm=buckets.SSE_S3,  # templates hold no secrets, and no key policy to manage
                bucket_key=True,
            )
        )
    )
    suppress.skip(
        bucket,
        (
            "CKV_AWS_18",
            "Templates only, no PHI",
        ),
    )
    policy = t.add_resource(buckets.tls_only_policy(policy_id, bucket, name_pattern))
    if condition:
        bucket.Condition = policy.Condition = condition
    return bucket


# What the AWS managed policies the stacks attach grant (AWS managed policy reference): the
# boundary must allow it, or the gap shows only at runtime. tests/test_bootstrap.py fails for an
# attached managed policy missing here.
MANAGED_POLICY_ACTIONS = {
    "service-role/AmazonECSTaskExecutionRolePolicy": (
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ),
    "service-role/AmazonRDSEnhancedMonitoringRole": (
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
        "logs:GetLogEvents",
    ),
    # Its RDS-instance part: the only resource the database's backup selection names.
    "service-role/AWSBackupServiceRolePolicyForBackup": (
        "rds:AddTagsToResource",
        "rds:ListTagsForResource",
        "rds:DescribeDBSnapshots",
        "rds:CreateDBSnapshot",
        "rds:CopyDBSnapshot",
        "rds:DescribeDBInstances",
        "backup:DescribeBackupVault",
        "backup:CopyIntoBackupVault",
        "kms:DescribeKey",
        "kms:CreateGrant",
        "tag:GetResources",
    ),
}


def _quota_arns() -> list[Sub]:
    # The quotas the deployer's preflight reads (deploy/quotas.py: service code, quota code).
    return [
        arns.regional("servicequotas", f"{service}/{code}")
        for service, code in (("ec2", "L-0263D0A3"), ("vpc", "L-F678F1CE"), ("vpc", "L-FE5A380F"))
    ]


def stack_names() -> list[str]:
    """Name patterns (Fn::Sub) of this environment's stacks: the root and its nested stacks."""
    root = names.DEFAULT_STACK_NAME.format(env=names.ENV)
    return [root, f"{root}-*"]


def boundary_arn() -> Sub:
    return arns.customer_policy(names.PERMISSIONS_BOUNDARY)


def boundary_grants() -> list[tuple[str, list[str], list]]:
    """The most any KareMatch role of the environment may do: (sid, actions, resources)."""
    regional = arns.regional
    return [
        (
            "WriteOwnLogs",  # and Enhanced Monitoring's account-wide RDSOSMetrics group
            list(MANAGED_POLICY_ACTIONS["service-role/AmazonRDSEnhancedMonitoringRole"]),
            [
                regional("logs", f"log-group:/aws/*/karematch-{names.ENV}*"),
                regional("logs", "log-group:RDS*"),
            ],
        ),
        # Authorised on "*" only: image pulls, the default-group closer, AWS Backup's discovery.
        (
            "UnscopedReads",
            ["ecr:GetAuthorizationToken", "ec2:DescribeSecurityGroups", "tag:GetResources"],
            ["*"],
        ),
        (
            "PullOwnImages",
            ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
            [regional("ecr", f"repository/karematch-{names.ENV}-*")],
        ),
        (
            "ReadOwnSecrets",
            ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            [regional("secretsmanager", f"secret:karematch-*-{names.SUFFIX}-*")],
        ),
        # Secrets under the environment's key; AWS Backup's grants on it.
        ("UseKeys", ["kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"], [regional("kms", "key/*")]),
        ("ConnectToDatabase", ["rds-db:connect"], [regional("rds-db", "dbuser:*/*")]),
        # HIPAA hardening: Enhanced Monitoring, AWS Backup and the default-group custom resource.
        (
            "BackUpDatabase",
            [
                "rds:*TagsToResource",
                "rds:ListTagsForResource",
                "rds:*DBSnapshot*",
                "rds:DescribeDBInstances",
                "backup:DescribeBackupVault",
                "backup:CopyIntoBackupVault",
            ],
            [
                regional("rds", f"db:karematch-{names.ENV}-*"),
                regional("rds", "snapshot:*"),
                regional("backup", f"backup-vault:karematch-{names.ENV}-*"),
            ],
        ),
        (
            "CloseDefaultGroup",
            ["ec2:RevokeSecurityGroup*"],
            [regional("ec2", "security-group/*")],
        ),
    ]


def add_boundary(t: Template) -> ManagedPolicy:
    return t.add_resource(
        ManagedPolicy(
            BOUNDARY_POLICY,
            ManagedPolicyName=Sub(names.PERMISSIONS_BOUNDARY),
            Description="KareMatch: the most any role of this environment may ever do (permissions boundary)",
            PolicyDocument=iam.boundary(boundary_grants()),
        )
    )


def _templates(name_pattern: str) -> Sub:
    return arns.bucket_objects(name_pattern, f"{names.ARTIFACTS_KEY_PREFIX}/")


def execution_statements() -> dict[str, list]:
    """The execution role's statements, by the managed policy that holds them: this
    environment's names only (``${EnvironmentName}`` is the bootstrap's parameter)."""
    regional, account = arns.regional, arns.account_global
    env = names.ENV
    stack_roles = [arns.role(f"karematch-{env}-*")]
    # Every bucket of the environment (frontend, ALB logs, trail, access logs: karematch-<purpose>-
    # <env>-<account>; never the artifacts buckets, which end in the region) and the WAF-log one.
    bucket_arns = [arns.bucket(f"karematch-*-{names.SUFFIX}"), arns.bucket(names.WAF_LOG_BUCKET)]
    return {
        "ExecutionNetworkComputePolicy": [
            iam.provision(
                "ProvisionNetwork", service="ec2", actions=EC2_ACTIONS, resources=[regional("ec2", "*")]
            ),
            iam.provision(
                "ProvisionContainers", service="ecs", actions=ECS_ACTIONS, resources=[regional("ecs", "*")]
            ),
            iam.provision(
                "ProvisionRepository",
                service="ecr",
                actions=ECR_ACTIONS,
                resources=[regional("ecr", f"repository/karematch-{env}-*")],
            ),
            iam.provision(
                "ProvisionLoadBalancer",
                service="elasticloadbalancing",
                actions=LOAD_BALANCING_ACTIONS,
                resources=[regional("elasticloadbalancing", "*")],
            ),
            iam.provision(
                "ProvisionAutoScaling",
                service="application-autoscaling",
                actions=AUTOSCALING_ACTIONS,
                resources=[regional("application-autoscaling", "scalable-target/*")],
            ),
            iam.provision(
                "ProvisionFunctions",
                service="lambda",
                actions=LAMBDA_ACTIONS,
                resources=[regional("lambda", f"function:karematch-{env}-*")],
            ),
            iam.provision(
                "ProvisionBackups",
                service="backup",
                actions=BACKUP_ACTIONS,
                # Plans are named by id (a UUID), vaults by name.
                resources=[
                    regional("backup", f"backup-vault:karematch-{env}-*"),
                    regional("backup", "backup-plan:*"),
                ],
            ),
            iam.provision(
                "ProvisionLogDelivery",
                service="logs",
                actions=LOG_DELIVERY_ACTIONS,
                resources=[
                    regional("logs", "delivery:*"),
                    regional("logs", f"delivery-*:karematch-{env}-*"),  # sources and destinations
                ],
            ),
            iam.provision(
                "ProvisionWebAcls",
                service="wafv2",
                actions=WAF_ACTIONS,
                resources=[
                    regional("wafv2", "*"),
                    regional("elasticloadbalancing", f"loadbalancer/app/karematch-{env}-*"),
                ],
            ),
        ],
        "ExecutionDataEdgePolicy": [
            iam.provision(
                "ProvisionDatabase", service="rds", actions=RDS_ACTIONS, resources=[regional("rds", "*")]
            ),
            iam.provision(
                "ProvisionSecrets",
                service="secretsmanager",
                actions=SECRETS_ACTIONS,
                resources=[regional("secretsmanager", f"secret:karematch-*-{names.SUFFIX}-*")],
            ),
            iam.provision(
                "ProvisionKeys",
                service="kms",
                actions=KMS_ACTIONS,
                resources=[regional("kms", "key/*"), regional("kms", "alias/karematch-*")],
            ),
            # Secrets under the environment's key: creating one and resolving a
            # {{resolve:secretsmanager}} reference run with this role's credentials.
            # The backup vault under the environment's key too: CreateBackupVault calls
            # kms:Decrypt and kms:GenerateDataKey with this role's credentials through AWS Backup.
            iam.use_key_via(
                [Sub(SECRETS_MANAGER_HOST), Sub(BACKUP_HOST)],
                regional("kms", "key/*"),
                sid="UseKeyViaServices",
            ),
            iam.provision(
                "ProvisionLogs",
                service="logs",
                actions=LOGS_ACTIONS,
                resources=[regional("logs", f"log-group:*karematch-{env}*")],
            ),
            iam.provision("ProvisionBuckets", service="s3", actions=S3_BUCKET_ACTIONS, resources=bucket_arns),
            iam.provision(
                "ProvisionTopics",
                service="sns",
                actions=SNS_ACTIONS,
                resources=[regional("sns", f"karematch-{env}-*")],
            ),
            iam.provision(
                "ProvisionAlarms",
                service="cloudwatch",
                actions=CLOUDWATCH_ACTIONS,
                resources=[regional("cloudwatch", "alarm:*"), account("cloudwatch", "dashboard/*")],
            ),
            iam.provision(
                "ProvisionCdn",
                service="cloudfront",
                actions=CLOUDFRONT_ACTIONS,
                resources=[account("cloudfront", "*")],
            ),
            iam.provision(
                "ProvisionTrail",
                service="cloudtrail",
                actions=CLOUDTRAIL_ACTIONS,
                resources=[regional("cloudtrail", f"trail/karematch-{env}-*")],
            ),
        ],
        "ExecutionIdentityPolicy": [
            iam.provision_unscoped(iam.PROVISIONING_WILDCARD_ACTIONS),
            *iam.manage_roles(stack_roles, boundary_arn()),
            # Managed policies a stack role may have attached: AWS's service-role policies only
            # (AmazonECSTaskExecutionRolePolicy); everything else is an inline policy in the template.
            iam.attach_managed_policies(stack_roles, [arns.managed_policy("service-role/*")], boundary_arn()),
            *iam.keep_boundaries(boundary_arn()),
            iam.pass_role("PassStackRoles", stack_roles, list(ROLE_SERVICES)),
            # Application Auto Scaling's role for ECS, which the service stack names in RoleARN.
            iam.pass_role(
                "PassAutoScalingLinkedRole",
                [arns.role("aws-service-role/ecs.application-autoscaling.amazonaws.com/*")],
            ),
            iam.pass_role(
                "PassSelfToNestedStacks", [arns.role(EXECUTION_ROLE_NAME)], [CLOUDFORMATION_SERVICE]
            ),
            iam.create_service_linked_roles(
                [arns.role(f"aws-service-role/{svc}/*") for svc in SERVICE_LINKED_ROLE_SERVICES]
            ),
            iam.provision(
                "ManageNestedStacks",
                service="cloudformation",
                actions=NESTED_STACK_ACTIONS,
                resources=[arns.stacks(f"karematch-{env}-*")],
            ),
            iam.read_objects(
                "ReadPackagedTemplates",
                [
                    _templates(ARTIFACTS_BUCKET_PATTERN),
                    If(IS_DEVELOPMENT, _templates(PLAN_ARTIFACTS_BUCKET_PATTERN), Ref("AWS::NoValue")),
                ],
            ),
        ],
    }


def add_execution_role(t: Template) -> Role:
    role = t.add_resource(
        Role(
            EXECUTION_ROLE,
            RoleName=Sub(EXECUTION_ROLE_NAME),
            Description="KareMatch: CloudFormation provisions this environment's stacks as this role; "
            "it is the blast-radius boundary of every deploy",
            # Confused deputy: CloudFormation acting for this account only.
            AssumeRolePolicyDocument=iam.assume_role(
                CLOUDFORMATION_SERVICE, {"aws:SourceAccount": Ref("AWS::AccountId")}
            ),
            Tags=Tags(Project="karematch"),
        )
    )
    for logical_id, statements in execution_statements().items():
        policy = ManagedPolicy(
            logical_id,
            Description=f"KareMatch CloudFormation execution: {EXECUTION_POLICIES[logical_id]}",
            Roles=[Ref(role)],
            PolicyDocument=iam.document(*statements),
        )
        if logical_id == "ExecutionIdentityPolicy":
            suppress.skip(
                policy,
                (
                    "CKV_AWS_111",
                    "Actions authorised on * only (iam.PROVISIONING_WILDCARD_ACTIONS)",
                ),
            )
        t.add_resource(policy)
    return role


def add_github_role(
    t: Template,
    logical_id: str,
    *,
    name: str,
    description: str,
    provider: If,
    subjects: list,
    statements: list,
    session_seconds: int | None = None,
    condition: str | None = None,
) -> Role:
    kwargs: dict = {"MaxSessionDuration": session_seconds} if session_seconds else {}
    if condition:
        kwargs["Condition"] = condition
    return t.add_resource(
        Role(
            logical_id,
            RoleName=Sub(name),
            Description=description,
            AssumeRolePolicyDocument=iam.assume_from_github(provider, subjects),
            Policies=[Policy(PolicyName="deploy", PolicyDocument=iam.document(*statements))],
            Tags=Tags(Project="karematch"),
            **kwargs,
        )
    )


def _subject(claim: str) -> Sub:
    return Sub(f"repo:${{{GITHUB_REPOSITORY}}}:{claim}")


def deploy_subjects() -> list:
    """Dev: jobs on main. Staging and prod: jobs in the GitHub environment of the same name
    (whose reviewers approve the deploy), never main: merging is not approving a prod deploy."""
    return [
        If(
            IS_DEVELOPMENT,
            _subject(f"ref:refs/heads/{DEPLOY_BRANCH}"),
            _subject(f"environment:{names.ENV}"),
        )
    ]


def plan_subjects() -> list[Sub]:
    """Pull-request jobs (GitHub's subject for the pull_request event)."""
    return [_subject("pull_request")]


def build() -> Template:
    t = render.new_template(
        "KareMatch deployment bootstrap (once per environment, account and region): GitHub OIDC "
        "provider, artifacts bucket, permissions boundary, CloudFormation execution role, GitHub "
        "deploy (and, for dev, plan) role"
    )
    p = declare_inputs(t)
    provider = add_oidc_provider(t, p)
    artifacts = add_artifacts_bucket(
        t,
        logical_id=ARTIFACTS_BUCKET,
        policy_id=ARTIFACTS_BUCKET_POLICY,
        name_pattern=ARTIFACTS_BUCKET_PATTERN,
    )
    plan_artifacts = add_artifacts_bucket(
        t,
        logical_id=PLAN_ARTIFACTS_BUCKET,
        policy_id=PLAN_ARTIFACTS_BUCKET_POLICY,
        name_pattern=PLAN_ARTIFACTS_BUCKET_PATTERN,
        condition=IS_DEVELOPMENT,
    )
    boundary = add_boundary(t)
    execution = add_execution_role(t)
    stacks = [arns.stacks(name) for name in stack_names()]
    services = [arns.regional("ecs", f"service/{names.CLUSTER}/{names.SERVICE}")]
    # The rollback triggers' alarms (alarms.name: karematch-<env>-<purpose>), this environment's only.
    alarms = [arns.regional("cloudwatch", f"alarm:karematch-{names.ENV}-*")]
    pass_execution = iam.pass_role("PassExecutionRole", [GetAtt(execution, "Arn")], [CLOUDFORMATION_SERVICE])
    deploy = add_github_role(
        t,
        DEPLOY_ROLE,
        name=DEPLOY_ROLE_NAME,
        description="KareMatch: GitHub Actions deploy change sets to this environment only",
        provider=provider,
        subjects=deploy_subjects(),
        statements=[
            iam.plan_stack_changes(stacks),
            iam.execute_stack_changes(stacks),
            pass_execution,
            iam.find_bucket("FindArtifactsBucket", [arns.bucket(ARTIFACTS_BUCKET_PATTERN)]),
            iam.read_bucket_settings("CheckArtifactsBucket", [arns.bucket(ARTIFACTS_BUCKET_PATTERN)]),
            iam.read_write_objects("ReadWriteTemplates", [_templates(ARTIFACTS_BUCKET_PATTERN)]),
            iam.describe_ecs_services(services),
            iam.retag_images([arns.regional("ecr", f"repository/{names.REPOSITORY}")]),
            *iam.read_quotas(_quota_arns()),
            iam.describe_alarms(alarms),
            # The deployer's best-effort preflight before a first create (deploy/deployer.py).
            iam.create_service_linked_roles(
                [
                    arns.role(f"aws-service-role/{svc}/*")
                    for svc in ("ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com")
                ]
            ),
            # publish-frontend (deploy/publish.py): list, write and prune this environment's SPA objects...
            iam.find_bucket("FindFrontendBucket", [arns.bucket(names.FRONTEND_BUCKET)]),
            iam.publish_objects("PublishFrontend", [arns.bucket_objects(names.FRONTEND_BUCKET)]),
            # The frontend bucket is SSE-KMS under the environment's key: through S3 only.
            iam.use_key_via(
                Sub("s3.${AWS::Region}.amazonaws.com"), arns.regional("kms", "key/*"), sid="PublishSseKms"
            ),
            # ... and invalidate its un-hashed paths (distribution ids are random: any of the account's).
            iam.invalidate_distributions([arns.account_global("cloudfront", "distribution/*")]),
        ],
        session_seconds=7200,  # a first deploy (database, CDN) can outlast the 1-hour default
    )
    plan = add_github_role(
        t,
        PLAN_ROLE,
        name=PLAN_ROLE_NAME,
        description="KareMatch: GitHub Actions on pull requests create and review dev change sets (no execute)",
        provider=provider,
        subjects=plan_subjects(),
        statements=[
            iam.plan_stack_changes(stacks),
            pass_execution,
            iam.find_bucket("FindPlanArtifactsBucket", [arns.bucket(PLAN_ARTIFACTS_BUCKET_PATTERN)]),
            iam.read_write_objects("ReadWritePlanTemplates", [_templates(PLAN_ARTIFACTS_BUCKET_PATTERN)]),
            iam.describe_ecs_services(services),
            *iam.read_quotas(_quota_arns()),
            iam.describe_alarms(alarms),
        ],
        condition=IS_DEVELOPMENT,
    )
    render.add_outputs(
        t,
        {
            ARTIFACTS_BUCKET_NAME: Ref(artifacts),
            PLAN_ARTIFACTS_BUCKET_NAME: Ref(plan_artifacts),
            DEPLOY_ROLE_ARN: GetAtt(deploy, "Arn"),
            PLAN_ROLE_ARN: GetAtt(plan, "Arn"),
            EXECUTION_ROLE_ARN: GetAtt(execution, "Arn"),
            BOUNDARY_ARN: Ref(boundary),
            OIDC_PROVIDER_ARN: provider,
        },
        {
            ARTIFACTS_BUCKET_NAME: "GitHub variable <ENV>_ARTIFACTS_BUCKET (deploy --artifact-bucket)",
            PLAN_ARTIFACTS_BUCKET_NAME: "Where pull-request dry runs upload templates "
            "(GitHub variable AWS_PLAN_ARTIFACTS_BUCKET)",
            DEPLOY_ROLE_ARN: "GitHub variable <ENV>_DEPLOY_ROLE_ARN",
            PLAN_ROLE_ARN: "GitHub variable AWS_PLAN_ROLE_ARN",
            EXECUTION_ROLE_ARN: "GitHub variable <ENV>_CFN_EXECUTION_ROLE_ARN (deploy --cfn-role-arn)",
            BOUNDARY_ARN: "The permissions boundary every KareMatch role of the environment carries",
            OIDC_PROVIDER_ARN: "The GitHub Actions OIDC provider the roles trust",
        },
    )
    for output in (PLAN_ARTIFACTS_BUCKET_NAME, PLAN_ROLE_ARN):
        t.outputs[output].Condition = IS_DEVELOPMENT
    return t
