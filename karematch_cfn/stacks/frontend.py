"""Content delivery (spec section 5): the private frontend bucket and its CloudFront distribution.

The bucket is private (all public access blocked, ACLs disabled, TLS only) and readable only by
this distribution through Origin Access Control (OAC, the successor of the spec's OAI, which
cannot read SSE-KMS objects and is legacy). The default behaviour serves ``index.html`` and every
SPA route without caching; hashed static assets are cached for a year.

SPA routing (the spec's "404/403 -> /index.html") is a viewer-request CloudFront Function on the
default behaviour: a path whose last segment has no file extension (an application route) is
served ``/index.html``; a missing file is S3's real 404. A distribution-wide error rewrite would
also turn the API's own 403s and 404s into HTML with status 200.

The API is on the same origin: ``/api/*`` goes to the ALB, uncached, with every viewer header
but Host, cookies and query strings, so the SPA calls ``https://<its own domain>/api`` (no
mixed content, no CORS). The ALB leg is HTTPS to ``ApiDomainName`` (the name on the ALB's
certificate) when the ALB has a certificate, and HTTP to its DNS name in dev (no PHI in dev).

Parameters:
    EnvironmentName: dev | staging | prod.
    FrontendDomainName: custom domain (optional).
    FrontendCertificateArn: us-east-1 ACM certificate for that domain (optional). Both or
        neither: a template Rule refuses one without the other.
    CertificateArn, ApiDomainName: the ALB's certificate and the name it is for (both or neither).
    LoadBalancerDnsName: the ALB (wired).

Outputs:
    FrontendBucketName, DistributionDomainName, DistributionId, ApiUrl.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import And, Condition, Equals, GetAtt, If, Not, Or, Ref, Sub, Template
from troposphere.cloudfront import (
    CacheBehavior,
    CacheCookiesConfig,
    CacheHeadersConfig,
    CachePolicy,
    CachePolicyConfig,
    CacheQueryStringsConfig,
    ContentTypeOptions,
    CustomHeader,
    CustomHeadersConfig,
    CustomOriginConfig,
    DefaultCacheBehavior,
    Distribution,
    DistributionConfig,
    FrameOptions,
    Function,
    FunctionAssociation,
    FunctionConfig,
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
from troposphere.logs import Delivery, DeliveryDestination, DeliverySource
from troposphere.s3 import (
    AbortIncompleteMultipartUpload,
    Bucket,
    BucketPolicy,
    LifecycleRule,
    NoncurrentVersionExpiration,
)

from karematch_cfn import names, render
from karematch_cfn.lib import arns, buckets, iam, policies, suppress, tags, waf

# Logical IDs (the bucket's is pinned: renaming it would replace the bucket).
BUCKET = "FrontendBucket"
BUCKET_POLICY = "FrontendBucketPolicy"
ORIGIN_ACCESS_CONTROL = "FrontendOriginAccessControl"
NO_CACHE_POLICY = "NoCachePolicy"
STATIC_CACHE_POLICY = "StaticAssetsCachePolicy"
NO_CACHE_HEADERS_POLICY = "NoCacheResponseHeadersPolicy"
STATIC_HEADERS_POLICY = "StaticAssetsResponseHeadersPolicy"
API_HEADERS_POLICY = "ApiResponseHeadersPolicy"
DISTRIBUTION = "FrontendDistribution"
HAS_CUSTOM_DOMAIN = "HasCustomDomain"
# CloudFront's web ACL and its logging v2 exist only in us-east-1 (docs/decisions.md).
IN_US_EAST_1 = "InUsEast1"
HAS_EDGE_WEB_ACL_ARN = "HasEdgeWebAclArn"
CREATES_EDGE_WEB_ACL = "CreatesEdgeWebAcl"
EDGE_WEB_ACL = "EdgeWebAcl"
EDGE_WEB_ACL_NAME = f"karematch-{names.ENV}-cloudfront"
EDGE_WEB_ACL_LOGGING = "EdgeWebAclLogging"
LOG_SOURCE = "DistributionLogSource"
LOG_DESTINATION = "DistributionLogDestination"
LOG_DELIVERY = "DistributionLogDelivery"
LOG_DELIVERY_NAME = f"karematch-{names.ENV}-cloudfront-access-logs"
CUSTOM_DOMAIN_RULE = "CustomDomainNeedsCertificate"
SPA_ROUTING_FUNCTION = "SpaRoutingFunction"
ALB_HAS_CERTIFICATE = "ApiOriginHttps"
API_DOMAIN_RULE = "ApiDomainNameWithCertificate"

# Physical names (cache/response-headers policies and OACs are unique per account).
NO_CACHE_POLICY_NAME = f"karematch-{names.ENV}-frontend-no-cache"
STATIC_CACHE_POLICY_NAME = f"karematch-{names.ENV}-frontend-static-assets"
NO_CACHE_HEADERS_NAME = f"karematch-{names.ENV}-frontend-no-cache-headers"
STATIC_HEADERS_NAME = f"karematch-{names.ENV}-frontend-static-headers"
API_HEADERS_NAME = f"karematch-{names.ENV}-api-headers"
OAC_NAME = f"karematch-{names.ENV}-frontend-oac"
ORIGIN_ID = "FrontendBucketOrigin"
API_ORIGIN_ID = "ApiLoadBalancerOrigin"
SPA_ROUTING_FUNCTION_NAME = f"karematch-{names.ENV}-spa-routing"

# Spec section 5 numbers.
ENCRYPTION = "aws:kms"  # spec: AES-256 server-side encryption; SSE-KMS under the environment's key
NONCURRENT_VERSION_DAYS = 90  # spec: delete old versions after 90 days
PRICE_CLASS = "PriceClass_100"  # spec: US, Canada, Europe
DEFAULT_ROOT_OBJECT = "index.html"  # spec
SPA_ENTRY_PATH = f"/{DEFAULT_ROOT_OBJECT}"  # spec: 404/403 -> /index.html
# Viewer request on the default behaviour: an application route (no file extension in its last
# segment) is served the SPA's entry; anything else is looked up as a file (missing: S3's 404).
SPA_ROUTING_CODE = f"""function handler(event) {{
  var request = event.request;
  var last = request.uri.substring(request.uri.lastIndexOf('/') + 1);
  if (last.indexOf('.') === -1) {{
    request.uri = '{SPA_ENTRY_PATH}';
  }}
  return request;
}}
"""
VIEWER_PROTOCOL_POLICY = "redirect-to-https"  # spec: redirect HTTP to HTTPS
ONE_YEAR_SECONDS = 365 * 24 * 60 * 60  # spec: static assets 1 year TTL
STATIC_ASSET_TTL = ONE_YEAR_SECONDS
NO_CACHE_MAX_AGE = 0  # spec: HTML, JSON "no caching (max-age=0)"

# Browser caching, set by response headers policies (the spec's max-age is a browser header).
NO_CACHE_CONTROL = f"no-cache, max-age={NO_CACHE_MAX_AGE}"
STATIC_CACHE_CONTROL = f"public, max-age={STATIC_ASSET_TTL}, immutable"

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


@dataclass(frozen=True)
class Inputs:
    domain: Ref
    certificate: Ref
    data_key: Ref
    access_log_bucket: Ref
    edge_web_acl: Ref
    waf_log_bucket: Ref
    api_domain: Ref
    load_balancer: Ref


@dataclass(frozen=True)
class CachePolicies:
    no_cache: CachePolicy
    static: CachePolicy
    no_cache_headers: ResponseHeadersPolicy
    static_headers: ResponseHeadersPolicy
    api_headers: ResponseHeadersPolicy


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
    key = Ref(
        names.declare(
            t, names.DATA_KEY_ARN, "ARN of the environment's customer-managed KMS key (foundation.yaml)"
        )
    )
    access_logs = Ref(
        names.declare(
            t,
            names.ACCESS_LOG_BUCKET_NAME,
            "Bucket of the environment's S3 server access logs (foundation.yaml)",
        )
    )
    edge_acl = Ref(names.declare(t, names.CLOUDFRONT_WEB_ACL_ARN))
    waf_logs = Ref(
        names.declare(t, names.WAF_LOG_BUCKET_ARN, "Bucket of the web ACLs' request logs (foundation.yaml)")
    )
    t.add_condition(IN_US_EAST_1, Equals(Ref("AWS::Region"), "us-east-1"))
    t.add_condition(HAS_EDGE_WEB_ACL_ARN, Not(Equals(edge_acl, "")))
    t.add_condition(CREATES_EDGE_WEB_ACL, And(Condition(IN_US_EAST_1), Not(Condition(HAS_EDGE_WEB_ACL_ARN))))
    alb_certificate = Ref(names.declare(t, names.CERTIFICATE_ARN))
    api_domain = Ref(names.declare(t, names.API_DOMAIN_NAME))
    load_balancer = Ref(
        names.declare(t, names.LOAD_BALANCER_DNS_NAME, "DNS name of the ALB (the API origin in dev)")
    )
    t.add_condition(ALB_HAS_CERTIFICATE, Not(Equals(alb_certificate, "")))
    # CloudFront checks the ALB's certificate against the origin's name; *.elb.amazonaws.com
    # never matches it, so an HTTPS origin needs the name the certificate is for.
    t.add_rule(
        API_DOMAIN_RULE,
        {
            "RuleCondition": Not(Equals(alb_certificate, "")),
            "Assertions": [
                {
                    "Assert": Not(Equals(api_domain, "")),
                    "AssertDescription": (
                        "CertificateArn needs ApiDomainName: the name on the ALB's certificate, "
                        "which CloudFront's /api/* origin connects to over HTTPS"
                    ),
                }
            ],
        },
    )
    return Inputs(
        domain=domain,
        certificate=certificate,
        data_key=key,
        access_log_bucket=access_logs,
        edge_web_acl=edge_acl,
        waf_log_bucket=waf_logs,
        api_domain=api_domain,
        load_balancer=load_balancer,
    )


def add_bucket(t: Template, p: Inputs) -> Bucket:
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
                AbortIncompleteMultipartUpload=AbortIncompleteMultipartUpload(DaysAfterInitiation=7),
            )
        ],
        tags=tags.standard(),
        sse_algorithm=ENCRYPTION,
        bucket_key=True,  # one data key per bucket and period: far fewer KMS requests
        kms_key=p.data_key,
    )
    buckets.log_access(bucket, p.access_log_bucket, "frontend/")
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
            iam.list_by_cloudfront(
                arns.bucket(names.FRONTEND_BUCKET), arns.cloudfront_distribution(DISTRIBUTION)
            ),
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
    logical_id: str, *, name: str, comment: str, cache_control: str | None, override: bool
) -> ResponseHeadersPolicy:
    custom = (
        {
            "CustomHeadersConfig": CustomHeadersConfig(
                Items=[CustomHeader(Header="Cache-Control", Value=cache_control, Override=override)]
            )
        }
        if cache_control
        else {}
    )
    return ResponseHeadersPolicy(
        logical_id,
        ResponseHeadersPolicyConfig=ResponseHeadersPolicyConfig(
            Name=Sub(name),
            Comment=comment,
            SecurityHeadersConfig=SecurityHeadersConfig(
                StrictTransportSecurity=StrictTransportSecurity(
                    # Two years: the HSTS preload list's minimum is one.
                    AccessControlMaxAgeSec=2 * ONE_YEAR_SECONDS,
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
            **custom,
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
            # CloudFront rejects gzip/brotli on a policy whose three TTLs are all 0 ("caching
            # disabled"), and compression needs them: MaxTTL 1 s keeps caching nominally on.
            # DefaultTTL 0 means an object without Cache-Control is never cached at the edge;
            # one with it, at most 1 s.
            max_ttl=1,
        )
    )
    static = t.add_resource(
        _cache_policy(
            STATIC_CACHE_POLICY,
            name=STATIC_CACHE_POLICY_NAME,
            comment="Hashed static assets (JS, CSS, images, fonts): cached one year",
            # MinTTL 0: an object's own shorter Cache-Control (e.g. an unhashed file the uploader
            # marks no-cache) wins; a MinTTL > 0 would cache it even against no-store.
            min_ttl=0,
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
    # The API: security headers only; its caching headers are the backend's.
    api_headers = t.add_resource(
        _headers_policy(
            API_HEADERS_POLICY,
            name=API_HEADERS_NAME,
            comment="Security headers for the API",
            cache_control=None,
            override=False,
        )
    )
    return CachePolicies(
        no_cache=no_cache,
        static=static,
        no_cache_headers=no_cache_headers,
        static_headers=static_headers,
        api_headers=api_headers,
    )


def add_spa_routing(t: Template) -> Function:
    return t.add_resource(
        Function(
            SPA_ROUTING_FUNCTION,
            Name=Sub(SPA_ROUTING_FUNCTION_NAME),
            AutoPublish=True,
            FunctionCode=SPA_ROUTING_CODE,
            FunctionConfig=FunctionConfig(
                Comment="SPA routing: application routes get /index.html", Runtime="cloudfront-js-2.0"
            ),
        )
    )


def api_origin(p: Inputs) -> Origin:
    """The ALB: HTTPS to the certificate's name when it has one, else HTTP (dev)."""
    return Origin(
        Id=API_ORIGIN_ID,
        DomainName=If(ALB_HAS_CERTIFICATE, p.api_domain, p.load_balancer),
        CustomOriginConfig=CustomOriginConfig(
            OriginProtocolPolicy=If(ALB_HAS_CERTIFICATE, "https-only", "http-only"),
            HTTPPort=names.HTTP_PORT,
            HTTPSPort=names.HTTPS_PORT,
            OriginSSLProtocols=["TLSv1.2"],
            OriginReadTimeout=60,  # seconds, the ALB's idle timeout (and CloudFront's default max)
        ),
    )


