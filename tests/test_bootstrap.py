"""templates/bootstrap.yaml: the artifacts buckets, the GitHub OIDC trust, and roles that can do
what a deploy needs and no more.

The execution role is checked against cfn-lint's copies of two AWS sources (pinned with
cfn-lint in constraints.txt): the CloudFormation resource schemas, whose ``handlers`` list the
permissions CloudFormation needs to create, read, update and delete each resource type, and the
service authorisation reference (which actions exist, which resource ARNs they authorise on).
So a new resource type in a child stack without the permissions to provision it fails here, not
in a first deploy.
"""

from __future__ import annotations

import fnmatch
import json
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import cfnlint
import pytest

from karematch_cfn import evaluate, names, tree
from karematch_cfn.deploy import package
from karematch_cfn.lib import iam
from karematch_cfn.stacks import STANDALONE_MODULES, bootstrap, root
from tests import helpers

FILE = "bootstrap.yaml"
ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
ENV = "dev"  # the environment the template is read for (dev: it also has the plan role)
OTHERS = [e for e in names.ENVIRONMENTS if e != ENV]
EXECUTION_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/karematch-bootstrap-{ENV}-cfn-exec-{REGION}"
OIDC_SUB = "token.actions.githubusercontent.com:sub"
OIDC_AUD = "token.actions.githubusercontent.com:aud"
CFN_DATA = Path(cfnlint.__file__).parent / "data"

# Handler permissions the execution role deliberately does not grant: features of the resource
# types the KareMatch templates do not use (the handlers list every property's needs).
NOT_GRANTED = {
    "cognito-idp:*": "ALB listener Cognito authentication",
    "lambda:*ProvisionedConcurrencyConfig": "Lambda scalable targets",
    "s3tables:*": "S3 bucket metadata tables",
    "s3:CreateBucketMetadata*": "S3 bucket metadata tables",
    "s3:UpdateBucketMetadata*": "S3 bucket metadata tables",
    "s3:DeleteObject": "object deletion: the role never touches objects (logs, frontend files)",
    "s3:PutObjectAcl": "object ACLs: buckets are BucketOwnerEnforced",
    "vpc-lattice:*": "VPC Lattice service-network endpoints",
    "vpce:AllowMultiRegion": "cross-region VPC endpoints",
    "firehose:TagDeliveryStream": "log delivery to Firehose",
    "cloudfront:CreateConnectionGroup": "CloudFront multi-tenant connection groups",
    "cloudfront:GetConnectionGroup": "CloudFront multi-tenant connection groups",
    "cloudfront:UpdateDistributionWithStagingConfig": "CloudFront continuous deployment",
    "cloudwatch:GetMetricData": "predictive scaling policies",
    "ec2:AcceptAddressTransfer": "Elastic IP transfers between accounts",
    "ec2:*PrivateNatGatewayAddress": "secondary NAT gateway addresses",
    "ec2:*NatGatewayAddress": "secondary NAT gateway addresses",
    "ec2:*SubnetCidrBlock": "IPv6 subnet CIDRs",
    "ec2:*VpnGateway": "VPN gateways",
    "ec2:CreateVpcEncryptionControl": "VPC encryption controls",
    "ec2:ModifyVpcTenancy": "dedicated tenancy",
    "ecs:PutAccountSetting*": "account-wide ECS settings",
    "elasticloadbalancing:ModifyCapacityReservation": "load balancer capacity reservations",
    "elasticloadbalancing:ModifyIpPools": "IPAM pools for load balancers",
    "iam:DeleteRolePermissionsBoundary": "removing a boundary: explicitly denied",
    "logs:PutBearerTokenAuthentication": "HTTP log ingestion tokens",
    "logs:PutIndexPolicy": "account-wide field indexes",
    "logs:DeleteIndexPolicy": "account-wide field indexes",
    "logs:PutResourcePolicy": "account-wide CloudWatch Logs resource policies",
    "logs:DeleteResourcePolicy": "account-wide CloudWatch Logs resource policies",
    "rds:AddRoleToDBInstance": "RDS instance IAM roles (S3 import/export)",
    "rds:RemoveRoleFromDBInstance": "RDS instance IAM roles (S3 import/export)",
    "rds:CreateDBInstanceReadReplica": "read replicas",
    "rds:PromoteReadReplica": "read replicas",
    "rds:Restore*": "restores (a runbook step with administrator credentials)",
    "rds:*DBInstanceAutomatedBackupsReplication": "cross-region backup replication",
    "secretsmanager:ReplicateSecretToRegions": "copying secrets to other regions",
    "amplify:*": "web ACLs on Amplify apps (the association handler lists every target type)",
    "apigateway:SetWebACL": "web ACLs on API Gateway stages",
    "apprunner:*": "web ACLs on App Runner services",
    "appsync:*": "web ACLs on AppSync APIs",
    "bedrock-agentcore:*": "web ACLs on Bedrock AgentCore gateways",
    "ec2:*VerifiedAccessInstanceWebAcl*": "web ACLs on Verified Access instances",
    "wafv2:*PermissionPolicy": "sharing WAF rule groups with other accounts",
    "codewhisperer:AllowVendedLogDeliveryForResource": "log delivery from CodeWhisperer",
    "workmail:AllowVendedLogDeliveryForResource": "log delivery from WorkMail",
    "elasticfilesystem:*": "Lambda file systems",
    "s3files:*": "Lambda file systems",
    "kms:Encrypt": "Lambda environment variables under a customer key (the function has none)",
    "lambda:PutFunctionCodeSigningConfig": "Lambda code signing",
    "lambda:DeleteFunctionCodeSigningConfig": "Lambda code signing",
    "lambda:GetCodeSigningConfig": "Lambda code signing",
    "lambda:GetLayerVersion": "Lambda layers",
    "lambda:PassCapacityProvider": "Lambda managed instances",
    "lambda:PutFunctionScalingConfig": "Lambda managed instances",
    "s3:GetObjectVersion": "Lambda code from S3 (the function's code is inline)",
}


# ------------------------------------------------------------------------------------------
# Reading the template
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _t(env: str = ENV) -> dict[str, Any]:
    """The rendered template as deployed for ``env`` (cached: tests read it, never change it)."""
    return evaluate.resolve(
        helpers.template(FILE), {"EnvironmentName": env, "GitHubRepository": "karematch/karematch-cfn"}
    )


def _res(logical_id: str) -> dict[str, Any]:
    return _t()["Resources"][logical_id]


