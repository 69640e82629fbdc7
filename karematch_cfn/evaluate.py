"""Evaluate a rendered template for one set of parameter values, as CloudFormation would.

Used by the loader (template Rules before a deploy) and by the behaviour tests ("prod has
Multi-AZ, dev does not"). Supports what the templates use: Parameters with Defaults, pseudo parameters
given with the values (``{"AWS::Region": "eu-west-1"}``), Conditions built from
Fn::Equals/Not/And/Or/Condition over Ref and Fn::FindInMap, Fn::If and AWS::NoValue, and Rules.
Refs to parameters are replaced by their values; everything else is left as written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

NO_VALUE = "AWS::NoValue"
_DROP = object()


def effective_parameters(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    """Given values over the template's Defaults (only the template's own Parameters)."""
    out: dict[str, str] = {k: str(v) for k, v in values.items() if k.startswith("AWS::")}
    for name, spec in template.get("Parameters", {}).items():
        if name in values:
            out[name] = str(values[name])
        elif "Default" in spec:
            out[name] = str(spec["Default"])
    return out


def _value(
    expr: Any, params: Mapping[str, str], conds: Mapping[str, bool], mappings: Mapping[str, Any] | None = None
) -> Any:
    if isinstance(expr, dict) and len(expr) == 1:
        ((key, arg),) = expr.items()
        if key == "Ref":
            if arg not in params:
                raise KeyError(f"Ref {arg} is not a parameter with a value")
            return params[arg]
        if key == "Condition":
            return conds[arg]
        if key == "Fn::FindInMap" and mappings is not None:
            name, top, second = (_value(x, params, conds, mappings) for x in arg)
            return mappings[name][top][second]
        if key == "Fn::Equals":
            a, b = (_value(x, params, conds, mappings) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not _value(arg[0], params, conds, mappings)
        if key == "Fn::And":
            return all(_value(x, params, conds, mappings) for x in arg)
        if key == "Fn::Or":
            return any(_value(x, params, conds, mappings) for x in arg)
    return expr


def conditions(template: Mapping[str, Any], params: Mapping[str, str]) -> dict[str, bool]:
    """Every Condition of the template, evaluated (conditions may reference each other)."""
    raw = template.get("Conditions", {})
    done: dict[str, bool] = {}

    class _Lazy(dict):
        def __missing__(self, key: str) -> bool:
            if key not in raw:
                raise KeyError(f"unknown Condition {key}")
            done[key] = bool(_value(raw[key], params, self, template.get("Mappings", {})))
            self[key] = done[key]
            return done[key]

    lazy = _Lazy()
    for name in raw:
        lazy[name]
    return dict(done)


def _resolve(node: Any, params: Mapping[str, str], conds: Mapping[str, bool]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::If":
                cond, yes, no = arg
                return _resolve(yes if conds[cond] else no, params, conds)
            if key == "Ref" and arg == NO_VALUE:
                return _DROP
            if key == "Ref" and arg in params:
                return params[arg]
        out = {}
        for k, v in node.items():
            r = _resolve(v, params, conds)
            if r is not _DROP:
                out[k] = r
        return out
    if isinstance(node, list):
        return [r for r in (_resolve(v, params, conds) for v in node) if r is not _DROP]
    return node


def resolve(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """The template as deployed with ``values``: false-Condition resources and Outputs removed,
    Fn::If and AWS::NoValue resolved, parameter Refs replaced by their values."""
    params = effective_parameters(template, values)
    conds = conditions(template, params)
    t = copy.deepcopy(dict(template))
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, body in t.get(section, {}).items():
            if "Condition" in body and not conds[body["Condition"]]:
                continue
            kept[name] = _resolve(body, params, conds)
        if section in t:
            t[section] = kept
    return t


def broken_rules(template: Mapping[str, Any], values: Mapping[str, str]) -> list[str]:
    """AssertDescriptions of the template Rules these values break (CloudFormation would refuse)."""
    params = effective_parameters(template, values)
    conds = conditions(template, params)
    broken = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not _value(rule["RuleCondition"], params, conds):
            continue
        for assertion in rule.get("Assertions", []):
            if not _value(assertion["Assert"], params, conds):
                broken.append(f"{name}: {assertion.get('AssertDescription', 'assertion failed')}")
    return broken
