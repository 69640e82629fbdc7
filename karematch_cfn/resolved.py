"""The tree as one environment will create it: every template with Conditions evaluated.

One function, ``resolve_tree``, is what the scanner, the HIPAA control map, the architecture
diagram and the cost page read, so none of them judges an ``Fn::If`` branch the environment never
creates. Parameter values come from ``parameters/<env>.json`` over the root's Defaults, plus what a
real deploy of that environment also has (``REAL_DEPLOY``): an image running, and outside dev a
certificate; prod also a custom frontend domain. A child's input fed by another child's Output
stays unknown here and is replaced by ``wired(name)``, a non-empty stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from karematch_cfn import evaluate, names
from karematch_cfn.stacks import root

PARAMETERS_DIR = Path(__file__).resolve().parent.parent / "parameters"
DEFAULT_REGION = "us-east-1"  # the spec's region
EXAMPLE_ACCOUNT = "123456789012"  # AWS's documentation account id

_ALB_CERTIFICATE = (
    f"arn:aws:acm:{DEFAULT_REGION}:{EXAMPLE_ACCOUNT}:certificate/00000000-0000-0000-0000-000000000001"
)
_EDGE_CERTIFICATE = (
    f"arn:aws:acm:us-east-1:{EXAMPLE_ACCOUNT}:certificate/00000000-0000-0000-0000-000000000002"
)

# What a real deploy of each environment has beyond its parameter file: the image CI pushed, and
# the certificates and domain the operator passes with --parameter (docs/deploying.md).
REAL_DEPLOY: dict[str, dict[str, str]] = {
    "dev": {names.IMAGE_TAG: "example-tag"},
    "staging": {names.IMAGE_TAG: "example-tag", names.CERTIFICATE_ARN: _ALB_CERTIFICATE},
    "prod": {
        names.IMAGE_TAG: "example-tag",
        names.CERTIFICATE_ARN: _ALB_CERTIFICATE,
        "FrontendDomainName": "app.example.com",
        "FrontendCertificateArn": _EDGE_CERTIFICATE,
    },
}


def wired(name: str) -> str:
    """Stand-in for a value another child's Output feeds (non-empty, recognisable)."""
    return f"<wired:{name}>"


def environment_values(env: str, parameters_dir: Path = PARAMETERS_DIR) -> dict[str, str]:
    """parameters/<env>.json plus ``REAL_DEPLOY[env]`` (not yet over the root's Defaults)."""
    if env not in names.ENVIRONMENTS:
        raise ValueError(f"unknown environment {env!r}; allowed: {', '.join(names.ENVIRONMENTS)}")
    entries = json.loads((parameters_dir / f"{env}.json").read_text(encoding="utf-8"))
    values = {e["ParameterKey"]: str(e["ParameterValue"]) for e in entries}
    values.update(REAL_DEPLOY.get(env, {}))
    return values


def parse(rendered: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Rendered YAML text by file name -> template dicts."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return {name: yaml.load(text, Loader=loader) for name, text in rendered.items()}


def resolve_tree(
    templates: Mapping[str, Mapping[str, Any]],
    env: str,
    *,
    region: str = DEFAULT_REGION,
    overrides: Mapping[str, str] | None = None,
    parameters_dir: Path = PARAMETERS_DIR,
) -> dict[str, dict[str, Any]]:
    """Every template of the nested tree that ``env`` creates, resolved for ``env``.

    ``templates`` are parsed templates by file name (``parse(tree.render_all())``). The root comes
    back under its own name; a child the root does not create in ``env`` (a false Condition) is
    left out; standalone templates (no parent in the tree) are left out as well.
    """
    values = environment_values(env, parameters_dir)
    values.update(overrides or {})
    root_template = templates[root.ROOT_FILE]
    pseudo = {"AWS::Region": region, "AWS::AccountId": EXAMPLE_ACCOUNT, "AWS::Partition": "aws"}
    root_values = evaluate.effective_parameters(root_template, {**values, **pseudo})
    resolved_root = evaluate.resolve(root_template, root_values)
    out = {root.ROOT_FILE: resolved_root}
    for stack in resolved_root["Resources"].values():
        if stack["Type"] != "AWS::CloudFormation::Stack":
            continue
        filename = stack["Properties"]["TemplateURL"].removeprefix("./")
        child_values = dict(pseudo)
        for pname, given in stack["Properties"].get("Parameters", {}).items():
            child_values[pname] = given if isinstance(given, str) else wired(pname)
        out[filename] = evaluate.resolve(templates[filename], child_values)
    return out
