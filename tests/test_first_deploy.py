"""The first deploy into an empty account, as the templates make it safe: no image yet means
0 tasks, no autoscaling and no paging; deletion protection can be held off so a failed first
create can roll back; outside dev nothing is ever served over plain HTTP."""

from __future__ import annotations

import pytest

from karematch_cfn import config, names
from tests import helpers

ARN = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
AVAILABILITY_ALARMS = ("LoadBalancerHealthyHostsAlarm", "ServiceRunningTasksAlarm")


def _alarms(t):
    return helpers.resources_of_type(t, "AWS::CloudWatch::Alarm")


def test_availability_alarms_do_not_page_before_the_first_image():
    before = _alarms(helpers.for_env("monitoring.yaml", "prod", ImageTag=""))
    after = _alarms(helpers.for_env("monitoring.yaml", "prod", ImageTag="3f2a9c1"))
    for alarm in AVAILABILITY_ALARMS:
        assert helpers.props(before[alarm])["ActionsEnabled"] is False
        assert helpers.props(after[alarm])["ActionsEnabled"] is True
    # every other alarm pages from the start
    for name, alarm in before.items():
        if name not in AVAILABILITY_ALARMS:
            assert helpers.props(alarm).get("ActionsEnabled", True) is True, name


def test_root_feeds_the_image_tag_to_the_monitoring_stack():
    params = helpers.template("karematch.yaml")["Resources"]["MonitoringStack"]["Properties"]["Parameters"]
    assert params[names.IMAGE_TAG] == {"Ref": names.IMAGE_TAG}


@pytest.mark.parametrize(
    "filename,resource,prop",
    [
        ("database.yaml", "DatabaseInstance", "DeletionProtection"),
        ("loadbalancer.yaml", "LoadBalancer", "LoadBalancerAttributes"),
    ],
)
def test_deletion_protection_is_prod_only_and_can_be_held_off_for_a_first_create(filename, resource, prop):
    def protected(env, **overrides):
        res = helpers.for_env(filename, env, **overrides)["Resources"][resource]
        value = helpers.props(res)[prop]
        if prop == "LoadBalancerAttributes":
            value = {a["Key"]: a["Value"] for a in value}["deletion_protection.enabled"] == "true"
        return value

    assert protected("prod") is True  # the default: every deploy after the first
    assert protected("prod", EnableDeletionProtection="false") is False  # the first create
    assert protected("dev") is False and protected("staging") is False
    assert protected("dev", EnableDeletionProtection="true") is False


@pytest.mark.parametrize("env,ok_without_certificate", [("dev", True), ("staging", False), ("prod", False)])
def test_only_dev_may_run_without_a_certificate(env, ok_without_certificate):
    root = helpers.template("karematch.yaml")
    cfg = config.load(helpers.REPO / "parameters" / f"{env}.json", root)
    if ok_without_certificate:
        config.check_rules(cfg, root)
    else:
        with pytest.raises(config.ConfigError, match="need CertificateArn"):
            config.check_rules(cfg, root)
    # with a certificate, the name on it (CloudFront's HTTPS origin for /api/*)
    with_certificate = {names.CERTIFICATE_ARN: ARN, names.API_DOMAIN_NAME: "api.karematch.example"}
    config.check_rules(config.with_overrides(cfg, with_certificate, root), root)


def test_a_custom_frontend_domain_needs_its_certificate_before_anything_is_created():
    root = helpers.template("karematch.yaml")
    cfg = config.load(helpers.REPO / "parameters" / "dev.json", root)
    half = config.with_overrides(cfg, {names.FRONTEND_DOMAIN_NAME: "app.example.org"}, root)
    with pytest.raises(config.ConfigError):
        config.check_rules(half, root)