def api_behaviour(headers: ResponseHeadersPolicy) -> CacheBehavior:
    """``/api/*`` to the ALB: every method, nothing cached, the viewer's headers (but Host),
    cookies and query strings forwarded; HTTPS only (a redirect would drop a POST's body)."""
    return CacheBehavior(
        PathPattern=f"{names.API_PATH_PREFIX}/*",
        TargetOriginId=API_ORIGIN_ID,
        ViewerProtocolPolicy="https-only",
        AllowedMethods=["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
        CachedMethods=VIEWER_METHODS,
        # AWS managed policies (CloudFront developer guide, "Use managed cache policies" and "Use
        # managed origin request policies"): the ids are the same in every account.
        CachePolicyId="4135ea2d-6df8-44a3-9df3-4b5a84be39ad",  # CachingDisabled
        OriginRequestPolicyId="b689b0a8-53d0-40ab-baf2-68738e2966ac",  # AllViewerExceptHostHeader
        ResponseHeadersPolicyId=Ref(headers),
        Compress=False,  # the CachingDisabled policy turns edge compression off anyway
    )


def add_distribution(
    t: Template, p: Inputs, *, bucket: Bucket, oac: OriginAccessControl, cp: CachePolicies
) -> Distribution:
    spa = add_spa_routing(t)
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
            SslSupportMethod="sni-only",
            MinimumProtocolVersion="TLSv1.2_2021",  # only possible with a custom domain and certificate
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
            HttpVersion="http2and3",
            IPV6Enabled=True,
            WebACLId=If(
                HAS_EDGE_WEB_ACL_ARN,
                p.edge_web_acl,
                If(CREATES_EDGE_WEB_ACL, GetAtt(EDGE_WEB_ACL, "Arn"), Ref("AWS::NoValue")),
            ),
            Aliases=If(HAS_CUSTOM_DOMAIN, [p.domain], Ref("AWS::NoValue")),
            ViewerCertificate=certificate,
            Origins=[
                Origin(
                    Id=ORIGIN_ID,
                    DomainName=GetAtt(bucket, "RegionalDomainName"),
                    OriginAccessControlId=GetAtt(oac, "Id"),
                    # OAC, not OAI: the OAI field must be present and empty.
                    S3OriginConfig=S3OriginConfig(OriginAccessIdentity=""),
                ),
                api_origin(p),
            ],
            DefaultCacheBehavior=DefaultCacheBehavior(
                CachePolicyId=Ref(cp.no_cache),
                ResponseHeadersPolicyId=Ref(cp.no_cache_headers),
                FunctionAssociations=[
                    FunctionAssociation(EventType="viewer-request", FunctionARN=GetAtt(spa, "FunctionARN"))
                ],
                **common,
            ),
            # The API first: CloudFront takes the first pattern that matches.
            CacheBehaviors=[api_behaviour(cp.api_headers), *static_behaviours],
        ),
        Tags=tags.standard(),
    )
    suppress.skip(
        distribution,
        (
            "CKV_AWS_86",
            "Access logs go through CloudFront standard logging v2 (AWS::Logs::Delivery*, this stack) into "
            "the access-log bucket; the check reads only the legacy Logging property, which needs ACLs",
        ),
        outside=(
            (
                "CKV_AWS_174",
                "No custom domain (dev, staging): the *.cloudfront.net certificate cannot enforce TLS 1.2; "
                "prod always has its domain and TLSv1.2_2021",
            ),
        ),
        production_condition=HAS_CUSTOM_DOMAIN,
    )
    return t.add_resource(distribution)


