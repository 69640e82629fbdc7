"""The tree as each environment creates it (karematch_cfn.resolved) and the generated-docs registry."""

from __future__ import annotations

import pytest

from karematch_cfn import gendocs, resolved
from tests import helpers, spec


@pytest.fixture(scope="module")
def parsed():
    return resolved.parse(helpers.rendered_text())


def _one(t, rtype):
    return helpers.one_of_type(t, rtype)


def test_multi_az_follows_the_spec_only_in_production(parsed):
    assert "Multi-AZ: Enabled in production" in spec.SPEC.read_text()
    for env, expected in (("prod", True), ("staging", False), ("dev", False)):
        db = _one(resolved.resolve_tree(parsed, env)["database.yaml"], "AWS::RDS::DBInstance")
        assert db["Properties"]["MultiAZ"] is expected, env


def test_a_child_the_root_does_not_create_is_left_out(parsed):
    # The audit trail is switched on by prod's parameter file only.
    assert "audit.yaml" in resolved.resolve_tree(parsed, "prod")
    assert "audit.yaml" not in resolved.resolve_tree(parsed, "dev")
    assert "audit.yaml" in resolved.resolve_tree(parsed, "dev", overrides={"EnableCloudTrail": "true"})


def test_no_intrinsic_condition_survives_and_wired_inputs_are_stand_ins(parsed):
    tree = resolved.resolve_tree(parsed, "prod")
    for filename, t in tree.items():
        text = repr(t)
        assert "Fn::If" not in text, filename
        assert "AWS::NoValue" not in text, filename
    service_params = tree["karematch.yaml"]["Resources"]["ServiceStack"]["Properties"]["Parameters"]
    wired = [k for k, v in service_params.items() if not isinstance(v, str)]
    assert wired, "the service is fed by other children's Outputs"
    assert any(resolved.wired(name) in repr(tree["service.yaml"]) for name in wired)


def test_a_real_deploy_runs_the_image_and_serves_https_outside_dev(parsed):
    prod = resolved.resolve_tree(parsed, "prod")
    listeners = helpers.resources_of_type(prod["loadbalancer.yaml"], "AWS::ElasticLoadBalancingV2::Listener")
    assert any(listener["Properties"].get("Protocol") == "HTTPS" for listener in listeners.values())
    service = _one(prod["service.yaml"], "AWS::ECS::Service")
    assert service["Properties"]["DesiredCount"] != 0


def test_unknown_environment_is_refused(parsed):
    with pytest.raises(ValueError, match="unknown environment 'qa'; allowed: dev, staging, prod"):
        resolved.resolve_tree(parsed, "qa")


def test_generated_docs_are_rendered_checked_and_written(tmp_path, parsed):
    def count(templates):
        return f"{len(templates)} templates\n"

    docs = gendocs.render_docs(parsed, generators=(("docs/count.md", count),))
    assert docs == {"docs/count.md": gendocs.HEADER + f"{len(parsed)} templates\n"}
    assert gendocs.diff(docs, tmp_path) == [f"{tmp_path / 'docs/count.md'}: missing (build.py generates it)"]
    gendocs.write(docs, tmp_path)
    assert gendocs.diff(docs, tmp_path) == []
    (tmp_path / "docs/count.md").write_text("edited by hand\n")
    assert "differs from what build.py generates" in gendocs.diff(docs, tmp_path)[0]


def test_build_check_fails_on_a_stale_generated_doc(tmp_path, monkeypatch, capsys, build_module):
    monkeypatch.setattr(gendocs, "GENERATED", (("docs/count.md", lambda t: "fresh\n"),))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/count.md").write_text("stale\n")
    rc = build_module.main(["--check", "--no-lint", "--docs-root", str(tmp_path)])
    assert rc == 1
    assert "docs/count.md: differs" in capsys.readouterr().err
    out = tmp_path / "templates"
    assert build_module.main(["--no-lint", "--docs-root", str(tmp_path), "--out", str(out), "-q"]) == 0
    assert (tmp_path / "docs/count.md").read_text() == gendocs.HEADER + "fresh\n"
