"""The deployer keeps the deployed image and the one before it safe from ECR's lifecycle policy
(deploy/images.py): real ECR calls against the moto server (BatchGetImage, PutImage)."""

from __future__ import annotations

import hashlib
import json

import pytest

from karematch_cfn.deploy import images
from karematch_cfn.deploy.aws import Aws
from karematch_cfn.deploy.console import Console

pytestmark = pytest.mark.deploy

REPOSITORY = "karematch-dev-backend"


def manifest(n: int) -> str:
    layer = hashlib.sha256(f"layer {n}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 100 + n,
                "digest": f"sha256:{hashlib.sha256(f'config {n}'.encode()).hexdigest()}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 1000 + n,
                    "digest": f"sha256:{layer}",
                }
            ],
        }
    )


@pytest.fixture
def ecr(moto):
    client = moto.client("ecr")
    client.create_repository(repositoryName=REPOSITORY, imageTagMutability="MUTABLE")
    for n in (1, 2, 3):
        client.put_image(repositoryName=REPOSITORY, imageManifest=manifest(n), imageTag=f"build-{n}")
    return client


def tags_by_image(ecr) -> dict[str, set[str]]:
    out = ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"]
    by_tag = {frozenset(d.get("imageTags", [])) for d in out}
    return {next(t for t in tags if t.startswith("build-")): set(tags) for tags in by_tag}


def test_plan_moves_previous_then_current_and_nothing_for_the_same_image():
    assert images.plan_retags("b2", None, "sha256:2") == [images.Retag("b2", images.CURRENT_TAG)]
    assert images.plan_retags("b2", "sha256:1", "sha256:2") == [
        images.Retag(images.CURRENT_TAG, images.PREVIOUS_TAG),
        images.Retag("b2", images.CURRENT_TAG),
    ]
    assert images.plan_retags("b2", "sha256:2", "sha256:2") == []


def test_deploys_move_current_and_previous_across_the_images(ecr):
    said: list[str] = []
    images.protect_deployed(ecr, env="dev", image_tag="build-1", say=said.append)
    assert tags_by_image(ecr)["build-1"] == {"build-1", images.CURRENT_TAG}

    images.protect_deployed(ecr, env="dev", image_tag="build-2", say=said.append)
    images.protect_deployed(ecr, env="dev", image_tag="build-3", say=said.append)
    tags = tags_by_image(ecr)
    assert tags["build-3"] == {"build-3", images.CURRENT_TAG}
    assert tags["build-2"] == {"build-2", images.PREVIOUS_TAG}
    assert tags["build-1"] == {"build-1"}  # two deploys ago: back under "keep the newest 10"

    # Deploying the same image again changes nothing (no PutImage, so no error either).
    assert images.protect_deployed(ecr, env="dev", image_tag="build-3", say=said.append) == []
    assert tags_by_image(ecr) == tags
    assert any(images.CURRENT_TAG in line for line in said)


def test_a_rollback_to_the_previous_image_keeps_both_protected(ecr):
    for tag in ("build-1", "build-2", "build-1"):
        images.protect_deployed(ecr, env="dev", image_tag=tag, say=lambda _: None)
    tags = tags_by_image(ecr)
    assert tags["build-1"] == {"build-1", images.CURRENT_TAG}
    assert tags["build-2"] == {"build-2", images.PREVIOUS_TAG}


def test_a_missing_image_is_a_warning_with_the_manual_commands_not_a_failed_deploy(ecr, capsys):
    aws = Aws(clients={"ecr": ecr})
    images.after_deploy(aws, Console(), env="dev", image_tag="never-pushed")
    err = capsys.readouterr().err
    assert "never-pushed" in err and "NOT protected" in err
    assert f"aws ecr put-image --repository-name {REPOSITORY} --image-tag {images.CURRENT_TAG}" in err
    assert images.CURRENT_TAG not in set().union(*tags_by_image(ecr).values())


def test_the_deployed_tag_is_the_one_sent_or_the_live_one_kept():
    live = {"Parameters": [{"ParameterKey": "ImageTag", "ParameterValue": "build-7"}]}
    sent = [{"ParameterKey": "ImageTag", "ParameterValue": "build-8"}]
    kept = [{"ParameterKey": "ImageTag", "UsePreviousValue": True}]
    assert images.deployed_tag(sent, live) == "build-8"
    assert images.deployed_tag(kept, live) == "build-7"
    assert images.deployed_tag([], live) == ""


def test_the_deploy_command_tags_the_image_it_deployed_and_the_one_before(ecr, karematch):
    """The execute phase's call site, end to end: two deploys with --image-tag, then one that
    keeps the deployed tag (UsePreviousValue)."""
    from .conftest import tree_args

    assert karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "build-1").code == 0
    r = karematch("deploy", *tree_args("tree-v2"), "--yes", "--image-tag", "build-2")
    assert r.code == 0, r.text
    assert f"{REPOSITORY}:{images.CURRENT_TAG} = build-2" in r.out
    tags = tags_by_image(ecr)
    assert tags["build-2"] == {"build-2", images.CURRENT_TAG}
    assert tags["build-1"] == {"build-1", images.PREVIOUS_TAG}

    r = karematch("deploy", *tree_args("tree-v1"), "--yes")  # infrastructure only: build-2 stays
    assert r.code == 0, r.text
    assert tags_by_image(ecr) == tags
