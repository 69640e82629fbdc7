"""Packaging: the artifacts bucket, content-addressed uploads, and the rewritten root.

Each child is uploaded under ``templates/<name>-<sha256 of its bytes>.yaml``, so an unchanged
child keeps its key (the upload is skipped) and a changed one gets a new TemplateURL, which is
what makes CloudFormation look at it again. TemplateURLs are S3's own URL forms (``https://
BUCKET.s3.amazonaws.com/KEY`` in us-east-1), never derived from ``AWS_ENDPOINT_URL``: moto and
AWS both read them (moto reads ``http://127.0.0.1:PORT/...`` as bucket "127").
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from karematch_cfn import names, tree
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import AccessProblem, BadInput
from karematch_cfn.deploy.inputs import Template, Tree
from karematch_cfn.lib import buckets

KEY_PREFIX = names.ARTIFACTS_KEY_PREFIX
# Lifecycle of a bucket the deployer creates: keys expire after EXPIRE_DAYS; a key older than
# REFRESH_DAYS is uploaded again before use, so a template in use has a month or more to live.
EXPIRE_DAYS = names.ARTIFACTS_EXPIRE_DAYS
REFRESH_DAYS = 30
NONCURRENT_EXPIRE_DAYS = names.ARTIFACTS_NONCURRENT_EXPIRE_DAYS
ABORT_MULTIPART_DAYS = names.ARTIFACTS_ABORT_MULTIPART_DAYS
NOT_FOUND = frozenset({"404", "NoSuchBucket", "NotFound", "NoSuchKey"})
FORBIDDEN = frozenset({"403", "AccessDenied", "Forbidden", "AllAccessDisabled"})


def default_bucket_name(account: str, region: str) -> str:
    """``names.ARTIFACTS_BUCKET`` (what bootstrap.yaml creates) for this account and region."""
    return names.ARTIFACTS_BUCKET.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)


def template_url(bucket: str, region: str, key: str) -> str:
    """An S3 URL CloudFormation accepts for TemplateURL (virtual-hosted style)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if "." in bucket:  # a dotted name breaks the virtual-hosted TLS certificate: path style
        return f"https://s3.{region}.{suffix}/{bucket}/{key}"
    if region == "us-east-1":
        return f"https://{bucket}.s3.{suffix}/{key}"
    return f"https://{bucket}.s3.{region}.{suffix}/{key}"


def content_key(name: str, body: bytes) -> str:
    stem = Path(name).stem
    return f"{KEY_PREFIX}/{stem}-{hashlib.sha256(body).hexdigest()}{Path(name).suffix or '.yaml'}"


