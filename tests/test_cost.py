"""The monthly cost estimate (karematch_cfn/cost.py, `cost --env ENV`, docs/cost.md): arithmetic
against the price file for every environment, counts from the resolved templates and the spec,
and no resource type left uncounted."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from karematch_cfn import cli, cost, gendocs, names, resolved
from tests import helpers, spec

REPO = Path(__file__).resolve().parent.parent
PRICES = yaml.safe_load((REPO / "karematch_cfn/pricing/prices.yaml").read_text())
USAGE = yaml.safe_load((REPO / "karematch_cfn/pricing/usage.yaml").read_text())
HOURS = PRICES["hours_per_month"]
ENVS = names.ENVIRONMENTS


@pytest.fixture(scope="module")
def parsed():
    return resolved.parse(helpers.rendered_text())


@pytest.fixture(scope="module")
def trees(parsed):
    return {env: resolved.resolve_tree(parsed, env) for env in ENVS}


@pytest.fixture(scope="module")
def estimates(trees):
    return {env: cost.estimate(trees[env], env) for env in ENVS}


def _price(key: str) -> float:
    value = PRICES["prices"]
    for part in key.split(".", 1) if key.startswith("rds_postgresql_hour.") else [key]:
        value = value[part]
    return float(value)


def _count(tree, rtype: str) -> int:
    return sum(1 for t in tree.values() for r in t.get("Resources", {}).values() if r["Type"] == rtype)


def _item(items, starts: str):
    found = [i for i in items if i.item.startswith(starts)]
    assert len(found) == 1, (starts, [i.item for i in items])
    return found[0]


def test_the_price_file_names_its_region_date_and_source():
    assert PRICES["region"] == "us-east-1"
    dt.date.fromisoformat(PRICES["read_on"])
    assert "typed by hand" in PRICES["source"]
    assert HOURS == 730  # AWS's monthly hours (8,760 / 12)
    for name, url in PRICES["pages"].items():
        assert url.startswith("https://aws.amazon.com/"), name


@pytest.mark.parametrize("env", ENVS)
def test_every_item_is_quantity_times_the_price_file_and_the_total_their_sum(estimates, env):
    items = estimates[env]
    assert items
    for i in items:
        assert i.unit_usd == _price(i.price), i.item
        assert i.monthly_usd == round(i.quantity * _price(i.price), 2), i.item
    assert cost.total(items) == round(sum(i.monthly_usd for i in items), 2)


@pytest.mark.parametrize("env", ENVS)
def test_counted_items_follow_the_resolved_templates(trees, estimates, env):
    tree, items = trees[env], estimates[env]
    nats = _count(tree, "AWS::EC2::NatGateway")
    assert _item(items, "NAT gateway hours").quantity == nats * HOURS
    assert _item(items, "Public IPv4 addresses of the NAT gateways").quantity == nats * HOURS
    assert _item(items, "Load balancer hours").quantity == HOURS
    # Internet-facing ALB: one public address in each of the spec's two public subnets (AZs).
    azs = len(spec.find_all(r"\*\*Public Subnets\*\*: `([\d./]+)`, `([\d./]+)`")[0])
    assert _item(items, "Public IPv4 addresses of the load balancer").quantity == azs * HOURS
    assert _item(items, "KMS customer-managed keys").quantity == _count(tree, "AWS::KMS::Key")
    assert _item(items, "Secrets Manager secrets").quantity == _count(tree, "AWS::SecretsManager::Secret")
    assert _item(items, "CloudWatch alarms").quantity >= _count(tree, "AWS::CloudWatch::Alarm")
    assert _item(items, "CloudWatch dashboards").quantity == _count(tree, "AWS::CloudWatch::Dashboard")
    assert _item(items, "Container Insights metrics").kind == cost.USAGE
    trail_items = [i for i in items if i.item.startswith("CloudTrail trail")]
    assert len(trail_items) == _count(tree, "AWS::CloudTrail::Trail")


@pytest.mark.parametrize("env", ENVS)
def test_database_hours_and_storage_count_twice_for_multi_az(trees, estimates, env):
    assert "Multi-AZ: Enabled in production" in spec.text()
    copies = 2 if env == names.PRODUCTION else 1
    (db,) = helpers.resources_of_type(trees[env]["database.yaml"], "AWS::RDS::DBInstance").values()
    instance_class = helpers.env_values(env)[names.DATABASE_INSTANCE_CLASS]
    hours = _item(estimates[env], "Database instance hours")
    assert instance_class in hours.item
    assert hours.quantity == copies * HOURS
    assert hours.unit_usd == PRICES["prices"]["rds_postgresql_hour"][instance_class]
    assert _item(estimates[env], "Database gp3 storage").quantity == copies * float(
        db["Properties"]["AllocatedStorage"]
    )


@pytest.mark.parametrize("env", ENVS)
def test_fargate_hours_are_the_spec_task_size_at_the_desired_count(estimates, env):
    desired = int(helpers.env_values(env)[names.DESIRED_COUNT])
    vcpu = float(spec.find(r"CPU: \d+ units \(([\d.]+) vCPU\)", "2. Compute"))
    memory_gb = float(spec.find(r"Memory: \d+ MB \(([\d.]+) GB\)", "2. Compute"))
    assert _item(estimates[env], "Fargate vCPU").quantity == desired * vcpu * HOURS
    assert _item(estimates[env], "Fargate memory").quantity == desired * memory_gb * HOURS


@pytest.mark.parametrize("env", ENVS)
def test_usage_items_state_their_assumption(estimates, env):
    usage_items = [i for i in estimates[env] if i.kind == cost.USAGE]
    assert {"NAT gateway data processed", "CloudWatch Logs ingestion", "CloudFront HTTPS requests"} <= {
        i.item for i in usage_items
    }
    for i in usage_items:
        assert i.note.startswith("assumes "), i.item


def test_every_usage_assumption_has_a_value_for_each_environment():
    for key, entry in USAGE.items():
        for env in ENVS:
            assert float(entry[env]) >= 0, (key, env)
        assert entry["unit"] and entry["why"], key


def test_every_resource_type_of_every_environment_is_accounted_for(trees):
    for env, tree in trees.items():
        assert cost.uncovered(tree, PRICES) == [], env


def test_a_resource_type_without_a_price_entry_stops_the_estimate(trees):
    tree = copy.deepcopy(trees["dev"])
    tree["network.yaml"]["Resources"]["Mystery"] = {"Type": "AWS::Mystery::Widget", "Properties": {}}
    assert cost.uncovered(tree, PRICES) == ["AWS::Mystery::Widget"]
    with pytest.raises(ValueError, match="AWS::Mystery::Widget have no entry under resource_types"):
        cost.estimate(tree, "dev")


@pytest.mark.parametrize(
    "rtype",
    [
        "AWS::KMS::Key",
        "AWS::WAFv2::WebACL",
        "AWS::WAFv2::WebACLAssociation",
        "AWS::Backup::BackupVault",
        "AWS::Backup::BackupPlan",
        "AWS::Backup::BackupSelection",
        "AWS::Logs::DeliverySource",
        "AWS::Logs::DeliveryDestination",
        "AWS::Logs::Delivery",
        "AWS::Lambda::Function",
        "AWS::CloudFormation::CustomResource",
        "Custom::DefaultSecurityGroup",
        "AWS::RDS::DBParameterGroup",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::Policy",
        "AWS::CloudFront::Function",
    ],
)
def test_resource_types_of_the_hardening_work_have_entries(rtype):
    assert cost.coverage(rtype, PRICES) in cost.COVERAGE


def test_every_allowed_database_class_has_a_price():
    allowed = names.SHARED_PARAMETERS[names.DATABASE_INSTANCE_CLASS].props["AllowedValues"]
    for instance_class in allowed:
        assert PRICES["prices"]["rds_postgresql_hour"][instance_class] > 0


def test_waf_and_backup_are_counted_when_present(trees):
    tree = copy.deepcopy(trees["prod"])
    rules = [{"Name": f"Rule{n}"} for n in range(3)]
    tree["frontend.yaml"]["Resources"]["WebAcl"] = {
        "Type": "AWS::WAFv2::WebACL",
        "Properties": {"Rules": rules},
    }
    tree["database.yaml"]["Resources"]["Plan"] = {"Type": "AWS::Backup::BackupPlan", "Properties": {}}
    items = cost.estimate(tree, "prod")
    assert _item(items, "WAF web ACLs").monthly_usd == round(_price("waf_web_acl_month"), 2)
    assert _item(items, "WAF rules").monthly_usd == round(3 * _price("waf_rule_month"), 2)
    assert _item(items, "WAF requests").kind == cost.USAGE
    (db,) = helpers.resources_of_type(tree["database.yaml"], "AWS::RDS::DBInstance").values()
    backup = _item(items, "Backup storage")
    storage = float(db["Properties"]["AllocatedStorage"]) * USAGE["backup_storage_ratio"]["prod"]
    assert backup.quantity == storage
    assert backup.monthly_usd == round(storage * _price("backup_warm_gb_month"), 2)
    without = cost.estimate(trees["prod"], "prod")
    assert not [i for i in without if i.item.startswith(("WAF", "Backup storage"))]


def test_cost_command_prints_json_with_the_total_and_items(capsys, estimates):
    assert cli.main(["cost", "--env", "prod", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"monthly_usd", "items"}
    assert out["monthly_usd"] == cost.total(estimates["prod"])
    assert out["monthly_usd"] == round(sum(i["monthly_usd"] for i in out["items"]), 2)
    assert [i["item"] for i in out["items"]] == [i.item for i in estimates["prod"]]


def test_cost_command_prints_a_table_ending_in_the_total(capsys, estimates):
    assert cli.main(["cost", "--env", "dev"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "us-east-1" in lines[0]
    (total_line,) = [line for line in lines if line.startswith("total")]
    assert total_line.split()[-1] == f"{cost.total(estimates['dev']):.2f}"


def test_cost_command_refuses_an_unknown_environment_in_one_line(capsys):
    assert cli.main(["cost", "--env", "qa"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["error: --env qa: unknown environment; allowed: dev, staging, prod"]


def test_the_cost_page_is_registered_fresh_and_shows_each_total(parsed, estimates):
    page = dict(gendocs.GENERATED)["docs/cost.md"]
    assert page is cost.markdown
    docs = gendocs.render_docs(parsed)
    assert gendocs.diff({"docs/cost.md": docs["docs/cost.md"]}, REPO) == []
    for env in ENVS:
        assert f"| {env} |" in docs["docs/cost.md"]
        assert f"**{cost.total(estimates[env]):.2f}**" in docs["docs/cost.md"]


def test_cost_command_fails_in_one_line_when_a_type_has_no_price_entry(tmp_path, monkeypatch, capsys):
    prices = copy.deepcopy(PRICES)
    del prices["resource_types"]["AWS::EC2::NatGateway"]
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(prices))
    monkeypatch.setattr(cost, "PRICES_FILE", path)
    assert cli.main(["cost", "--env", "dev"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert "AWS::EC2::NatGateway" in line and line.startswith("error: ")
