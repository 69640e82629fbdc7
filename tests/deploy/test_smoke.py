"""``smoke`` against a local HTTP server on 127.0.0.1 (standing in for the ALB and CloudFront),
with the stack's Outputs on the moto server; and the smoke test at the end of a deploy."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from karematch_cfn import cli
from karematch_cfn.deploy import deployer
from karematch_cfn.deploy.console import Console
from karematch_cfn.stacks.frontend import NO_CACHE_CONTROL, STATIC_CACHE_CONTROL

from . import shapes as s
from .conftest import Result, tree_args
from .test_stubbed_deploy import NOTIFY_CS, Flow, executes, notify_change, notify_nested

pytestmark = pytest.mark.deploy


class Site:
    """/health answers ``health`` (popping a list of statuses, the last one sticks); every other
    path is the SPA rewrite: index.html, with ``asset_cache`` on paths under /assets/."""

    def __init__(self) -> None:
        self.health = [200]
        self.asset_cache = NO_CACHE_CONTROL
        self.paths: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                site.paths.append(self.path)
                if self.path == "/health":
                    status = site.health.pop(0) if len(site.health) > 1 else site.health[0]
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                cache = site.asset_cache if self.path.startswith("/assets/") else NO_CACHE_CONTROL
                self.send_header("Cache-Control", cache)
                self.end_headers()
                self.wfile.write(b"<html></html>")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def site():
    server = Site()
    yield server
    server.server.shutdown()
    server.server.server_close()


TEMPLATE = {
    "Parameters": {
        p: {"Type": "String"} for p in ("EnvironmentName", "ImageTag", "CertificateArn", "Alb", "Cdn")
    },
    "Resources": {"Site": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "site-dev-frontend"}}},
    "Outputs": {
        "LoadBalancerDnsName": {"Value": {"Ref": "Alb"}},
        "DistributionDomainName": {"Value": {"Ref": "Cdn"}},
        "FrontendBucketName": {"Value": {"Ref": "Site"}},
    },
}


def stack(moto, site: Site, *, image: str = "v1", published: bool = True) -> None:
    params = {"EnvironmentName": "dev", "ImageTag": image, "CertificateArn": "", "Alb": site.url, "Cdn": "x"}
    moto.client("cloudformation").create_stack(
        StackName="karematch-dev",
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    if published:
        moto.client("s3").put_object(Bucket="site-dev-frontend", Key="index.html", Body=b"<html></html>")


def smoke(site: Site, *extra: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    hooks = deployer.Hooks(sleep=lambda _s: None, console=Console(out, err))
    argv = ["smoke", "--env", "dev", "--frontend-url", f"http://{site.url}", *extra]
    code = cli.run(cli.build_parser().parse_args(argv), hooks)
    return Result(code, out.getvalue(), err.getvalue())


def test_a_healthy_environment_passes_every_check_one_line_each(moto, site):
    stack(moto, site)

    r = smoke(site)

    assert r.code == 0, r.text
    lines = [line for line in r.out.splitlines() if line.startswith("smoke:")]
    assert [line.split()[1] for line in lines] == ["ok", "ok", "ok"]
    assert f"http://{site.url}/health" in lines[0]  # http: the stack has no CertificateArn
    assert site.paths[0] == "/health" and site.paths[1] == "/karematch-smoke/deep/route"
    assert site.paths[2].startswith("/assets/karematch-smoke-missing-")


def test_a_failing_check_is_retried_until_it_passes(moto, site):
    stack(moto, site)
    site.health = [503, 502, 200]

    r = smoke(site)

    assert r.code == 0, r.text
    assert site.paths.count("/health") == 3


def test_html_cached_a_year_for_a_missing_asset_fails_with_exit_10(moto, site):
    stack(moto, site)
    site.asset_cache = STATIC_CACHE_CONTROL

    r = smoke(site, "--deadline", "0.1")

    assert r.code == 10, r.text
    assert "smoke: FAIL  missing hashed asset" in r.out
    assert r.err.startswith("error: smoke test failed: missing hashed asset: HTML with Cache-Control")


def test_an_api_that_stays_down_fails_after_the_deadline(moto, site):
    stack(moto, site)
    site.health = [500]

    r = smoke(site, "--deadline", "0.1")

    assert r.code == 10, r.text
    assert "smoke: FAIL  API /health" in r.out and "HTTP 500" in r.out


def test_checks_that_cannot_apply_yet_are_skipped_and_say_why(moto, site):
    stack(moto, site, image="", published=False)

    r = smoke(site)

    assert r.code == 0, r.text
    assert "smoke: skip  API /health: no image deployed yet" in r.out
    assert "smoke: skip  SPA deep route: the frontend bucket site-dev-frontend is empty" in r.out
    assert site.paths == []


def test_a_missing_stack_is_exit_7_and_a_bad_url_exit_2(moto, site):
    assert smoke(site).code == 7
    assert cli.main(["smoke", "--env", "dev", "--api-url", "ftp://x"]) == 2


def test_deploy_runs_the_smoke_test_unless_no_smoke(moto, karematch):
    r = karematch("deploy", *tree_args("tree-v1"), "--yes")
    assert r.code == 0, r.text
    assert "smoke: skip  API /health: no image deployed yet" in r.out

    r = karematch("deploy", *tree_args("tree-v1"), "--yes", "--image-tag", "v2", "--no-smoke")
    assert r.code == 0, r.text
    assert "smoke:" not in r.out


def test_a_deploy_whose_smoke_test_fails_is_exit_10_and_says_how_to_go_back(moto, site):
    flow = Flow(moto)
    live = {"EnvironmentName": "dev", "ImageTag": "v1", "DesiredCount": "2", "NotifyToken": ""}
    flow.add("describe_stacks", s.stack("UPDATE_COMPLETE", params=live), StackName=s.STACK)
    # one read of the live tree for the task count (no ECS service: the previous DesiredCount is
    # kept) and the rollback triggers (no service-health alarms in this tree: not armed)
    flow.add(
        "list_stack_resources",
        s.resources(("AuditLogGroup", "AWS::Logs::LogGroup", "audit")),
        StackName=s.ROOT_ID,
    )
    flow.created().described(notify_change()).described(notify_nested(), NOTIFY_CS)
    executes(flow, [], "UPDATE_COMPLETE")
    after = s.stack(
        "UPDATE_COMPLETE", params={**live, "ImageTag": "v2"}, outputs={"LoadBalancerDnsName": site.url}
    )
    flow.add("describe_stacks", after, StackName=s.STACK)
    site.health = [500]

    r = flow.run("--yes", "--image-tag", "v2", "--smoke-deadline", "0.1")

    assert r.code == 10, r.text
    assert "smoke: FAIL  API /health" in r.out
    assert "karematch-dev is deployed; the smoke test ran after it" in r.err
    assert "karematch-cfn deploy --env dev --image-tag v1" in r.err
    assert "Rollback triggers: not armed: the stack has no service-health alarms" in r.out
    rollback = flow.requests["CreateChangeSet"][0]["RollbackConfiguration"]
    assert rollback == {"RollbackTriggers": [], "MonitoringTimeInMinutes": 0}  # stated, not inherited
