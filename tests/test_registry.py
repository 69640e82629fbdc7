"""Registry (spec section 6) asserted on the rendered template against the spec's values."""

from __future__ import annotations

import json

import pytest

from tests import helpers, spec

SECTION = "6. Container Registry"
FILE = "registry.yaml"


@pytest.fixture(scope="module")
def repo():
    return helpers.props(helpers.one_of_type(helpers.template(FILE), "AWS::ECR::Repository"))


def _lifecycle(repo) -> list[dict]:
    return json.loads(repo["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]


def test_name_is_the_specs_with_the_environment_inserted(repo):
    base = spec.find(r"\*\*ECR Repository\*\*: `([a-z-]+)`", SECTION)  # karematch-backend
    project, rest = base.split("-", 1)
    assert helpers.sub_text(repo["RepositoryName"]) == f"{project}-${{EnvironmentName}}-{rest}"


def test_tag_mutability_encryption_and_scan_on_push(repo):
    mutability = spec.find(r"Image tag mutability: (\w+)", SECTION)
    assert repo["ImageTagMutability"] == mutability.upper()
    assert spec.find(r"Encryption: (AES-256)", SECTION) == "AES-256"
    assert repo["EncryptionConfiguration"] == {"EncryptionType": "AES256"}
    assert "scanning: Enabled on push" in spec.section(SECTION)
    assert repo["ImageScanningConfiguration"] == {"ScanOnPush": True}


def test_lifecycle_keeps_last_tagged_images_and_expires_untagged(repo):
    keep = spec.number(r"Keep last (\d+) tagged images", SECTION)
    days = spec.number(r"Delete untagged images after (\d+) days", SECTION)
    rules = {
        r["selection"]["tagStatus"]: r for r in _lifecycle(repo) if "tagPrefixList" not in r["selection"]
    }
    assert set(rules) == {"tagged", "untagged"}
    tagged, untagged = rules["tagged"]["selection"], rules["untagged"]["selection"]
    assert (tagged["countType"], tagged["countNumber"]) == ("imageCountMoreThan", keep)
    assert tagged["tagPatternList"] == ["*"]
    assert (untagged["countType"], untagged["countUnit"], untagged["countNumber"]) == (
        "sinceImagePushed",
        "days",
        days,
    )
    assert all(r["action"] == {"type": "expire"} for r in rules.values())
    priorities = [r["rulePriority"] for r in _lifecycle(repo)]
    assert len(set(priorities)) == len(priorities)


def test_pull_policy_only_for_the_given_execution_role():
    role = "arn:aws:iam::123456789012:role/karematch-dev-ecs-task-execution-role"
    with_role = helpers.for_env(FILE, "dev", TaskExecutionRoleArn=role)
    policy = helpers.props(helpers.one_of_type(with_role, "AWS::ECR::Repository"))["RepositoryPolicyText"]
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": [role]}
    assert set(statement["Action"]) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    }
    alone = helpers.for_env(FILE, "dev", TaskExecutionRoleArn="")
    assert "RepositoryPolicyText" not in helpers.props(helpers.one_of_type(alone, "AWS::ECR::Repository"))


def test_root_wires_the_execution_role_into_the_registry():
    root = helpers.template("karematch.yaml")
    params = root["Resources"]["RegistryStack"]["Properties"]["Parameters"]
    assert params["TaskExecutionRoleArn"] == {"Fn::GetAtt": ["IamStack", "Outputs.TaskExecutionRoleArn"]}


def test_the_deployed_image_and_the_one_before_are_kept_by_a_higher_priority_rule(repo):
    """ECR considers an image only under the highest-priority rule that matches it: the images
    the deployer tags (deploy/images.py) must match a rule ahead of "keep the newest 10"."""
    from karematch_cfn.deploy import images

    rules = _lifecycle(repo)
    (protect,) = [r for r in rules if "tagPrefixList" in r["selection"]]
    (newest,) = [r for r in rules if r["selection"].get("tagPatternList") == ["*"]]
    assert protect["rulePriority"] < newest["rulePriority"]
    (prefix,) = protect["selection"]["tagPrefixList"]
    moved = {images.CURRENT_TAG, images.PREVIOUS_TAG}
    assert all(tag.startswith(prefix) for tag in moved)
    # the rule expires only beyond the images the deployer tags: it never expires one of them
    assert protect["selection"]["countType"] == "imageCountMoreThan"
    assert protect["selection"]["countNumber"] >= len(moved)
