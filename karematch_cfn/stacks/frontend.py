"""Content delivery (spec section 5): the private frontend bucket and its CloudFront distribution.

The bucket is private (all public access blocked, ACLs disabled, TLS only) and readable only by
this distribution through Origin Access Control (OAC, the successor of the spec's OAI, which
cannot read SSE-KMS objects and is legacy). The default behaviour serves ``index.html`` and every
SPA route without caching; hashed static assets are cached for a year. 403/404 from S3 become
``/index.html`` with 200 so client-side routes work.

Parameters:
    EnvironmentName: dev | staging | prod.
    FrontendDomainName: custom domain (optional).
    FrontendCertificateArn: us-east-1 ACM certificate for that domain (optional). Both or
        neither: a template Rule refuses one without the other.

Outputs:
    FrontendBucketName, DistributionDomainName, DistributionId.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import And, Equals, GetAtt, If, Not, Or, Ref, Sub, Template
from troposphere.cloudfront import (
    CacheBehavior,
    CacheCookiesConfig,
    CacheHeadersConfig,
    CachePolicy,
    CachePolicyConfig,
    CacheQueryStringsConfig,
    ContentTypeOptions,
    CustomErrorResponse,
    CustomHeader,
    CustomHeadersConfig,
    DefaultCacheBehavior,
    Distribution,
    DistributionConfig,
    FrameOptions,
    Origin,
    OriginAccessControl,
    OriginAccessControlConfig,
    ParametersInCacheKeyAndForwardedToOrigin,
    ReferrerPolicy,
    ResponseHeadersPolicy,
    ResponseHeadersPolicyConfig,
    S3OriginConfig,
    SecurityHeadersConfig,
    StrictTransportSecurity,
    ViewerCertificate,
)
from troposphere.s3 import (
    AbortIncompleteMultipartUpload,
    Bucket,
    BucketPolicy,
    LifecycleRule,
    NoncurrentVersionExpiration,
)

from karematch_cfn import names, render
from karematch_cfn.lib import arns, buckets, iam, policies, tags

# Logical IDs (the bucket's is pinned: renaming it would replace the bucket).
BUCKET = "FrontendBucket"
BUCKET_POLICY = "FrontendBucketPolicy"
ORIGIN_ACCESS_CONTROL = "FrontendOriginAccessControl"
NO_CACHE_POLICY = "NoCachePolicy"
STATIC_CACHE_POLICY = "StaticAssetsCachePolicy"
NO_CACHE_HEADERS_POLICY = "NoCacheResponseHeadersPolicy"
STATIC_HEADERS_POLICY = "StaticAssetsResponseHeadersPolicy"
DISTRIBUTION = "FrontendDistribution"
HAS_CUSTOM_DOMAIN = "HasCustomDomain"
CUSTOM_DOMAIN_RULE = "CustomDomainNeedsCertificate"

# Physical names (cache/response-headers policies and OACs are unique per account).
NO_CACHE_POLICY_NAME = f"karematch-{names.ENV}-frontend-no-cache"
STATIC_CACHE_POLICY_NAME = f"karematch-{names.ENV}-frontend-static-assets"
NO_CACHE_HEADERS_NAME = f"karematch-{names.ENV}-frontend-no-cache-headers"
STATIC_HEADERS_NAME = f"karematch-{names.ENV}-frontend-static-headers"
OAC_NAME = f"karematch-{names.ENV}-frontend-oac"
ORIGIN_ID = "FrontendBucketOrigin"

# Spec section 5 numbers.
NONCURRENT_VERSION_DAYS = 90  # spec: delete old versions after 90 days
PRICE_CLASS = "PriceClass_100"  # spec: US, Canada, Europe
DEFAULT_ROOT_OBJECT = "index.html"  # spec
SPA_ENTRY_PATH = f"/{DEFAULT_ROOT_OBJECT}"  # spec: 404/403 -> /index.html
SPA_ERROR_CODES = (403, 404)  # spec: "404/403 -> /index.html (SPA routing)"
SPA_RESPONSE_CODE = 200
VIEWER_PROTOCOL_POLICY = "redirect-to-https"  # spec: redirect HTTP to HTTPS
ONE_YEAR_SECONDS = 365 * 24 * 60 * 60  # spec: static assets 1 year TTL
STATIC_ASSET_TTL = ONE_YEAR_SECONDS
NO_CACHE_MAX_AGE = 0  # spec: HTML, JSON "no caching (max-age=0)"
# CloudFront rejects gzip/brotli on a policy whose three TTLs are all 0 ("caching disabled"),
# and compression needs them: MaxTTL 1 s keeps caching nominally on. DefaultTTL 0 means an
# object without Cache-Control is never cached at the edge; one with it, at most 1 s.
NO_CACHE_EDGE_MAX_TTL = 1
ERROR_CACHING_TTL = 0  # never cache the 403/404 rewrites: a cached rewrite outlives the fix
# MinTTL 0 on the asset policy: an object's own shorter Cache-Control (e.g. an unhashed file the
# uploader marks no-cache) wins; a MinTTL > 0 would cache it even against no-store.
ASSET_MIN_TTL = 0
ABORT_MULTIPART_DAYS = 7

# Browser caching, set by response headers policies (the spec's max-age is a browser header).
NO_CACHE_CONTROL = f"no-cache, max-age={NO_CACHE_MAX_AGE}"
STATIC_CACHE_CONTROL = f"public, max-age={STATIC_ASSET_TTL}, immutable"
HSTS_MAX_AGE = 2 * ONE_YEAR_SECONDS  # two years, the HSTS preload list's minimum is one

# Static asset behaviours (one-year TTL): Vite's hashed output directory, then the spec's
# "JS, CSS, images" (plus web fonts) anywhere. Everything else (index.html, SPA routes, *.html,
# *.json, manifests) falls to the no-cache default behaviour.
STATIC_PATH_PATTERNS = (
    "/assets/*",
    "*.js",
    "*.css",
    "*.png",
    "*.jpg",
    "*.jpeg",
    "*.gif",
    "*.svg",
    "*.webp",
    "*.ico",
    "*.woff2",
)

VIEWER_METHODS = ["GET", "HEAD"]
HTTP_VERSION = "http2and3"
MIN_TLS_POLICY = "TLSv1.2_2021"  # only possible with a custom domain and certificate
SSL_SUPPORT_METHOD = "sni-only"


@dataclass(frozen=True)
class Inputs:
    domain: Ref
    certificate: Ref


@dataclass(frozen=True)
class CachePolicies:
    no_cache: CachePolicy
    static: CachePolicy
    no_cache_headers: ResponseHeadersPolicy
    static_headers: ResponseHeadersPolicy


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    domain = Ref(names.declare(t, names.FRONTEND_DOMAIN_NAME))
    certificate = Ref(names.declare(t, names.FRONTEND_CERTIFICATE_ARN))
    t.add_condition(HAS_CUSTOM_DOMAIN, And(Not(Equals(domain, "")), Not(Equals(certificate, ""))))
    # One without the other would silently fall back to the *.cloudfront.net name: refuse it.
    t.add_rule(
        CUSTOM_DOMAIN_RULE,
        {
            "Assertions": [
                {
                    "Assert": Or(
                        And(Equals(domain, ""), Equals(certificate, "")),
                        And(Not(Equals(domain, "")), Not(Equals(certificate, ""))),
                    ),
                    "AssertDescription": (
                        "FrontendDomainName and FrontendCertificateArn go together: give both or neither"
                    ),
                }
            ]
        },
    )
    return Inputs(domain=domain, certificate=certificate)


def add_bucket(t: Template) -> Bucket:
    bucket = buckets.private_bucket(
        BUCKET,
        name_pattern=names.FRONTEND_BUCKET,
        lifecycle=[
            LifecycleRule(
                Id="ExpireOldVersions",
                Status="Enabled",
                NoncurrentVersionExpiration=NoncurrentVersionExpiration(
                    NoncurrentDays=NONCURRENT_VERSION_DAYS
                ),
                # Failed uploads of a deploy leave invisible parts that are billed forever.
                AbortIncompleteMultipartUpload=AbortIncompleteMultipartUpload(
                    DaysAfterInitiation=ABORT_MULTIPART_DAYS
                ),
            )
        ],
        tags=tags.standard(),
        sse_algorithm=buckets.SSE_S3,  # spec: AES-256 server-side encryption
    )
    # The deployed frontend and its 90 days of history survive a stack deletion; a rolled-back
    # first create (bucket still empty) leaves no named bucket behind to block the retry.
    return t.add_resource(policies.retain_except_on_create(bucket))


def add_bucket_policy(t: Template, bucket: Bucket) -> BucketPolicy:
    objects_arn = arns.bucket_objects(names.FRONTEND_BUCKET)
    return t.add_resource(
        buckets.tls_only_policy(
            BUCKET_POLICY,
            bucket,
            names.FRONTEND_BUCKET,
            iam.read_by_cloudfront(objects_arn, arns.cloudfront_distribution(DISTRIBUTION)),
        )
    )


def add_origin_access_control(t: Template) -> OriginAccessControl:
    return t.add_resource(
        OriginAccessControl(
            ORIGIN_ACCESS_CONTROL,
            OriginAccessControlConfig=OriginAccessControlConfig(
                Name=Sub(OAC_NAME),
                Description="CloudFront signs every request to the private frontend bucket",
                OriginAccessControlOriginType="s3",
                SigningBehavior="always",
                SigningProtocol="sigv4",
            ),
        )
    )


def _cache_policy(
    logical_id: str, *, name: str, comment: str, min_ttl: int, default_ttl: int, max_ttl: int
) -> CachePolicy:
    return CachePolicy(
        logical_id,
        CachePolicyConfig=CachePolicyConfig(
            Name=Sub(name),
            Comment=comment,
            MinTTL=min_ttl,
            DefaultTTL=default_ttl,
            MaxTTL=max_ttl,
            ParametersInCacheKeyAndForwardedToOrigin=ParametersInCacheKeyAndForwardedToOrigin(
                # Compression (spec: gzip, brotli) needs both on the cache policy.
                EnableAcceptEncodingGzip=True,
                EnableAcceptEncodingBrotli=True,
                CookiesConfig=CacheCookiesConfig(CookieBehavior="none"),
                HeadersConfig=CacheHeadersConfig(HeaderBehavior="none"),
                QueryStringsConfig=CacheQueryStringsConfig(QueryStringBehavior="none"),
            ),
        ),
    )


def _headers_policy(
    logical_id: str, *, name: str, comment: str, cache_control: str, override: bool
) -> ResponseHeadersPolicy:
    return ResponseHeadersPolicy(
        logical_id,
        ResponseHeadersPolicyConfig=ResponseHeadersPolicyConfig(
            Name=Sub(name),
            Comment=comment,
            SecurityHeadersConfig=SecurityHeadersConfig(
                StrictTransportSecurity=StrictTransportSecurity(
                    AccessControlMaxAgeSec=HSTS_MAX_AGE,
                    IncludeSubdomains=True,
                    Preload=False,
                    Override=True,
                ),
                ContentTypeOptions=ContentTypeOptions(Override=True),
                FrameOptions=FrameOptions(FrameOption="DENY", Override=True),
                ReferrerPolicy=ReferrerPolicy(
                    ReferrerPolicy="strict-origin-when-cross-origin", Override=True
                ),
            ),
            CustomHeadersConfig=CustomHeadersConfig(
                Items=[CustomHeader(Header="Cache-Control", Value=cache_control, Override=override)]
            ),
        ),
    )


def add_policies(t: Template) -> CachePolicies:
    no_cache = t.add_resource(
        _cache_policy(
            NO_CACHE_POLICY,
            name=NO_CACHE_POLICY_NAME,
            comment="index.html, SPA routes, HTML and JSON: not cached (spec: max-age=0)",
            min_ttl=NO_CACHE_MAX_AGE,
            default_ttl=NO_CACHE_MAX_AGE,
            max_ttl=NO_CACHE_EDGE_MAX_TTL,
        )
    )
    static = t.add_resource(
        _cache_policy(
            STATIC_CACHE_POLICY,
            name=STATIC_CACHE_POLICY_NAME,
            comment="Hashed static assets (JS, CSS, images, fonts): cached one year",
            min_ttl=ASSET_MIN_TTL,
            default_ttl=STATIC_ASSET_TTL,
            max_ttl=STATIC_ASSET_TTL,
        )
    )
    # HTML must never be cached by browsers: override whatever the object metadata says.
    no_cache_headers = t.add_resource(
        _headers_policy(
            NO_CACHE_HEADERS_POLICY,
            name=NO_CACHE_HEADERS_NAME,
            comment="Security headers; HTML/JSON not cached by browsers",
            cache_control=NO_CACHE_CONTROL,
            override=True,
        )
    )
    # Assets: a year unless the uploader set its own Cache-Control on an unhashed file.
    static_headers = t.add_resource(
        _headers_policy(
            STATIC_HEADERS_POLICY,
            name=STATIC_HEADERS_NAME,
            comment="Security headers; static assets cached one year by browsers",
            cache_control=STATIC_CACHE_CONTROL,
            override=False,
        )
    )
    return CachePolicies(
        no_cache=no_cache, static=static, no_cache_headers=no_cache_headers, static_headers=static_headers
    )


def add_distribution(
    t: Template, p: Inputs, *, bucket: Bucket, oac: OriginAccessControl, cp: CachePolicies
) -> Distribution:
    common = {
        "TargetOriginId": ORIGIN_ID,
        "ViewerProtocolPolicy": VIEWER_PROTOCOL_POLICY,
        "Compress": True,
        "AllowedMethods": VIEWER_METHODS,
        "CachedMethods": VIEWER_METHODS,
    }
    static_behaviours = [
        CacheBehavior(
            PathPattern=pattern,
            CachePolicyId=Ref(cp.static),
            ResponseHeadersPolicyId=Ref(cp.static_headers),
            **common,
        )
        for pattern in STATIC_PATH_PATTERNS
    ]
    certificate = If(
        HAS_CUSTOM_DOMAIN,
        ViewerCertificate(
            AcmCertificateArn=p.certificate,
            SslSupportMethod=SSL_SUPPORT_METHOD,
            MinimumProtocolVersion=MIN_TLS_POLICY,
        ),
        # The *.cloudfront.net certificate cannot enforce TLS 1.2 (CloudFront allows TLSv1).
        ViewerCertificate(CloudFrontDefaultCertificate=True),
    )
    distribution = Distribution(
        DISTRIBUTION,
        DistributionConfig=DistributionConfig(
            Comment=Sub(f"KareMatch {names.ENV} frontend"),
            Enabled=True,
            PriceClass=PRICE_CLASS,
            DefaultRootObject=DEFAULT_ROOT_OBJECT,
            HttpVersion=HTTP_VERSION,
            IPV6Enabled=True,
            Aliases=If(HAS_CUSTOM_DOMAIN, [p.domain], Ref("AWS::NoValue")),
            ViewerCertificate=certificate,
            Origins=[
                Origin(
                    Id=ORIGIN_ID,
                    DomainName=GetAtt(bucket, "RegionalDomainName"),
                    OriginAccessControlId=GetAtt(oac, "Id"),
                    # OAC, not OAI: the OAI field must be present and empty.
                    S3OriginConfig=S3OriginConfig(OriginAccessIdentity=""),
                )
            ],
            DefaultCacheBehavior=DefaultCacheBehavior(
                CachePolicyId=Ref(cp.no_cache),
                ResponseHeadersPolicyId=Ref(cp.no_cache_headers),
                **common,
            ),
            CacheBehaviors=static_behaviours,
            CustomErrorResponses=[
                CustomErrorResponse(
                    ErrorCode=code,
                    ResponseCode=SPA_RESPONSE_CODE,
                    ResponsePagePath=SPA_ENTRY_PATH,
                    ErrorCachingMinTTL=ERROR_CACHING_TTL,
                )
                for code in SPA_ERROR_CODES
            ],
        ),
        Tags=tags.standard(),
    )
    return t.add_resource(distribution)


def build() -> Template:
    t = render.new_template(
        "KareMatch content delivery: private frontend bucket and its CloudFront distribution"
    )
    p = declare_inputs(t)
    bucket = add_bucket(t)
    oac = add_origin_access_control(t)
    cp = add_policies(t)
    distribution = add_distribution(t, p, bucket=bucket, oac=oac, cp=cp)
    add_bucket_policy(t, bucket)
    render.add_outputs(
        t,
        {
            names.FRONTEND_BUCKET_NAME: Ref(bucket),
            names.DISTRIBUTION_DOMAIN_NAME: GetAtt(distribution, "DomainName"),
            names.DISTRIBUTION_ID: Ref(distribution),
        },
    )
    return t
