"""docs/hipaa.md: generated from the templates, fresh, and complete about suppressions."""

from __future__ import annotations

import copy

import pytest

from karematch_cfn import gendocs, hipaa, resolved, scan
from tests import helpers

PAGE = "docs/hipaa.md"


@pytest.fixture(scope="module")
def parsed():
    return resolved.parse(helpers.rendered_text())


@pytest.fixture(scope="module")
def text(parsed):
    return hipaa.control_map(parsed)


def test_the_map_is_registered_and_the_committed_page_is_fresh(parsed):
    assert PAGE in dict(gendocs.GENERATED)
    docs = gendocs.render_docs(parsed)
    assert (helpers.REPO / PAGE).read_text(encoding="utf-8") == docs[PAGE], "run python build.py"


def test_every_safeguard_has_a_section_with_resources(text):
    for safeguard in hipaa.SAFEGUARDS:
        section = text.split(f"## {safeguard.citation} {safeguard.title}\n", 1)[1].split("\n## ", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert rows, safeguard.citation
    for citation in ("164.312(a)", "164.312(b)", "164.312(c)", "164.312(d)", "164.312(e)"):
        assert f"## {citation} " in text
    assert "## 164.308(a)(1)(ii)(D) " in text and "## 164.308(a)(7) " in text


def test_every_suppression_is_in_the_map_with_its_reason_and_environments(parsed, text):
    found = scan.all_suppressions(scan.trees(parsed))
    assert sum(len(v) for v in found.values()) > 5
    section = text.split("## Suppressed scanner checks", 1)[1].split("\n## ", 1)[0]
    for skips in found.values():
        for s in skips:
            assert any(
                s.check_id in row and f"`{s.logical_id}`" in row and s.reason in row
                for row in section.splitlines()
            ), s
    # Dev-only skips say so: prod judges them.
    (multi_az,) = [row for row in section.splitlines() if "CKV_AWS_157" in row]
    assert multi_az.endswith("| dev, staging |")


def test_environment_differences_show_as_separate_rows(text):
    contingency = text.split("## 164.308(a)(7) Contingency plan", 1)[1].split("\n## ", 1)[0]
    db_rows = [row for row in contingency.splitlines() if "`DatabaseInstance`" in row]
    assert any("MultiAZ=true" in r and r.endswith("| prod |") for r in db_rows)
    assert any("MultiAZ=false" in r and r.endswith("| dev, staging |") for r in db_rows)


def test_the_map_follows_the_templates(parsed, text):
    changed = copy.deepcopy(dict(parsed))
    del changed["service.yaml"]["Resources"]["AppLogGroup"]["Properties"]["KmsKeyId"]
    other = hipaa.control_map(changed)
    assert other != text
    access = other.split("## 164.312(a) Access control", 1)[1].split("\n## ", 1)[0]
    assert not any("`AppLogGroup`" in row and "KmsKeyId" in row for row in access.splitlines())


def test_the_outside_cloudformation_checklist_names_the_organisations_part(text):
    checklist = text.split("## Outside CloudFormation", 1)[1]
    for needle in ("Business Associate", "MFA", "Access reviews", "Penetration tests", "training"):
        assert needle in checklist, needle
    assert "## Cost of the hardening" in text and "WAF web ACLs" in text
