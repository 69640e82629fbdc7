"""Keep the deployed backend image, and the one before it, safe from ECR's lifecycle policy.

The registry's lifecycle policy keeps only the newest tagged images (stacks/registry.py). Ten CI
pushes without a deploy would expire the image the service runs, and a later scale-out or task
replacement would fail with CannotPullContainerError. So after a successful deploy the deployer
moves two tags inside the environment's repository (tags are mutable, spec section 6):

- ``deployed-previous`` to the image that carried ``deployed-current`` (a rollback needs it);
- ``deployed-current`` to the image just deployed (``ImageTag``).

A higher-priority lifecycle rule on the ``deployed-`` prefix matches these images, so the
"keep the newest tagged" rule can never expire them (ECR lifecycle policies: an image matched by
a rule is not considered by rules of lower priority). Re-tagging is ``ecr:BatchGetImage`` for the
manifest and ``ecr:PutImage`` of the same manifest under the new tag; no layer is copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karematch_cfn import names
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.errors import DeployError, DeployFailed

CURRENT_TAG = f"{names.PROTECTED_IMAGE_TAG_PREFIX}current"
PREVIOUS_TAG = f"{names.PROTECTED_IMAGE_TAG_PREFIX}previous"


def repository_name(env: str) -> str:
    """The environment's backend repository (names.REPOSITORY with the environment)."""
    return names.REPOSITORY.replace(names.ENV, env)


@dataclass(frozen=True)
class Retag:
    """Put the image that now carries ``source`` under ``tag`` as well."""

    source: str
    tag: str


def plan_retags(deployed: str, current_digest: str | None, deployed_digest: str) -> list[Retag]:
    """The tag moves after deploying image tag ``deployed`` (digest ``deployed_digest``), given
    the digest that carries ``deployed-current`` now (None: no image carries it yet)."""
    if current_digest == deployed_digest:
        return []  # the same image again: both tags already say what they should
    moves = [Retag(CURRENT_TAG, PREVIOUS_TAG)] if current_digest else []
    return [*moves, Retag(deployed, CURRENT_TAG)]


def _image(ecr: Any, repository: str, tag: str) -> dict[str, Any] | None:
    out = awsmod.call(
        f"reading image {repository}:{tag}",
        ecr.batch_get_image,
        repositoryName=repository,
        imageIds=[{"imageTag": tag}],
        acceptedMediaTypes=[
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ],
    )
    images = out.get("images") or []
    return images[0] if images else None


def protect_deployed(ecr: Any, *, env: str, image_tag: str, say: Callable[[str], None]) -> list[str]:
    """Move ``deployed-previous`` and ``deployed-current`` after deploying ``image_tag``; returns
    what it did. Raises ``DeployError`` (one line) when a call fails."""
    repository = repository_name(env)
    deployed = _image(ecr, repository, image_tag)
    if deployed is None:
        raise DeployFailed(f"image {repository}:{image_tag} not found")
    current = _image(ecr, repository, CURRENT_TAG)
    images = {image_tag: deployed, CURRENT_TAG: current}
    done: list[str] = []
    for move in plan_retags(
        image_tag,
        current["imageId"]["imageDigest"] if current else None,
        deployed["imageId"]["imageDigest"],
    ):
        image = images[move.source]
        assert image is not None  # plan_retags moves CURRENT_TAG only when it exists
        kwargs: dict[str, Any] = {
            "repositoryName": repository,
            "imageManifest": image["imageManifest"],
            "imageTag": move.tag,
        }
        if image.get("imageManifestMediaType"):
            kwargs["imageManifestMediaType"] = image["imageManifestMediaType"]
        try:
            ecr.put_image(**kwargs)
        except Exception as exc:
            if awsmod.error_code(exc) != "ImageAlreadyExistsException":  # already tagged so
                raise awsmod.translate(exc, f"tagging {repository}:{move.tag}") from None
        done.append(f"{repository}:{move.tag} = {move.source} ({image['imageId']['imageDigest'][:19]})")
        say(f"registry: {done[-1]}")
    return done


def deployed_tag(entries: list[dict[str, Any]], live: dict[str, Any] | None) -> str:
    """The ImageTag the stack now runs: the value sent, or the live one kept (UsePreviousValue)."""
    for entry in entries:
        if entry["ParameterKey"] == names.IMAGE_TAG:
            if entry.get("UsePreviousValue"):
                break
            return str(entry.get("ParameterValue", ""))
    else:
        return ""
    params = (live or {}).get("Parameters", []) or []
    return next(
        (str(p.get("ParameterValue", "")) for p in params if p["ParameterKey"] == names.IMAGE_TAG), ""
    )


def after_deploy(aws: awsmod.Aws, console: Any, *, env: str, image_tag: str) -> None:
    """Best effort after a successful deploy: the stack is deployed either way, so a failure is
    a warning that says what is unprotected and the commands that protect it."""
    if not image_tag:
        return  # no image yet (first deploy): nothing runs that could expire
    try:
        protect_deployed(aws.client("ecr"), env=env, image_tag=image_tag, say=console.say)
    except DeployError as exc:
        repository = repository_name(env)
        console.warn(
            f"the deployed image {repository}:{image_tag} is NOT protected from the registry's "
            f"lifecycle policy ({exc}); tag it by hand: MANIFEST=$(aws ecr batch-get-image "
            f"--repository-name {repository} --image-ids imageTag={image_tag} --query "
            f"'images[0].imageManifest' --output text) && aws ecr put-image --repository-name "
            f'{repository} --image-tag {CURRENT_TAG} --image-manifest "$MANIFEST"'
        )
