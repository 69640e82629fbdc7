"""Protection after a prod deploy, and the one-resource exception an approved replacement needs.

* A stack policy on every stack that holds stateful resources (nested stacks included: a policy
  on the root can only name its child stacks) denying ``Update:Replace`` and ``Update:Delete``
  on them; the root's policy also protects the child stacks that hold any.
* Then termination protection on the root (nested stacks inherit it from their root). Each step
  is attempted on its own; what could not be set is returned with the command that sets it.
* ExecuteChangeSet takes no temporary policy: for each ``--allow-replacement`` resource the
  policy of the stack that holds it is relaxed for that resource before executing and restored
  in ``finally``, whatever happens to the deploy.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.console import Console
from karematch_cfn.deploy.errors import DeployError
from karematch_cfn.lib.policies import STATEFUL_TYPES

NESTED_STACK = "AWS::CloudFormation::Stack"
DENIED_ACTIONS = ["Update:Replace", "Update:Delete"]


def resource_ref(logical_id: str) -> str:
    return f"LogicalResourceId/{logical_id}"


def policy_document(protected: list[str]) -> str:
    """Allow every update, deny replacing or deleting the ``protected`` logical ids."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Principal": "*", "Action": "Update:*", "Resource": "*"}
    ]
    if protected:
        statements.append(
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": list(DENIED_ACTIONS),
                "Resource": [resource_ref(x) for x in sorted(protected)],
            }
        )
    return json.dumps({"Statement": statements}, indent=2, sort_keys=True)


def relax(policy_body: str, logical_id: str) -> str | None:
    """The policy without its Deny on ``logical_id``; None if it does not name it."""
    doc = json.loads(policy_body)
    target = resource_ref(logical_id)
    changed = False
    kept = []
    for st in doc.get("Statement", []):
        if st.get("Effect") == "Deny":
            res = st.get("Resource", [])
            res_list = [res] if isinstance(res, str) else list(res)
            if target in res_list:
                changed = True
                res_list = [r for r in res_list if r != target]
                if not res_list:
                    continue
                st = {**st, "Resource": res_list}
        kept.append(st)
    if not changed:
        return None
    return json.dumps({**doc, "Statement": kept}, indent=2, sort_keys=True)


@dataclass
class LiveStack:
    path: tuple[str, ...]
    stack_id: str
    resources: list[dict[str, Any]]
    children: dict[str, LiveStack] = field(default_factory=dict)

    def walk(self) -> Iterator[LiveStack]:
        yield self
        for child in self.children.values():
            yield from child.walk()

    def holds_state(self) -> bool:
        return any(r.get("ResourceType") in STATEFUL_TYPES for r in self.resources) or any(
            c.holds_state() for c in self.children.values()
        )

    def protected_ids(self) -> list[str]:
        out = [r["LogicalResourceId"] for r in self.resources if r.get("ResourceType") in STATEFUL_TYPES]
        out += [lid for lid, child in self.children.items() if child.holds_state()]
        return sorted(out)


# Within ``read_once()``: live trees already read, by (client, root stack id).
_READ: contextvars.ContextVar[dict[tuple[int, str], LiveStack] | None] = contextvars.ContextVar(
    "live_trees", default=None
)


@contextlib.contextmanager
def read_once() -> Iterator[None]:
    """Within the block, each live tree is read from CloudFormation once: the planning steps that
    need it (the task count, the quota preflight) share one read. Outside it, always fresh."""
    token = _READ.set({})
    try:
        yield
    finally:
        _READ.reset(token)


def live_tree(cfn: Any, stack_id: str, path: tuple[str, ...] = ()) -> LiveStack:
    """The stack and its nested stacks as they are now (ListStackResources, every page)."""
    read = _READ.get()
    if read is not None and not path and (id(cfn), stack_id) in read:
        return read[(id(cfn), stack_id)]
    node = _read_tree(cfn, stack_id, path)
    if read is not None and not path:
        read[(id(cfn), stack_id)] = node
    return node


def _read_tree(cfn: Any, stack_id: str, path: tuple[str, ...]) -> LiveStack:
    resources: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs = {"StackName": stack_id, **({"NextToken": token} if token else {})}
        page = awsmod.call(
            f"listing resources of {'/'.join(path) or stack_id}", cfn.list_stack_resources, **kwargs
        )
        resources += [r for r in page.get("StackResourceSummaries", []) if r.get("LogicalResourceId")]
        token = page.get("NextToken")
        if not token:
            break
    node = LiveStack(path, stack_id, resources)
    for r in resources:
        if r.get("ResourceType") == NESTED_STACK and r.get("PhysicalResourceId"):
            lid = r["LogicalResourceId"]
            node.children[lid] = live_tree(cfn, r["PhysicalResourceId"], (*path, lid))
    return node


