"""What a deploy starts from, checked before any AWS call: the template tree and the parameters.

Nothing here talks to AWS. Every problem raises a ``DeployError`` with one line: ``BadInput``
(exit 2) for the parameter file, options and missing templates, ``LintError`` (exit 1) for lint
findings, stale templates and CloudFormation limits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from karematch_cfn import config, lintcache, names, paths, tree, tree_files
from karematch_cfn.deploy.errors import BadInput, LintError

NESTED_STACK = "AWS::CloudFormation::Stack"
REMOTE_PREFIXES = ("https://", "http://", "s3://")
CAPABILITY_IAM = "CAPABILITY_IAM"
CAPABILITY_NAMED_IAM = "CAPABILITY_NAMED_IAM"
CAPABILITY_AUTO_EXPAND = "CAPABILITY_AUTO_EXPAND"
# Name properties that make an IAM resource "named" (CAPABILITY_NAMED_IAM).
IAM_NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
}


class _CfnLoader(yaml.SafeLoader):
    """Reads long-form templates and, for other trees, CloudFormation's short-form tags."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _short_form)


def parse_template(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_CfnLoader)
    except yaml.YAMLError as exc:
        raise LintError(f"{label}: not a readable YAML/JSON template: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise LintError(f"{label}: not a CloudFormation template (no Resources mapping)")
    return data


def is_relative_url(url: Any) -> bool:
    return isinstance(url, str) and not url.startswith(REMOTE_PREFIXES)


@dataclass(frozen=True)
class Template:
    """One template file of the tree, with the children it names by relative TemplateURL."""

    path: Path
    text: str
    data: dict[str, Any]
    children: dict[str, Path] = field(default_factory=dict)  # logical id -> child file

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def resources(self) -> dict[str, Any]:
        return self.data.get("Resources", {})

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclass(frozen=True)
class Tree:
    """The templates a deploy ships: the root and everything reachable from it."""

    directory: Path
    root: Template
    files: dict[Path, Template]  # every reachable template, children before their parents

    def parameter_specs(self) -> dict[str, Any]:
        return self.root.data.get("Parameters", {}) or {}

    def no_echo(self) -> frozenset[str]:
        """Root parameters whose values must never be printed."""
        return frozenset(
            k for k, v in self.parameter_specs().items() if str(v.get("NoEcho", "")).lower() == "true"
        )


def load_tree(directory: Path, root_file: str = tree.ROOT_FILE) -> Tree:
    """Read the root and, recursively, every child named by a relative TemplateURL."""
    if not directory.is_dir():
        raise BadInput(f"{directory}: no such template directory")
    root_path = directory / root_file
    if not root_path.is_file():
        raise BadInput(f"{root_path}: no root template (the tree's root must be {root_file})")
    files: dict[Path, Template] = {}

    def visit(path: Path, trail: tuple[Path, ...]) -> Template:
        path = path.resolve()
        if path in trail:
            raise BadInput(f"{path}: nested stacks form a cycle")
        if path in files:
            return files[path]
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise LintError(
                f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); CloudFormation templates are UTF-8"
            ) from None
        except OSError as exc:
            raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
        data = parse_template(text, str(path))
        children: dict[str, Path] = {}
        for logical_id, res in data["Resources"].items():
            if not isinstance(res, dict) or res.get("Type") != NESTED_STACK:
                continue
            url = (res.get("Properties") or {}).get("TemplateURL")
            if not is_relative_url(url):
                continue
            child = (path.parent / url).resolve()
            if not child.is_file():
                raise BadInput(f"{path}: {logical_id}: TemplateURL {url}: no such file")
            visit(child, (*trail, path))
            children[logical_id] = child
        files[path] = Template(path, text, data, children)
        return files[path]

    root = visit(root_path, ())
    return Tree(directory, root, files)


def check_limits(t: Tree) -> None:
    """CloudFormation's quotas, which moto does not enforce (the root's inline limit is handled
    by uploading it)."""
    for tpl in t.files.values():
        if tpl.size > tree.MAX_BODY_URL:
            raise LintError(
                f"{tpl.path}: {tpl.size:,} bytes is over CloudFormation's "
                f"{tree.MAX_BODY_URL:,}-byte template limit"
            )
        if len(tpl.resources) > tree.MAX_RESOURCES:
            raise LintError(
                f"{tpl.path}: {len(tpl.resources)} resources is over CloudFormation's "
                f"limit of {tree.MAX_RESOURCES} per stack"
            )


def capabilities(t: Tree) -> list[str]:
    """The capabilities the tree needs (the root's change set needs its children's too)."""
    iam = named = expand = False
    for tpl in t.files.values():
        if tpl.data.get("Transform"):
            expand = True
        for res in tpl.resources.values():
            rtype = res.get("Type", "") if isinstance(res, dict) else ""
            if rtype.startswith("AWS::IAM::"):
                iam = True
                prop = IAM_NAME_PROPERTIES.get(rtype)
                if prop and prop in (res.get("Properties") or {}):
                    named = True
            elif rtype.startswith("AWS::Serverless::") or rtype == "AWS::CloudFormation::Macro":
                expand = True
    out = []
    if iam:
        out.append(CAPABILITY_IAM)
    if named:
        out.append(CAPABILITY_NAMED_IAM)
    if expand:
        out.append(CAPABILITY_AUTO_EXPAND)
    return out


