"""No secret value in any template or parameter file (spec: "No secrets in code").

Two checks over every rendered template and parameters/*.json:

* ``{{resolve:`` appears only under Resources. cfn-lint's E1051 misses a dynamic reference
  inside Fn::Sub in Outputs, and an Output shows its value to anyone who can
  describe the stack.
* No literal under a secret-sounding name. Any key matching ``SENSITIVE`` (password, secret,
  key, token, credential) must hold a reference, not a literal string. That covers property
  names (``MasterUserPassword: hunter2``), Name/Value pairs (container environment, tags),
  Parameter defaults, Output values, parameter-file entries, JSON held in a string
  (``SecretStringTemplate``, ``SecretString``) and passwords inside connection URLs. The last
  tests feed it pasted passwords to show that it catches them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import helpers

SENSITIVE = re.compile(r"passw|secret|key|token|credential", re.IGNORECASE)
# The key names a name, id or ARN, not a value (KmsKeyId, SecretArn, AWS_SECRET_NAME).
NAME_LIKE = re.compile(r"(name|names|id|ids|arn|arns)$", re.IGNORECASE)
# Keys whose literal value is a setting, never a secret value.
SETTING_KEYS = {
    "GenerateStringKey",  # the JSON key Secrets Manager generates ("password")
    "KeySpec",  # KMS key type (SYMMETRIC_DEFAULT)
    "KeyUsage",  # KMS key usage (ENCRYPT_DECRYPT)
    "Key",  # the name half of a {Key, Value} pair (tags): its Value is checked under that name
    "ParameterKey",  # the same in parameter files
}
# Name/Value pairs: ECS environment ({Name, Value}), tags ({Key, Value}), parameter files.
PAIRS = (("Name", "Value"), ("Key", "Value"), ("ParameterKey", "ParameterValue"))
DYNAMIC_REF = re.compile(r"\{\{resolve:[^{}]*\}\}")
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
# scheme://user:password@host. The password part must be a reference.
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^@\s]+)@", re.IGNORECASE)


MASK = "\x01"


def _is_reference(value: str) -> bool:
    """A dynamic reference, ARN, KMS alias or empty string; or a Fn::Sub pattern made only
    of placeholders and dynamic references."""
    return not _references_masked(value).strip(MASK).strip() or value.startswith(("arn:", "alias/"))


def _references_masked(text: str) -> str:
    """Each placeholder and dynamic reference replaced by MASK (no ':' or '@' left in them)."""
    return DYNAMIC_REF.sub(MASK, PLACEHOLDER.sub(MASK, text))


def _literal_text(value: Any) -> tuple[str, bool] | None:
    """(text, is_sub) for a literal string or a Fn::Sub pattern; None for other intrinsics."""
    if isinstance(value, str):
        return value, False
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        return (sub if isinstance(sub, str) else sub[0]), True
    return None


def _json_object(text: str) -> dict | None:
    """The JSON object a string (or Fn::Sub pattern, placeholders inside its strings) holds."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _check_value(where: str, key: str, value: Any) -> Iterator[str]:
    """Findings for one key (a property name, pair name or JSON key) holding ``value``."""
    lit = _literal_text(value)
    if lit is None or not SENSITIVE.search(key) or NAME_LIKE.search(key) or key in SETTING_KEYS:
        return
    if ":" in key:
        return  # an IAM condition key (token.actions.githubusercontent.com:aud), not a property
    text, is_sub = lit
    if _json_object(text) is not None:
        return  # scan() looks inside
    if not _is_reference(text):
        kind = "literal text in a Fn::Sub" if is_sub else "a literal value"
        yield f"{where}: {key} holds {kind}"


