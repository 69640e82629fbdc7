"""Change sets: choose CREATE or UPDATE, create, wait, read every page of every nested change
set, decide whether anything really changes, and print the review table.

The reading and judging part is pure: ``Node`` trees built from DescribeChangeSet outputs, so
the tests feed it AWS's documented shapes. The AWS-calling functions are thin.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from karematch_cfn.deploy import aws as awsmod
from karematch_cfn.deploy.console import Console, table
from karematch_cfn.deploy.errors import DeployFailed

NESTED_STACK = "AWS::CloudFormation::Stack"
CREATE, UPDATE = "CREATE", "UPDATE"
# AWS: a FAILED change set with one of these reasons means "nothing to do" (moto instead
# answers CREATE_COMPLETE with no Changes, or refuses CreateChangeSet with the second text).
NO_CHANGE_REASONS = ("didn't contain changes", "No updates are to be performed")
CHANGE_SET_DONE = ("CREATE_COMPLETE", "FAILED", "DELETE_COMPLETE", "DELETE_FAILED")
MAX_POLL = 2.0  # seconds between DescribeChangeSet polls at most: a change set is quick to compute
WAIT_TIMEOUT = 30 * 60  # seconds; CloudFormation's own limit for nested change sets is lower

# Stack states: which operation a deploy can run from each.
UPDATABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)
CREATABLE = frozenset({"REVIEW_IN_PROGRESS"})  # a stack created by a change set never executed


def is_no_change_reason(reason: str | None) -> bool:
    return bool(reason) and any(text in reason for text in NO_CHANGE_REASONS)


def change_set_name(now: dt.datetime | None = None) -> str:
    """A name no other deploy uses: the UTC second plus 8 random hex digits (two deploys
    started in the same second would otherwise collide)."""
    now = now or dt.datetime.now(dt.UTC)
    return f"karematch-cfn-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


# ------------------------------------------------------------------------------------------
# The live stack
# ------------------------------------------------------------------------------------------
def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack, or None if there is none (deleted stacks count as none)."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except Exception as exc:
        if awsmod.error_code(exc) == "ValidationError" and "does not exist" in awsmod.error_message(exc):
            return None
        raise awsmod.translate(exc, f"reading stack {name}") from None
    stack = stacks[0] if stacks else None
    if stack is None or stack.get("StackStatus") == "DELETE_COMPLETE":
        return None
    return stack


def recovery_hint(stack_name: str, status: str) -> list[str]:
    """How to get a stack out of ``status`` (docs/deploying.md, "Recovering")."""
    if status == "ROLLBACK_COMPLETE":
        return [
            "the first create failed and was rolled back; such a stack cannot be updated",
            f"delete it: aws cloudformation delete-stack --stack-name {stack_name}",
            "retained resources (log groups, buckets, repositories) stay behind; delete them or "
            "they block names on the next create (docs/deploying.md), then deploy again",
        ]
    if status in ("ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED"):
        return [
            f"see the failed resources: aws cloudformation describe-stack-events --stack-name {stack_name}",
            f"delete the stack: aws cloudformation delete-stack --stack-name {stack_name} "
            "(add --retain-resources for those that cannot be deleted), then deploy again",
        ]
    if status == "UPDATE_ROLLBACK_FAILED":
        return [
            "the update failed and so did the rollback; fix the cause (see the events), then:",
            f"aws cloudformation continue-update-rollback --stack-name {stack_name} "
            "[--resources-to-skip Child.LogicalId ...]",
            "when the stack is UPDATE_ROLLBACK_COMPLETE, deploy again",
        ]
    if status == "UPDATE_FAILED":
        return [f"aws cloudformation rollback-stack --stack-name {stack_name}, then deploy again"]
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return ["the stack is back on its previous template; fix the cause and deploy again"]
    if status.endswith("_IN_PROGRESS"):
        return [
            f"wait for it to finish: aws cloudformation describe-stack-events --stack-name {stack_name}",
            "then deploy again",
        ]
    return []


def plan(stack: dict[str, Any] | None, stack_name: str) -> str:
    """CREATE or UPDATE; a stack in a failed or busy state stops the deploy (exit 4)."""
    if stack is None:
        return CREATE
    status = stack["StackStatus"]
    if status in CREATABLE:
        return CREATE
    if status in UPDATABLE:
        return UPDATE
    state = "busy" if status.endswith("_IN_PROGRESS") else "in a failed state"
    raise DeployFailed(
        f"stack {stack_name} is {state} ({status}); nothing was changed", *recovery_hint(stack_name, status)
    )


# ------------------------------------------------------------------------------------------
# Creating and waiting
# ------------------------------------------------------------------------------------------
NO_CHANGES = "no-changes"


def create(
    cfn: Any,
    *,
    stack_name: str,
    change_set_type: str,
    template: dict[str, str],
    parameters: list[dict[str, Any]],
    capabilities: list[str],
    name: str,
    description: str,
    role_arn: str | None = None,
    tags: list[dict[str, str]] | None = None,
    rollback: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """CreateChangeSet with nested change sets; returns (change set id, stack id), or
    (NO_CHANGES, "") when the service refuses it for having nothing to do."""
    kwargs: dict[str, Any] = dict(
        StackName=stack_name,
        ChangeSetName=name,
        ChangeSetType=change_set_type,
        Parameters=parameters,
        Capabilities=capabilities,
        IncludeNestedStacks=True,
        Description=description,
        **template,
    )
    if role_arn:
        kwargs["RoleARN"] = role_arn
    if tags:
        kwargs["Tags"] = tags
    if rollback is not None:
        kwargs["RollbackConfiguration"] = rollback
    try:
        out = cfn.create_change_set(**kwargs)
        return out["Id"], out.get("StackId", "")
    except Exception as exc:
        if awsmod.error_code(exc) == "ValidationError" and is_no_change_reason(awsmod.error_message(exc)):
            return NO_CHANGES, ""  # moto says so here; AWS says it in the change set's status
        raise awsmod.translate(exc, f"creating change set for {stack_name}") from None


def wait(
    cfn: Any,
    console: Console,
    change_set_id: str,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the change set is computed; returns its first page."""
    start = console.clock()
    next_note = 15.0
    while True:
        desc = awsmod.call("reading the change set", cfn.describe_change_set, ChangeSetName=change_set_id)
        if desc["Status"] in CHANGE_SET_DONE:
            return desc
        waited = console.clock() - start
        if waited > WAIT_TIMEOUT:
            raise DeployFailed(
                f"change set {change_set_id} still {desc['Status']} after {WAIT_TIMEOUT // 60} minutes"
            )
        if waited >= next_note:
            console.say(f"  still computing the change set ({int(waited)}s, {desc['Status']})")
            next_note += 15.0
        sleep(interval)