def _list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def _role_statements(logical_id: str) -> list[dict[str, Any]]:
    """Every identity-policy statement of a role: inline and attached managed policies."""
    out = []
    for pol in helpers.props(_res(logical_id)).get("Policies", []):
        out += pol["PolicyDocument"]["Statement"]
    for res in _t()["Resources"].values():
        if res["Type"] == "AWS::IAM::ManagedPolicy" and {"Ref": logical_id} in res["Properties"].get(
            "Roles", []
        ):
            out += res["Properties"]["PolicyDocument"]["Statement"]
    return out


@cache
def _allows(logical_id: str) -> list[dict[str, Any]]:
    return [s for s in _role_statements(logical_id) if s["Effect"] == "Allow"]


def _concrete(value: Any) -> str:
    """A Resource/ARN value as text, with the pseudo parameters of a sample account."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        assert value["Fn::GetAtt"] == [bootstrap.EXECUTION_ROLE, "Arn"], value
        return EXECUTION_ROLE_ARN
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], list):
        text, variables = value["Fn::Sub"]
        for k, v in variables.items():
            if isinstance(v, dict) and "Fn::GetAtt" in v and v["Fn::GetAtt"][0] != bootstrap.EXECUTION_ROLE:
                v = "*"  # a child resource's attribute (e.g. the VPC's default group id): any
            text = text.replace("${" + k + "}", v if isinstance(v, str) else _concrete(v))
    else:
        text = helpers.sub_text(value)
    return (
        text.replace("${EnvironmentName}", ENV)
        .replace("${AWS::Partition}", PARTITION)
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::AccountId}", ACCOUNT)
    )


def _actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in _list(s["Action"])}


# ------------------------------------------------------------------------------------------
# cfn-lint's data: resource schemas (handler permissions) and the authorisation reference
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _sar() -> dict[str, Any]:
    return json.loads((CFN_DATA / "AdditionalSpecs" / "Policies.json").read_text())


@cache
def _handler_permissions(rtype: str) -> dict[str, set[str]]:
    """permission -> handlers (create/read/update/delete) of one resource type."""
    index = json.loads((CFN_DATA / "schemas" / "providers" / f"{REGION}.json").read_text())
    schema = json.loads((CFN_DATA / "schemas" / "resources" / f"{index[rtype]}.json").read_text())
    out: dict[str, set[str]] = {}
    for handler, spec in schema.get("handlers", {}).items():
        if handler != "list":
            for perm in spec.get("permissions", []):
                out.setdefault(perm, set()).add(handler)
    return out


def _sar_action(action: str) -> dict[str, Any] | None:
    service, name = action.split(":", 1)
    return _sar().get(service.lower(), {}).get("Actions", {}).get(name.lower())


def _expand(pattern: str) -> list[str]:
    """The IAM actions an action pattern (``s3:GetBucket*``) grants, per the reference."""
    service, name = pattern.split(":", 1)
    actions = _sar().get(service.lower(), {}).get("Actions", {})
    return [f"{service}:{a}" for a in actions if fnmatch.fnmatchcase(a, name.lower())]


def _arn_formats(action: str) -> list[str]:
    service = action.split(":", 1)[0].lower()
    types = {k.lower(): v for k, v in _sar()[service]["Resources"].items()}
    formats = []
    for rtype in (_sar_action(action) or {}).get("Resources", []):
        for fmt in types.get(rtype.lower(), {}).get("ARNFormats", []):
            fmt = fmt.replace("${Partition}", PARTITION).replace("${Region}", REGION)
            fmt = fmt.replace("${Account}", ACCOUNT).replace(".*", "*")
            formats.append(re.sub(r"\$\{[^}]+\}", "*", fmt))
    return formats


def _globs_meet(a: str, b: str) -> bool:
    """Whether some string matches both glob patterns (``*`` wildcards only)."""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return meet(i + 1, j) or (j < len(b) and meet(i, j + 1))
        if j < len(b) and b[j] == "*":
            return meet(i, j + 1) or (i < len(a) and meet(i + 1, j))
        return i < len(a) and j < len(b) and a[i] == b[j] and meet(i + 1, j + 1)

    return meet(0, 0)


def _granted(permission: str, statements: list[dict[str, Any]]) -> bool:
    return any(fnmatch.fnmatch(permission.lower(), a.lower()) for s in statements for a in _list(s["Action"]))


def _child_templates() -> dict[str, dict[str, Any]]:
    return {f: helpers.template(f) for f in helpers.rendered_text() if f != FILE}


def _child_resources(rtype: str | None = None):
    for filename, t in _child_templates().items():
        for logical_id, res in t.get("Resources", {}).items():
            if rtype is None or res["Type"] == rtype:
                yield f"{filename}/{logical_id}", res


# ------------------------------------------------------------------------------------------
# Placement
# ------------------------------------------------------------------------------------------
def test_bootstrap_is_standalone_and_inline_deployable():
    assert (FILE, bootstrap) in STANDALONE_MODULES
    urls = [
        r["Properties"]["TemplateURL"]
        for r in helpers.resources_of_type(
            helpers.template(root.ROOT_FILE), "AWS::CloudFormation::Stack"
        ).values()
    ]
    assert f"./{FILE}" not in urls
    # `aws cloudformation deploy --template-file` without --s3-bucket sends the body inline.
    assert len(helpers.rendered_text()[FILE].encode()) <= tree.MAX_BODY_INLINE


def test_outputs_name_what_ci_needs():
    outputs = _t()["Outputs"]
    assert set(outputs) == {
        "ArtifactsBucketName",
        "PlanArtifactsBucketName",
        "DeployRoleArn",
        "PlanRoleArn",
        "CloudFormationExecutionRoleArn",
        "PermissionsBoundaryArn",
        "GitHubOidcProviderArn",
    }
    # the plan role and its bucket exist for dev only (pull requests dry-run dev)
    assert set(outputs) - set(_t("prod")["Outputs"]) == {"PlanArtifactsBucketName", "PlanRoleArn"}
    assert bootstrap.PLAN_ROLE not in _t("prod")["Resources"]
    assert outputs["DeployRoleArn"]["Value"] == {"Fn::GetAtt": ["DeployRole", "Arn"]}
    assert outputs["CloudFormationExecutionRoleArn"]["Value"] == {
        "Fn::GetAtt": ["CloudFormationExecutionRole", "Arn"]
    }


# ------------------------------------------------------------------------------------------
# Artifacts buckets
# ------------------------------------------------------------------------------------------
def test_each_environment_has_its_own_artifacts_bucket_apart_from_the_deployers_default():
    """CI passes --artifact-bucket: no environment (nor a pull request) writes where another
    reads, so none can plant a content-hash key another environment reuses."""
    name = helpers.props(_res(bootstrap.ARTIFACTS_BUCKET))["BucketName"]
    assert _concrete(name) == f"karematch-cfn-artifacts-{ENV}-{ACCOUNT}-{REGION}"
    assert len(_concrete(name).replace(REGION, "ap-southeast-2").replace(ENV, "staging")) <= 63
    assert _concrete(name) != package.default_bucket_name(ACCOUNT, REGION)


@pytest.mark.parametrize("logical_id", [bootstrap.ARTIFACTS_BUCKET, bootstrap.PLAN_ARTIFACTS_BUCKET])
def test_artifacts_buckets_are_encrypted_versioned_private_and_kept(logical_id):
    res = _res(logical_id)
    p = helpers.props(res)
    rule = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert p["VersioningConfiguration"]["Status"] == "Enabled"
    assert p["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert p["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert res["DeletionPolicy"] == "RetainExceptOnCreate" and res["UpdateReplacePolicy"] == "Retain"
    assert len(_concrete(p["BucketName"]).replace(REGION, "ap-southeast-5")) <= 63


@pytest.mark.parametrize("logical_id", [bootstrap.ARTIFACTS_BUCKET, bootstrap.PLAN_ARTIFACTS_BUCKET])
def test_artifacts_keys_expire_as_the_deployer_expects(logical_id):
    # The deployer re-uploads keys older than REFRESH_DAYS, so a template in use must outlive
    # that by a margin: expiry as in the bucket the deployer itself would create.
    rules = helpers.props(_res(logical_id))["LifecycleConfiguration"]["Rules"]
    assert len(rules) == 1 and rules[0]["Status"] == "Enabled"
    assert rules[0]["ExpirationInDays"] == package.EXPIRE_DAYS > package.REFRESH_DAYS
    assert rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == package.NONCURRENT_EXPIRE_DAYS
    assert rules[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == package.ABORT_MULTIPART_DAYS


@pytest.mark.parametrize("bucket_id", [bootstrap.ARTIFACTS_BUCKET, bootstrap.PLAN_ARTIFACTS_BUCKET])
def test_artifacts_buckets_refuse_plain_http(bucket_id):
    policies = [
        p
        for p in helpers.resources_of_type(_t(), "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    name = _concrete(helpers.props(_res(bucket_id))["BucketName"])
    deny = [s for s in policies[0]["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert len(deny) == 1
    st = deny[0]
    assert st["Principal"] == "*" or st["Principal"] == {"AWS": "*"}
    assert _list(st["Action"]) == ["s3:*"]
    assert st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    resources = {_concrete(r) for r in st["Resource"]}
    assert resources == {f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"}


# ------------------------------------------------------------------------------------------
# GitHub OIDC trust
# ------------------------------------------------------------------------------------------
def trusted_subjects(trust: dict[str, Any]) -> list[str]:
    """The OIDC subjects a trust policy admits; fails unless every statement is a web-identity
    assumption by the GitHub provider for STS with an exact, repository-bound subject."""
    subjects = []
    for st in trust["Statement"]:
        assert st["Effect"] == "Allow"
        assert _list(st["Action"]) == ["sts:AssumeRoleWithWebIdentity"]
        # (the template as deployed with CreateOidcProvider at its default, true)
        assert st["Principal"] == {"Federated": {"Ref": bootstrap.OIDC_PROVIDER}}
        cond = st.get("Condition", {})
        assert cond.get("StringEquals", {}).get(OIDC_AUD) == "sts.amazonaws.com", "audience unchecked"
        found = [v for op, kv in cond.items() for k, v in kv.items() if k == OIDC_SUB]
        assert len(found) == 1, f"subject condition missing or repeated: {cond}"
        assert OIDC_SUB in cond.get("StringEquals", {}), "subject compared with wildcards"
        for value in _list(found[0]):
            text = helpers.sub_text(value)
            assert text.startswith("repo:${GitHubRepository}:"), text
            assert not set(text) & set("*?"), f"wildcard subject {text}"
            subjects.append(text.removeprefix("repo:${GitHubRepository}:"))
    return subjects


@pytest.mark.parametrize(
    "env,subject",
    [("dev", "ref:refs/heads/main"), ("staging", "environment:staging"), ("prod", "environment:prod")],
)
def test_each_deploy_role_trusts_exactly_its_own_environments_jobs(env, subject):
    """Prod's role: only jobs in the prod GitHub environment (its reviewers), never main."""
    trust = helpers.props(_t(env)["Resources"][bootstrap.DEPLOY_ROLE])["AssumeRolePolicyDocument"]
    assert [s.replace("${EnvironmentName}", env) for s in trusted_subjects(trust)] == [subject]
    assert set(bootstrap.GATED_ENVIRONMENTS) == {"staging", "prod"}


