"""Tags every taggable resource carries."""

from __future__ import annotations

from troposphere import Sub, Tags

from karematch_cfn import names


def standard(name: str | None = None, **extra: str) -> Tags:
    """Project/Environment tags, plus Name when given (a Fn::Sub pattern from ``names``)."""
    tags: dict = {}
    if name is not None:
        tags["Name"] = Sub(name)
    tags["Project"] = "karematch"
    tags["Environment"] = Sub(names.ENV)
    tags.update(extra)
    return Tags(**tags)