def scan(node: Any, where: str = "") -> Iterator[str]:
    """Every finding in a template or parameter-file fragment."""
    if isinstance(node, dict):
        for a, b in PAIRS:
            if isinstance(node.get(a), str) and b in node:
                yield from _check_value(f"{where}/{node[a]}", node[a], node[b])
        for key, value in node.items():
            yield from _check_value(f"{where}/{key}", key, value)
            yield from scan(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from scan(item, f"{where}[{i}]")
    elif isinstance(node, str):  # a literal, or the pattern of a Fn::Sub
        for password in URL_CREDENTIALS.findall(_references_masked(node)):
            if password.strip(MASK):
                yield f"{where}: a URL holds a literal password"
        doc = _json_object(node)
        if doc is not None:
            yield from scan(doc, f"{where}<json>")


def scan_template(t: dict[str, Any], where: str) -> list[str]:
    findings = list(scan(t.get("Resources", {}), f"{where}:Resources"))
    for name, spec in t.get("Parameters", {}).items():
        if "Default" in spec:
            findings += _check_value(f"{where}:Parameters/{name}/Default", name, spec["Default"])
        findings += scan(spec, f"{where}:Parameters/{name}")
    for name, out in t.get("Outputs", {}).items():
        findings += _check_value(f"{where}:Outputs/{name}", name, out.get("Value"))
        findings += scan(out, f"{where}:Outputs/{name}")
    for section in ("Mappings", "Conditions", "Rules", "Metadata"):
        findings += scan(t.get(section, {}), f"{where}:{section}")
    return findings


def _parameter_files() -> list[Path]:
    files = sorted((helpers.REPO / "parameters").glob("*.json"))
    assert files, "no parameter files"
    return files


# ---------------------------------------------------------------------------------------------
# The repository
# ---------------------------------------------------------------------------------------------
def test_dynamic_references_appear_only_under_resources():
    for filename in helpers.rendered_text():
        t = helpers.template(filename)
        for section, body in t.items():
            if section != "Resources":
                assert "{{resolve:" not in json.dumps(body), f"{filename}: {section}"


def test_parameter_files_hold_no_dynamic_reference_or_secret():
    for path in _parameter_files():
        text = path.read_text()
        assert "{{resolve:" not in text, path.name
        assert list(scan(json.loads(text), path.name)) == []


def test_no_template_holds_a_secret_value():
    findings = []
    for filename in helpers.rendered_text():
        findings += scan_template(helpers.template(filename), filename)
    assert findings == []


def test_every_secret_is_generated_or_assembled_from_references():
    for filename in helpers.rendered_text():
        t = helpers.template(filename)
        for logical_id, res in helpers.resources_of_type(t, "AWS::SecretsManager::Secret").items():
            p = helpers.props(res)
            if "SecretString" in p:
                text = _literal_text(p["SecretString"])
                assert text is not None and text[1], f"{filename}/{logical_id}: literal SecretString"
                doc = json.loads(text[0])
                for key, value in doc.items():
                    # References only, or a URL whose user, password, host and port are
                    # references (literal: scheme, separators, database name, query).
                    rest = DYNAMIC_REF.sub("", PLACEHOLDER.sub("", value))
                    assert re.fullmatch(r"|[a-z]+://[:@/]*\w*(\?[\w=&-]*)?", rest), (
                        f"{filename}/{logical_id}: {key} has literal text {rest!r}"
                    )
            else:
                assert "GenerateSecretString" in p, f"{filename}/{logical_id}"


# ---------------------------------------------------------------------------------------------
# The detector catches pasted secrets
# ---------------------------------------------------------------------------------------------
def _resource(rtype: str, **properties: Any) -> dict[str, Any]:
    """A one-resource template."""
    return {"Resources": {"R": {"Type": rtype, "Properties": properties}}}


DB, SECRET, TASK = "AWS::RDS::DBInstance", "AWS::SecretsManager::Secret", "AWS::ECS::TaskDefinition"
PASTED = [
    ("property", _resource(DB, MasterUserPassword="hunter2hunter2")),
    ("sub without placeholders", _resource(DB, MasterUserPassword={"Fn::Sub": "Tr0ub4dor&3"})),
    ("secret string", _resource(SECRET, SecretString="s3cr3t-value")),
    (
        "json in a template string",
        _resource(
            SECRET,
            GenerateSecretString={
                "SecretStringTemplate": '{"username": "a", "password": "hunter2"}',
                "GenerateStringKey": "token",
            },
        ),
    ),
    (
        "container environment",
        _resource(
            TASK, ContainerDefinitions=[{"Environment": [{"Name": "SESSION_SECRET", "Value": "abc123"}]}]
        ),
    ),
    (
        "url",
        _resource(
            SECRET,
            SecretString={
                "Fn::Sub": '{"DATABASE_URL": "postgresql://admin:Pa55word@${Host}:5432/karematch"}'
            },
        ),
    ),
    (
        "json key in app secret",
        _resource(
            SECRET,
            SecretString={
                "Fn::Sub": '{"ENCRYPTION_KEY": "0123456789abcdef", "AWS_REGION": "${AWS::Region}"}'
            },
        ),
    ),
    ("parameter default", {"Parameters": {"DatabasePassword": {"Type": "String", "Default": "hunter2"}}}),
    ("output", {"Outputs": {"SessionSecret": {"Value": "abc123"}}}),
]


@pytest.mark.parametrize("case,template", PASTED, ids=[c for c, _ in PASTED])
def test_a_pasted_secret_is_caught(case, template):
    assert scan_template(template, case), f"{case}: not caught"


def test_a_pasted_secret_in_a_parameter_file_is_caught():
    entries = [
        {"ParameterKey": "EnvironmentName", "ParameterValue": "prod"},
        {"ParameterKey": "DatabasePassword", "ParameterValue": "hunter2"},
    ]
    assert list(scan(entries, "prod.json"))


def test_references_and_names_are_not_findings():
    d_user = "{{resolve:secretsmanager:${D}:SecretString:username}}"
    d_password = "{{resolve:secretsmanager:${D}:SecretString:password}}"
    app = {
        "SESSION_SECRET": "{{resolve:secretsmanager:${S}:SecretString}}",
        "DATABASE_URL": f"postgresql://{d_user}:{d_password}@${{H}}:5432/k?sslmode=require",
    }
    ok = {
        "Parameters": {
            "DatabaseSecretArn": {"Type": "String"},
            "ApiKeyName": {"Type": "String", "Default": "x"},
        },
        "Resources": {
            "Db": {
                "Type": DB,
                "Properties": {
                    "MasterUserPassword": {
                        "Fn::Sub": "{{resolve:secretsmanager:${DatabaseSecretArn}:SecretString:password}}"
                    }
                },
            },
            "S": {
                "Type": SECRET,
                "Properties": {
                    "Name": {"Fn::Sub": "karematch-app-secrets-${EnvironmentName}"},
                    "SecretString": {"Fn::Sub": json.dumps(app)},
                    "KmsKeyId": "alias/aws/secretsmanager",
                    "Tags": [{"Key": "Project", "Value": "karematch"}],
                },
            },
            "T": {
                "Type": TASK,
                "Properties": {
                    "ContainerDefinitions": [
                        {
                            "Environment": [{"Name": "AWS_SECRET_NAME", "Value": {"Ref": "AppSecretName"}}],
                            "Secrets": [
                                {
                                    "Name": "SESSION_SECRET",
                                    "ValueFrom": {"Fn::Sub": "${AppSecretArn}:SESSION_SECRET::"},
                                }
                            ],
                        }
                    ]
                },
            },
        },
        "Outputs": {"AppSecretArn": {"Value": {"Ref": "S"}}},
    }
    assert scan_template(ok, "ok") == []