def test_plan_role_trusts_pull_requests_only():
    trust = helpers.props(_res(bootstrap.PLAN_ROLE))["AssumeRolePolicyDocument"]
    assert trusted_subjects(trust) == ["pull_request"]


@pytest.mark.parametrize("mutate", ["wildcard", "like-wildcard", "missing", "other-repo", "no-aud"])
def test_the_subject_check_rejects_a_loose_trust(mutate):
    """trusted_subjects is the gate: it must fail on the trusts it exists to catch."""
    trust = json.loads(json.dumps(helpers.props(_res(bootstrap.DEPLOY_ROLE))["AssumeRolePolicyDocument"]))
    cond = trust["Statement"][0]["Condition"]
    if mutate == "wildcard":
        cond["StringEquals"][OIDC_SUB] = {"Fn::Sub": "repo:${GitHubRepository}:*"}
    elif mutate == "like-wildcard":
        cond["StringLike"] = {OIDC_SUB: cond["StringEquals"].pop(OIDC_SUB)}
    elif mutate == "missing":
        del cond["StringEquals"][OIDC_SUB]
    elif mutate == "other-repo":
        cond["StringEquals"][OIDC_SUB] = "repo:someone/else:ref:refs/heads/main"
    else:
        del cond["StringEquals"][OIDC_AUD]
    with pytest.raises(AssertionError):
        trusted_subjects(trust)


