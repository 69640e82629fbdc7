"""``smoke``: does the environment answer? Three checks, each retried until a deadline.

* API: ``GET /health`` through the load balancer answers 200 (HTTPS when the stack has a
  CertificateArn);
* SPA: a deep client-side route through CloudFront answers 200 ``text/html`` (the 403/404 rewrite
  to ``/index.html``);
* a missing hashed asset does not come back as HTML with a one-year cache header (a cached
  ``index.html`` under an asset's name would break every browser that fetched it for a year).

Checks that cannot apply yet are skipped and say why: no image deployed (the service runs 0
tasks), an empty frontend bucket, an Output the stack does not have.
"""

from __future__ import annotations

import http.client
import secrets
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karematch_cfn import names
from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import SmokeFailed
from karematch_cfn.stacks.frontend import STATIC_ASSET_TTL

DEADLINE_SECONDS = 120.0  # a deploy ends when ECS reports the service stable: tasks already pass
RETRY_SECONDS = 5.0
REQUEST_TIMEOUT = 10.0
DEEP_ROUTE = "/karematch-smoke/deep/route"  # no file has this path: the SPA rewrite answers it


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def fetch(url: str) -> Response:
    """GET ``url`` (no body kept). The load balancer's certificate names the app's domain, not
    its DNS name, so HTTPS to the ALB checks encryption but not the host name."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"User-Agent": "karematch-cfn-smoke"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT, context=context) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()})
    except urllib.error.HTTPError as exc:
        return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()})


@dataclass(frozen=True)
class Check:
    name: str
    url: str | None  # None: skipped
    judge: Callable[[Response], str | None]  # why it failed, or None
    skip: str = ""


def api_ok(r: Response) -> str | None:
    return None if r.status == 200 else f"HTTP {r.status}"


def spa_ok(r: Response) -> str | None:
    if r.status != 200:
        return f"HTTP {r.status}"
    if not r.header("content-type").startswith("text/html"):
        return f"Content-Type {r.header('content-type') or 'missing'}, not text/html"
    return None


def missing_asset_ok(r: Response) -> str | None:
    cached_a_year = f"max-age={STATIC_ASSET_TTL}" in r.header("cache-control").replace(" ", "")
    if r.header("content-type").startswith("text/html") and cached_a_year:
        return (
            f"HTML with Cache-Control {r.header('cache-control')!r}: a missing asset would be cached a year"
        )
    return None


def checks(
    aws: awsmod.Aws,
    stack: dict[str, Any],
    *,
    api_url: str | None = None,
    frontend_url: str | None = None,
) -> list[Check]:
    """The checks for this stack (its Outputs and parameters), skipped where they cannot apply."""
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    out: list[Check] = []

    alb = outputs.get(names.LOAD_BALANCER_DNS_NAME)
    scheme = "https" if params.get(names.CERTIFICATE_ARN) else "http"
    base = api_url or (f"{scheme}://{alb}" if alb else None)
    name = f"API {names.HEALTH_CHECK_PATH}"
    if names.IMAGE_TAG in params and not params[names.IMAGE_TAG]:
        out.append(Check(name, None, api_ok, "no image deployed yet (the service runs 0 tasks)"))
    elif base is None:
        out.append(Check(name, None, api_ok, f"the stack has no {names.LOAD_BALANCER_DNS_NAME} Output"))
    else:
        out.append(Check(name, base.rstrip("/") + names.HEALTH_CHECK_PATH, api_ok))

    cdn = outputs.get(names.DISTRIBUTION_DOMAIN_NAME)
    front = frontend_url or (f"https://{cdn}" if cdn else None)
    bucket = outputs.get(names.FRONTEND_BUCKET_NAME)
    skip = ""
    if front is None:
        skip = f"the stack has no {names.DISTRIBUTION_DOMAIN_NAME} Output"
    elif bucket and _empty(aws, bucket):
        skip = f"the frontend bucket {bucket} is empty (publish-frontend first)"
    spa = "SPA deep route"
    asset = "missing hashed asset"
    missing = f"/assets/karematch-smoke-missing-{secrets.token_hex(6)}.js"
    if skip:
        out += [Check(spa, None, spa_ok, skip), Check(asset, None, missing_asset_ok, skip)]
    else:
        root = front.rstrip("/")  # type: ignore[union-attr]
        out += [Check(spa, root + DEEP_ROUTE, spa_ok), Check(asset, root + missing, missing_asset_ok)]
    return out


def _empty(aws: awsmod.Aws, bucket: str) -> bool:
    page = awsmod.call(
        f"looking into s3://{bucket}", aws.s3.list_objects_v2, Bucket=bucket, Prefix="index.html", MaxKeys=1
    )
    return not page.get("KeyCount")


def run(
    found: list[Check],
    console: Console,
    *,
    deadline: float = DEADLINE_SECONDS,
    get: Callable[[str], Response] = fetch,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Each check until it passes or the deadline; one line per check; raise on any failure."""
    end = clock() + deadline
    failed: list[str] = []
    for check in found:
        if check.url is None:
            console.say(f"smoke: skip  {check.name}: {check.skip}")
            continue
        tries = 0
        while True:
            tries += 1
            try:
                problem = check.judge(get(check.url))
            except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timeout, DNS, TLS
                problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
            if problem is None:
                console.say(f"smoke: ok    {check.name}: {check.url}")
                break
            if clock() + RETRY_SECONDS > end:
                console.say(f"smoke: FAIL  {check.name}: {check.url}: {problem} (after {tries} tries)")
                failed.append(f"{check.name}: {problem}")
                break
            sleep(RETRY_SECONDS)
    if failed:
        raise SmokeFailed(f"smoke test failed: {'; '.join(failed)}")
