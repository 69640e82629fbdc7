"""``publish-frontend``: upload a built SPA to the frontend bucket so no visitor ever loads an
``index.html`` that names missing files.

* Content-Type from an explicit table (never the machine's /etc/mime.types), Cache-Control by
  place: everything under ``assets/`` is hashed build output, immutable for a year (the same
  header the distribution's static behaviour sets); everything else (``index.html``, JSON,
  manifests, un-hashed files) ``no-cache``.
* Order: assets (skipped when the content-hashed key is already there), then the other files,
  ``index.html`` last.
* A release manifest object remembers each release's asset keys: the previous release's assets
  stay (tabs opened before this release keep loading them), older ones are deleted.
* One invalidation of exactly the un-hashed paths uploaded (``/`` too, with ``index.html``):
  asset names change with their content, so they never need one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karematch_cfn import names
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy import changeset
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import BadInput, DeployError, DeployFailed, StackMissing
from karematch_cfn.deploy.options import Target
from karematch_cfn.stacks.frontend import DEFAULT_ROOT_OBJECT, NO_CACHE_CONTROL, STATIC_CACHE_CONTROL

HASHED_PREFIX = "assets/"  # Vite's hashed output: the name changes with the content
MANIFEST_KEY = ".karematch/releases.json"  # each release's asset keys, newest first
RELEASES_KEPT = 2  # this release and the previous one
PROGRESS_BYTES = 8 * 1024 * 1024  # files larger than this report their upload progress
# Content types by extension: explicit, so the upload does not depend on the machine.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class PublishOptions:
    target: Target
    directory: Path
    dry_run: bool = False


@dataclass(frozen=True)
class File:
    path: Path
    key: str
    size: int

    @property
    def hashed(self) -> bool:
        return self.key.startswith(HASHED_PREFIX)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(Path(self.key).suffix.lower(), DEFAULT_CONTENT_TYPE)

    @property
    def cache_control(self) -> str:
        return STATIC_CACHE_CONTROL if self.hashed else NO_CACHE_CONTROL


def collect(directory: Path) -> list[File]:
    """The files of a built SPA in upload order: assets, others, ``index.html`` last."""
    if not directory.is_dir():
        raise BadInput(f"--dir {directory}: not a directory")
    if not (directory / DEFAULT_ROOT_OBJECT).is_file():
        raise BadInput(
            f"--dir {directory}: no {DEFAULT_ROOT_OBJECT}; expected a built SPA (e.g. Vite's dist/)"
        )
    files: list[File] = []
    for root, dirs, filenames in os.walk(directory):
        dirs.sort()
        for name in sorted(filenames):
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                raise BadInput(f"--dir {directory}: {path.relative_to(directory)} is not a regular file")
            files.append(File(path, path.relative_to(directory).as_posix(), path.stat().st_size))
    return sorted(files, key=lambda f: (not f.hashed, f.key == DEFAULT_ROOT_OBJECT, f.key))


def frontend_of(aws: awsmod.Aws, target: Target) -> tuple[str, str | None]:
    """(bucket, distribution id) from the root stack's Outputs."""
    stack = changeset.describe_stack(aws.cfn, target.stack_name)
    if stack is None:
        raise StackMissing(f"stack {target.stack_name} does not exist in {aws.region}; deploy it first")
    from karematch_cfn.deploy.deployer import check_stack_environment

    check_stack_environment(stack, target.env, target.stack_name)
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    bucket = outputs.get(names.FRONTEND_BUCKET_NAME)
    if not bucket:
        raise DeployFailed(
            f"stack {target.stack_name} has no {names.FRONTEND_BUCKET_NAME} Output; nothing was uploaded",
            f"deploy it (karematch-cfn deploy --env {target.env}) and try again",
        )
    return bucket, outputs.get(names.DISTRIBUTION_ID) or None


def read_manifest(aws: awsmod.Aws, bucket: str) -> list[dict[str, Any]] | None:
    """The releases recorded so far (newest first), or None before the first publish."""
    try:
        body = aws.s3.get_object(Bucket=bucket, Key=MANIFEST_KEY)["Body"].read()
    except Exception as exc:
        if awsmod.error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise awsmod.translate(exc, f"reading s3://{bucket}/{MANIFEST_KEY}") from None
    try:
        releases = json.loads(body)["releases"]
        return [r for r in releases if isinstance(r, dict) and isinstance(r.get("assets"), list)]
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: treat like a first publish (keeps every existing asset)