def test_oidc_provider_is_github_for_sts_unless_one_exists():
    res = _res(bootstrap.OIDC_PROVIDER)
    assert res["Condition"] == bootstrap.CREATES_OIDC_PROVIDER
    assert res["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert res["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    rule = _t()["Rules"][bootstrap.PROVIDER_GIVEN_RULE]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": bootstrap.CREATE_OIDC_PROVIDER}, "false"]}
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": bootstrap.EXISTING_OIDC_PROVIDER_ARN}, ""]}]
    }
    pattern = _t()["Parameters"][bootstrap.GITHUB_REPOSITORY]["AllowedPattern"]
    assert re.fullmatch(pattern, "karematch/karematch-cfn")
    for bad in ("karematch", "a/b/c", "*/*", "org/*", "org/repo:ref"):
        assert not re.fullmatch(pattern, bad), bad


# ------------------------------------------------------------------------------------------
# What GitHub Actions may do
# ------------------------------------------------------------------------------------------
GITHUB_ROLES = (bootstrap.DEPLOY_ROLE, bootstrap.PLAN_ROLE)
STACK_ARN = re.compile(
    r"arn:\$\{AWS::Partition\}:cloudformation:\$\{AWS::Region\}:\$\{AWS::AccountId\}"
    r":stack/karematch-\$\{EnvironmentName\}(-\*)?/\*"
)


@pytest.mark.parametrize("role", GITHUB_ROLES)
def test_github_roles_touch_only_the_karematch_stacks(role):
    cfn = [s for s in _allows(role) if any(a.startswith("cloudformation:") for a in _list(s["Action"]))]
    assert cfn
    for st in cfn:
        assert all(a.startswith("cloudformation:") for a in _list(st["Action"]))
        for r in st["Resource"]:
            assert STACK_ARN.fullmatch(helpers.sub_text(r)), r
            # the bootstrap stack itself is out of reach
            assert not fnmatch.fnmatchcase("stack/karematch-bootstrap/id", _concrete(r).split(":", 5)[5])
            for other in OTHERS:  # another environment's stacks are out of reach
                assert not fnmatch.fnmatchcase(f"stack/karematch-{other}/id", _concrete(r).split(":", 5)[5])
    assert not any("*" in a for a in _actions_of(cfn)), "wildcard CloudFormation action"


