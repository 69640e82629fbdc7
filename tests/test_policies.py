"""Every stateful resource keeps its data; every child stack has deliberate policies; the
logical ids of stateful resources are pinned (renaming one replaces the resource)."""

from __future__ import annotations

from karematch_cfn.lib import policies
from tests import helpers

DATA_KEEPING = {"Retain", "RetainExceptOnCreate", "Snapshot"}


def _all_resources():
    for filename in helpers.rendered_text():
        for logical_id, res in helpers.template(filename).get("Resources", {}).items():
            yield filename, logical_id, res


def test_stateful_resources_never_delete_their_data():
    seen = 0
    for filename, logical_id, res in _all_resources():
        if res["Type"] in policies.STATEFUL_TYPES:
            seen += 1
            assert res.get("DeletionPolicy") in DATA_KEEPING, f"{filename}/{logical_id}"
            assert res.get("UpdateReplacePolicy") in DATA_KEEPING - {"RetainExceptOnCreate"}, (
                f"{filename}/{logical_id}"
            )  # RetainExceptOnCreate is a DeletionPolicy only
    assert seen > 0


def test_the_database_is_snapshotted_not_merely_retained():
    for _filename, _logical_id, res in _all_resources():
        if res["Type"] == "AWS::RDS::DBInstance":
            assert res["DeletionPolicy"] == "Snapshot" and res["UpdateReplacePolicy"] == "Snapshot"


def test_child_stacks_have_explicit_policies():
    stacks = helpers.resources_of_type(helpers.template("karematch.yaml"), "AWS::CloudFormation::Stack")
    assert stacks
    for logical_id, res in stacks.items():
        assert res.get("DeletionPolicy") and res.get("UpdateReplacePolicy"), logical_id
