"""The data guard: refuse a change set that would remove or replace a stateful resource.

Pure functions over the change-set tree (``changeset.Node``); the only outside knowledge, whether
a parameter's value really changes, comes from a ``Resolver`` (``LiveResolver`` asks AWS).

A stateful resource (``lib.policies.STATEFUL_TYPES``, plus whole child stacks) is refused when:

* it is removed (``Action: Remove``; also how a renamed logical id shows up);
* it is replaced (``Replacement: True``);
* it may be replaced (``Replacement: Conditional``) for a reason that is not only Dynamic values
  that, compared with the live ones, do not really change (nested change sets mark every
  parameter fed by another child's Outputs as Dynamic, cloudformation-coverage-roadmap #759);
* a Secrets Manager secret's ``GenerateSecretString`` is modified: that generates a new value
  (a new ENCRYPTION_KEY makes the data encrypted with the old one unreadable).

Each refusal names ``ChildStack/LogicalId`` and the property that causes it; ``--allow-replacement
ChildStack/LogicalId`` lifts it for that one resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.changeset import NESTED_STACK, Node, effective_changes, has_changes
from karematch_cfn.lib.policies import STATEFUL_TYPES

GUARDED_TYPES = STATEFUL_TYPES | {NESTED_STACK}
SECRET = "AWS::SecretsManager::Secret"
REGENERATES = "GenerateSecretString"
RECREATES = ("Always", "Conditionally")
# Values a nested change set cannot know before it runs.
_PLACEHOLDER = re.compile(r"\{\{(IntrinsicFunction|changeSet):")
_SIBLING_OUTPUT = re.compile(r"\{\{IntrinsicFunction:[^/]*/([^./]+)\.Outputs\.([^/}]+)/Fn::GetAtt\}\}")
MASKED = "****"


@dataclass(frozen=True)
class Refusal:
    name: str  # ChildStack/LogicalId
    resource_type: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.resource_type}): {self.reason}"


class Resolver(Protocol):
    def parameter_changes(self, node: Node, parameter: str) -> bool | None:
        """True if the parameter's value really changes, False if not, None if unknown."""


def _target_name(detail: dict[str, Any]) -> str:
    target = detail.get("Target", {})
    return target.get("Name") or target.get("Path") or target.get("Attribute", "?")


def _causes(details: list[dict[str, Any]]) -> str:
    names: list[str] = []
    for d in details:
        n = _target_name(d)
        if d.get("ChangeSource") in ("ParameterReference", "ResourceAttribute", "ResourceReference"):
            n += f" (from {d.get('CausingEntity', '?')})"
        if n not in names:
            names.append(n)
    return ", ".join(names) if names else "(the service gave no details)"


def _really_changes(node: Node, detail: dict[str, Any], resolver: Resolver) -> bool:
    """Whether one Dynamic detail stands for a real change (unknown counts as a change)."""
    if detail.get("Evaluation") != "Dynamic":
        return True  # Static: CloudFormation knows it changes
    source, entity = detail.get("ChangeSource"), detail.get("CausingEntity") or ""
    changing = {rc.get("LogicalResourceId"): rc for rc in effective_changes(node)}
    if source == "ParameterReference":
        return resolver.parameter_changes(node, entity) is not False
    if source == "ResourceAttribute":
        # "Resource.Attribute": unchanged while the resource itself is not changed here.
        return entity.split(".", 1)[0] in changing
    if source == "ResourceReference":
        rc = changing.get(entity)
        return rc is not None and (rc.get("Action") != "Modify" or rc.get("Replacement") != "False")
    return True


def _judge(node: Node, rc: dict[str, Any], resolver: Resolver) -> str | None:
    """Why this change loses data, or None."""
    rtype = rc.get("ResourceType", "")
    action = rc.get("Action")
    details = rc.get("Details") or []
    if action == "Remove":
        what = "child stack" if rtype == NESTED_STACK else "resource"
        return (
            f"the {what} would be removed (Action Remove: deleted from the template, or its "
            "logical id was renamed)"
        )
    if action == "Dynamic":
        return "the change cannot be known before execution (Action Dynamic)"
    if action != "Modify":
        return None
    replacement = rc.get("Replacement")
    if replacement == "True":
        causes = [d for d in details if d.get("Target", {}).get("RequiresRecreation") == "Always"]
        return f"would be replaced (Replacement True) because of {_causes(causes or details)}"
    if replacement == "Conditional":
        risky = [d for d in details if d.get("Target", {}).get("RequiresRecreation") in RECREATES]
        real = [d for d in risky if _really_changes(node, d, resolver)]
        if real or not risky:
            return f"may be replaced (Replacement Conditional) because of {_causes(real or details)}"
    if rtype == SECRET:
        if not details:
            return "modified without details: cannot tell whether its value would be regenerated"
        regen = [d for d in details if REGENERATES in (_target_name(d) or "")]
        if any(_really_changes(node, d, resolver) for d in regen):
            return (
                f"a change to {REGENERATES} generates a new secret value (data encrypted or "
                "signed with the old value is lost)"
            )
    if replacement is None and rtype != NESTED_STACK:
        return "modified without a Replacement verdict from the service: cannot tell whether it is replaced"
    return None


