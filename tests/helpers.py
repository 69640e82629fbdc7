"""Small helpers over rendered templates (plain dicts as read back from templates/)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from karematch_cfn import evaluate, render, tree
from karematch_cfn.stacks import root

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REGION = "us-east-1"  # the spec's region (its endpoint example)


@lru_cache(maxsize=1)
def _rendered() -> dict[str, str]:
    return tree.render_all()


def rendered_text() -> dict[str, str]:
    """Fresh render of every template: file name -> YAML text (cached per test session)."""
    return dict(_rendered())


def template(filename: str) -> dict[str, Any]:
    """One freshly rendered template as a dict."""
    return render.load(_rendered()[filename])  # libyaml where available


def resources_of_type(t: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t.get("Resources", {}).items() if v.get("Type") == rtype}


def one_of_type(t: dict[str, Any], rtype: str) -> dict[str, Any]:
    return t["Resources"][logical_id_of_type(t, rtype)]


def logical_id_of_type(t: dict[str, Any], rtype: str) -> str:
    """The logical id of the template's only resource of ``rtype``."""
    found = resources_of_type(t, rtype)
    assert len(found) == 1, f"expected one {rtype}, found {sorted(found)}"
    return next(iter(found))


def props(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {})


def env_values(env: str) -> dict[str, str]:
    """The root parameters for ``env``: parameters/<env>.json over the root's Defaults."""
    entries = json.loads((REPO / "parameters" / f"{env}.json").read_text())
    values = {e["ParameterKey"]: e["ParameterValue"] for e in entries}
    return evaluate.effective_parameters(template(root.ROOT_FILE), values)


def wired_value(name: str) -> str:
    """Stand-in for a value another child's Output feeds (non-empty, recognisable)."""
    return f"<wired:{name}>"


def for_env(filename: str, env: str, **overrides: str) -> dict[str, Any]:
    """A child (or the root) as deployed in ``env``: Conditions evaluated, Fn::If resolved,
    parameter Refs replaced by the environment's values (wired inputs by ``wired_value``)."""
    t = template(filename)
    root_values = env_values(env)
    values: dict[str, str] = {"AWS::Region": DEFAULT_REGION}  # override: **{"AWS::Region": ...}
    for pname in t.get("Parameters", {}):
        if pname in root_values:
            values[pname] = root_values[pname]
        elif filename != root.ROOT_FILE and pname in _wired_params(filename):
            values[pname] = wired_value(pname)
    values.update(overrides)
    return evaluate.resolve(t, values)


def _wired_params(filename: str) -> set[str]:
    rt = template(root.ROOT_FILE)
    for res in rt["Resources"].values():
        if (
            res["Type"] == "AWS::CloudFormation::Stack"
            and res["Properties"]["TemplateURL"] == f"./{filename}"
        ):
            return {k for k, v in res["Properties"].get("Parameters", {}).items() if "Fn::GetAtt" in v}
    return set()


def sub_text(value: Any) -> str:
    """The pattern of a Fn::Sub (string form), or the string itself."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    assert isinstance(value, str), f"expected a string or Fn::Sub, got {value!r}"
    return value
