"""frontend.yaml does what spec section 5 says: a private, encrypted, versioned bucket readable
only by CloudFront; a distribution with the spec's price class, root object, HTTPS redirect,
compression, caching (a year for static assets, none for HTML/JSON) and SPA error handling; a
custom domain only when both the domain and its certificate are given."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
from typing import Any

import pytest

from karematch_cfn import evaluate
from tests import helpers, spec

# Data kept on stack deletion; a rolled-back first create leaves no named leftover.
KEEP = ("Retain", "RetainExceptOnCreate")
FILE = "frontend.yaml"
CDN = "5. Content Delivery"
DOMAIN = "app.karematch.example"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"

# Paths a built SPA serves: hashed assets, root-level images/fonts, and everything else.
STATIC_PATHS = (
    "/assets/index-4f3a9c.js",
    "/assets/index-4f3a9c.css",
    "/assets/logo-1a2b.svg",
    "/main.js",
    "/styles.css",
    "/logo.png",
    "/photo.jpg",
    "/favicon.ico",
    "/fonts/inter.woff2",
)
NO_CACHE_PATHS = (
    "/",
    "/index.html",
    "/matches/42",
    "/settings/profile",
    "/about.html",
    "/config.json",
    "/manifest.json",
    "/locales/en.json",
)


@pytest.fixture(scope="module")
def t() -> dict[str, Any]:
    return helpers.template(FILE)


def bucket(t):
    return helpers.props(helpers.one_of_type(t, "AWS::S3::Bucket"))


def config(t) -> dict[str, Any]:
    return helpers.props(helpers.one_of_type(t, "AWS::CloudFront::Distribution"))["DistributionConfig"]


def ref_target(t, ref: dict[str, Any], rtype: str) -> dict[str, Any]:
    """The resource of type ``rtype`` that a ``{"Ref": id}`` points at."""
    assert set(ref) == {"Ref"}, ref
    res = t["Resources"][ref["Ref"]]
    assert res["Type"] == rtype, ref
    return helpers.props(res)


def behaviour_for(t, path: str) -> dict[str, Any]:
    """The cache behaviour CloudFront picks for ``path``: the first matching PathPattern in
    order (``*`` matches across ``/``; a pattern without a leading ``/`` is rooted), else the
    default behaviour."""
    cfg = config(t)
    for behaviour in cfg.get("CacheBehaviors", []):
        if fnmatch.fnmatchcase(path.lstrip("/"), behaviour["PathPattern"].lstrip("/")):
            return behaviour
    return cfg["DefaultCacheBehavior"]


def all_behaviours(t) -> list[dict[str, Any]]:
    """The behaviours that serve the single-page app from the bucket (not /api/*)."""
    cfg = config(t)
    return [cfg["DefaultCacheBehavior"], *(b for b in cfg.get("CacheBehaviors", []) if b is not api(t))]


def api(t) -> dict[str, Any]:
    (behaviour,) = [b for b in config(t).get("CacheBehaviors", []) if b["PathPattern"] == "/api/*"]
    return behaviour


def cache_policy(t, behaviour) -> dict[str, Any]:
    return ref_target(t, behaviour["CachePolicyId"], "AWS::CloudFront::CachePolicy")["CachePolicyConfig"]


def cache_control(t, behaviour) -> dict[str, Any]:
    """The Cache-Control header the behaviour's response headers policy sets."""
    policy = ref_target(t, behaviour["ResponseHeadersPolicyId"], "AWS::CloudFront::ResponseHeadersPolicy")
    items = policy["ResponseHeadersPolicyConfig"]["CustomHeadersConfig"]["Items"]
    (header,) = [h for h in items if h["Header"].lower() == "cache-control"]
    return header


def spec_static_ttl_seconds() -> int:
    years = spec.number(r"Static assets \(JS, CSS, images\): (\d+) year TTL", CDN)
    return years * 365 * 24 * 60 * 60


def spec_no_cache_max_age() -> int:
    return spec.number(r"HTML, JSON: No caching \(max-age=(\d+)\)", CDN)


# ---------------------------------------------------------------------------------------------
# Bucket
# ---------------------------------------------------------------------------------------------
def test_bucket_is_encrypted_with_the_spec_algorithm(t):
    algorithm = spec.find(r"Encryption: (AES-\d+) server-side encryption", CDN).replace("-", "")
    (rule,) = bucket(t)["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == algorithm


def test_bucket_is_versioned_and_old_versions_expire_after_the_spec_days(t):
    assert spec.find(r"Versioning: (\w+)", CDN) == "Enabled"
    days = spec.number(r"Lifecycle: Delete old versions after (\d+) days", CDN)
    assert bucket(t)["VersioningConfiguration"]["Status"] == "Enabled"
    rules = [r for r in bucket(t)["LifecycleConfiguration"]["Rules"] if r["Status"] == "Enabled"]
    assert [
        r["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for r in rules
        if "NoncurrentVersionExpiration" in r
    ] == [days]
    # Current versions (the live site) never expire.
    assert not any("ExpirationInDays" in r or "ExpirationDate" in r for r in rules)


def test_bucket_is_named_per_environment_and_account_and_kept(t):
    res = helpers.one_of_type(t, "AWS::S3::Bucket")
    name = helpers.sub_text(helpers.props(res)["BucketName"])
    assert name.startswith("karematch-frontend-")  # spec: karematch-frontend-{suffix}
    assert "${EnvironmentName}" in name and "${AWS::AccountId}" in name
    assert res["DeletionPolicy"] in KEEP and res["UpdateReplacePolicy"] == "Retain"


def test_bucket_is_not_public_and_acls_are_disabled(t):
    assert "Private" in spec.find(r"Access: (Private)", CDN)
    block = bucket(t)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket(t)["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "WebsiteConfiguration" not in bucket(t)  # S3 website endpoints are public HTTP


def test_bucket_policy_lets_only_this_distribution_read_and_refuses_plain_http(t):
    policy = helpers.props(helpers.one_of_type(t, "AWS::S3::BucketPolicy"))
    assert policy["Bucket"] == {"Ref": "FrontendBucket"}
    statements = policy["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 2
    (allow,) = [s for s in allows if s["Action"] == ["s3:GetObject"]]
    # ListBucket on the bucket only: a missing file is S3's 404, not 403 (SPA routing below).
    (listing,) = [s for s in allows if s["Action"] == ["s3:ListBucket"]]
    assert listing["Principal"] == {"Service": ["cloudfront.amazonaws.com"]}
    assert [helpers.sub_text(r) for r in listing["Resource"]] == [
        "arn:${AWS::Partition}:s3:::karematch-frontend-${EnvironmentName}-${AWS::AccountId}"
    ]
    assert listing["Condition"] == allow["Condition"]
    assert allow["Principal"] == {"Service": ["cloudfront.amazonaws.com"]}
    assert allow["Action"] == ["s3:GetObject"]
    (resource,) = allow["Resource"]
    assert helpers.sub_text(resource).endswith("karematch-frontend-${EnvironmentName}-${AWS::AccountId}/*")
    source = helpers.sub_text(allow["Condition"]["StringEquals"]["AWS:SourceArn"])
    distribution_id = next(iter(helpers.resources_of_type(t, "AWS::CloudFront::Distribution")))
    assert source.endswith(f":distribution/${{{distribution_id}}}") and ":cloudfront::" in source

    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Principal"] == "*" and deny["Action"] == ["s3:*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {helpers.sub_text(r) for r in deny["Resource"]} == {
        "arn:${AWS::Partition}:s3:::karematch-frontend-${EnvironmentName}-${AWS::AccountId}",
        "arn:${AWS::Partition}:s3:::karematch-frontend-${EnvironmentName}-${AWS::AccountId}/*",
    }


def test_cloudfront_reaches_the_bucket_through_origin_access_control_not_a_public_endpoint(t):
    # Decision: OAC, the successor of the spec's OAI (OAI is legacy and cannot read SSE-KMS).
    (origin,) = [o for o in config(t)["Origins"] if "S3OriginConfig" in o]
    assert origin["DomainName"] == {"Fn::GetAtt": ["FrontendBucket", "RegionalDomainName"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    oac_id = origin["OriginAccessControlId"]["Fn::GetAtt"][0]
    oac = helpers.props(t["Resources"][oac_id])["OriginAccessControlConfig"]
    assert oac["OriginAccessControlOriginType"] == "s3"
    assert oac["SigningBehavior"] == "always" and oac["SigningProtocol"] == "sigv4"
    assert not helpers.resources_of_type(t, "AWS::CloudFront::CloudFrontOriginAccessIdentity")
    assert all(b["TargetOriginId"] == origin["Id"] for b in all_behaviours(t))


# ---------------------------------------------------------------------------------------------
# Distribution
# ---------------------------------------------------------------------------------------------
def test_distribution_uses_the_spec_price_class_and_root_object(t):
    cfg = config(t)
    assert cfg["Enabled"] is True
    assert cfg["PriceClass"] == spec.find(r"Price class: (PriceClass_\w+)", CDN)
    assert cfg["DefaultRootObject"] == spec.find(r"Default root object: `([^`]+)`", CDN)
    assert cfg["IPV6Enabled"] is True and cfg["HttpVersion"] == "http2and3"


def test_every_behaviour_redirects_http_to_https(t):
    assert "redirect HTTP to HTTPS" in spec.find(r"HTTPS: Required \(([^)]+)\)", CDN)
    assert len(all_behaviours(t)) > 1
    for behaviour in all_behaviours(t):
        assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https", behaviour.get("PathPattern")


def test_every_behaviour_compresses_with_the_spec_encodings(t):
    encodings = spec.find(r"Compression: Enabled \(([^)]+)\)", CDN)
    assert [e.strip() for e in encodings.split(",")] == ["gzip", "brotli"]
    for behaviour in all_behaviours(t):
        assert behaviour["Compress"] is True
        params = cache_policy(t, behaviour)["ParametersInCacheKeyAndForwardedToOrigin"]
        assert params["EnableAcceptEncodingGzip"] is True
        assert params["EnableAcceptEncodingBrotli"] is True
        # CloudFront rejects gzip/brotli on a policy with caching disabled (all TTLs 0).
        policy = cache_policy(t, behaviour)
        assert policy["MaxTTL"] > 0, "EnableAcceptEncodingGzip is invalid with all TTLs 0"


def test_behaviours_serve_only_reads_and_forward_no_cookies_or_query_strings(t):
    for behaviour in all_behaviours(t):
        assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
        params = cache_policy(t, behaviour)["ParametersInCacheKeyAndForwardedToOrigin"]
        assert params["CookiesConfig"]["CookieBehavior"] == "none"
        assert params["QueryStringsConfig"]["QueryStringBehavior"] == "none"


@pytest.mark.parametrize("path", STATIC_PATHS)
def test_static_assets_are_cached_for_the_spec_year(t, path):
    ttl = spec_static_ttl_seconds()
    behaviour = behaviour_for(t, path)
    assert "PathPattern" in behaviour, f"{path} falls to the default (no-cache) behaviour"
    policy = cache_policy(t, behaviour)
    assert policy["DefaultTTL"] == ttl and policy["MaxTTL"] == ttl
    header = cache_control(t, behaviour)
    assert f"max-age={ttl}" in header["Value"]


@pytest.mark.parametrize("path", NO_CACHE_PATHS)
def test_html_json_and_spa_routes_are_not_cached(t, path):
    max_age = spec_no_cache_max_age()
    behaviour = behaviour_for(t, path)
    assert behaviour is config(t)["DefaultCacheBehavior"], f"{path} matched {behaviour.get('PathPattern')}"
    policy = cache_policy(t, behaviour)
    assert policy["MinTTL"] == max_age and policy["DefaultTTL"] == max_age
    assert policy["MaxTTL"] <= 1  # the smallest non-zero edge TTL that still allows compression
    header = cache_control(t, behaviour)
    assert f"max-age={max_age}" in header["Value"] and header["Override"] is True


def run_function(code: str, uri: str) -> str:
    """The URI a CloudFront Function leaves on a viewer request (run by Node.js)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the CloudFront Function cannot be run")
    script = (
        code + f"\nprocess.stdout.write(handler({{request: {{uri: {json.dumps(uri)}, headers: {{}}}}}}).uri);"
    )
    return subprocess.run([node, "-e", script], check=True, capture_output=True, text=True, timeout=30).stdout


def spa_function(t) -> dict[str, Any]:
    (association,) = config(t)["DefaultCacheBehavior"]["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    function_id, attribute = association["FunctionARN"]["Fn::GetAtt"]
    assert attribute == "FunctionARN"
    fn = t["Resources"][function_id]
    assert fn["Type"] == "AWS::CloudFront::Function"
    return helpers.props(fn)


ROUTES = ("/", "/matches/42", "/settings/profile", "/login", "/api")
FILES = ("/index.html", "/assets/index-4f3a9c.js", "/favicon.ico", "/config.json", "/missing.png")


def test_spa_routing_serves_index_html_for_routes_and_files_as_themselves(t):
    """The spec's "404/403 -> /index.html" for every path a browser navigates to, by a viewer
    request function: a missing file stays a real 404 and the API's errors stay the API's."""
    entry = spec.find(r"Error handling: \d+/\d+ → (/\S+)", CDN)
    fn = spa_function(t)
    assert fn["AutoPublish"] is True and fn["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    for route in ROUTES:
        assert run_function(fn["FunctionCode"], route) == entry, route
    for path in FILES:
        assert run_function(fn["FunctionCode"], path) == path, path


def test_no_distribution_wide_error_rewrite_hides_the_apis_errors(t):
    assert "CustomErrorResponses" not in config(t)
    assert "FunctionAssociations" not in api(t)


def test_security_headers_are_sent_on_every_behaviour(t):
    for behaviour in [*all_behaviours(t), api(t)]:
        policy = ref_target(t, behaviour["ResponseHeadersPolicyId"], "AWS::CloudFront::ResponseHeadersPolicy")
        sec = policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
        assert sec["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 365 * 24 * 60 * 60
        assert sec["ContentTypeOptions"]["Override"] is True
        assert sec["FrameOptions"]["FrameOption"] == "DENY"


# ---------------------------------------------------------------------------------------------
# Custom domain: only with both a domain and a certificate
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_without_a_custom_domain_the_cloudfront_name_and_certificate_are_used(env):
    cfg = config(helpers.for_env(FILE, env))
    assert "Aliases" not in cfg
    assert cfg["ViewerCertificate"] == {"CloudFrontDefaultCertificate": True}


def test_with_domain_and_certificate_the_alias_uses_tls_1_2_and_sni():
    assert spec.find(r"Custom domain: (Supported) \(if ACM certificate provided\)", CDN)
    cfg = config(helpers.for_env(FILE, "prod", FrontendDomainName=DOMAIN, FrontendCertificateArn=CERT))
    assert cfg["Aliases"] == [DOMAIN]
    cert = cfg["ViewerCertificate"]
    assert cert["AcmCertificateArn"] == CERT
    assert cert["SslSupportMethod"] == "sni-only"
    # Spec (Security Architecture): TLS 1.2+ in transit.
    tls = spec.find(r"ALB → Internet: HTTPS \(TLS (\d\.\d)\+\)", "Security Architecture")
    assert cert["MinimumProtocolVersion"].startswith(f"TLSv{tls}_")
    assert "CloudFrontDefaultCertificate" not in cert


@pytest.mark.parametrize("given", [{"FrontendDomainName": DOMAIN}, {"FrontendCertificateArn": CERT}])
def test_a_domain_without_certificate_or_the_reverse_is_refused(t, given):
    cfg = config(helpers.for_env(FILE, "prod", **given))
    assert "Aliases" not in cfg  # never an alias the default certificate cannot serve
    values = {"EnvironmentName": "prod", **given}
    assert evaluate.broken_rules(t, values), "the template Rule should refuse half a custom domain"
    both = {**values, "FrontendDomainName": DOMAIN, "FrontendCertificateArn": CERT}
    assert not evaluate.broken_rules(t, both)
    assert not evaluate.broken_rules(t, {"EnvironmentName": "prod"})


def test_outputs_name_the_bucket_and_the_distribution(t):
    outputs = t["Outputs"]
    assert outputs["FrontendBucketName"]["Value"] == {"Ref": "FrontendBucket"}
    dist = next(iter(helpers.resources_of_type(t, "AWS::CloudFront::Distribution")))
    assert outputs["DistributionId"]["Value"] == {"Ref": dist}
    assert outputs["DistributionDomainName"]["Value"] == {"Fn::GetAtt": [dist, "DomainName"]}


# ---------------------------------------------------------------------------------------------
# The API on the SPA's own origin: /api/* to the ALB
# ---------------------------------------------------------------------------------------------
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # AWS managed cache policy
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # AWS managed origin request policy
ALB_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


def origin(t, origin_id: str) -> dict[str, Any]:
    (found,) = [o for o in config(t)["Origins"] if o["Id"] == origin_id]
    return found


@pytest.mark.parametrize("path", ["/api/matches", "/api/auth/login", "/api/v1/users/7/photo.png"])
def test_api_paths_go_to_the_load_balancer_and_nothing_else_does(t, path):
    assert behaviour_for(t, path) is api(t)
    for other in (*STATIC_PATHS, *NO_CACHE_PATHS, "/apidocs", "/api"):
        assert behaviour_for(t, other) is not api(t), other


def test_the_api_is_not_cached_and_gets_every_method_header_cookie_and_query_string(t):
    b = api(t)
    assert b["CachePolicyId"] == CACHING_DISABLED
    assert b["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
    assert set(b["AllowedMethods"]) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"}
    assert b["ViewerProtocolPolicy"] == "https-only"  # a redirect would turn a POST into a GET


def test_dev_reaches_the_alb_over_http_by_its_dns_name():
    dev = helpers.for_env(FILE, "dev")
    o = origin(dev, api(dev)["TargetOriginId"])
    assert o["DomainName"] == helpers.wired_value("LoadBalancerDnsName")
    assert o["CustomOriginConfig"]["OriginProtocolPolicy"] == "http-only"
    assert o["CustomOriginConfig"]["HTTPPort"] == 80


def test_with_an_alb_certificate_the_api_origin_is_https_to_the_certificates_name():
    prod = helpers.for_env(FILE, "prod", CertificateArn=ALB_CERT, ApiDomainName="api.karematch.example")
    o = origin(prod, api(prod)["TargetOriginId"])
    assert o["DomainName"] == "api.karematch.example"
    cfg = o["CustomOriginConfig"]
    assert cfg["OriginProtocolPolicy"] == "https-only" and cfg["HTTPSPort"] == 443
    assert cfg["OriginSSLProtocols"] == ["TLSv1.2"]


def test_an_alb_certificate_without_the_api_domain_is_refused_before_anything_is_created():
    root = helpers.template("karematch.yaml")
    values = dict(helpers.env_values("prod"), CertificateArn=ALB_CERT)
    assert any("ApiDomainName" in b for b in evaluate.broken_rules(root, values))
    assert not evaluate.broken_rules(root, dict(values, ApiDomainName="api.karematch.example"))


def test_the_spas_api_url_is_its_own_origin_and_a_root_output(t):
    dist = next(iter(helpers.resources_of_type(t, "AWS::CloudFront::Distribution")))
    value = helpers.for_env(FILE, "dev")["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert value[0] == "https://${Domain}/api"
    assert value[1]["Domain"] == {"Fn::GetAtt": [dist, "DomainName"]}
    custom = helpers.for_env(FILE, "prod", FrontendDomainName=DOMAIN, FrontendCertificateArn=CERT)
    assert custom["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"][1]["Domain"] == DOMAIN
    assert "ApiUrl" in helpers.template("karematch.yaml")["Outputs"]
