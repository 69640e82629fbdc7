"""The parameter-file loader and the root's Rules, on small templates."""

from __future__ import annotations

import json

import pytest

from karematch_cfn import config

ROOT = {
    "Parameters": {
        "EnvironmentName": {"Type": "String", "AllowedValues": ["dev", "staging", "prod"]},
        "LogRetentionDays": {"Type": "Number", "Default": "30", "AllowedValues": ["30", "2192"]},
        "DesiredCount": {"Type": "Number", "Default": "2", "MinValue": "0", "MaxValue": "4"},
        "CertificateArn": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": "^$|^arn:.*$",
            "ConstraintDescription": "empty, or an ACM certificate ARN",
        },
    },
    "Rules": {
        "ProductionRequiresHttps": {
            "RuleCondition": {"Fn::Equals": [{"Ref": "EnvironmentName"}, "prod"]},
            "Assertions": [
                {
                    "Assert": {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]},
                    "AssertDescription": "prod needs CertificateArn",
                }
            ],
        }
    },
}


def _file(tmp_path, name, entries):
    path = tmp_path / name
    path.write_text(json.dumps([{"ParameterKey": k, "ParameterValue": v} for k, v in entries.items()]))
    return path


def test_valid_file_loads_only_the_values_it_sets(tmp_path):
    cfg = config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev", "DesiredCount": "1"}), ROOT)
    assert cfg.environment == "dev"
    assert dict(cfg.values) == {"EnvironmentName": "dev", "DesiredCount": "1"}


@pytest.mark.parametrize(
    "value,fragment", [("5", "out of range"), ("two", "not a number"), ("-1", "out of range")]
)
def test_number_bounds(tmp_path, value, fragment):
    with pytest.raises(config.ConfigError) as exc:
        config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev", "DesiredCount": value}), ROOT)
    assert fragment in str(exc.value) and "DesiredCount" in str(exc.value) and "0 to 4" in str(exc.value)


def test_pattern_violation_names_the_constraint(tmp_path):
    with pytest.raises(config.ConfigError) as exc:
        config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev", "CertificateArn": "nope"}), ROOT)
    assert "CertificateArn" in str(exc.value) and "empty, or an ACM certificate ARN" in str(exc.value)


def test_duplicate_and_extra_fields_are_rejected(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(
        json.dumps(
            [
                {"ParameterKey": "EnvironmentName", "ParameterValue": "dev"},
                {"ParameterKey": "EnvironmentName", "ParameterValue": "dev"},
            ]
        )
    )
    with pytest.raises(config.ConfigError, match="set twice"):
        config.load(path, ROOT)
    path.write_text(
        json.dumps([{"ParameterKey": "EnvironmentName", "ParameterValue": "dev", "UsePreviousValue": True}])
    )
    with pytest.raises(config.ConfigError, match="entry 1: expected exactly the keys"):
        config.load(path, ROOT)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(config.ConfigError, match="no such parameter file"):
        config.load(tmp_path / "prod.json", ROOT)


def test_prod_without_certificate_breaks_the_rule_and_with_one_passes(tmp_path):
    cfg = config.load(_file(tmp_path, "prod.json", {"EnvironmentName": "prod"}), ROOT)
    with pytest.raises(config.ConfigError, match="prod needs CertificateArn"):
        config.check_rules(cfg, ROOT)
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/x"
    config.check_rules(config.with_overrides(cfg, {"CertificateArn": arn}, ROOT), ROOT)
    dev = config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev"}), ROOT)
    config.check_rules(dev, ROOT)  # the rule only applies to prod


def test_overrides_are_validated_like_the_file(tmp_path):
    cfg = config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev"}), ROOT)
    with pytest.raises(config.ConfigError, match="--parameter Bogus: unknown parameter"):
        config.with_overrides(cfg, {"Bogus": "1"}, ROOT)
    with pytest.raises(config.ConfigError, match="--parameter LogRetentionDays"):
        config.with_overrides(cfg, {"LogRetentionDays": "7"}, ROOT)


SECRET_VALUE = "hunter2-do-not-print"


@pytest.mark.parametrize(
    "spec",
    [
        {"Type": "String", "NoEcho": "true", "AllowedPattern": "^[a-z]+$"},
        {"Type": "String", "NoEcho": True, "AllowedValues": ["a", "b"]},
        {"Type": "Number", "NoEcho": "True"},
        {"Type": "Number", "NoEcho": True, "MinValue": "0", "MaxValue": "1"},
    ],
)
def test_a_no_echo_value_is_never_repeated_in_a_message(tmp_path, spec):
    value = "12345" if "MaxValue" in spec else SECRET_VALUE  # out of range, or not allowed / not a number
    root = {
        "Parameters": {
            "EnvironmentName": ROOT["Parameters"]["EnvironmentName"],
            "Token": {**spec, "Default": ""},
        }
    }

    problem = config.check_value("Token", value, spec)

    assert problem and value not in problem and "****" in problem
    with pytest.raises(config.ConfigError) as exc:
        config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev", "Token": value}), root)
    assert value not in str(exc.value) and "Token" in str(exc.value)
    cfg = config.load(_file(tmp_path, "dev.json", {"EnvironmentName": "dev"}), root)
    with pytest.raises(config.ConfigError) as exc:
        config.with_overrides(cfg, {"Token": value}, root)
    assert value not in str(exc.value) and str(exc.value).startswith("--parameter Token: ****")


def test_a_value_that_is_not_no_echo_is_quoted_in_the_message():
    spec = {"Type": "String", "NoEcho": "false", "AllowedValues": ["a"]}
    assert config.check_value("X", "zzz", spec).startswith("'zzz' is not allowed")
