"""Scanner suppressions, written on the resource they concern and nowhere else.

checkov reads ``Metadata.checkov.skip`` (a list of ``{"id": ..., "comment": ...}``); the comment
is the reason, and the HIPAA control map (docs/hipaa.md) lists every one. A check that fails by
design only outside production goes in ``outside`` with the template's Condition that is true in
production: the list is then an ``Fn::If`` that resolves to the production list in prod, so a
prod regression can never hide behind a dev-only skip. The scan reads resolved renderings only
(checkov cannot evaluate an Fn::If).
"""

from __future__ import annotations

from troposphere import AWSObject, If

Skip = tuple[str, str]  # (check id, reason)


def _entries(skips: tuple[Skip, ...]) -> list[dict[str, str]]:
    for check_id, reason in skips:
        if not reason.strip():
            raise ValueError(f"a skip of {check_id} needs its reason")
    return [{"id": check_id, "comment": reason} for check_id, reason in skips]


def skip(
    resource: AWSObject,
    *always: Skip,
    outside: tuple[Skip, ...] = (),
    production_condition: str | None = None,
) -> AWSObject:
    """Add checkov skips to ``resource``'s Metadata: ``always`` in every environment, ``outside``
    only where ``production_condition`` is false."""
    if outside and not production_condition:
        raise ValueError("skips outside production need the Condition that is true in production")
    listed = _entries(always)
    value = If(production_condition, listed, listed + _entries(outside)) if outside else listed
    metadata = dict(getattr(resource, "Metadata", {}) or {})
    metadata["checkov"] = {"skip": value}
    resource.Metadata = metadata
    return resource
