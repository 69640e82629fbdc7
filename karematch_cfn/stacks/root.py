"""The root stack: the environment knobs, the children, and the wiring between them.

Parameters: every knob in ``names.SHARED_PARAMETERS`` (the keys of parameters/<env>.json).
Outputs: what a user needs after a deploy (see ``ROOT_OUTPUTS``), forwarded from the children.

Wiring is by name (``names``): a child Parameter is fed by the root Parameter of the same name,
else by the Output of the same name of an earlier child; a child Parameter with a Default may
stay unfed. Anything else is a build error, so the root is the only place that wires children
and it cannot be wired wrongly. The rendered root reads as the wiring table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from troposphere import Equals, GetAtt, Not, Ref, Template
from troposphere.cloudformation import Stack

from karematch_cfn import names, render
from karematch_cfn.lib import policies

ROOT_FILE = "karematch.yaml"
AUDIT_ENABLED = "AuditEnabled"


@dataclass(frozen=True)
class Child:
    """One nested stack: its logical id in the root, its module and its file in templates/."""

    logical_id: str
    build: Callable[[], Template]
    filename: str
    condition: str | None = None  # a root Condition name: the child exists only when it holds


def children() -> list[Child]:
    """The children in dependency order: a child may consume Outputs of those before it."""
    # Imported here so each stack module stays importable (and testable) on its own.
    from karematch_cfn.stacks import CHILD_MODULES

    return [
        Child(logical_id, module.build, filename, condition)
        for logical_id, module, filename, condition in CHILD_MODULES
    ]


# Root Outputs: forwarded child Outputs a user needs after a deploy (never secret values).
ROOT_OUTPUTS = (
    names.LOAD_BALANCER_DNS_NAME,
    names.DISTRIBUTION_DOMAIN_NAME,
    names.DISTRIBUTION_ID,
    names.API_URL,
    names.FRONTEND_BUCKET_NAME,
    names.REPOSITORY_URI,
    names.CLUSTER_NAME,
    names.SERVICE_NAME,
    names.DATABASE_ENDPOINT_ADDRESS,
    names.DATABASE_ENDPOINT_PORT,
    names.APP_SECRET_ARN,
    names.DATABASE_SECRET_ARN,
    names.ALARM_TOPIC_ARN,
)


def _wire(
    child: Child, *, child_template: Template, root_params: set[str], producers: dict[str, Child]
) -> dict[str, Any]:
    """The Parameters block of one child's Stack resource."""
    fed: dict[str, Any] = {}
    for pname, param in sorted(child_template.parameters.items()):
        if pname in root_params:
            fed[pname] = Ref(pname)
        elif pname in producers:
            fed[pname] = GetAtt(producers[pname].logical_id, f"Outputs.{pname}")
        elif "Default" not in param.properties:
            raise ValueError(
                f"{child.filename}: Parameter {pname} has no Default and nothing feeds it "
                f"(no root Parameter and no earlier child Output named {pname})"
            )
    return fed


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["Ref"]} if set(node) == {"Ref"} else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _lift_rules(
    t: Template, *, kids: list[Child], child_templates: dict[str, Template], root_params: set[str]
) -> None:
    """Copy each child Rule that reads only root knobs into the root, so CloudFormation (and
    config.check_rules before a deploy) refuses a bad combination before creating anything,
    not halfway through when the nested stack is created."""
    for child in kids:
        for rname, rule in sorted(child_templates[child.filename].rules.items()):
            if _refs(rule) <= root_params:
                if rname in t.rules:
                    raise ValueError(f"{child.filename}: Rule {rname} clashes with a root Rule")
                t.add_rule(rname, rule)


def build(child_templates: dict[str, Template] | None = None) -> Template:
    """Render the root from the children's templates (built here unless given)."""
    kids = children()
    if child_templates is None:
        child_templates = {c.filename: c.build() for c in kids}

    t = render.new_template(
        "KareMatch root stack: the environment's parameters and the nested stacks that hold it"
    )
    # The root's Parameters are the knobs some child consumes, declared as everywhere else.
    used = {p for ct in child_templates.values() for p in ct.parameters}
    used |= {names.ENVIRONMENT_NAME, names.CERTIFICATE_ARN}  # the Rule below reads both
    if any(c.condition == AUDIT_ENABLED for c in kids):
        used.add(names.ENABLE_CLOUDTRAIL)  # the AuditEnabled Condition below reads it
    root_params = {p for p in names.SHARED_PARAMETERS if p in used}
    for pname in names.SHARED_PARAMETERS:
        if pname in root_params:
            names.declare(t, pname)

    if any(c.condition == AUDIT_ENABLED for c in kids):
        t.add_condition(AUDIT_ENABLED, Equals(Ref(names.ENABLE_CLOUDTRAIL), "true"))
    # Only dev is ever served over plain HTTP (the spec's "forward (development)"): for staging
    # and prod CloudFormation rejects the parameters before it creates anything (config.py
    # applies the same Rule before a deploy).
    t.add_rule(
        "HttpsOutsideDevelopment",
        {
            "RuleCondition": Not(Equals(Ref(names.ENVIRONMENT_NAME), "dev")),
            "Assertions": [
                {
                    "Assert": Not(Equals(Ref(names.CERTIFICATE_ARN), "")),
                    "AssertDescription": (
                        "staging and prod need CertificateArn: outside dev the ALB serves HTTPS only"
                    ),
                }
            ],
        },
    )

    producers: dict[str, Child] = {}
    for child in kids:
        ct = child_templates[child.filename]
        stack = Stack(
            child.logical_id,
            TemplateURL=f"./{child.filename}",
            Parameters=_wire(child, child_template=ct, root_params=root_params, producers=producers),
        )
        if child.condition:
            stack.Condition = child.condition
        # Delete/Delete: the data inside each child carries its own Retain/Snapshot policy;
        # Retain here would orphan a whole child (and its named resources) on a rename.
        t.add_resource(policies.delete(stack))
        for oname in ct.outputs:
            if oname in producers or oname in root_params:
                other = producers[oname].filename if oname in producers else "the root"
                raise ValueError(f"{child.filename}: Output {oname} is also produced by {other}")
            if child.condition is None:  # a conditional child cannot feed the others
                producers[oname] = child

    _lift_rules(t, kids=kids, child_templates=child_templates, root_params=root_params)

    outputs = {}
    for oname in ROOT_OUTPUTS:
        if oname not in producers:
            raise ValueError(f"root Output {oname} is produced by no unconditional child")
        outputs[oname] = GetAtt(producers[oname].logical_id, f"Outputs.{oname}")
    render.add_outputs(t, outputs)
    return t


def build_all() -> dict[str, Template]:
    """Every template of the set, by file name: the children, then the root."""
    kids = children()
    out = {c.filename: c.build() for c in kids}
    out[ROOT_FILE] = build(out)
    return out