# ------------------------------------------------------------------------------------------
# Freshness and lint
# ------------------------------------------------------------------------------------------
def check_fresh(directory: Path, *, use_cache: bool = True) -> None:
    """The project's templates/ must be exactly what the code renders (build.py --check).

    When build.py (or an earlier deploy) rendered this exact code and wrote exactly what is on
    disk, the remembered record answers without rendering again."""
    source = (
        lintcache.source_key(sources=paths.SOURCES, parameters_dir=tree.PARAMETERS_DIR) if use_cache else ""
    )
    record = lintcache.lookup_build(source) if source else None
    if record is not None:
        on_disk = tree_files.generated_on_disk(directory, docs_root=tree.REPO, doc_paths=record["docs"])
        if record["outputs"] == lintcache.content_digest(on_disk):
            return
    try:
        rendered = tree.render_all()
    except ValueError as exc:  # wiring/contract errors raised by the stack modules
        raise BadInput(f"the code cannot render the templates: {exc}") from None
    problems = tree.diff(rendered, directory)
    if problems:
        raise LintError(
            f"{directory} is not what the code renders ({len(problems)} file(s)); "
            "run `python build.py` and commit the result",
            *problems,
        )


def lint(t: Tree, *, use_cache: bool = True, project: bool = False) -> list[str]:
    """cfn-lint over every template the deploy ships, with the repo's .cfnlintrc.yaml.

    The verdict is remembered on disk (``karematch_cfn.lintcache``) and shared with build.py:
    for the project's templates/ the key is the same every generated file that build.py uses, so
    a deploy right after a build does not lint again.
    """
    from karematch_cfn import lint as cfnlint

    base = t.directory.resolve()
    if project:  # the same mapping as build.py's: the templates and the generated docs
        from karematch_cfn import gendocs

        generated = tree_files.generated_on_disk(
            t.directory, docs_root=tree.REPO, doc_paths=[path for path, _ in gendocs.GENERATED]
        )
    else:
        generated = {
            "templates/" + os.path.relpath(p, base).replace(os.sep, "/"): f.text for p, f in t.files.items()
        }
    findings, _cached = cfnlint.lint_cached(
        sorted(t.files), base=base, generated=generated, use_cache=use_cache
    )
    return [str(f) for f in findings]


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parameters:
    """The values a deploy sends: the file's, then the command line's (``explicit``)."""

    environment: str
    values: Mapping[str, str]
    explicit: frozenset[str]  # keys set on the command line (they win over live values)
    label: str


def default_parameter_file(env: str) -> Path:
    return tree.PARAMETERS_DIR / f"{env}.json"


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(tree.REPO))
    except ValueError:
        return str(path)


def check_environment(env: str) -> None:
    if env not in names.ENVIRONMENTS:
        raise BadInput(f"unknown environment {env!r}; allowed: {', '.join(names.ENVIRONMENTS)}")


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``--parameter KEY=VALUE`` (repeatable) into a dict; the value may be empty."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--parameter {config.shown(item)}: expected KEY=VALUE")
        if key in out:
            raise BadInput(f"--parameter {config.clipped(key)}: given twice")
        out[key] = value
    return out


def load_parameters(
    t: Tree,
    env: str,
    path: Path | None,
    assignments: Mapping[str, str],
    image_tag: str | None = None,
    desired_count: int | None = None,
) -> Parameters:
    """Load and validate the parameter file with build.py's loader, then the command line."""
    check_environment(env)
    path = path or default_parameter_file(env)
    label = _label(path)
    root = t.root.data
    specs = t.parameter_specs()
    overrides = dict(assignments)
    for option, key, value in (
        ("--image-tag", names.IMAGE_TAG, image_tag),
        ("--desired-count", names.DESIRED_COUNT, desired_count),
    ):
        if value is None:
            continue
        if key not in specs:
            raise BadInput(f"{option}: the root template has no {key} parameter")
        if key in overrides and overrides[key] != str(value):
            raise BadInput(f"{option} and --parameter {key} disagree")
        problem = config.check_value(key, str(value), specs[key])
        if problem:  # named as the user typed it, not as the --parameter it becomes
            raise BadInput(f"{option}: {problem}")
        overrides[key] = str(value)
    try:
        cfg = config.load(path, root, label)
        if overrides:
            cfg = config.with_overrides(cfg, overrides, root)
        if names.ENVIRONMENT_NAME in specs and cfg.environment != env:
            if names.ENVIRONMENT_NAME in overrides:  # blame the input that set it
                raise BadInput(
                    f"--parameter {names.ENVIRONMENT_NAME}={config.clipped(cfg.environment)} "
                    f"disagrees with --env {env}",
                    f"drop --parameter {names.ENVIRONMENT_NAME}: --env sets the environment",
                )
            raise BadInput(f"{label}: {names.ENVIRONMENT_NAME} is {cfg.environment!r} but --env is {env!r}")
        # A Rule using functions the local evaluator lacks: CloudFormation checks it.
        with contextlib.suppress(KeyError, TypeError, IndexError):
            config.check_rules(cfg, root, label)
    except UnicodeDecodeError as exc:
        raise BadInput(f"{label}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except config.ConfigError as exc:
        message = str(exc)
        hint = (
            "fix the --parameter value"
            if message.startswith("--parameter")
            else "fix the file, or set a value with --parameter KEY=VALUE"
        )
        raise BadInput(message, hint) from None
    return Parameters(env, dict(cfg.values), frozenset(overrides), label)