def apply(cfn: Any, console: Console, stack_id: str, stack_name: str) -> list[tuple[str, str]]:
    """Stack policies on the stacks holding data, then termination protection on the root.

    Each step is attempted even when another one fails (the stack is deployed either way, and
    half the protection is better than none). Returns what could not be applied, as pairs of
    (what failed and why, the command that applies it by hand); empty when all is in place.
    """
    missing: list[tuple[str, str]] = []
    try:
        live: LiveStack | None = live_tree(cfn, stack_id)
    except DeployError as exc:
        live = None
        missing.append(
            (
                f"stack policies ({exc.message})",
                "run the same deploy again: with no changes it only applies protection",
            )
        )
    for stack in live.walk() if live else []:
        protected = stack.protected_ids()
        if not protected:
            continue
        where = "/".join(stack.path) or stack_name
        body = policy_document(protected)
        try:
            awsmod.call(
                f"setting the stack policy of {where}",
                cfn.set_stack_policy,
                StackName=stack.stack_id,
                StackPolicyBody=body,
            )
        except DeployError as exc:
            compact = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True)
            command = (
                f"aws cloudformation set-stack-policy --stack-name {stack.stack_id} "
                f"--stack-policy-body '{compact}'"
            )
            missing.append((f"stack policy of {where} ({exc.message})", command))
            continue
        console.say(
            f"protection: stack policy on {where} denies Update:Replace and Update:Delete "
            f"on {', '.join(protected)}"
        )
    try:
        awsmod.call(
            f"enabling termination protection on {stack_name}",
            cfn.update_termination_protection,
            EnableTerminationProtection=True,
            StackName=stack_id,
        )
        console.say(f"protection: termination protection on {stack_name}")
    except DeployError as exc:
        command = (
            "aws cloudformation update-termination-protection "
            f"--enable-termination-protection --stack-name {stack_name}"
        )
        missing.append((f"termination protection ({exc.message})", command))
    return missing


def _find(root: LiveStack, path: tuple[str, ...]) -> LiveStack | None:
    node = root
    for lid in path:
        node = node.children.get(lid)  # type: ignore[assignment]
        if node is None:
            return None
    return node


@contextlib.contextmanager
def relaxed(cfn: Any, console: Console, stack_id: str, allowed: list[str]) -> Iterator[None]:
    """Lift the stack-policy Deny for each allowed ``Child/LogicalId`` during the execution."""
    restore: list[tuple[str, str, str]] = []  # (stack id, label, original body)
    try:
        if allowed:
            root = live_tree(cfn, stack_id)
            by_stack: dict[tuple[str, ...], list[str]] = {}
            for name in allowed:
                *path, logical = name.split("/")
                by_stack.setdefault(tuple(path), []).append(logical)
            for path, logicals in sorted(by_stack.items()):
                stack = _find(root, path)
                if stack is None:
                    continue
                body = awsmod.call(
                    "reading a stack policy", cfn.get_stack_policy, StackName=stack.stack_id
                ).get("StackPolicyBody")
                if not body:
                    continue
                relaxed_body = body
                for logical in logicals:
                    relaxed_body = relax(relaxed_body, logical) or relaxed_body
                if relaxed_body == body:
                    continue
                label = "/".join(path) or "root"
                restore.append((stack.stack_id, label, body))
                awsmod.call(
                    f"relaxing the stack policy of {label}",
                    cfn.set_stack_policy,
                    StackName=stack.stack_id,
                    StackPolicyBody=relaxed_body,
                )
                console.say(
                    f"protection: stack policy of {label} relaxed for {', '.join(logicals)} "
                    "during this deploy"
                )
        yield
    finally:
        for sid, label, body in restore:
            try:
                cfn.set_stack_policy(StackName=sid, StackPolicyBody=body)
                console.say(f"protection: stack policy of {label} restored")
            except Exception as exc:
                console.error(f"could not restore the stack policy of {label}: {awsmod.error_message(exc)}")
                compact = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True)
                console.hint(
                    f"restore it: aws cloudformation set-stack-policy --stack-name {sid} "
                    f"--stack-policy-body '{compact}'"
                )
