"""Load and validate ``parameters/<env>.json`` against the root template's Parameters.

The files are in CloudFormation's native format, usable unchanged with
``aws cloudformation create-stack --parameters file://parameters/prod.json``::

    [{"ParameterKey": "EnvironmentName", "ParameterValue": "prod"}, ...]

Every problem is one ``ConfigError`` line naming the file, the key and what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from karematch_cfn import evaluate, names

_ENTRY_KEYS = {"ParameterKey", "ParameterValue"}


class ConfigError(ValueError):
    """A parameter file is wrong; the message is one line: file, key, what is allowed."""


@dataclass(frozen=True)
class EnvironmentConfig:
    """A validated parameter file: the values it sets (Defaults are the template's)."""

    path: Path
    environment: str
    values: Mapping[str, str]


def _allowed_text(spec: Mapping[str, Any]) -> str:
    if "AllowedValues" in spec:
        return "allowed values: " + ", ".join(str(v) for v in spec["AllowedValues"])
    bits = []
    if "AllowedPattern" in spec:
        desc = spec.get("ConstraintDescription")
        bits.append(
            f"{desc} (pattern {spec['AllowedPattern']})" if desc else f"must match {spec['AllowedPattern']}"
        )
    if "MinValue" in spec or "MaxValue" in spec:
        bits.append(f"a number from {spec.get('MinValue', '-inf')} to {spec.get('MaxValue', 'inf')}")
    return "allowed: " + "; ".join(bits) if bits else ""


SHOWN_CHARACTERS = 64  # a longer input is cut in an error line, which stays one short line


def shown(value: Any) -> str:
    """A user's value inside an error line: its repr, cut short when long."""
    text = repr(value) if isinstance(value, str) else json.dumps(value)[: SHOWN_CHARACTERS + 1]
    if len(text) <= SHOWN_CHARACTERS:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:SHOWN_CHARACTERS]}...{size}"


def clipped(text: str) -> str:
    """A name the user typed (a key), cut short when long."""
    return text if len(text) <= SHOWN_CHARACTERS else f"{text[:SHOWN_CHARACTERS]}... ({len(text)} characters)"


def string_suggestion(value: Any) -> str:
    """What to write instead of a JSON value that is not a string (``true`` -> ``"true"``)."""
    if isinstance(value, bool):
        return f'write "{str(value).lower()}"'
    if isinstance(value, (int, float)):
        return f'write "{value}"'
    return 'write the value in double quotes, e.g. "value"'


def check_value(name: str, value: str, spec: Mapping[str, Any]) -> str | None:
    """Why ``value`` is not acceptable for Parameter ``spec``, or None when it is.

    A NoEcho parameter's value is never repeated in the message (it is shown as ``****``).
    """
    shown_value = "****" if str(spec.get("NoEcho", "")).lower() == "true" else shown(value)
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return f"{shown_value} is not a number; {_allowed_text(spec)}".rstrip("; ")
        if ("MinValue" in spec and number < float(spec["MinValue"])) or (
            "MaxValue" in spec and number > float(spec["MaxValue"])
        ):
            return f"{shown_value} is out of range; {_allowed_text(spec)}"
    if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
        return f"{shown_value} is not allowed; {_allowed_text(spec)}"
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
        return f"{shown_value} is not allowed; {_allowed_text(spec)}"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"is longer than {spec['MaxLength']} characters"
    return None


def _read_entries(path: Path, label: str) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{label}: no such parameter file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError(
            f"{label}: nested too deeply to be a parameter file; "
            'expected [{"ParameterKey": ..., "ParameterValue": ...}, ...]'
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            'expected [{"ParameterKey": ..., "ParameterValue": ...}, ...]'
        ) from None
    if not isinstance(data, list):
        raise ConfigError(
            f"{label}: expected a JSON list of "
            '{"ParameterKey": ..., "ParameterValue": ...} objects (CloudFormation\'s format)'
        )
    return data


def load(path: Path | str, root_template: Mapping[str, Any], label: str | None = None) -> EnvironmentConfig:
    """Read and validate one parameter file against the root template (a rendered dict)."""
    path = Path(path)
    label = label or str(path)
    specs: Mapping[str, Any] = root_template.get("Parameters", {})
    values: dict[str, str] = {}
    for i, entry in enumerate(_read_entries(path, label), start=1):
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            got = clipped(str(sorted(entry))) if isinstance(entry, dict) else type(entry).__name__
            raise ConfigError(
                f"{label}: entry {i}: expected exactly the keys ParameterKey and ParameterValue, got {got}"
            )
        key, value = entry["ParameterKey"], entry["ParameterValue"]
        if not isinstance(key, str):
            raise ConfigError(f"{label}: entry {i}: ParameterKey must be a string")
        if key not in specs:
            raise ConfigError(
                f"{label}: {clipped(key)}: unknown parameter; allowed keys: {', '.join(sorted(specs))}"
            )
        if not isinstance(value, str):
            raise ConfigError(
                f"{label}: {key}: ParameterValue must be a JSON string ({string_suggestion(value)})"
            )
        if key in values:
            raise ConfigError(f"{label}: {key}: set twice; each key may appear once")
        problem = check_value(key, value, specs[key])
        if problem:
            raise ConfigError(f"{label}: {key}: {problem}")
        values[key] = value
    for key, spec in sorted(specs.items()):
        if key not in values and "Default" not in spec:
            raise ConfigError(f"{label}: {key}: missing; it has no Default, so the file must set it")
    env = values.get(names.ENVIRONMENT_NAME, "")
    if path.stem in names.ENVIRONMENTS and env != path.stem:
        raise ConfigError(
            f"{label}: {names.ENVIRONMENT_NAME}: {env!r} does not match the file name; allowed: {path.stem!r}"
        )
    return EnvironmentConfig(path=path, environment=env, values=MappingProxyType(values))


def check_rules(
    config: EnvironmentConfig, root_template: Mapping[str, Any], label: str | None = None
) -> None:
    """Apply the root template's Rules (e.g. HTTPS outside dev) before anything is deployed."""
    broken = evaluate.broken_rules(root_template, config.values)
    if broken:
        raise ConfigError(f"{label or config.path}: {broken[0]}")


def with_overrides(
    config: EnvironmentConfig, overrides: Mapping[str, str], root_template: Mapping[str, Any]
) -> EnvironmentConfig:
    """A copy with command-line ``Key=Value`` overrides, validated like the file's values."""
    specs = root_template.get("Parameters", {})
    values = dict(config.values)
    for key, value in overrides.items():
        if key not in specs:
            raise ConfigError(
                f"--parameter {clipped(key)}: unknown parameter; allowed keys: {', '.join(sorted(specs))}"
            )
        problem = check_value(key, value, specs[key])
        if problem:
            raise ConfigError(f"--parameter {key}: {problem}")
        values[key] = value
    return EnvironmentConfig(
        config.path, values.get(names.ENVIRONMENT_NAME, config.environment), MappingProxyType(values)
    )
