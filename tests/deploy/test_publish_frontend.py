"""``publish-frontend`` on the moto server: headers per file, index.html last, the previous
release's assets kept and older ones deleted, one invalidation of the un-hashed paths."""

from __future__ import annotations

import json

import pytest

from karematch_cfn.stacks.frontend import NO_CACHE_CONTROL, STATIC_CACHE_CONTROL

pytestmark = pytest.mark.deploy

TEMPLATE = {
    "Parameters": {"EnvironmentName": {"Type": "String"}, "Distribution": {"Type": "String"}},
    "Resources": {"Site": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "site-dev-frontend"}}},
    "Outputs": {
        "FrontendBucketName": {"Value": {"Ref": "Site"}},
        "DistributionId": {"Value": {"Ref": "Distribution"}},
    },
}


@pytest.fixture
def site(moto):
    """A dev stack whose Outputs name a bucket and a CloudFront distribution (moto)."""
    cf = moto.client("cloudfront")
    dist = cf.create_distribution(
        DistributionConfig={
            "CallerReference": "test",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "s3",
                        "DomainName": "site-dev-frontend.s3.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "redirect-to-https"},
            "Comment": "",
            "Enabled": True,
        }
    )["Distribution"]["Id"]
    moto.client("cloudformation").create_stack(
        StackName="karematch-dev",
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[
            {"ParameterKey": "EnvironmentName", "ParameterValue": "dev"},
            {"ParameterKey": "Distribution", "ParameterValue": dist},
        ],
    )
    return dist


def build(tmp_path, release: str, *, big: bool = False):
    dist = tmp_path / release
    (dist / "assets").mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text(f'<script src="/assets/app-{release}.js"></script>')
    (dist / "assets" / f"app-{release}.js").write_text("console.log(1)")
    (dist / "assets" / f"app-{release}.css").write_text("body{}")
    (dist / "favicon.ico").write_bytes(b"\x00\x00\x01\x00")
    (dist / "manifest.json").write_text("{}")
    if big:
        (dist / "assets" / f"video-{release}.bin").write_bytes(b"\x00" * (9 * 1024 * 1024))
    return dist


def test_first_publish_sets_headers_uploads_index_last_and_invalidates_unhashed_paths(
    moto, karematch, site, tmp_path
):
    r = karematch("publish-frontend", "--env", "dev", "--dir", build(tmp_path, "abc123", big=True))

    assert r.code == 0, r.text
    s3 = moto.client("s3")
    head = {
        k: s3.head_object(Bucket="site-dev-frontend", Key=k)
        for k in (
            "index.html",
            "assets/app-abc123.js",
            "assets/app-abc123.css",
            "favicon.ico",
            "manifest.json",
            "assets/video-abc123.bin",
        )
    }
    assert head["index.html"]["ContentType"] == "text/html; charset=utf-8"
    assert head["assets/app-abc123.js"]["ContentType"] == "text/javascript; charset=utf-8"
    assert head["assets/app-abc123.css"]["ContentType"] == "text/css; charset=utf-8"
    assert head["manifest.json"]["ContentType"] == "application/json"
    assert head["favicon.ico"]["ContentType"] == "image/x-icon"
    assert head["assets/video-abc123.bin"]["ContentType"] == "application/octet-stream"
    for key, h in head.items():
        assert h["CacheControl"] == (
            STATIC_CACHE_CONTROL if key.startswith("assets/") else NO_CACHE_CONTROL
        ), key
    uploaded = [line.split()[1] for line in r.out.splitlines() if line.strip().startswith("[")]
    assert uploaded[-1] == "index.html"
    assert all(k.startswith("assets/") for k in uploaded[:3]) and len(uploaded) == 6
    assert "assets/video-abc123.bin: 100% of 9.0 MB" in r.out
    batch = moto.client("cloudfront").list_invalidations(DistributionId=site)["InvalidationList"]["Items"]
    assert len(batch) == 1
    paths = moto.client("cloudfront").get_invalidation(DistributionId=site, Id=batch[0]["Id"])[
        "Invalidation"
    ]["InvalidationBatch"]["Paths"]["Items"]
    assert sorted(paths) == ["/", "/favicon.ico", "/index.html", "/manifest.json"]


def test_the_previous_release_assets_stay_and_older_ones_go(moto, karematch, site, tmp_path):
    s3 = moto.client("s3")

    def assets():
        return sorted(
            o["Key"]
            for o in s3.list_objects_v2(Bucket="site-dev-frontend", Prefix="assets/").get("Contents", [])
        )

    for release in ("r1", "r2"):
        assert karematch("publish-frontend", "--env", "dev", "--dir", build(tmp_path, release)).code == 0
    assert assets() == ["assets/app-r1.css", "assets/app-r1.js", "assets/app-r2.css", "assets/app-r2.js"]

    r = karematch("publish-frontend", "--env", "dev", "--dir", build(tmp_path, "r3"))

    assert r.code == 0, r.text
    assert assets() == ["assets/app-r2.css", "assets/app-r2.js", "assets/app-r3.css", "assets/app-r3.js"]
    assert "deleted 2 asset(s) older than the previous release" in r.out
    # an asset already there is not uploaded again
    r = karematch("publish-frontend", "--env", "dev", "--dir", tmp_path / "r3")
    assert "2 asset(s) already there" in r.out


def test_dry_run_changes_nothing(moto, karematch, site, tmp_path):
    r = karematch("publish-frontend", "--env", "dev", "--dir", build(tmp_path, "abc"), "--dry-run")

    assert r.code == 0, r.text
    assert "would upload index.html  text/html; charset=utf-8  no-cache, max-age=0" in r.out
    assert "would invalidate: / /favicon.ico /index.html /manifest.json" in r.out
    assert moto.client("s3").list_objects_v2(Bucket="site-dev-frontend").get("KeyCount", 0) == 0


def test_a_directory_without_index_html_is_refused_before_aws(moto, karematch, tmp_path):
    (tmp_path / "dist").mkdir()

    r = karematch("publish-frontend", "--env", "dev", "--dir", tmp_path / "dist")

    assert r.code == 2 and "no index.html" in r.err
    r = karematch("publish-frontend", "--env", "dev", "--dir", tmp_path / "missing")
    assert r.code == 2 and "not a directory" in r.err