def describe_all(cfn: Any, change_set_id: str, first: dict[str, Any] | None = None) -> dict[str, Any]:
    """DescribeChangeSet with every page's Changes joined into one description."""
    desc = first or awsmod.call(
        "reading the change set", cfn.describe_change_set, ChangeSetName=change_set_id
    )
    merged = dict(desc)
    changes = list(desc.get("Changes", []))
    token = desc.get("NextToken")
    while token:
        page = awsmod.call(
            "reading the change set", cfn.describe_change_set, ChangeSetName=change_set_id, NextToken=token
        )
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    merged["Changes"] = changes
    merged.pop("NextToken", None)
    return merged


def delete(cfn: Any, change_set_id: str) -> None:
    awsmod.call("deleting the change set", cfn.delete_change_set, ChangeSetName=change_set_id)


# ------------------------------------------------------------------------------------------
# The tree of change sets, and what really changes
# ------------------------------------------------------------------------------------------
@dataclass
class Node:
    """One stack's change set, with the nested change sets of its child stacks."""

    path: tuple[str, ...]
    description: dict[str, Any]
    children: dict[str, Node] = field(default_factory=dict)
    parent: Node | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return "/".join(self.path)

    @property
    def resource_changes(self) -> list[dict[str, Any]]:
        return [
            c["ResourceChange"]
            for c in self.description.get("Changes", [])
            if c.get("Type", "Resource") == "Resource" and "ResourceChange" in c
        ]

    @property
    def stack_id(self) -> str:
        return self.description.get("StackId", "")

    @property
    def stack_name(self) -> str:
        return self.description.get("StackName", "")

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return {p["ParameterKey"]: p for p in self.description.get("Parameters", []) or []}

    @property
    def failed_without_changes(self) -> bool:
        d = self.description
        return d.get("Status") == "FAILED" and is_no_change_reason(d.get("StatusReason"))

    def name_of(self, logical_id: str) -> str:
        return "/".join((*self.path, logical_id))

    def walk(self):
        yield self
        for child in self.children.values():
            yield from child.walk()


