"""cfn-lint reports nothing on any template, informational rules included, and the gate works:
the same configuration does catch the problems it is there for."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from karematch_cfn import lint
from karematch_cfn.lib import policies
from karematch_cfn.lintrules import StatefulPolicies


def test_rendered_tree_has_zero_findings(rendered_tree):
    findings = lint.lint_dir(rendered_tree)
    assert [str(f) for f in findings] == []


def test_committed_templates_have_zero_findings():
    findings = lint.lint_dir(Path(__file__).resolve().parent.parent / "templates")
    assert [str(f) for f in findings] == []


def test_only_w3002_is_ignored_and_informational_rules_are_on():
    cfg = yaml.safe_load(lint.CONFIG_FILE.read_text())
    assert cfg["ignore_checks"] == ["W3002"]
    assert "I" in cfg["include_checks"]


def _write(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(body))
    return path


def test_missing_policies_on_stateful_resources_are_findings(tmp_path):
    path = _write(
        tmp_path,
        "bad.yaml",
        """\
        AWSTemplateFormatVersion: '2010-09-09'
        Resources:
          Logs:
            Type: AWS::Logs::LogGroup
            Properties: {RetentionInDays: 30}
          Repo:
            Type: AWS::ECR::Repository
            DeletionPolicy: Delete
            UpdateReplacePolicy: Delete
            Properties: {RepositoryName: x}
          Bucket:
            Type: AWS::S3::Bucket
        """,
    )
    rules = {(f.rule, f.line) for f in lint.lint_files([path])}
    ids = {r for r, _ in rules}
    assert "I3011" in ids  # cfn-lint's own rule on the log group
    assert "E9101" in ids  # the project rule: buckets and repositories too
    messages = [f.message for f in lint.lint_files([path]) if f.rule == "E9101"]
    assert any("Repo" in m and "Delete" in m for m in messages)
    assert any("Bucket" in m for m in messages)


def test_nested_stack_parameter_mismatch_is_caught_from_files(tmp_path):
    _write(
        tmp_path,
        "child.yaml",
        """\
        AWSTemplateFormatVersion: '2010-09-09'
        Parameters:
          Needed: {Type: String}
        Resources:
          Topic: {Type: AWS::SNS::Topic, Properties: {DisplayName: {Ref: Needed}}}
        """,
    )
    root = _write(
        tmp_path,
        "root.yaml",
        """\
        AWSTemplateFormatVersion: '2010-09-09'
        Resources:
          Child:
            Type: AWS::CloudFormation::Stack
            DeletionPolicy: Delete
            UpdateReplacePolicy: Delete
            Properties:
              TemplateURL: ./child.yaml
              Parameters:
                Misspelt: x
        """,
    )
    messages = [f.message for f in lint.lint_files([root]) if f.rule == "E3043"]
    assert any("Needed" in m and "not specified" in m for m in messages)
    assert any("Misspelt" in m for m in messages)


def test_lint_rule_covers_the_projects_stateful_types():
    assert StatefulPolicies.STATEFUL_TYPES == policies.STATEFUL_TYPES