def existing_assets(aws: awsmod.Aws, bucket: str) -> set[str]:
    keys: set[str] = set()
    token = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": HASHED_PREFIX}
        if token:
            kwargs["ContinuationToken"] = token
        page = awsmod.call(f"listing s3://{bucket}/{HASHED_PREFIX}", aws.s3.list_objects_v2, **kwargs)
        keys |= {o["Key"] for o in page.get("Contents", [])}
        token = page.get("NextContinuationToken")
        if not token:
            return keys


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{size / 1024:.1f} KB"


def _progress(console: Console, f: File) -> Callable[[int], None] | None:
    if f.size < PROGRESS_BYTES:
        return None
    sent = [0, 0]  # bytes so far, last quarter reported

    def report(chunk: int) -> None:
        sent[0] += chunk
        quarter = min(4, sent[0] * 4 // f.size)
        if quarter > sent[1]:
            sent[1] = quarter
            console.say(f"    {f.key}: {quarter * 25}% of {_mb(f.size)}")

    return report


def publish_command(opts: PublishOptions, aws_factory: Callable[[], awsmod.Aws], console: Console) -> int:
    files = collect(opts.directory)  # before any AWS call
    aws = aws_factory()
    bucket, distribution = frontend_of(aws, opts.target)
    present = existing_assets(aws, bucket)
    releases = read_manifest(aws, bucket)
    upload = [f for f in files if not (f.hashed and f.key in present)]
    this_release = sorted(f.key for f in files if f.hashed)
    # Before the first manifest, whatever assets are there count as the previous release.
    previous = present if releases is None else set(releases[0]["assets"]) if releases else set()
    stale = sorted(present - set(this_release) - previous)
    paths = sorted({f"/{f.key}" for f in upload if not f.hashed})
    if f"/{DEFAULT_ROOT_OBJECT}" in paths:
        paths.insert(0, "/")  # the default root object is cached under "/" too

    total = sum(f.size for f in upload)
    console.say(
        f"publishing {opts.directory} to s3://{bucket} ({opts.target.stack_name}): {len(files)} file(s), "
        f"{len(upload)} to upload ({_mb(total)}), {len(files) - len(upload)} asset(s) already there"
    )
    if opts.dry_run:
        for f in upload:
            console.say(f"  would upload {f.key}  {f.content_type}  {f.cache_control}")
        for key in stale:
            console.say(f"  would delete {key} (older than the previous release)")
        console.say(f"  would invalidate: {' '.join(paths) or 'nothing'}", "dry run: nothing uploaded")
        return 0

    for i, f in enumerate(upload, start=1):
        console.say(f"  [{i}/{len(upload)}] {f.key}  {_mb(f.size)}  {f.content_type}  {f.cache_control}")
        try:
            awsmod.call(
                f"uploading {f.key}",
                aws.s3.upload_file,
                str(f.path),
                bucket,
                f.key,
                ExtraArgs={"ContentType": f.content_type, "CacheControl": f.cache_control},
                Callback=_progress(console, f),
            )
        except DeployError as exc:
            exc.hints.append(
                f"{i - 1} of {len(upload)} file(s) were uploaded; {DEFAULT_ROOT_OBJECT} was not, so "
                "visitors still get the previous release; fix the cause and publish again"
            )
            raise
    record = {"published": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "assets": this_release}
    manifest = {"releases": [record, *(releases or [])][:RELEASES_KEPT]}
    awsmod.call(
        "writing the release manifest",
        aws.s3.put_object,
        Bucket=bucket,
        Key=MANIFEST_KEY,
        Body=json.dumps(manifest, indent=2).encode(),
        ContentType="application/json",
        CacheControl=NO_CACHE_CONTROL,
    )
    for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1,000 keys
        awsmod.call(
            "deleting assets older than the previous release",
            aws.s3.delete_objects,
            Bucket=bucket,
            Delete={"Objects": [{"Key": k} for k in stale[start : start + 1000]], "Quiet": True},
        )
    if stale:
        console.say(f"deleted {len(stale)} asset(s) older than the previous release")
    if paths and distribution:
        out = awsmod.call(
            "invalidating the CloudFront cache",
            aws.client("cloudfront").create_invalidation,
            DistributionId=distribution,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": paths},
                "CallerReference": f"karematch-cfn-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}",
            },
        )
        console.say(f"invalidation {out['Invalidation']['Id']} of {len(paths)} path(s): {' '.join(paths)}")
    elif paths:
        console.warn(f"no {names.DISTRIBUTION_ID} Output: nothing invalidated")
    console.say(f"published {len(upload)} file(s) to s3://{bucket}")
    return 0