def bucket_policy(bucket: str, partition: str) -> str:
    """TLS only: deny every request that does not use HTTPS."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        sort_keys=True,
    )


def lifecycle_rules() -> dict[str, Any]:
    return {
        "Rules": [
            {
                "ID": "expire-old-templates",
                "Status": "Enabled",
                "Filter": {"Prefix": f"{KEY_PREFIX}/"},
                "Expiration": {"Days": EXPIRE_DAYS},
                "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_EXPIRE_DAYS},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
            }
        ]
    }


@dataclass(frozen=True)
class Bucket:
    name: str
    region: str
    owner: str
    # Deferred checks (existence, creation, hardening) run once, before the first upload.
    ready: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class _Once:
    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn, self.done = fn, False

    def __call__(self) -> None:
        if not self.done:
            self.fn()
            self.done = True


@dataclass(frozen=True)
class Setting:
    """One idempotent hardening setting of the default artifacts bucket: how to put it, how to
    read it back, and whether what is there already is the hardened state."""

    label: str  # as listed to the user: "encrypted"
    doing: str  # "setting default encryption"
    put: str  # S3 client method and its arguments (besides Bucket/ExpectedBucketOwner)
    arguments: dict[str, Any]
    read: str
    permissions: str  # the IAM actions of read and put
    absent: frozenset[str]  # error codes of ``read`` that mean "not set at all"
    holds: Callable[[dict[str, Any]], bool]
    # False: an existing different configuration may be someone's own (a bucket policy, other
    # lifecycle rules): it is reported, never overwritten.
    overwrite: bool = True


def _encrypted(out: dict[str, Any]) -> bool:
    rules = out.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    return any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules)


def _blocked(out: dict[str, Any]) -> bool:
    config = out.get("PublicAccessBlockConfiguration", {})
    return all(
        config.get(k) is True
        for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    )


def _tls_only(out: dict[str, Any]) -> bool:
    try:
        doc = json.loads(out.get("Policy") or "{}")
    except ValueError:
        return False
    statements = doc.get("Statement", [])
    for st in statements if isinstance(statements, list) else [statements]:
        secure = (st.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport")
        if st.get("Effect") == "Deny" and str(secure).lower() == "false":
            return True
    return False


def _expires_templates(out: dict[str, Any]) -> bool:
    for rule in out.get("Rules", []):
        filt = rule.get("Filter") or {}
        prefix = filt.get("Prefix", filt.get("And", {}).get("Prefix", rule.get("Prefix", "")))
        if (
            rule.get("Status") == "Enabled"
            and rule.get("Expiration")
            and f"{KEY_PREFIX}/".startswith(prefix or "")
        ):
            return True
    return False


def hardening(name: str, partition: str, https: bool) -> list[Setting]:
    """The settings of a bucket the deployer creates, and re-checks each time it uses it."""
    settings = [
        Setting(
            "public access blocked",
            "blocking public access",
            "put_public_access_block",
            {
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                }
            },
            "get_public_access_block",
            "s3:GetBucketPublicAccessBlock/s3:PutBucketPublicAccessBlock",
            frozenset({"NoSuchPublicAccessBlockConfiguration"}),
            _blocked,
        ),
        Setting(
            "encrypted",
            "setting default encryption",
            "put_bucket_encryption",
            {
                "ServerSideEncryptionConfiguration": {
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": buckets.SSE_S3},
                            "BucketKeyEnabled": True,
                        }
                    ]
                }
            },
            "get_bucket_encryption",
            "s3:GetEncryptionConfiguration/s3:PutEncryptionConfiguration",
            frozenset({"ServerSideEncryptionConfigurationNotFoundError"}),
            _encrypted,
        ),
        Setting(
            "versioned",
            "enabling versioning",
            "put_bucket_versioning",
            {"VersioningConfiguration": {"Status": "Enabled"}},
            "get_bucket_versioning",
            "s3:GetBucketVersioning/s3:PutBucketVersioning",
            frozenset(),
            lambda out: out.get("Status") == "Enabled",
        ),
        Setting(
            "TLS only",
            "setting the TLS-only policy",
            "put_bucket_policy",
            {"Policy": bucket_policy(name, partition)},
            "get_bucket_policy",
            "s3:GetBucketPolicy/s3:PutBucketPolicy",
            frozenset({"NoSuchBucketPolicy"}),
            _tls_only,
            overwrite=False,
        ),
        Setting(
            "old templates expire",
            "setting the lifecycle",
            "put_bucket_lifecycle_configuration",
            {"LifecycleConfiguration": lifecycle_rules()},
            "get_bucket_lifecycle_configuration",
            "s3:GetLifecycleConfiguration/s3:PutLifecycleConfiguration",
            frozenset({"NoSuchLifecycleConfiguration"}),
            _expires_templates,
            overwrite=False,
        ),
    ]
    if not https:
        # A plain-HTTP endpoint is a local emulator (moto enforces bucket policies): with the
        # TLS-only policy this very client could no longer use the bucket.
        settings = [x for x in settings if x.put != "put_bucket_policy"]
    return settings


def _is_https(s3: Any) -> bool:
    return not str(s3.meta.endpoint_url).startswith("http://")


def _forbidden(bucket: str, what: str, exc: BaseException) -> AccessProblem:
    return AccessProblem(
        f"artifacts bucket {bucket}: {what} is forbidden ({awsmod.error_code(exc)}): it belongs "
        "to another account, or this identity lacks permission",
        "pass --artifact-bucket with a bucket of this account you may write to, or deploy "
        "templates/bootstrap.yaml (docs/deploying.md)",
    )


def ensure_bucket(
    aws: awsmod.Aws, console: Console, account: str, name: str | None, *, defer: bool = False
) -> Bucket:
    """Use ``name`` (``--artifact-bucket``) or the account's default bucket, creating the
    default once per account and region with encryption, public access block, versioning,
    TLS-only policy and a lifecycle, and re-checking (and repairing) those settings whenever
    the default bucket is used.

    ``defer``: for the default bucket, do all that only before the first upload. A deploy whose
    templates are all in the bucket already writes nothing, and its HeadObject calls (with
    ExpectedBucketOwner) prove the bucket exists and is this account's: no other call needed.
    """
    explicit = name is not None
    if defer and not explicit:
        name = default_bucket_name(account, aws.region)
        console.say(f"artifacts bucket: {name} (checked and hardened before any upload)")
        return Bucket(
            name, aws.region, account, ready=_Once(lambda: ensure_bucket(aws, console, account, None))
        )
    name = name or default_bucket_name(account, aws.region)
    s3 = aws.s3
    try:
        head = s3.head_bucket(Bucket=name, ExpectedBucketOwner=account)
    except Exception as exc:
        code = awsmod.error_code(exc)
        if code in FORBIDDEN:
            raise _forbidden(name, "s3:ListBucket (HeadBucket)", exc) from None
        if code not in NOT_FOUND:
            raise awsmod.translate(exc, f"artifacts bucket {name}") from None
        if explicit:
            raise BadInput(
                f"--artifact-bucket {name}: no such bucket",
                "omit --artifact-bucket to use (and create) the default "
                f"{default_bucket_name(account, aws.region)}",
            ) from None
        _create_bucket(aws, console, name, account)
        return Bucket(name, aws.region, account)
    region = (
        head.get("BucketRegion")
        or head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
        or aws.region
    )
    if region != aws.region:
        console.warn(f"artifacts bucket {name} is in {region}, the stack in {aws.region}")
    console.say(f"artifacts bucket: {name}")
    if not explicit:
        verify_bucket(aws, console, name, account)
    return Bucket(name, region, account)


def verify_bucket(aws: awsmod.Aws, console: Console, name: str, account: str) -> None:
    """Re-apply any hardening setting the default bucket lacks (a creation that failed halfway
    leaves a bucket later runs would otherwise use as it is). A setting that cannot be read is
    a warning; one that cannot be set stops the deploy, as it does when the bucket is created."""
    s3 = aws.s3
    own = {"Bucket": name, "ExpectedBucketOwner": account}
    missing: list[Setting] = []
    unreadable: list[str] = []
    for setting in hardening(name, aws.partition, _is_https(s3)):
        try:
            out = getattr(s3, setting.read)(**own)
        except Exception as exc:
            code = awsmod.error_code(exc)
            if code in setting.absent:
                missing.append(setting)
            else:
                unreadable.append(
                    f"{setting.label} ({setting.permissions.split('/')[0]}: "
                    f"{code or awsmod.error_message(exc)})"
                )
            continue
        if setting.holds(out):
            continue
        if setting.overwrite:
            missing.append(setting)
        else:
            console.warn(
                f"artifacts bucket {name}: has a {setting.read[4:].replace('_', ' ')} that is not "
                f"'{setting.label}'; not replaced (check it, or use --artifact-bucket)"
            )
    if unreadable:
        console.warn(
            f"artifacts bucket {name}: could not verify {', '.join(unreadable)}; if it was "
            "created by this tool and the creation stopped halfway, it may lack them "
            "(docs/deploying.md, artifacts bucket)"
        )
    if missing:
        console.warn(
            f"artifacts bucket {name} is not {', '.join(x.label for x in missing)} (a "
            "creation that stopped halfway?); setting it now"
        )
        for setting in missing:
            _put(aws, name, account, setting)


def _put(aws: awsmod.Aws, name: str, account: str, setting: Setting) -> None:
    try:
        getattr(aws.s3, setting.put)(Bucket=name, ExpectedBucketOwner=account, **setting.arguments)
    except Exception as exc:
        if awsmod.error_code(exc) in FORBIDDEN:
            raise AccessProblem(
                f"artifacts bucket {name}: {setting.doing} is forbidden ({awsmod.error_code(exc)})",
                f"nothing was deployed; allow this identity {setting.permissions.split('/')[1]}, or "
                "pass --artifact-bucket with a bucket that is set up (templates/bootstrap.yaml)",
            ) from None
        raise awsmod.translate(exc, f"artifacts bucket {name}: {setting.doing}") from None


def _create_bucket(aws: awsmod.Aws, console: Console, name: str, account: str) -> None:
    s3 = aws.s3
    region = aws.region
    https = _is_https(s3)
    if not https:
        console.warn(
            f"{s3.meta.endpoint_url} is plain HTTP (a local emulator): the TLS-only bucket policy is not set"
        )
    settings = hardening(name, aws.partition, https)
    console.say(f"creating artifacts bucket {name} ({', '.join(x.label for x in settings)})")
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as exc:
        code = awsmod.error_code(exc)
        if code == "BucketAlreadyExists":
            raise AccessProblem(
                f"artifacts bucket {name}: the name is taken by another account",
                "pass --artifact-bucket with a bucket of this account",
            ) from None
        if code != "BucketAlreadyOwnedByYou":
            if code in FORBIDDEN:
                raise _forbidden(name, "s3:CreateBucket", exc) from None
            raise awsmod.translate(exc, f"creating artifacts bucket {name}") from None
    for setting in settings:
        _put(aws, name, account, setting)


def dump_template(data: dict[str, Any], source: str) -> str:
    header = f"# Packaged by karematch-cfn from {source}: TemplateURLs point at S3.\n"
    return header + yaml.safe_dump(
        data, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True
    )


def rewrite(tpl: Template, urls: dict[Path, str]) -> str:
    """The template's text with its relative TemplateURLs replaced (unchanged if it has none)."""
    if not tpl.children:
        return tpl.text
    data = copy.deepcopy(tpl.data)
    for logical_id, child in tpl.children.items():
        data["Resources"][logical_id]["Properties"]["TemplateURL"] = urls[child]
    return dump_template(data, tpl.name)