def check(root: Node, resolver: Resolver) -> list[Refusal]:
    """Every stateful resource in every nested change set that would lose data."""
    refusals = []
    for node in root.walk():
        for rc in effective_changes(node):
            if rc.get("ResourceType") not in GUARDED_TYPES:
                continue
            reason = _judge(node, rc, resolver)
            if reason:
                refusals.append(
                    Refusal(
                        node.name_of(rc.get("LogicalResourceId", "?")), rc.get("ResourceType", ""), reason
                    )
                )
    return refusals


def split_allowed(
    refusals: list[Refusal], allowed: list[str]
) -> tuple[list[Refusal], list[Refusal], list[str]]:
    """(still refused, lifted by --allow-replacement, allowances that matched nothing)."""
    allow = set(allowed)
    kept = [r for r in refusals if r.name not in allow]
    lifted = [r for r in refusals if r.name in allow]
    unused = sorted(allow - {r.name for r in refusals})
    return kept, lifted, unused


# ------------------------------------------------------------------------------------------
# Live values (thin AWS part)
# ------------------------------------------------------------------------------------------
def _value(entry: dict[str, Any] | None) -> str | None:
    if entry is None:
        return None
    value = entry.get("ResolvedValue") or entry.get("ParameterValue")
    return None if value is None else str(value)


class LiveResolver:
    """Compares a nested stack's live parameter values with those its change set will pass.

    A value the nested change set cannot know yet (``{{IntrinsicFunction:...Sibling.Outputs.X
    /Fn::GetAtt}}``) is the sibling's live Output when that sibling does not change in this
    change set; otherwise it is unknown, and unknown counts as a change.
    """

    def __init__(
        self, cfn: Any, root_new: dict[str, dict[str, Any]], root_live: dict[str, dict[str, Any]]
    ) -> None:
        self.cfn = cfn
        self.root_new = root_new
        self.root_live = root_live
        self._stacks: dict[str, dict[str, Any]] = {}

    def _stack(self, stack_id: str) -> dict[str, Any]:
        if stack_id not in self._stacks:
            out = awsmod.call(f"reading stack {stack_id}", self.cfn.describe_stacks, StackName=stack_id)
            self._stacks[stack_id] = out["Stacks"][0]
        return self._stacks[stack_id]

    def _live_parameter(self, stack_id: str, key: str) -> str | None:
        params = {p["ParameterKey"]: p for p in self._stack(stack_id).get("Parameters", [])}
        return _value(params.get(key))

    def _sibling_output(self, node: Node, sibling: str, output: str) -> str | None:
        parent = node.parent
        if parent is None:
            return None
        if sibling in parent.children and has_changes(parent.children[sibling]):
            return None
        for rc in effective_changes(parent):
            if rc.get("LogicalResourceId") == sibling and sibling not in parent.children:
                return None  # changes, and we cannot look inside
        res = awsmod.call(
            f"reading {parent.label or 'root'}/{sibling}",
            self.cfn.describe_stack_resource,
            StackName=parent.stack_id,
            LogicalResourceId=sibling,
        )
        physical = res["StackResourceDetail"].get("PhysicalResourceId")
        if not physical:
            return None
        outputs = {o["OutputKey"]: o.get("OutputValue") for o in self._stack(physical).get("Outputs", [])}
        return outputs.get(output)

    def parameter_changes(self, node: Node, parameter: str) -> bool | None:
        if node.parent is None:
            new_entry = self.root_new.get(parameter)
            if new_entry is not None and new_entry.get("UsePreviousValue"):
                return False
            new, live = _value(new_entry), _value(self.root_live.get(parameter))
        else:
            entry = node.parameters.get(parameter)
            if entry is None:
                return None
            if entry.get("UsePreviousValue"):
                return False
            new = _value(entry)
            if new is not None and _PLACEHOLDER.search(new):
                m = _SIBLING_OUTPUT.fullmatch(new)
                new = self._sibling_output(node, *m.groups()) if m else None
            live = self._live_parameter(node.stack_id, parameter)
        if new is None or live is None or MASKED in (new, live):
            return None
        return new != live
