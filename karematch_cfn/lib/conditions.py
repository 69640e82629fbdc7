"""Conditions more than one stack declares, declared the same way everywhere."""

from __future__ import annotations

from troposphere import And, Equals, Not, Ref, Template

from karematch_cfn import names


def is_production(t: Template) -> str:
    """``IsProduction``: EnvironmentName is prod (the EnvironmentName Parameter must exist)."""
    if names.IS_PRODUCTION not in t.conditions:
        t.add_condition(names.IS_PRODUCTION, Equals(Ref(names.ENVIRONMENT_NAME), names.PRODUCTION))
    return names.IS_PRODUCTION


def protect_from_deletion(t: Template) -> str:
    """``ProtectFromDeletion``: prod, unless the deployer's first create turned it off.

    Deletion protection that is on during the very first create makes a failed create unable to
    roll back (RDS and ELB refuse to delete a protected resource): ROLLBACK_FAILED.
    """
    names.declare(t, names.ENABLE_DELETION_PROTECTION)
    t.add_condition(
        names.PROTECT_FROM_DELETION,
        And(
            Equals(Ref(names.ENABLE_DELETION_PROTECTION), "true"),
            Equals(Ref(names.ENVIRONMENT_NAME), names.PRODUCTION),
        ),
    )
    return names.PROTECT_FROM_DELETION


def has_image(t: Template) -> str:
    """``HasImage``: ImageTag is set (declares the ImageTag Parameter if missing)."""
    if names.IMAGE_TAG not in t.parameters:
        names.declare(t, names.IMAGE_TAG)
    t.add_condition(names.HAS_IMAGE, Not(Equals(Ref(names.IMAGE_TAG), "")))
    return names.HAS_IMAGE