@pytest.mark.parametrize("role", GITHUB_ROLES)
def test_github_roles_pass_only_the_execution_role_and_only_to_cloudformation(role):
    passes = [s for s in _allows(role) if "iam:PassRole" in _list(s["Action"])]
    assert len(passes) == 1
    st = passes[0]
    assert _list(st["Action"]) == ["iam:PassRole"]
    assert st["Resource"] == [{"Fn::GetAtt": [bootstrap.EXECUTION_ROLE, "Arn"]}]
    assert st["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    other_iam = {a for a in _actions_of(_allows(role)) if a.startswith("iam:")} - {"iam:PassRole"}
    assert other_iam <= {"iam:CreateServiceLinkedRole"}
    for s in _allows(role):
        if "iam:CreateServiceLinkedRole" in _list(s["Action"]):
            for r in s["Resource"]:
                assert _concrete(r).split(":", 5)[5].startswith("role/aws-service-role/"), r


def test_only_the_deploy_role_can_execute_and_neither_can_delete_stacks():
    deploy, plan = (_actions_of(_allows(r)) for r in GITHUB_ROLES)
    assert {"cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet"} <= plan & deploy
    executing = {
        "cloudformation:ExecuteChangeSet",
        "cloudformation:SetStackPolicy",
        "cloudformation:UpdateTerminationProtection",
        "cloudformation:UpdateStack",
        "cloudformation:CreateStack",
    }
    assert not plan & executing
    assert "cloudformation:ExecuteChangeSet" in deploy
    # Only prod's root is termination-protected: DeleteStack would let a job delete dev/staging.
    assert "cloudformation:DeleteStack" not in plan | deploy


def _object_grants(role: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for st in _allows(role):
        for a in _list(st["Action"]):
            if a.startswith("s3:"):
                for r in st["Resource"]:
                    out.setdefault(_concrete(r), set()).add(a)
    return out


def test_each_github_role_writes_templates_to_its_own_bucket_only():
    # A pull request must not be able to plant a template a deploy from main would reuse
    # (the deployer skips uploading a content-hash key that already exists).
    main = _concrete(helpers.props(_res(bootstrap.ARTIFACTS_BUCKET))["BucketName"])
    plan_bucket = _concrete(helpers.props(_res(bootstrap.PLAN_ARTIFACTS_BUCKET))["BucketName"])
    prefix = package.KEY_PREFIX
    assert _object_grants(bootstrap.DEPLOY_ROLE) == {
        f"arn:aws:s3:::{main}": {
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:GetEncryptionConfiguration",
            "s3:GetBucketPublicAccessBlock",
            "s3:GetBucketVersioning",
            "s3:GetBucketPolicy",
            "s3:GetLifecycleConfiguration",
        },
        f"arn:aws:s3:::{main}/{prefix}/*": {"s3:GetObject", "s3:PutObject"},
        # publish-frontend
        f"arn:aws:s3:::karematch-frontend-{ENV}-{ACCOUNT}": {"s3:ListBucket", "s3:GetBucketLocation"},
        f"arn:aws:s3:::karematch-frontend-{ENV}-{ACCOUNT}/*": {
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
        },
    }
    assert _object_grants(bootstrap.PLAN_ROLE) == {
        f"arn:aws:s3:::{plan_bucket}": {"s3:ListBucket", "s3:GetBucketLocation"},
        f"arn:aws:s3:::{plan_bucket}/{prefix}/*": {"s3:GetObject", "s3:PutObject"},
    }
    assert plan_bucket != main
    # and never another environment's bucket (IAM-enforced isolation of the artifacts)
    for other in OTHERS:
        assert not any(other in arn for arn in _object_grants(bootstrap.DEPLOY_ROLE)), other


@pytest.mark.parametrize("role", GITHUB_ROLES)
def test_github_roles_read_the_live_task_count_of_the_karematch_service_only(role):
    st = [s for s in _allows(role) if "ecs:DescribeServices" in _list(s["Action"])]
    assert len(st) == 1 and _list(st[0]["Action"]) == ["ecs:DescribeServices"]
    for env in names.ENVIRONMENTS:
        cluster = names.CLUSTER.replace(names.ENV, env)
        service = names.SERVICE.replace(names.ENV, env)
        arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}"
        assert any(fnmatch.fnmatchcase(arn, _concrete(r)) for r in st[0]["Resource"]) == (env == ENV), arn
    assert not any(
        fnmatch.fnmatchcase(f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/other/api", _concrete(r))
        for r in st[0]["Resource"]
    )


@pytest.mark.parametrize("role", GITHUB_ROLES)
def test_github_roles_have_nothing_else(role):
    services = {a.split(":")[0] for a in _actions_of(_allows(role))}
    assert services <= {
        "cloudformation",
        "iam",
        "s3",
        "ecs",
        "ecr",
        "ec2",
        "servicequotas",
        "cloudfront",
        "cloudwatch",
        "kms",  # the frontend bucket's SSE-KMS, through S3 only (below)
    }
    for st in _allows(role):
        if any(a.startswith("kms:") for a in _list(st["Action"])):
            assert set(_list(st["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}
            assert (
                _concrete(st["Condition"]["StringEquals"]["kms:ViaService"]) == f"s3.{REGION}.amazonaws.com"
            )
    unscoped = [s for s in _role_statements(role) if "*" in _list(s.get("Resource", []))]
    assert all(set(_list(s["Action"])) <= iam.QUOTA_USAGE_ACTIONS for s in unscoped)


@pytest.mark.parametrize("role", GITHUB_ROLES)
def test_github_roles_read_exactly_the_quotas_the_preflight_checks(role):
    from karematch_cfn.deploy import quotas

    (st,) = [s for s in _allows(role) if "servicequotas:GetServiceQuota" in _list(s["Action"])]
    assert _list(st["Action"]) == ["servicequotas:GetServiceQuota"]
    wanted = {f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:{q.service}/{q.code}" for q in quotas.QUOTAS}
    assert {_concrete(r) for r in st["Resource"]} == wanted
    reads = _actions_of(_allows(role))
    assert {"servicequotas:GetAWSDefaultServiceQuota", "ec2:DescribeAddresses", "ec2:DescribeVpcs"} <= reads
    assert {"ec2:DescribeNatGateways", "ec2:DescribeSubnets", "ec2:DescribeAvailabilityZones"} <= reads


def test_only_the_deploy_role_retags_images_and_only_in_the_karematch_repositories():
    """The deployer's deployed-* tags (deploy/images.py): read a manifest and put it again."""
    (st,) = [
        s for s in _allows(bootstrap.DEPLOY_ROLE) if any(a.startswith("ecr:") for a in _list(s["Action"]))
    ]
    assert set(_list(st["Action"])) == {"ecr:BatchGetImage", "ecr:PutImage"}
    for env in names.ENVIRONMENTS:
        arn = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/" + names.REPOSITORY.replace(names.ENV, env)
        assert any(fnmatch.fnmatchcase(arn, _concrete(r)) for r in st["Resource"]) == (env == ENV), arn
    assert not any(
        fnmatch.fnmatchcase(f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/other", _concrete(r))
        for r in st["Resource"]
    )
    assert not [a for a in _actions_of(_allows(bootstrap.PLAN_ROLE)) if a.startswith("ecr:")]


def test_deploy_session_outlasts_a_long_deploy():
    assert helpers.props(_res(bootstrap.DEPLOY_ROLE))["MaxSessionDuration"] >= 7200


# ------------------------------------------------------------------------------------------
# The CloudFormation execution role: the blast-radius boundary
# ------------------------------------------------------------------------------------------
EXEC = bootstrap.EXECUTION_ROLE


def test_only_cloudformation_assumes_the_execution_role():
    trust = helpers.props(_res(EXEC))["AssumeRolePolicyDocument"]
    assert len(trust["Statement"]) == 1
    st = trust["Statement"][0]
    assert st["Principal"] == {"Service": ["cloudformation.amazonaws.com"]}
    assert _list(st["Action"]) == ["sts:AssumeRole"]
    # confused deputy: CloudFormation acting for this account only
    assert st["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_execution_role_can_provision_every_resource_type_the_stacks_use():
    types = {res["Type"] for _, res in _child_resources()}
    assert "AWS::CloudFormation::Stack" in types and len(types) > 5
    missing = []
    for rtype in sorted(types):
        for perm, handlers in sorted(_handler_permissions(rtype).items()):
            if any(fnmatch.fnmatch(perm.lower(), k.lower()) for k in NOT_GRANTED):
                continue
            if _sar_action(perm) is None:  # e.g. s3:PutObjectLockConfiguration: not an IAM action
                continue
            if not _granted(perm, _allows(EXEC)):
                missing.append(f"{rtype} {sorted(handlers)}: {perm}")
    assert not missing, "the execution role lacks:\n" + "\n".join(missing)


def test_not_granted_permissions_stay_ungranted():
    for pattern in NOT_GRANTED:
        for action in _expand(pattern) or [pattern]:
            assert not _granted(action, _allows(EXEC)), f"{action} is granted: drop it from NOT_GRANTED"


def test_every_grant_of_the_execution_role_can_work_and_none_is_wider_than_needed():
    """An action AWS authorises only on "*" is granted on "*"; any other on ARN patterns that
    can match its resource types (else the grant silently does nothing)."""
    for st in _allows(EXEC):
        resources = [_concrete(r) for r in st["Resource"]]
        for pattern in _list(st["Action"]):
            actions = _expand(pattern)
            assert actions, f"{pattern}: no such IAM action"
            for action in actions:
                formats = _arn_formats(action)
                if resources == ["*"]:
                    assert not formats, f"{action} supports resource ARNs: scope it ({st['Sid']})"
                    continue
                if not formats:
                    if "*" not in pattern.split(":", 1)[1]:
                        pytest.fail(f"{action} is authorised only on '*' but granted on {resources}")
                    continue  # a pattern's resource-less extras are unusable here, harmlessly
                assert any(_globs_meet(r, f) for r in resources for f in formats), (
                    f"{st['Sid']}: {action} on {resources} matches none of {formats}"
                )


def test_execution_role_wildcards_are_the_allowlisted_ones():
    unscoped = [s for s in _allows(EXEC) if s["Resource"] == ["*"]]
    assert len(unscoped) == 1
    assert set(unscoped[0]["Action"]) == iam.PROVISIONING_WILDCARD_ACTIONS
    assert len([s for s in _allows(EXEC) if "*" in s["Resource"]]) == 1


def _matches_any(arn: str, st: dict[str, Any]) -> bool:
    return any(fnmatch.fnmatchcase(arn, _concrete(r)) for r in st["Resource"])


def _statements_with(action: str) -> list[dict[str, Any]]:
    return [s for s in _allows(EXEC) if _granted(action, [s])]


def test_execution_role_manages_only_the_stacks_roles_not_its_own_or_the_github_roles():
    role_stmts = _statements_with("iam:PutRolePolicy") + _statements_with("iam:CreateRole")
    assert role_stmts
    for env in names.ENVIRONMENTS:
        for pattern in (names.TASK_ROLE, names.TASK_EXECUTION_ROLE, names.FLOW_LOG_ROLE):
            arn = f"arn:aws:iam::{ACCOUNT}:role/{pattern.replace(names.ENV, env)}"
            # its own environment's roles only: a dev template cannot change prod's roles
            assert all(_matches_any(arn, s) == (env == ENV) for s in role_stmts), arn
    for own in (bootstrap.EXECUTION_ROLE_NAME, bootstrap.DEPLOY_ROLE_NAME, bootstrap.PLAN_ROLE_NAME):
        arn = f"arn:aws:iam::{ACCOUNT}:role/{_concrete(own)}"
        for action in (
            "iam:PutRolePolicy",
            "iam:UpdateAssumeRolePolicy",
            "iam:AttachRolePolicy",
            "iam:DeleteRole",
            "iam:CreateRole",
        ):
            assert not any(_matches_any(arn, s) for s in _statements_with(action)), (action, arn)
    # named roles in the stacks fall inside the scope
    for where, res in _child_resources("AWS::IAM::Role"):
        name = res["Properties"].get("RoleName")
        if name is not None:
            arn = f"arn:aws:iam::{ACCOUNT}:role/{_concrete(name)}"
            assert all(_matches_any(arn, s) for s in role_stmts), f"{where}: {arn}"


def test_execution_role_attaches_only_aws_service_role_policies():
    attach = _statements_with("iam:AttachRolePolicy")
    assert len(attach) == 1
    patterns = [_concrete(p) for p in _list(attach[0]["Condition"]["ArnLike"]["iam:PolicyARN"])]
    assert not any(fnmatch.fnmatchcase("arn:aws:iam::aws:policy/AdministratorAccess", p) for p in patterns)
    used = [
        (where, arn)
        for where, res in _child_resources("AWS::IAM::Role")
        for arn in res["Properties"].get("ManagedPolicyArns", [])
    ]
    for where, arn in used:
        assert any(fnmatch.fnmatchcase(_concrete(arn), p) for p in patterns), f"{where}: {arn}"


def test_execution_role_passes_stack_roles_only_to_the_services_that_trust_them():
    passes = [s for s in _statements_with("iam:PassRole") if s["Sid"] == "PassStackRoles"]
    assert len(passes) == 1
    allowed = set(_list(passes[0]["Condition"]["StringEquals"]["iam:PassedToService"]))
    trusted = set()
    for _, res in _child_resources("AWS::IAM::Role"):
        for st in res["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            trusted |= set(_list(st["Principal"].get("Service", [])))
    assert trusted and allowed == trusted
    # every other PassRole is narrow: itself to nested stacks, the ECS autoscaling linked role
    for st in _statements_with("iam:PassRole"):
        if st["Sid"] == "PassStackRoles":
            continue
        for r in st["Resource"]:
            text = _concrete(r)
            assert text == EXECUTION_ROLE_ARN or "/aws-service-role/" in text, text


def test_scaling_targets_name_a_role_the_execution_role_may_pass():
    for where, res in _child_resources("AWS::ApplicationAutoScaling::ScalableTarget"):
        arn = _concrete(res["Properties"]["RoleARN"])
        assert any(_matches_any(arn, s) for s in _statements_with("iam:PassRole")), f"{where}: {arn}"


NAMED = {  # resource type -> (name property, ARN pattern of the name, an action that needs it)
    "AWS::S3::Bucket": ("BucketName", "arn:aws:s3:::{}", "s3:PutBucketPolicy"),
    "AWS::Logs::LogGroup": (
        "LogGroupName",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{{}}",
        "logs:CreateLogGroup",
    ),
    "AWS::SecretsManager::Secret": (
        "Name",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{{}}-AbCdEf",
        "secretsmanager:CreateSecret",
    ),
    "AWS::SNS::Topic": ("TopicName", f"arn:aws:sns:{REGION}:{ACCOUNT}:{{}}", "sns:CreateTopic"),
    "AWS::ECR::Repository": (
        "RepositoryName",
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{{}}",
        "ecr:CreateRepository",
    ),
    "AWS::CloudTrail::Trail": (
        "TrailName",
        f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{{}}",
        "cloudtrail:CreateTrail",
    ),
    "AWS::KMS::Alias": ("AliasName", f"arn:aws:kms:{REGION}:{ACCOUNT}:{{}}", "kms:CreateAlias"),
}


def test_named_resources_of_the_stacks_fall_inside_the_execution_role_scope():
    seen = 0
    for rtype, (prop, arn_format, action) in NAMED.items():
        stmts = _statements_with(action)
        assert stmts, action
        for where, res in _child_resources(rtype):
            name = res["Properties"].get(prop)
            if (
                name is None
                or not isinstance(name, (str, dict))
                or (isinstance(name, dict) and "Fn::Sub" not in name)
            ):
                continue
            for env in names.ENVIRONMENTS:
                arn = arn_format.format(_concrete(name).replace(names.ENV, env))
                assert any(_matches_any(arn, s) for s in stmts), f"{where}: {arn} outside {action}"
                seen += 1
    assert seen


def test_execution_role_cannot_touch_the_artifacts_buckets_configuration():
    for bucket in (
        _concrete(helpers.props(_res(bootstrap.ARTIFACTS_BUCKET))["BucketName"]),
        _concrete(helpers.props(_res(bootstrap.PLAN_ARTIFACTS_BUCKET))["BucketName"]),
    ):
        for action in ("s3:PutBucketPolicy", "s3:DeleteBucket", "s3:PutLifecycleConfiguration"):
            assert not any(_matches_any(f"arn:aws:s3:::{bucket}", s) for s in _statements_with(action))
        reads = _statements_with("s3:GetObject")
        assert any(_matches_any(f"arn:aws:s3:::{bucket}/{package.KEY_PREFIX}/x.yaml", s) for s in reads)
    assert not _statements_with("s3:PutObject") and not _statements_with("s3:DeleteObject")


def test_nested_stacks_are_managed_only_under_the_karematch_roots():
    stmts = _statements_with("cloudformation:UpdateStack")
    assert len(stmts) == 1
    for env in names.ENVIRONMENTS:
        root_name = names.DEFAULT_STACK_NAME.format(env=env)
        arn = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{root_name}-NetworkStack-1ABC/uuid"
        assert _matches_any(arn, stmts[0]) == (env == ENV), arn  # its own environment's only
    assert not _matches_any(
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/karematch-bootstrap/uuid", stmts[0]
    )


def _size(doc: Any) -> int:
    """Characters IAM counts (no whitespace), with long pseudo-parameter values."""

    def expand(x: Any) -> Any:
        if isinstance(x, dict) and "Fn::Sub" in x:
            return (
                helpers.sub_text(x)
                .replace("${AWS::Partition}", "aws-us-gov")
                .replace("${AWS::Region}", "ap-southeast-5")
                .replace("${AWS::AccountId}", ACCOUNT)
                .replace("${GitHubRepository}", "o" * 39 + "/" + "r" * 100)
            )
        if isinstance(x, dict) and ("Fn::GetAtt" in x or "Fn::If" in x):
            return "arn:aws-us-gov:iam::123456789012:role/" + "x" * 64
        if isinstance(x, dict):
            return {k: expand(v) for k, v in x.items()}
        if isinstance(x, list):
            return [expand(v) for v in x]
        return x

    return len(json.dumps(expand(doc), separators=(",", ":")))


def test_policies_fit_iam_size_quotas():
    # IAM quotas: managed policy 6,144 characters; a role's inline policies 10,240 together;
    # a trust policy 2,048 by default.
    for logical_id, res in _t()["Resources"].items():
        if res["Type"] == "AWS::IAM::ManagedPolicy":
            assert _size(res["Properties"]["PolicyDocument"]) <= 6144, logical_id
        if res["Type"] == "AWS::IAM::Role":
            p = res["Properties"]
            assert sum(_size(x["PolicyDocument"]) for x in p.get("Policies", [])) <= 10240, logical_id
            assert _size(p["AssumeRolePolicyDocument"]) <= 2048, logical_id


# ------------------------------------------------------------------------------------------
# The GitHub roles grant what the deployer calls
# ------------------------------------------------------------------------------------------
DEPLOYER_DIR = helpers.REPO / "karematch_cfn" / "deploy"
# API call -> IAM action, where the names differ.
CALL_ACTIONS = {
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:GetBucketLocation": "s3:GetBucketLocation",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "s3:UploadFile": "s3:PutObject",
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:ListObjectsV2": "s3:ListBucket",
}
# Calls made only on the default artifacts bucket (the plan role always names its own bucket
# with --artifact-bucket, which the deployer uses as it is).
DEFAULT_BUCKET_ONLY = {
    "s3:GetBucketEncryption",
    "s3:GetPublicAccessBlock",
    "s3:GetBucketVersioning",
    "s3:GetBucketPolicy",
    "s3:GetBucketLifecycleConfiguration",
}
# Calls the GitHub roles deliberately cannot make, with the deployer's behaviour then.
NOT_FOR_CI = {
    "sts:GetCallerIdentity": "needs no IAM permission",
    "s3:CreateBucket": "bootstrap.yaml creates the buckets; the deployer only creates a missing default",
    "s3:PutPublicAccessBlock": "bucket creation (bootstrap.yaml)",
    "s3:PutBucketEncryption": "bucket creation (bootstrap.yaml)",
    "s3:PutBucketVersioning": "bucket creation (bootstrap.yaml)",
    "s3:PutBucketPolicy": "bucket creation (bootstrap.yaml)",
    "s3:PutBucketLifecycleConfiguration": "bucket creation (bootstrap.yaml)",
    "cloudformation:DeleteStack": "best-effort clean-up of an empty REVIEW_IN_PROGRESS stack (warns); "
    "destroy runs with a person's credentials, never CI's",
    "rds:DescribeDbSnapshots": "destroy's final-snapshot lookup: a person's credentials, never CI's",
}


def _deployer_calls() -> set[str]:
    """``service:Operation`` of every boto3 call in karematch_cfn/deploy (client attribute
    calls, ``client("x").op`` and paginators)."""
    aliases = {"cfn": "cloudformation", "s3": "s3"}
    calls = set()
    for path in DEPLOYER_DIR.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = [(aliases[a], op) for a, op in re.findall(r"\b(cfn|s3)\.([a-z][a-z0-9_]*)\b", text)]
        found += re.findall(r"client\(\"([a-z0-9-]+)\"\)\.([a-z][a-z0-9_]*)\b", text)
        found += [
            (aliases[a], op) for a, op in re.findall(r"\b(cfn|s3)\.get_paginator\(\"([a-z_]+)\"\)", text)
        ]
        # S3 bucket-setting operations named in tables and called through getattr (package.py)
        found += [
            ("s3", op) for op in re.findall(r"\"((?:get|put)_(?:bucket_[a-z_]+|public_access_block))\"", text)
        ]
        for service, op in found:
            if op in ("meta", "get_paginator", "get_waiter", "exceptions") or (
                service == "s3" and op == "amazonaws"
            ):
                continue
            calls.add(f"{service}:{''.join(w.capitalize() for w in op.split('_'))}")
    return calls


def test_deploy_role_grants_every_call_the_deployer_makes():
    calls = _deployer_calls()
    assert {"cloudformation:CreateChangeSet", "cloudformation:ExecuteChangeSet", "s3:PutObject"} <= calls
    granted = _allows(bootstrap.DEPLOY_ROLE)
    missing = [
        c for c in sorted(calls) if c not in NOT_FOR_CI and not _granted(CALL_ACTIONS.get(c, c), granted)
    ]
    assert not missing, f"the deployer calls what DeployRole cannot: {missing}"


def test_plan_role_grants_every_call_of_a_dry_run():
    executing = {
        "cloudformation:ExecuteChangeSet",
        "cloudformation:SetStackPolicy",
        "cloudformation:UpdateTerminationProtection",
        "iam:CreateServiceLinkedRole",
        "cloudformation:CancelUpdateStack",
        # publish-frontend: a release, not a dry run
        "s3:DeleteObjects",
        "cloudfront:CreateInvalidation",
    }
    granted = _allows(bootstrap.PLAN_ROLE)
    missing = [
        c
        for c in sorted(_deployer_calls() - executing - DEFAULT_BUCKET_ONLY)
        if c not in NOT_FOR_CI and not _granted(CALL_ACTIONS.get(c, c), granted)
    ]
    assert not missing, f"a dry run calls what PlanRole cannot: {missing}"


# ------------------------------------------------------------------------------------------
# The permissions boundary: no template can mint a role beyond it
# ------------------------------------------------------------------------------------------
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/karematch-{ENV}-permissions-boundary"


def _boundary_statements() -> list[dict[str, Any]]:
    policy = helpers.props(_res(bootstrap.BOUNDARY_POLICY))
    assert _concrete(policy["ManagedPolicyName"]) == BOUNDARY.rsplit("/", 1)[1]
    return policy["PolicyDocument"]["Statement"]


def _boundary_allows(action: str, resource: str) -> bool:
    for st in _boundary_statements():
        if (
            st["Effect"] == "Allow"
            and any(fnmatch.fnmatchcase(action, a) for a in _list(st["Action"]))
            and any(_globs_meet(resource, _concrete(r)) for r in _list(st["Resource"]))
        ):
            return True
    return False


def test_every_role_of_the_tree_carries_the_environments_boundary():
    roles = list(_child_resources("AWS::IAM::Role"))
    assert len(roles) >= 3
    for where, res in roles:
        assert _concrete(res["Properties"].get("PermissionsBoundary", "")) == BOUNDARY, where
    # service-linked roles cannot carry a boundary: the stacks create none (docs/ci.md)
    assert not list(_child_resources("AWS::IAM::ServiceLinkedRole"))


def test_the_boundary_allows_everything_the_tree_grants_its_roles_managed_policies_included():
    """A grant outside the boundary fails only at runtime (AccessDenied), so each statement of
    each role, and each action of each attached AWS managed policy, must fall inside it."""
    checked = 0
    for where, res in _child_resources("AWS::IAM::Role"):
        props = res["Properties"]
        statements = [
            st
            for pol in props.get("Policies", [])
            if isinstance(pol, dict) and "PolicyDocument" in pol
            for st in pol["PolicyDocument"]["Statement"]
        ]
        for pol in props.get("Policies", []):
            if isinstance(pol, dict) and "Fn::If" in pol:  # a conditional policy: both branches
                statements += [
                    st
                    for b in pol["Fn::If"][1:]
                    if isinstance(b, dict) and "PolicyDocument" in b
                    for st in b["PolicyDocument"]["Statement"]
                ]
        for st in statements:
            if st["Effect"] != "Allow":
                continue
            for action in _list(st["Action"]):
                for resource in _list(st["Resource"]):
                    arn = (
                        _concrete(resource)
                        if not isinstance(resource, dict) or "Fn::Sub" in resource
                        else "*"
                    )
                    assert _boundary_allows(action, arn), (
                        f"{where}: {action} on {arn} is outside the boundary"
                    )
                    checked += 1
        for managed in props.get("ManagedPolicyArns", []):
            name = helpers.sub_text(managed).split(":policy/", 1)[1]
            assert name in bootstrap.MANAGED_POLICY_ACTIONS, (
                f"{where}: what does {name} grant? (MANAGED_POLICY_ACTIONS)"
            )
            for action in bootstrap.MANAGED_POLICY_ACTIONS[name]:
                assert any(
                    _boundary_allows(action, f"arn:aws:{action.split(':')[0]}:{REGION}:{ACCOUNT}:{r}")
                    for r in (
                        "*",
                        "log-group:/aws/ecs/karematch-dev:log-stream:x",
                        "repository/karematch-dev-backend",
                    )
                ), f"{where}: {name} grants {action}, outside the boundary"
                checked += 1
    assert checked > 10


def test_the_boundary_caps_what_a_template_could_grant_itself():
    for action, arn in (
        ("iam:CreateRole", "*"),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/karematch-{ENV}-x"),
        ("s3:GetObject", "arn:aws:s3:::any-bucket/x"),
        (
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:karematch-app-secrets-prod-{ACCOUNT}-AbCdEf",
        ),
        ("ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/karematch-prod-backend"),
    ):
        assert not _boundary_allows(action, arn), (action, arn)


def test_the_execution_role_creates_and_changes_roles_only_with_the_boundary():
    for action in (
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
    ):
        stmts = _statements_with(action)
        assert stmts, action
        for st in stmts:
            assert _concrete(st["Condition"]["StringEquals"]["iam:PermissionsBoundary"]) == BOUNDARY, action


def test_the_execution_role_may_not_remove_or_replace_boundaries_nor_change_the_boundary_policy():
    denies = [s for s in _role_statements(EXEC) if s["Effect"] == "Deny"]
    by_action = {a: st for st in denies for a in _list(st["Action"])}
    assert by_action["iam:DeleteRolePermissionsBoundary"]["Resource"] == ["*"]
    other = by_action["iam:PutRolePermissionsBoundary"]
    assert _concrete(other["Condition"]["StringNotEquals"]["iam:PermissionsBoundary"]) == BOUNDARY
    for action in (
        "iam:CreatePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:DeletePolicy",
        "iam:DeletePolicyVersion",
    ):
        assert [_concrete(r) for r in by_action[action]["Resource"]] == [BOUNDARY], action
    assert not _statements_with("iam:DeleteRolePermissionsBoundary")


def test_execution_role_may_use_the_key_through_backup_to_create_the_vault():
    # CreateBackupVault with a customer-managed key calls kms:Decrypt and kms:GenerateDataKey
    # with the caller's credentials (AWS::Backup::BackupVault's create handler; docs/decisions.md).
    # Grants conditioned on another service's kms:ViaService (Secrets Manager) do not apply.
    handler = _handler_permissions("AWS::Backup::BackupVault")
    backup = f"backup.{REGION}.amazonaws.com"
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert "create" in handler[action]
        usable = [
            st
            for st in _statements_with(action)
            if "Condition" not in st
            or backup in {_concrete(v) for v in _list(st["Condition"]["StringEquals"]["kms:ViaService"])}
        ]
        assert usable, f"{action} is not granted through AWS Backup"


def test_execution_role_may_create_the_backup_service_linked_role():
    # AWS::Backup::BackupSelection's create handler lists iam:CreateServiceLinkedRole: in a new
    # account AWS Backup creates AWSServiceRoleForBackup with the caller's permission. The
    # action alone is not enough: the grant must cover that role's ARN.
    assert "create" in _handler_permissions("AWS::Backup::BackupSelection")["iam:CreateServiceLinkedRole"]
    wanted = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup"
    resources = [
        _concrete(r) for st in _statements_with("iam:CreateServiceLinkedRole") for r in st["Resource"]
    ]
    assert any(fnmatch.fnmatch(wanted, r) for r in resources), resources
