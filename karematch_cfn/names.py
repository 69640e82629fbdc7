"""The contract between the stacks: every shared name, defined once.

A child stack's Output is named exactly like the Parameter its consumer declares, so the root
wires children by name (``stacks/root.py``) and a typo is a build error, not a broken deploy.

Physical-name patterns are ``Fn::Sub`` strings over the ``EnvironmentName`` parameter: the spec's
names with the environment inserted, so dev, staging and prod can share one account. The spec's
``{suffix}`` is ``<env>-<account id>`` (S3 bucket names are global).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from troposphere import Parameter, Template

# --------------------------------------------------------------------------------------------
# Root knobs: the Parameters that differ between environments (parameters/<env>.json).
# --------------------------------------------------------------------------------------------
ENVIRONMENT_NAME = "EnvironmentName"
LOG_RETENTION_DAYS = "LogRetentionDays"
DATABASE_INSTANCE_CLASS = "DatabaseInstanceClass"
CERTIFICATE_ARN = "CertificateArn"
IMAGE_TAG = "ImageTag"
DESIRED_COUNT = "DesiredCount"
ALARM_EMAIL = "AlarmEmail"
ENABLE_CLOUDTRAIL = "EnableCloudTrail"
FRONTEND_DOMAIN_NAME = "FrontendDomainName"
FRONTEND_CERTIFICATE_ARN = "FrontendCertificateArn"
ENABLE_DELETION_PROTECTION = "EnableDeletionProtection"
DATABASE_CA_BUNDLE_PATH = "DatabaseCaBundlePath"
API_DOMAIN_NAME = "ApiDomainName"
NAT_GATEWAY_LAYOUT = "NatGatewayLayout"
NAT_PER_AZ = "per-az"  # the spec (and prod): one NAT gateway and Elastic IP per AZ
NAT_SINGLE = "single"  # one NAT gateway in AZ 1 for both private route tables (dev, staging)

ENVIRONMENTS = ("dev", "staging", "prod")
PRODUCTION = "prod"

# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_VALUES = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip

ACM_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$"
# CloudFront takes certificates from us-east-1 only.
CLOUDFRONT_ACM_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]{36}$"
# An immutable tag for the image CI pushed; "" means no image yet (first deploy). Never latest:
# CloudFormation cannot see a push to a moving tag.
IMAGE_TAG_PATTERN = r"^$|^(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
EMAIL_PATTERN = r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$"
DOMAIN_PATTERN = r"^$|^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
# An absolute file path made of URL-unreserved characters only (RFC 3986 section 2.3): it goes
# verbatim into DATABASE_URL's query and CloudFormation cannot URL-encode.
URL_SAFE_PATH_PATTERN = r"^(/[A-Za-z0-9._~-]+)+$"
# Where the backend image keeps the Amazon RDS global CA bundle (docs/backend-image.md).
DEFAULT_DATABASE_CA_BUNDLE_PATH = "/etc/ssl/certs/rds-global-bundle.pem"


@dataclass(frozen=True)
class ParameterSpec:
    """How a shared Parameter is declared, wherever it is declared (root or child)."""

    type: str
    description: str
    props: dict[str, Any] = field(default_factory=dict)


SHARED_PARAMETERS: dict[str, ParameterSpec] = {
    ENVIRONMENT_NAME: ParameterSpec(
        "String",
        "Environment name, inserted into every physical name",
        {"AllowedValues": list(ENVIRONMENTS)},
    ),
    LOG_RETENTION_DAYS: ParameterSpec(
        "Number",
        "Retention of every log group, in days (2192 = six years, for HIPAA in prod)",
        {"Default": "30", "AllowedValues": [str(v) for v in LOG_RETENTION_VALUES]},
    ),
    DATABASE_INSTANCE_CLASS: ParameterSpec(
        "String",
        "RDS instance class",
        {"Default": "db.t4g.micro", "AllowedValues": ["db.t4g.micro", "db.t4g.small"]},
    ),
    CERTIFICATE_ARN: ParameterSpec(
        "String",
        "ACM certificate ARN for the ALB's HTTPS listener; empty = HTTP only (not allowed in prod)",
        {
            "Default": "",
            "AllowedPattern": ACM_ARN_PATTERN,
            "ConstraintDescription": "empty, or an ACM certificate ARN",
        },
    ),
    IMAGE_TAG: ParameterSpec(
        "String",
        "Immutable backend image tag pushed by CI; empty = no image yet (service runs 0 tasks)",
        {
            "Default": "",
            "AllowedPattern": IMAGE_TAG_PATTERN,
            "ConstraintDescription": "empty, or a Docker tag other than latest",
        },
    ),
    DESIRED_COUNT: ParameterSpec(
        "Number",
        "Backend tasks to run (the deployer passes the live count on updates)",
        {"Default": "2", "MinValue": "0", "MaxValue": "4"},
    ),
    ALARM_EMAIL: ParameterSpec(
        "String",
        "E-mail address subscribed to the alarm topic; empty = no subscription",
        {
            "Default": "",
            "AllowedPattern": EMAIL_PATTERN,
            "ConstraintDescription": "empty, or an e-mail address",
        },
    ),
    ENABLE_CLOUDTRAIL: ParameterSpec(
        "String",
        "Create the multi-region CloudTrail trail with security alarms",
        {"Default": "false", "AllowedValues": ["true", "false"]},
    ),
    ENABLE_DELETION_PROTECTION: ParameterSpec(
        "String",
        "Deletion protection of the prod database and load balancer (the deployer passes false on "
        "a first create, so a failed create can roll back; every later deploy turns it on)",
        {"Default": "true", "AllowedValues": ["true", "false"]},
    ),
    DATABASE_CA_BUNDLE_PATH: ParameterSpec(
        "String",
        "Path of the Amazon RDS CA bundle inside the backend image (DATABASE_URL's sslrootcert)",
        {
            "Default": DEFAULT_DATABASE_CA_BUNDLE_PATH,
            "AllowedPattern": URL_SAFE_PATH_PATTERN,
            "ConstraintDescription": "an absolute path of letters, digits and . _ ~ - only (URL-safe)",
        },
    ),
    NAT_GATEWAY_LAYOUT: ParameterSpec(
        "String",
        "NAT gateways: per-az (the spec; one NAT gateway and Elastic IP per AZ; required in prod) or "
        "single (one in AZ 1 for both private subnets: one Elastic IP, cross-AZ traffic)",
        {"Default": NAT_PER_AZ, "AllowedValues": [NAT_PER_AZ, NAT_SINGLE]},
    ),
    API_DOMAIN_NAME: ParameterSpec(
        "String",
        "DNS name of the ALB's certificate (a CNAME or alias to the ALB, outside the stack): CloudFront's "
        "/api/* origin over HTTPS; required with CertificateArn, unused without it (dev: HTTP to the ALB)",
        {
            "Default": "",
            "AllowedPattern": DOMAIN_PATTERN,
            "ConstraintDescription": "empty, or a lower-case DNS name",
        },
    ),
    FRONTEND_DOMAIN_NAME: ParameterSpec(
        "String",
        "Custom domain for CloudFront; empty = the *.cloudfront.net name",
        {
            "Default": "",
            "AllowedPattern": DOMAIN_PATTERN,
            "ConstraintDescription": "empty, or a lower-case DNS name",
        },
    ),
    FRONTEND_CERTIFICATE_ARN: ParameterSpec(
        "String",
        "us-east-1 ACM certificate ARN for the custom frontend domain",
        {
            "Default": "",
            "AllowedPattern": CLOUDFRONT_ACM_ARN_PATTERN,
            "ConstraintDescription": "empty, or an ACM certificate ARN in us-east-1",
        },
    ),
}

# --------------------------------------------------------------------------------------------
# Spec numbers used by more than one stack (the spec's value, in one place).
# --------------------------------------------------------------------------------------------
VPC_CIDR = "10.0.0.0/16"  # spec section 1
HTTP_PORT = 80  # spec section 4: ALB listener
HTTPS_PORT = 443  # spec section 4: ALB listener
CONTAINER_PORT = 5000  # spec section 4: target group / container port
DATABASE_PORT = 5432  # spec section 3
HEALTH_CHECK_PATH = "/health"  # spec sections 2 and 4
HEALTH_CHECK_INTERVAL_SECONDS = 30  # spec sections 2 and 4: "every 30s"
HEALTHY_THRESHOLD = 2  # spec section 4: "2 consecutive successes" (ALB; the service's grace period)
DATABASE_NAME = "karematch"  # spec section 3
ANYWHERE_IPV4 = "0.0.0.0/0"

# --------------------------------------------------------------------------------------------
# Wiring names: a child's Output and its consumer's Parameter share the name.
# --------------------------------------------------------------------------------------------
# network
VPC_ID = "VpcId"
PUBLIC_SUBNET_IDS = "PublicSubnetIds"
PRIVATE_SUBNET_IDS = "PrivateSubnetIds"
DATABASE_SUBNET_IDS = "DatabaseSubnetIds"
FLOW_LOG_GROUP_NAME = "FlowLogGroupName"
# security
ALB_SECURITY_GROUP_ID = "AlbSecurityGroupId"
APP_SECURITY_GROUP_ID = "AppSecurityGroupId"
DATABASE_SECURITY_GROUP_ID = "DatabaseSecurityGroupId"
# secrets
DATABASE_SECRET_ARN = "DatabaseSecretArn"
ENCRYPTION_KEY_SECRET_ARN = "EncryptionKeySecretArn"
SESSION_SECRET_ARN = "SessionSecretArn"
# database
DATABASE_ENDPOINT_ADDRESS = "DatabaseEndpointAddress"
DATABASE_ENDPOINT_PORT = "DatabaseEndpointPort"
DATABASE_INSTANCE_ID = "DatabaseInstanceId"
DATABASE_RESOURCE_ID = "DatabaseResourceId"  # DbiResourceId: rds-db:connect ARNs (iam)
# appsecret
APP_SECRET_ARN = "AppSecretArn"
APP_SECRET_NAME = "AppSecretName"
# iam
TASK_EXECUTION_ROLE_ARN = "TaskExecutionRoleArn"
TASK_ROLE_ARN = "TaskRoleArn"
# registry
REPOSITORY_URI = "RepositoryUri"
REPOSITORY_ARN = "RepositoryArn"
REPOSITORY_NAME = "RepositoryName"
# loadbalancer
TARGET_GROUP_ARN = "TargetGroupArn"
LOAD_BALANCER_DNS_NAME = "LoadBalancerDnsName"
LOAD_BALANCER_FULL_NAME = "LoadBalancerFullName"
TARGET_GROUP_FULL_NAME = "TargetGroupFullName"
# service
CLUSTER_NAME = "ClusterName"
SERVICE_NAME = "ServiceName"
APP_LOG_GROUP_NAME = "AppLogGroupName"
# frontend
FRONTEND_BUCKET_NAME = "FrontendBucketName"
DISTRIBUTION_DOMAIN_NAME = "DistributionDomainName"
DISTRIBUTION_ID = "DistributionId"
API_URL = "ApiUrl"  # the URL the SPA calls: its own origin's /api (CloudFront -> ALB)
API_PATH_PREFIX = "/api"
# monitoring
ALARM_TOPIC_ARN = "AlarmTopicArn"
DASHBOARD_NAME = "DashboardName"

# --------------------------------------------------------------------------------------------
# Physical names (Fn::Sub patterns). ${EnvironmentName} is the Parameter above.
# --------------------------------------------------------------------------------------------
ENV = "${EnvironmentName}"
SUFFIX = "${EnvironmentName}-${AWS::AccountId}"

VPC_NAME = f"karematch-{ENV}-vpc"
FLOW_LOG_GROUP = f"/aws/vpc/karematch-{ENV}-flow-log"
FLOW_LOG_ROLE = f"karematch-{ENV}-vpc-flow-log-role"
CLUSTER = f"karematch-{ENV}-cluster"
SERVICE = f"karematch-{ENV}-backend-service"
APP_LOG_GROUP = f"/aws/ecs/karematch-{ENV}"
DATABASE_INSTANCE = f"karematch-{ENV}-db"
LOAD_BALANCER = f"karematch-{ENV}-alb"
TARGET_GROUP = f"karematch-{ENV}-tg"
REPOSITORY = f"karematch-{ENV}-backend"
FRONTEND_BUCKET = f"karematch-frontend-{SUFFIX}"
ALB_LOG_BUCKET = f"karematch-alb-logs-{SUFFIX}"
APP_SECRET = f"karematch-app-secrets-{SUFFIX}"
DATABASE_SECRET = f"karematch-db-password-{SUFFIX}"
ENCRYPTION_KEY_SECRET = f"karematch-encryption-key-{SUFFIX}"
SESSION_SECRET = f"karematch-session-secret-{SUFFIX}"
TASK_EXECUTION_ROLE = f"karematch-{ENV}-ecs-task-execution-role"
TASK_ROLE = f"karematch-{ENV}-ecs-task-role"
DASHBOARD = f"karematch-{ENV}-dashboard"
# The environment's permissions boundary (bootstrap.yaml creates it): every role of the tree
# carries it, and the execution role may create or change roles only with it.
PERMISSIONS_BOUNDARY = f"karematch-{ENV}-permissions-boundary"
ALARM_TOPIC = f"karematch-{ENV}-alarms"
TRAIL = f"karematch-{ENV}-trail"
TRAIL_BUCKET = f"karematch-cloudtrail-{SUFFIX}"
TRAIL_LOG_GROUP = f"/aws/cloudtrail/karematch-{ENV}"

# Deployment plumbing (bootstrap.yaml creates it; the deployer defaults to it).
ARTIFACTS_BUCKET = "karematch-cfn-artifacts-${AWS::AccountId}-${AWS::Region}"
DEFAULT_STACK_NAME = "karematch-{env}"  # str.format pattern used by the deployer
# The artifacts bucket's layout and lifecycle: bootstrap.yaml creates it so, and the deployer
# creates it the same way where it is missing (deploy/package.py).
ARTIFACTS_KEY_PREFIX = "templates"
ARTIFACTS_EXPIRE_DAYS = 90  # packaged templates; the deployer re-uploads keys older than 30 days
ARTIFACTS_NONCURRENT_EXPIRE_DAYS = 30
ARTIFACTS_ABORT_MULTIPART_DAYS = 1

# The registry keeps the images the deployer tags with this prefix (deploy/images.py moves
# deployed-current and deployed-previous) out of reach of the "newest 10 tagged" rule.
PROTECTED_IMAGE_TAG_PREFIX = "deployed-"
PROTECTED_IMAGES = 2  # the deployed image and the one before it (a rollback needs it)

# Conditions shared by name across templates.
IS_PRODUCTION = "IsProduction"
PROTECT_FROM_DELETION = "ProtectFromDeletion"  # prod, and EnableDeletionProtection is "true"
HAS_IMAGE = "HasImage"  # ImageTag is not empty: CI has pushed the backend image


# Types of wiring inputs (a child Parameter fed by another child's Output); default String.
WIRING_TYPES: dict[str, str] = {
    VPC_ID: "AWS::EC2::VPC::Id",
    PUBLIC_SUBNET_IDS: "List<AWS::EC2::Subnet::Id>",
    PRIVATE_SUBNET_IDS: "List<AWS::EC2::Subnet::Id>",
    DATABASE_SUBNET_IDS: "List<AWS::EC2::Subnet::Id>",
    ALB_SECURITY_GROUP_ID: "AWS::EC2::SecurityGroup::Id",
    APP_SECURITY_GROUP_ID: "AWS::EC2::SecurityGroup::Id",
    DATABASE_SECURITY_GROUP_ID: "AWS::EC2::SecurityGroup::Id",
}


def declare(t: Template, name: str, description: str | None = None, **overrides: Any) -> Parameter:
    """Add Parameter ``name`` to ``t``, declared exactly as everywhere else.

    Shared knobs take their spec from ``SHARED_PARAMETERS``; wiring inputs take their type from
    ``WIRING_TYPES`` (default String) and need a description.
    """
    if name in SHARED_PARAMETERS:
        spec = SHARED_PARAMETERS[name]
        props = {"Type": spec.type, "Description": description or spec.description, **spec.props}
    else:
        if not description:
            raise ValueError(f"wiring parameter {name} needs a description")
        props = {"Type": WIRING_TYPES.get(name, "String"), "Description": description}
    props.update(overrides)
    return t.add_parameter(Parameter(name, **props))