@dataclass(frozen=True)
class Packaged:
    """The root as CreateChangeSet takes it: a body, or (over 51,200 bytes) a URL."""

    root_text: str
    root_url: str | None
    urls: dict[Path, str]

    def template_argument(self) -> dict[str, str]:
        return {"TemplateURL": self.root_url} if self.root_url else {"TemplateBody": self.root_text}


def upload(
    aws: awsmod.Aws, console: Console, bucket: Bucket, name: str, body: bytes, now: dt.datetime | None = None
) -> str:
    """Put ``body`` under its content-hash key unless a fresh copy is already there."""
    key = content_key(name, body)
    url = template_url(bucket.name, bucket.region, key)
    s3 = aws.s3
    now = now or dt.datetime.now(dt.UTC)
    try:
        head = s3.head_object(Bucket=bucket.name, Key=key, ExpectedBucketOwner=bucket.owner)
    except Exception as exc:
        code = awsmod.error_code(exc)
        if code in FORBIDDEN:
            raise _forbidden(bucket.name, f"reading {key}", exc) from None
        if code not in NOT_FOUND:
            raise awsmod.translate(exc, f"artifacts bucket {bucket.name}: {key}") from None
        head = None
    if head is not None:
        modified = head.get("LastModified")
        if modified is None or now - modified < dt.timedelta(days=REFRESH_DAYS):
            console.say(f"  {name}: unchanged, already at s3://{bucket.name}/{key}")
            return url
        console.say(f"  {name}: refreshing s3://{bucket.name}/{key} (older than {REFRESH_DAYS} days)")
    if bucket.ready is not None:
        bucket.ready()
    if head is None:
        console.say(f"  {name}: uploading {len(body):,} bytes to s3://{bucket.name}/{key}")
    try:
        s3.put_object(
            Bucket=bucket.name, Key=key, Body=body, ContentType="text/yaml", ExpectedBucketOwner=bucket.owner
        )
    except Exception as exc:
        if awsmod.error_code(exc) in FORBIDDEN:
            raise _forbidden(bucket.name, f"writing {key} (s3:PutObject)", exc) from None
        raise awsmod.translate(exc, f"uploading {name} to {bucket.name}") from None
    return url


def package(
    aws: awsmod.Aws, console: Console, bucket: Bucket, t: Tree, upload_root: bool = False
) -> Packaged:
    """Upload every child (children before parents) and rewrite the TemplateURLs."""
    console.say(f"packaging {len(t.files)} template(s) from {t.directory}")
    urls: dict[Path, str] = {}
    for path, tpl in t.files.items():
        if path == t.root.path:
            continue
        urls[path] = upload(aws, console, bucket, tpl.name, rewrite(tpl, urls).encode("utf-8"))
    root_text = rewrite(t.root, urls)
    size = len(root_text.encode("utf-8"))
    root_url = None
    if upload_root or size > tree.MAX_BODY_INLINE:
        if not upload_root:
            console.say(
                f"  {t.root.name}: {size:,} bytes is over the {tree.MAX_BODY_INLINE:,}-byte "
                "inline limit; uploading it too"
            )
        root_url = upload(aws, console, bucket, t.root.name, root_text.encode("utf-8"))
    return Packaged(root_text, root_url, urls)