def add_edge_web_acl(t: Template, p: Inputs) -> None:
    """The distribution's AWS WAF web ACL, created here only in us-east-1 and only when no
    existing ACL's ARN is given (CloudFrontWebAclArn); its request logs go to the WAF-log bucket."""
    acl = t.add_resource(
        waf.web_acl(
            EDGE_WEB_ACL,
            scope=waf.CLOUDFRONT,
            name_pattern=EDGE_WEB_ACL_NAME,
            description="KareMatch CloudFront: AWS managed rule groups and a per-IP rate limit",
            Condition=CREATES_EDGE_WEB_ACL,
        )
    )
    t.add_resource(
        waf.request_logs(
            EDGE_WEB_ACL_LOGGING,
            acl=GetAtt(acl, "Arn"),
            destination_arn=p.waf_log_bucket,
            Condition=CREATES_EDGE_WEB_ACL,
        )
    )


def add_access_logs(t: Template, p: Inputs, distribution: Distribution) -> None:
    """CloudFront standard logging v2 into the access-log bucket (under cloudfront/); CloudWatch
    Logs delivery for CloudFront works only in us-east-1."""
    source = t.add_resource(
        DeliverySource(
            LOG_SOURCE,
            Condition=IN_US_EAST_1,
            Name=Sub(LOG_DELIVERY_NAME),
            LogType="ACCESS_LOGS",
            ResourceArn=arns.cloudfront_distribution(distribution.title),
        )
    )
    destination = t.add_resource(
        DeliveryDestination(
            LOG_DESTINATION,
            Condition=IN_US_EAST_1,
            Name=Sub(LOG_DELIVERY_NAME),
            DestinationResourceArn=Sub(
                f"arn:${{AWS::Partition}}:s3:::${{{names.ACCESS_LOG_BUCKET_NAME}}}/cloudfront"
            ),
            Tags=tags.standard(),
        )
    )
    t.add_resource(
        Delivery(
            LOG_DELIVERY,
            Condition=IN_US_EAST_1,
            DeliverySourceName=Ref(source),
            DeliveryDestinationArn=GetAtt(destination, "Arn"),
            Tags=tags.standard(),
        )
    )


def build() -> Template:
    t = render.new_template(
        "KareMatch content delivery: private frontend bucket and its CloudFront distribution"
    )
    p = declare_inputs(t)
    bucket = add_bucket(t, p)
    oac = add_origin_access_control(t)
    cp = add_policies(t)
    add_edge_web_acl(t, p)
    distribution = add_distribution(t, p, bucket=bucket, oac=oac, cp=cp)
    add_access_logs(t, p, distribution)
    add_bucket_policy(t, bucket)
    render.add_outputs(
        t,
        {
            names.FRONTEND_BUCKET_NAME: Ref(bucket),
            names.DISTRIBUTION_DOMAIN_NAME: GetAtt(distribution, "DomainName"),
            names.DISTRIBUTION_ID: Ref(distribution),
            # The SPA's API base URL: its own origin, so no mixed content and no CORS.
            names.API_URL: Sub(
                f"https://${{Domain}}{names.API_PATH_PREFIX}",
                Domain=If(HAS_CUSTOM_DOMAIN, p.domain, GetAtt(distribution, "DomainName")),
            ),
        },
    )
    return t
