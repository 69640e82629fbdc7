"""Container registry (spec section 6): the backend's ECR repository.

Parameters:
    EnvironmentName: dev | staging | prod.
    TaskExecutionRoleArn: optional; when set, a repository policy lets that role pull. Empty
        (the default) means no policy, so the registry deploys on its own (within one account
        AmazonECSTaskExecutionRolePolicy already allows the pull).

Outputs:
    RepositoryUri, RepositoryArn, RepositoryName.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from troposphere import AWSHelperFn, Equals, GetAtt, If, Not, Ref, Sub, Template
from troposphere.ecr import (
    EncryptionConfiguration,
    ImageScanningConfiguration,
    LifecyclePolicy,
    Repository,
)

from karematch_cfn import names, render
from karematch_cfn.lib import iam, policies, suppress, tags

REPOSITORY = "BackendRepository"
HAS_PULL_ROLE = "HasPullRole"

IMAGE_TAG_MUTABILITY = "MUTABLE"  # spec: mutable tags
KEEP_TAGGED_IMAGES = 10  # spec: keep last 10 tagged images
UNTAGGED_EXPIRY_DAYS = 7  # spec: delete untagged images after 7 days


def lifecycle_policy_text() -> str:
    """ECR lifecycle policy: expire untagged images after 7 days, keep the last 10 tagged, and
    never expire the deployed image or the one before it (the deployer's ``deployed-`` tags)."""
    rules = [
        {
            # First: an image a rule matches is not considered by lower-priority rules, so the
            # two images carrying deployed-current/deployed-previous never reach the count rule.
            "rulePriority": 1,
            "description": f"Keep the deployed image and the one before it ({names.PROTECTED_IMAGE_TAG_PREFIX}*)",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": [names.PROTECTED_IMAGE_TAG_PREFIX],
                "countType": "imageCountMoreThan",
                "countNumber": names.PROTECTED_IMAGES,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 2,
            "description": f"Expire untagged images after {UNTAGGED_EXPIRY_DAYS} days",
            "selection": {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": UNTAGGED_EXPIRY_DAYS,
            },
            "action": {"type": "expire"},
        },
        {
            "rulePriority": 3,
            "description": f"Keep only the last {KEEP_TAGGED_IMAGES} tagged images",
            "selection": {
                "tagStatus": "tagged",
                "tagPatternList": ["*"],
                "countType": "imageCountMoreThan",
                "countNumber": KEEP_TAGGED_IMAGES,
            },
            "action": {"type": "expire"},
        },
    ]
    return json.dumps({"rules": rules}, indent=2, sort_keys=True)


def add_repository(t: Template, pull_role: AWSHelperFn, key: Ref) -> Repository:
    repo = Repository(
        REPOSITORY,
        RepositoryName=Sub(names.REPOSITORY),
        ImageTagMutability=IMAGE_TAG_MUTABILITY,
        # The environment's customer-managed key (docs/decisions.md).
        EncryptionConfiguration=EncryptionConfiguration(EncryptionType="KMS", KmsKey=key),
        ImageScanningConfiguration=ImageScanningConfiguration(ScanOnPush=True),
        LifecyclePolicy=LifecyclePolicy(LifecyclePolicyText=lifecycle_policy_text()),
        RepositoryPolicyText=If(HAS_PULL_ROLE, iam.document(iam.pull_images(pull_role)), Ref("AWS::NoValue")),
        Tags=tags.standard(),
    )
    suppress.skip(
        repo,
        (
            "CKV_AWS_51",
            "Spec section 6: mutable tags; deploys pass an immutable per-build ImageTag, never latest",
        ),
    )
    # Images are the deployable history: keep the repository if the stack lets go of it.
    return t.add_resource(policies.retain_except_on_create(repo))


@dataclass(frozen=True)
class Inputs:
    pull_role: Ref
    data_key: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    role = Ref(
        names.declare(
            t,
            names.TASK_EXECUTION_ROLE_ARN,
            "ARN of the ECS task execution role allowed to pull; empty = no repository policy",
            Default="",
        )
    )
    t.add_condition(HAS_PULL_ROLE, Not(Equals(role, "")))
    key = Ref(
        names.declare(
            t, names.DATA_KEY_ARN, "ARN of the environment's customer-managed KMS key (foundation.yaml)"
        )
    )
    return Inputs(pull_role=role, data_key=key)


def build() -> Template:
    t = render.new_template("KareMatch container registry: the backend ECR repository")
    p = declare_inputs(t)
    repo = add_repository(t, p.pull_role, p.data_key)
    render.add_outputs(
        t,
        {
            names.REPOSITORY_URI: GetAtt(repo, "RepositoryUri"),
            names.REPOSITORY_ARN: GetAtt(repo, "Arn"),
            names.REPOSITORY_NAME: Ref(repo),
        },
    )
    return t