def fetch_tree(
    describe: Callable[[str], dict[str, Any]], root: dict[str, Any], path: tuple[str, ...] = ()
) -> Node:
    """The root description plus every nested change set (``ResourceChange.ChangeSetId``),
    read through ``describe(change_set_id) -> all pages joined``."""
    node = Node(path, root)
    for rc in node.resource_changes:
        nested_id = rc.get("ChangeSetId")
        if rc.get("ResourceType") == NESTED_STACK and nested_id:
            child = fetch_tree(describe, describe(nested_id), (*path, rc["LogicalResourceId"]))
            child.parent = node
            node.children[rc["LogicalResourceId"]] = child
    return node


def effective_changes(node: Node) -> list[dict[str, Any]]:
    """The node's changes without nested stacks listed as Modify that change nothing inside."""
    if node.failed_without_changes:
        return []
    out = []
    for rc in node.resource_changes:
        child = node.children.get(rc.get("LogicalResourceId", ""))
        if (
            rc.get("ResourceType") == NESTED_STACK
            and rc.get("Action") == "Modify"
            and child is not None
            and not has_changes(child)
        ):
            continue
        out.append(rc)
    return out


def has_changes(node: Node) -> bool:
    return bool(effective_changes(node))


# ------------------------------------------------------------------------------------------
# The review table
# ------------------------------------------------------------------------------------------
RECREATION = {"Always": "replace", "Conditionally": "may replace"}
SOURCES = {
    "ParameterReference": "parameter",
    "ResourceAttribute": "attribute of",
    "ResourceReference": "ref to",
    "DirectModification": "direct",
    "Automatic": "automatic",
    "NoModification": "no modification",
}


def detail_text(detail: dict[str, Any]) -> str:
    """``RetentionInDays``, ``VpcId (may replace; dynamic: parameter VpcId)``: names only,
    never property values (they could be secrets)."""
    target = detail.get("Target", {})
    attr = target.get("Attribute", "")
    what = target.get("Name") or target.get("Path") or attr
    if attr and attr != "Properties":
        what = attr if not target.get("Name") else f"{attr}.{target['Name']}"
    notes = []
    if target.get("RequiresRecreation") in RECREATION:
        notes.append(RECREATION[target["RequiresRecreation"]])
    if detail.get("Evaluation") == "Dynamic":
        source = SOURCES.get(detail.get("ChangeSource", ""), detail.get("ChangeSource", ""))
        notes.append(f"dynamic: {source} {detail.get('CausingEntity', '')}".rstrip())
    return f"{what} ({'; '.join(notes)})" if notes else what


def changes_text(rc: dict[str, Any], child: Node | None) -> str:
    action = rc.get("Action", "")
    if action == "Remove":
        return "removed from the template"
    if action == "Add":
        return "new"
    if rc.get("ResourceType") == NESTED_STACK and child is not None:
        return f"{len(effective_changes(child))} change(s) inside, below"
    seen: list[str] = []
    for d in rc.get("Details", []) or []:
        text = detail_text(d)
        if text not in seen:
            seen.append(text)
    return ", ".join(seen) if seen else "(no details from the service)"


def table_lines(root: Node, root_stack_name: str) -> list[str]:
    """One table per stack that changes: action, logical id, type, replacement, what changed."""
    lines: list[str] = []
    for node in root.walk():
        changes = effective_changes(node)
        if not changes:
            continue
        title = root_stack_name if not node.path else f"{root_stack_name} / {node.label}"
        lines.append("")
        lines.append(f"Stack {title}" + (f" ({node.stack_name})" if node.path and node.stack_name else ""))
        rows = []
        for rc in changes:
            child = node.children.get(rc.get("LogicalResourceId", ""))
            rows.append(
                (
                    rc.get("Action", ""),
                    rc.get("LogicalResourceId", ""),
                    rc.get("ResourceType", ""),
                    rc.get("Replacement", "-") or "-",
                    changes_text(rc, child),
                )
            )
        lines += ["  " + x for x in table(rows, ("Action", "Logical ID", "Type", "Replacement", "Changes"))]
    return lines
