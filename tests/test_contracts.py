"""Wiring contracts: the root feeds every child input, children's Outputs exist, the shared
knobs are declared identically everywhere, and the parameter files match the root."""

from __future__ import annotations

import pytest

from karematch_cfn import config, names
from karematch_cfn.stacks import root
from tests import helpers

ROOT = root.ROOT_FILE


def _children() -> dict[str, dict]:
    """Logical id -> Stack resource of the root."""
    return helpers.resources_of_type(helpers.template(ROOT), "AWS::CloudFormation::Stack")


def _child_file(stack: dict) -> str:
    url = stack["Properties"]["TemplateURL"]
    assert url.startswith("./") and url.endswith(".yaml"), f"not a relative local TemplateURL: {url}"
    return url[2:]


def test_every_child_parameter_without_default_is_fed_and_nothing_unknown_is_passed():
    for logical_id, stack in _children().items():
        child = helpers.template(_child_file(stack))
        fed = set(stack["Properties"].get("Parameters", {}))
        declared = child.get("Parameters", {})
        required = {p for p, spec in declared.items() if "Default" not in spec}
        assert required <= fed, f"{logical_id}: unfed {sorted(required - fed)}"
        assert fed <= set(declared), f"{logical_id}: passes unknown {sorted(fed - set(declared))}"


def test_every_wired_output_exists_in_the_producing_child_and_comes_from_an_earlier_child():
    children = _children()
    order = [c.logical_id for c in root.children()]
    for logical_id, stack in children.items():
        for pname, value in stack["Properties"].get("Parameters", {}).items():
            if "Fn::GetAtt" in value:
                producer, attr = value["Fn::GetAtt"]
                assert attr == f"Outputs.{pname}", f"{logical_id}.{pname} fed from {attr}"
                outputs = helpers.template(_child_file(children[producer])).get("Outputs", {})
                assert pname in outputs, f"{producer} has no Output {pname}"
                assert order.index(producer) < order.index(logical_id)
                assert "Condition" not in children[producer], "a conditional child feeds others"
            else:
                assert value == {"Ref": pname}, f"{logical_id}.{pname}: {value}"


def test_shared_knobs_are_declared_identically_in_root_and_children():
    declared = {}
    for filename in helpers.rendered_text():
        for pname, spec in helpers.template(filename).get("Parameters", {}).items():
            if pname in names.SHARED_PARAMETERS:
                declared.setdefault(pname, {})[filename] = spec
    for pname, by_file in declared.items():
        specs = list(by_file.values())
        for spec in specs[1:]:
            for key in ("Type", "AllowedValues", "AllowedPattern", "Default", "MinValue", "MaxValue"):
                assert spec.get(key) == specs[0].get(key), f"{pname}.{key} differs across {list(by_file)}"


def test_root_outputs_are_what_a_user_needs_after_a_deploy():
    outputs = helpers.template(ROOT).get("Outputs", {})
    assert set(outputs) == set(root.ROOT_OUTPUTS)


@pytest.mark.parametrize("env", names.ENVIRONMENTS)
def test_parameter_file_matches_the_root(env):
    cfg = config.load(helpers.REPO / "parameters" / f"{env}.json", helpers.template(ROOT))
    assert cfg.environment == env
    assert set(cfg.values) <= set(helpers.template(ROOT)["Parameters"])


def test_prod_uses_six_year_log_retention_and_dev_the_default():
    # Spec: "Implement log retention for 6 years" (HIPAA step 3); 30 days is the spec's default.
    import re

    from tests import spec

    years = int(spec.find(r"log retention for (\d+) years"))
    default_days = int(spec.find(r"`/aws/ecs/karematch` - ECS container logs \((\d+)-day retention\)"))
    assert int(helpers.env_values("prod")[names.LOG_RETENTION_DAYS]) == 2192
    assert years * 365 <= 2192 and 2192 - years * 365 <= 2  # six years incl. leap days
    assert int(helpers.env_values("dev")[names.LOG_RETENTION_DAYS]) == default_days
    assert re.fullmatch(r"\d+", helpers.env_values("staging")[names.LOG_RETENTION_DAYS])
